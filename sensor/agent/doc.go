// Package agent is the sensor's side of its link with the Central Nodes: it
// enrolls the sensor, keeps its identity and last applied configuration on
// disk, and holds the Connect stream over which configuration flows down and
// acknowledgements, status and certificate renewals flow up.
//
// # Design
//
// Everything the sensor must survive a restart with lives in its data dir
// (mode 0700):
//
//	identity/key.pem      the client key, PKCS#8 PEM (0600)
//	identity/cert.pem     the client certificate, PEM
//	identity/ca.pem       the cluster CA certificate: the sensor's only trust root
//	identity/sensor.json  sensor_id, tenant, name, central_targets, enrolled_at (0600)
//	config/applied.pb     the last applied SensorConfig, binary protobuf (0600:
//	                      it holds the POP3 password)
//
// The identity is written once at
// [Enroll], with sensor.json last, so that its presence means "enrolled";
// after that only the key pair changes, at each certificate renewal. A key
// and its certificate are two files, which no single rename can switch
// together, so a renewal writes both beside the old ones ("*.next") and then
// renames them in; loading finishes a switch that a crash interrupted.
//
// The configuration is pushed as full snapshots tagged with the revision at
// which the central read them. The agent applies a snapshot through its
// [Applier] and answers Ack or Nack; it writes the snapshot to
// config/applied.pb only after it applied it, so the file always holds the
// last good configuration, and applies that file at start before it dials
// anything: mail keeps flowing while no central node is reachable. A
// snapshot whose revision is the one already applied (the central resends
// its snapshot on every new stream) is acknowledged without applying it
// again.
//
// One goroutine owns a stream, as in etcd's watch client: a receive loop and
// a send loop feed it through channels, it applies configurations, sends
// status every [Options.StatusInterval] and after each configuration, and
// renews the certificate in the renewal window the central sends first on
// the stream (a point between 60% and 75% of its lifetime by default, fixed
// per certificate). The renewal happens on the open stream: the new pair is
// persisted, then swapped into the value that
// tls.Config.GetClientCertificate reads, so the stream in use stays up and
// the next handshake presents the new certificate; a status naming the new
// certificate tells the central it arrived. Each stream has its own gRPC
// client connection, closed when the stream ends, so the next stream is a
// new handshake.
//
// A sensor that was offline for longer than its certificate lives cannot
// open a stream: TLS refuses the certificate. Before a stream, when the
// certificate has expired by the agent's clock, or when the central refused
// it as expired in the handshake (its clock is ahead), the agent calls
// Reissue over TLS without a client certificate: it signs the central's
// challenge, its certificate and a CSR for a new key with the certificate's
// key, and stores and uses the certificate it gets as a renewal does. So a
// sensor comes back by itself however long it was away; only a central that
// refuses it for good (revoked, deleted, a certificate superseded by a newer
// one) leaves the operator something to do, and the log says what.
//
// Between streams the agent waits with exponential backoff and full jitter
// (500 ms to 30 s; a revoked sensor, which the central refuses with
// PermissionDenied, 5 s to 5 min, since an administrator may approve it
// again). A stream that lived longer than 30 s resets the backoff.
package agent
