// Package remotesensors lets a PCN list and configure the sensors of its
// SCNs, over the distributed mode's link (central/hierarchy's channels).
//
// Design note. The SCN sends its sensor list up (Secondary, a link
// channel): when the link comes up, and after any change of a sensor's
// record, configuration, status or of the SCN's own switch (a watch,
// debounced), but only when the list differs from the one last sent; the
// fields that change at every status report (last seen, counters) are not
// in it. The PCN node holding the link stores the list at
// server-sensors/<server id>, one compact key per SCN, so an API call on
// any node of the PCN reads it.
//
// A read or write of a sensor's settings document (SMTP, gateway included,
// and POP3) may land on any PCN node; the link is held by one. The calling
// node puts a request key (cluster/server-rpc/<server>/<request>) under a
// lease of a few seconds and watches for the answer key; the node holding
// the link (Primary, a link channel) follows the requests of its SCN, sends
// each down, and stores the SCN's answer under the request's lease. The
// caller revokes the lease, which deletes both. A call to an SCN whose link
// is down fails at once (ErrOffline); one the SCN does not answer within
// the bound fails with ErrNoAnswer, never hangs.
//
// The SCN runs a call through its own API's handler (the Documents
// function its node gives), so the PCN gets exactly what the SCN's API
// would answer: 400 with the field errors of a bad document, 409 for a
// stale If-Match, the document and its new version. The sensor's ACK or
// NACK of the new configuration then shows in the next list. An SCN whose
// administrator switched sensor management off (store.SensorManagement)
// answers every write 403 and still sends its list: the PCN's operators
// keep seeing the SCN's sensors, and no more.
//
// Who may do what on the PCN is decided in one place, Allowed.
package remotesensors
