package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/ospreysec/osprey/api"
)

// Pin the fingerprint of a node's self-signed API certificate, which the node prints at
// start: the call succeeds whatever CA signed the certificate and whatever names it covers,
// and fails with a FingerprintError when the server presents another certificate.
func ExampleConfig_tlsFingerprints() {
	plain := fakeCentral()
	defer plain.Close()
	srv := httptest.NewTLSServer(plain.Config.Handler) // a certificate no CA of this host signed
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().Raw)
	printed := hex.EncodeToString(sum[:]) // as the node prints it

	c, err := api.NewClient(api.Config{Address: srv.URL, Username: "admin", Password: "secret",
		TLSFingerprints: []string{printed}})
	if err != nil {
		log.Fatal(err)
	}
	sensors, err := c.Sensors(context.Background())
	fmt.Println(len(sensors), err)

	other := "5f1d7e44c2a1b3f07c9e88d1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8"
	c, err = api.NewClient(api.Config{Address: srv.URL, Username: "admin", Password: "secret",
		TLSFingerprints: []string{other}})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Sensors(context.Background())
	var fpErr *api.FingerprintError
	fmt.Println(errors.As(err, &fpErr) && fpErr.Got == printed)
	// Output:
	// 2 <nil>
	// true
}
