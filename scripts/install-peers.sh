#!/usr/bin/env bash
# Installs the real protocol peers the tests talk to (Debian packages), when
# they are missing and we are allowed to (root, or passwordless sudo). A test
# that needs a missing peer fails when OSPREY_REQUIRE_PEERS=1, so this is the
# one place that knows the list.
set -euo pipefail

packages=(
  swaks            # SMTP client used in interoperability tests
  libnet-ssleay-perl # swaks --tls needs it; --no-install-recommends leaves it out
  postfix          # relaying MTA and smtp-source / smtp-sink load tools
  dovecot-pop3d    # POP3 server
  dnsutils         # dig
  chromium         # the web UI tests drive it with chromedp
  clamav-daemon    # clamd, for the ClamAV engine test (the test writes its own signatures)
  rspamd           # the spam engine's tests and benchmark start their own daemon in a temp dir
  fetchmail        # the POP3 drain benchmark's reference
  rsyslog          # a real syslog receiver for the SIEM export test
  socat
  slapd            # OpenLDAP: the SMTP AUTH tests start their own directory in a temp dir
  ldap-utils       # ldapadd/ldapsearch, to fill and check that directory
  postgresql       # the SQL store's PostgreSQL driver; tests run their own server in a temp dir
  openssl
  ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-peers: missing ${missing[*]} and cannot install them (not root); tests that need them will fail with OSPREY_REQUIRE_PEERS=1" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-peers: no apt-get here; install ${missing[*]} by hand" >&2
  exit 0
fi
echo "install-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# postfix asks debconf questions; answer them so the install never blocks.
echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
# slapd asks for an admin password and a domain; the tests run their own
# server with its own configuration, so the packaged one is left unconfigured.
echo "slapd slapd/no_configuration boolean true" | "${sudo[@]}" debconf-set-selections
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The tests start their own instances on loopback ports; the packaged daemons
# must not hold the standard ports or run in the background.
for svc in postfix dovecot postgresql rspamd slapd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${sudo[@]}" systemctl stop "$svc" || true
  fi
done
# rspamd's package enables its service; it must not come back at the next boot.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet rspamd 2>/dev/null; then
  "${sudo[@]}" systemctl disable rspamd >/dev/null 2>&1 || true
fi
