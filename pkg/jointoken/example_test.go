package jointoken_test

import (
	"fmt"

	"github.com/ospreysec/osprey/pkg/jointoken"
)

// The central node makes a token for its CA and keeps only the id and the
// secret's hash; the sensor parses the string the operator pasted, pins the
// CA to CAHash, and sends ID and Secret with its CSR.
func Example() {
	// On the central node. caHash is pki.SPKIHash(ca.Cert).
	caHash := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tok, err := jointoken.Generate(caHash)
	if err != nil {
		panic(err)
	}
	stored := jointoken.SecretHash(tok.Secret) // with tok.ID, tenant, expiry
	pasted := tok.String()                     // shown once to the operator

	// On the sensor: osprey sensor --join-token "$TOKEN".
	got, err := jointoken.Parse(pasted + "\n")
	if err != nil {
		panic(err)
	}
	fmt.Println("pin CA:", got.CAHash == caHash)

	// Back on the central node, which looked the token up by got.ID.
	fmt.Println("secret ok:", jointoken.Verify(got.Secret, stored))

	_, err = jointoken.Parse("OSPJ1." + caHash + ".0123456789abcdef.too-short")
	fmt.Println(err)
	// Output:
	// pin CA: true
	// secret ok: true
	// malformed join token: secret has 9 characters, want 43
}
