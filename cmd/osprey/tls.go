package main

import "crypto/tls"

// insecureTLS is for --tls-skip-verify against a node's self-signed certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // The operator asked for it.
}
