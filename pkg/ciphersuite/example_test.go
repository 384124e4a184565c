package ciphersuite_test

import (
	"crypto/tls"
	"fmt"

	"github.com/ospreysec/osprey/pkg/ciphersuite"
)

func ExampleParse() {
	r, err := ciphersuite.Parse("ECDHE+AESGCM:!aECDSA:AES128-SHA")
	if err != nil {
		panic(err)
	}
	fmt.Println(r)
	fmt.Println("insecure:", r.Insecure)

	cfg := &tls.Config{CipherSuites: r.Suites}
	fmt.Println(len(cfg.CipherSuites), "suites")
	// Output:
	// ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA
	// insecure: [AES128-SHA]
	// 3 suites
}

func ExampleParse_errors() {
	_, err := ciphersuite.Parse("HIGH:!aNULL:CAMELLIA:EDH+AESGCM:HIHG")
	fmt.Println(err)
	// Output:
	// "CAMELLIA": not supported by this implementation; "EDH" in "EDH+AESGCM": not supported by this implementation; "HIHG": unknown cipher name
}
