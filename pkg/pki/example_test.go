package pki_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
)

// Enrollment from end to end, without the network: what the central node
// and the sensor each do, in order.
func Example_enrollment() {
	// Central node, first start: make the cluster CA and seal its key for etcd.
	ca, err := pki.NewCA("Osprey cluster CA", 0)
	if err != nil {
		panic(err)
	}
	kek := make([]byte, pki.KEKSize) // pki.LoadOrCreateKEK(dataDir + "/kek") in real life
	if _, err := rand.Read(kek); err != nil {
		panic(err)
	}
	certPEM, keyPEM, err := pki.MarshalCA(ca)
	if err != nil {
		panic(err)
	}
	sealedKey, err := pki.Seal(keyPEM, kek, pki.CAKeyLabel) // stored in etcd with certPEM
	if err != nil {
		panic(err)
	}

	// Central node: its gRPC serving certificate, from its own key.
	nodeKey, err := pki.GenerateKey()
	if err != nil {
		panic(err)
	}
	leaf, err := ca.SignServer(nodeKey.Public(), []string{"central-1.osprey.example"}, 90*24*time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	serving, err := ca.TLSCertificate(leaf, nodeKey) // tls.Config.Certificates
	if err != nil {
		panic(err)
	}

	// The join token carries this pin (see package jointoken).
	pin := pki.SPKIHash(ca.Cert)

	// Sensor: a key of its own and a CSR. The name it asks for does not matter.
	sensorKey, err := pki.GenerateKey()
	if err != nil {
		panic(err)
	}
	csr, err := pki.NewCSR(sensorKey, "I am the admin")
	if err != nil {
		panic(err)
	}
	// Sensor: in tls.Config.VerifyPeerCertificate, check the central's chain
	// against the pin, and keep the CA it finds as its trust root.
	root, err := pki.VerifyPinnedChain(serving.Certificate, pin)
	fmt.Println("central matches the pin:", err == nil)

	// Central node (another one, perhaps): open the CA key, refuse a key seen
	// before, and sign with the identity it assigns.
	opened, err := pki.Open(sealedKey, kek, pki.CAKeyLabel)
	if err != nil {
		panic(err)
	}
	signer, err := pki.ParseCA(certPEM, opened)
	if err != nil {
		panic(err)
	}
	req, err := x509.ParseCertificateRequest(csr)
	if err != nil {
		panic(err)
	}
	keyID, err := pki.PublicKeyFingerprint(req.PublicKey) // refuse if seen before
	if err != nil {
		panic(err)
	}
	_ = keyID
	clientDER, err := signer.SignClient(csr, pki.Identity{Tenant: "default", SensorID: "s-7f3a"}, 24*time.Hour, time.Now())
	if err != nil {
		panic(err)
	}

	// Later, on every mutual-TLS connection: the central reads the identity
	// from the verified client certificate...
	client, err := x509.ParseCertificate(clientDER)
	if err != nil {
		panic(err)
	}
	id, err := pki.IdentityFromCert(client)
	if err != nil {
		panic(err)
	}
	fmt.Println("sensor:", id)
	// ...and the sensor checks the central against the stored root.
	_, err = pki.VerifyAgainstCA(serving.Certificate, root)
	fmt.Println("central signed by the stored root:", err == nil)
	fmt.Println("CA key sealed:", !bytes.Contains(sealedKey, keyPEM[30:60]))
	// Output:
	// central matches the pin: true
	// sensor: osprey://sensor/default/s-7f3a
	// central signed by the stored root: true
	// CA key sealed: true
}

func ExampleSeal() {
	kek := bytes.Repeat([]byte{0x42}, pki.KEKSize) // use pki.LoadOrCreateKEK
	sealed, err := pki.Seal([]byte("secret"), kek, "osprey/example")
	if err != nil {
		panic(err)
	}
	plain, err := pki.Open(sealed, kek, "osprey/example")
	fmt.Printf("%s %v\n", plain, err)
	_, err = pki.Open(sealed, kek, pki.CAKeyLabel) // the blob was sealed for another use
	fmt.Println(err)
	// Output:
	// secret <nil>
	// open: sealed data does not open: wrong key or label, or tampered
}

// A sensor whose certificate expired while it was offline proves it still
// holds that certificate's key, and gets one for a new key.
func Example_reissue() {
	ca, err := pki.NewCA("Osprey cluster CA", 0)
	if err != nil {
		panic(err)
	}
	id := pki.Identity{Tenant: "default", SensorID: "s-7f3a"}
	oldKey, _ := pki.GenerateKey()
	oldCSR, _ := pki.NewCSR(oldKey, "s-7f3a")
	// Issued four minutes ago for one minute (the CA, made just now, is
	// valid from five minutes back): expired.
	oldDER, err := ca.SignClient(oldCSR, id, time.Minute, time.Now().Add(-4*time.Minute))
	if err != nil {
		panic(err)
	}

	// Central: a fresh challenge for this one request.
	nonce := make([]byte, pki.ReissueNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	// Sensor: a new key, and a proof by the old key over the challenge, the
	// old certificate and the new request.
	newKey, _ := pki.GenerateKey()
	newCSR, _ := pki.NewCSR(newKey, "s-7f3a")
	proof, err := pki.SignReissueProof(oldKey, nonce, oldDER, newCSR)
	if err != nil {
		panic(err)
	}

	// Central: the certificate is one it issued (expired or not), the proof
	// is good for this challenge; then it checks the sensor's record
	// (approved, and this its latest certificate) and signs.
	old, _ := x509.ParseCertificate(oldDER)
	got, err := ca.VerifyIssuedClient(old)
	fmt.Println("issued to:", got, err)
	fmt.Println("proof:", pki.VerifyReissueProof(old, nonce, newCSR, proof))
	replay := make([]byte, pki.ReissueNonceSize) // the next request's challenge
	if _, err := rand.Read(replay); err != nil {
		panic(err)
	}
	fmt.Println("replayed:", pki.VerifyReissueProof(old, replay, newCSR, proof) != nil)
	// Output:
	// issued to: osprey://sensor/default/s-7f3a <nil>
	// proof: <nil>
	// replayed: true
}
