// Package pki makes and loads the keys and certificates Osprey needs: the
// self-signed serving certificate a node makes for itself when the operator
// gives none, and the cluster CA that enrolls sensors.
//
// Keys are ECDSA P-256: small, fast to make on a 2-core box, and accepted by
// every TLS 1.2+ peer we talk to.
//
// # Trust model of enrollment
//
// A cluster has one CA ([NewCA]), made by the first central node. Its private
// key lives in etcd, sealed ([Seal]) under a key-encryption key that never
// enters etcd ([LoadOrCreateKEK]). Every central node makes its own serving key
// and has the CA sign it ([CA.SignServer]); it serves the chain leaf+CA
// ([CA.TLSCertificate]).
//
// A sensor starts with nothing but a join token, which carries the SHA-256 of
// the CA's SubjectPublicKeyInfo ([SPKIHash], as kubeadm's
// --discovery-token-ca-cert-hash does). During enrollment it checks the
// central's chain with [VerifyPinnedChain]: the chain must hold a CA whose key
// has that hash, and the leaf must be a server certificate that CA signed. The
// host name is not checked in this step: the pin names the one key that may
// vouch for the cluster, which is stronger than any name, and sensors reach the
// cluster through a DNS name that answers with whichever nodes are healthy. A
// man in the middle with another CA fails the pin; one that replays our
// (public) CA certificate next to its own leaf fails the signature check.
//
// The sensor sends a CSR ([NewCSR]) with the token's secret. The central node
// takes only the public key from it ([CA.SignClient]); the identity in the
// client certificate (tenant, sensor id) is the one the central assigned,
// encoded as the URI SAN osprey://sensor/<tenant>/<sensor-id> and read back
// with [IdentityFromCert]. Client certificates are short-lived; the sensor
// renews them over its stream with a fresh key, and the central refuses a
// public key it has seen before ([PublicKeyFingerprint]). A sensor whose
// certificate expired while it was offline gets a new one without a
// person: it proves it holds the expired certificate's key by signing a
// challenge of the central's, bound to that certificate and to the request
// for the new key ([SignReissueProof], [VerifyReissueProof]), and the
// central checks that it issued the certificate, expiry aside
// ([CA.VerifyIssuedClient]).
//
// After enrollment the sensor keeps the CA certificate as its only trust root
// and checks every central with [VerifyAgainstCA]: the chain must lead to that
// CA and the leaf must allow server authentication. The host name is still not
// checked, for the same reason as above: only central nodes get server
// certificates from the cluster CA (sensors' certificates allow client
// authentication only), so "signed by our CA for server auth" already means
// "a central node of our cluster", whatever name the sensor dialled.
//
// # Between central nodes
//
// etcd's members must authenticate each other before etcd, and so the
// cluster CA, can be read. Every central node holds the same
// key-encryption key, so each derives the same second CA from it
// ([DeriveCA]: HKDF-SHA256 seeds an Ed25519 key) and signs its own peer
// certificate ([CA.SignPeer]) for a key it makes at each start. Holding
// the key-encryption key is then what makes a host a member.
package pki
