// Osprey web UI: the little JavaScript the pages use. Everything works
// without it; it adds list editing, copy buttons and the live server list.
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  // ---- Editable lists: add and remove rows ----
  function clearRow(row) {
    var input = row.querySelector('input');
    input.value = '';
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
    row.classList.remove('invalid');
    row.querySelectorAll('.entry-error').forEach(function (el) { el.parentNode.removeChild(el); });
    return input;
  }

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('[data-remove],[data-add],[data-copy]');
    if (!btn || btn.disabled) return;
    if (btn.hasAttribute('data-remove')) {
      var row = btn.closest('.list-row');
      var list = row.parentNode;
      var next = row.nextElementSibling || row.previousElementSibling;
      if (list.querySelectorAll('.list-row').length === 1) {
        clearRow(row).focus();
        return;
      }
      list.removeChild(row);
      if (next) next.querySelector('input').focus();
    } else if (btn.hasAttribute('data-add')) {
      var ul = document.getElementById(btn.getAttribute('data-add'));
      var rows = ul.querySelectorAll('.list-row');
      var copy = rows[rows.length - 1].cloneNode(true);
      var input = clearRow(copy);
      input.id = ul.id + '-new' + rows.length;
      input.setAttribute('aria-label', 'New entry');
      ul.appendChild(copy);
      input.focus();
    } else {
      copyText(document.getElementById(btn.getAttribute('data-copy')), btn);
    }
  });

  // Enter in a list entry adds a row rather than submitting the form.
  document.addEventListener('keydown', function (ev) {
    if (ev.key !== 'Enter' || !ev.target.closest('.list-editor')) return;
    ev.preventDefault();
    var ul = ev.target.closest('.list-editor');
    var add = document.querySelector('[data-add="' + ul.id + '"]');
    if (add) add.click();
  });

  // ---- Copy buttons ----
  function copyText(el, btn) {
    var text = el.value !== undefined ? el.value : el.textContent;
    var done = function () {
      var label = btn.textContent;
      btn.textContent = 'Copied';
      setTimeout(function () { btn.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    if (el.select) el.select(); else sel.addRange(range);
    try { document.execCommand('copy'); done(); } catch (e) { /* the text stays selected */ }
  }

  // ---- A refused form: take the keyboard (and screen readers) to its errors ----
  var summary = document.getElementById('error-summary');
  if (summary) summary.focus();

  // ---- A check box that disables a group (Unlimited → size) ----
  function syncDisables(box) {
    var group = document.getElementById(box.getAttribute('data-disables'));
    if (!group) return;
    group.querySelectorAll('input,select').forEach(function (el) {
      el.disabled = box.checked || box.disabled;
    });
    group.classList.toggle('is-disabled', box.checked);
  }
  document.querySelectorAll('[data-disables]').forEach(function (box) {
    syncDisables(box);
    box.addEventListener('change', function () { syncDisables(box); });
  });

  // ---- Settings that apply only while a check box is on (POP3: Use TLS) ----
  // The server renders them disabled already; this follows the box live.
  function syncEnabledBy(box) {
    var off = !box.checked || box.disabled;
    document.querySelectorAll('[data-enabled-by="' + CSS.escape(box.id) + '"]').forEach(function (group) {
      group.querySelectorAll('input,select,textarea').forEach(function (el) { el.disabled = off; });
      group.classList.toggle('is-disabled', off);
    });
  }
  var enablers = {};
  document.querySelectorAll('[data-enabled-by]').forEach(function (group) {
    var box = document.getElementById(group.getAttribute('data-enabled-by'));
    if (!box || enablers[box.id]) return;
    enablers[box.id] = true;
    syncEnabledBy(box);
    box.addEventListener('change', function () { syncEnabledBy(box); });
  });

  // ---- The SMTP mode shows the settings of the directions it runs ----
  // The server renders the others hidden already (unless they hold an
  // error); this follows the mode live. Hidden fields are still sent.
  var smtpMode = document.getElementById('smtp-mode');
  function syncMode() {
    document.querySelectorAll('[data-modes]').forEach(function (el) {
      var on = el.getAttribute('data-modes').split(' ').indexOf(smtpMode.value) >= 0;
      el.hidden = !on && !el.querySelector('[aria-invalid="true"]');
    });
  }
  if (smtpMode) {
    syncMode();
    smtpMode.addEventListener('change', syncMode);
  }

  // ---- Rows that unfold a detail row (a refusal in the audit log) ----
  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('[data-toggle-row]');
    if (!btn) return;
    var row = document.getElementById(btn.getAttribute('data-toggle-row'));
    if (!row) return;
    var open = row.classList.toggle('open');
    btn.setAttribute('aria-expanded', open ? 'true' : 'false');
    btn.textContent = open ? 'Hide details' : 'Details';
  });

  // ---- Forms that ask first (deleting a rule) ----
  document.addEventListener('submit', function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // ---- A rule's value: the example follows the kind chosen ----
  var kind = document.getElementById('rule-kind');
  var value = document.getElementById('rule-value');
  function syncPlaceholder() {
    var opt = kind.options[kind.selectedIndex];
    if (opt) value.placeholder = opt.getAttribute('data-placeholder') || '';
  }
  if (kind && value) {
    syncPlaceholder();
    kind.addEventListener('change', syncPlaceholder);
  }

  // ---- Live server list ----
  var table = document.getElementById('sensor-table');
  if (!table) return;
  var url = table.getAttribute('data-live-url');
  var banner = document.getElementById('live-banner');
  var interval = 4000;
  var stopped = false;

  function showBanner(text, linkText, href) {
    banner.textContent = text + ' ';
    if (linkText) {
      var a = document.createElement('a');
      a.href = href;
      a.textContent = linkText;
      banner.appendChild(a);
    }
    banner.hidden = false;
  }

  function setBadge(el, cls, text) {
    if (!el) return;
    el.className = 'badge ' + cls;
    el.textContent = text;
  }

  function setText(el, text, title) {
    if (!el) return;
    el.textContent = text;
    if (title !== undefined) el.title = title;
  }

  // setPart shows an integration's state, as the "partbadge" template does.
  function setPart(cell, part) {
    if (!cell || !part) return;
    var el = cell.querySelector('.badge');
    setBadge(el, 'part-' + part.state, part.state === 'waiting_lock' ? 'waiting for lock' : part.state === 'unknown' ? '—' : part.state);
    if (el) el.title = part.title;
  }

  // setProblems lists the ALERT and RISK problems, as the list template does.
  function setProblems(list, problems) {
    if (!list) return;
    list.textContent = '';
    problems.forEach(function (p) {
      if (p.level !== 'alert' && p.level !== 'risk') return;
      var li = document.createElement('li');
      li.className = 'problem problem-' + p.level;
      li.title = p.text;
      li.textContent = p.text;
      list.appendChild(li);
    });
  }

  function update(data) {
    data.sensors.forEach(function (s) {
      var row = table.querySelector('tr[data-sensor="' + CSS.escape(s.id) + '"]');
      if (!row) return;
      var q = function (name) { return row.querySelector('[data-live="' + name + '"]'); };
      setBadge(q('online'), s.online ? 'conn-online' : 'conn-offline', s.online ? 'online' : 'offline');
      setBadge(q('state'), 'state-' + s.state, s.state);
      setBadge(q('sync'), 'sync-' + s.sync, s.sync);
      setText(q('node'), s.node || '—');
      setText(q('last_seen'), s.last_seen_ago, s.last_seen);
      setText(q('applied'), String(s.applied_version));
      setText(q('stored'), String(s.config_version));
      setText(q('last_error'), s.last_error || '', s.last_error_at || '');
      setPart(q('smtp'), s.smtp);
      setPart(q('pop3'), s.pop3);
      setProblems(q('problems'), s.problems || []);
    });
    table.setAttribute('data-updated', String(Date.now()));
    var pending = Number(table.getAttribute('data-pending'));
    var total = Number(table.getAttribute('data-total'));
    if (data.pending !== pending || data.total !== total) {
      showBanner('The list has changed (' + data.total + ' sensors, ' + data.pending + ' waiting for approval).',
        'Reload', window.location.pathname + window.location.search);
    }
  }

  var timer = null;
  var inflight = false;

  function schedule() {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(poll, interval);
  }

  function poll() {
    if (stopped || inflight) return;
    if (document.hidden) { schedule(); return; }
    var ids = [];
    table.querySelectorAll('tr[data-sensor]').forEach(function (r) {
      ids.push('id=' + encodeURIComponent(r.getAttribute('data-sensor')));
    });
    inflight = true;
    fetch(url + '?' + ids.join('&'), { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (resp) {
        if (resp.status === 401) {
          stopped = true;
          showBanner('Your session has ended.', 'Sign in again', '/signin?next=' + encodeURIComponent(window.location.pathname + window.location.search));
          return null;
        }
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        return resp.json();
      })
      .then(function (data) {
        if (data) { update(data); table.classList.remove('stale'); }
      })
      .catch(function () { table.classList.add('stale'); })
      .then(function () { inflight = false; schedule(); });
  }
  schedule();
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) { clearTimeout(timer); poll(); }
  });
})();
