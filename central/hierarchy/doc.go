// Package hierarchy is the distributed mode's link between a Primary
// Central Node (PCN) and its Secondary Central Nodes (SCNs): the join, the
// PCN's decision, and the long-lived link that the SCN opens.
//
// Design note. The SCN always dials, so an SCN behind NAT works. Its
// administrator gives the PCN's gRPC address; FetchFingerprint reads the
// PCN's certificate chain, untrusted, and shows the fingerprint of the CA it
// ends in (the SHA-256 of the PCN cluster CA's public key: the same on every
// node of a PCN cluster and across the nodes' certificate renewals). Once
// the administrator confirmed it, every connection to the PCN is pinned to
// it (pki.VerifyPinnedChain): a PCN with another CA is refused before a
// byte of the request is sent.
//
// Join sends a CSR and the credentials of an account made on the PCN; the
// PCN records the request (servers/<id>, pending) and answers with a
// request id and secret. The SCN then polls (Poll) rather than holding a
// call open for what may be days: a poll survives restarts of either side,
// and any node of the SCN can make it. Accept (the PCN's administrator,
// choosing the tenant) marks the request accepted; the next poll signs the
// link certificate, "osprey://server/<id>", which pki keeps apart from a
// sensor's (neither parser accepts the other), and issues the first token.
// Reject forgets the request.
//
// The link (Link) runs over mutual TLS with that certificate, from one node
// of the SCN at a time (an etcd election). Its hello carries the token: the
// PCN refuses an expired one (Unauthenticated, ErrTokenExpired) until the
// SCN logs in again with its account (Login); while the link is up the PCN
// moves the expiry on (TokenRefresh), so the token's lifetime is the time an
// SCN may stay offline. Heartbeats go both ways; three missed ones end the
// link on either side. The PCN node holding a link records it under its
// lease (server-status/<id>), so a dead PCN node's links show offline. The
// SCN renews its certificate, for a new key, at two thirds of its life
// (RenewLink); the PCN accepts the last two keys it certified, so an answer
// lost on the way does not lock the SCN out. Disconnect marks the SCN
// disconnected: its link is refused (PermissionDenied, ErrDisconnected) and
// the SCN shows it is standalone again.
//
// Everything else on the link travels on channels (Channel): each feature
// that talks over the link (users and rules down, alerts up, sensors managed
// from the PCN) gives each side a channel, which claims its messages and
// runs while the link is up, on the node holding it. The link serialises
// the sends of its loop and its channels; a channel's error ends the link,
// which the SCN opens again.
package hierarchy
