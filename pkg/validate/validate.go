// Package validate checks configuration objects before they are stored or
// used. It is the one place where the rules live: the REST API refuses a
// write with its errors, the web UI shows them next to the fields, the CLI
// prints them, and a sensor checks what it is pushed with the same code.
//
// Each function validates one message of the configuration model
// (proto/osprey/v1) and returns nil or [Errors], which lists every problem
// at once, each with the path of its field in the JSON/proto snake_case
// names of the REST API ("destination_domains[1]", "tls.cert_pem",
// "max_message_size.unit"). Nothing here has side effects: no network,
// no file system, no clock except where a message carries its own times.
//
// [DecodeJSON] reads a JSON document into an API type and reports what does
// not fit (an unknown field, a string where a number goes, a negative count)
// as the same Errors, so a body of the wrong shape is answered like a value
// that fails validation.
//
// A disabled integration is validated too, for what it contains, so that a
// bad value cannot be stored and enabled later; but a field that is needed
// only to run it is required only when it is enabled. Secrets (passwords, private
// keys) are checked but never quoted in a message.
package validate

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldError is a problem with one field.
type FieldError struct {
	Field   string // path of the field: "tls.mode", "clients[0]"
	Message string
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Errors lists every problem found in one object, in field order.
type Errors []FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Prefix returns the errors with prefix and a dot before each field path,
// for an object nested in another: Prefix("smtp") turns "listen" into
// "smtp.listen".
func (es Errors) Prefix(prefix string) Errors {
	out := make(Errors, len(es))
	for i, e := range es {
		out[i] = e
		switch {
		case e.Field == "":
			out[i].Field = prefix
		case strings.HasPrefix(e.Field, "["):
			out[i].Field = prefix + e.Field
		default:
			out[i].Field = prefix + "." + e.Field
		}
	}
	return out
}

// AsErrors returns the [Errors] in err's chain, if there are any.
func AsErrors(err error) (Errors, bool) {
	var es Errors
	if errors.As(err, &es) {
		return es, true
	}
	return nil, false
}

// Merge joins the field errors of several checks of one input (reading it,
// converting it, validating what converted), so that a refusal names every
// problem at once: a field an earlier check reported is not reported again
// by a later one. Nil errors are skipped; the first error that holds no
// field errors is returned as it is, since it is not about the input.
func Merge(errs ...error) error {
	var out Errors
	seen := map[string]bool{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		es, ok := AsErrors(err)
		if !ok {
			return err
		}
		reported := map[string]bool{}
		for _, e := range es {
			if !seen[e.Field] {
				out = append(out, e)
				reported[e.Field] = true
			}
		}
		for f := range reported {
			seen[f] = true
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// report collects field errors.
type report struct {
	errs Errors
}

func (r *report) add(field, format string, args ...any) {
	r.errs = append(r.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (r *report) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return r.errs
}

// text checks a free-text field: valid UTF-8, no control characters, at
// most max bytes. It returns false when it reported a problem.
func (r *report) text(field, v string, max int) bool {
	switch {
	case !utf8.ValidString(v):
		r.add(field, "must be valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		r.add(field, "must not contain control characters")
	case len(v) > max:
		r.add(field, "must be at most %d bytes long", max)
	default:
		return true
	}
	return false
}

// secret checks a secret: like text, without control characters (a CR or
// LF in a POP3 password would end the PASS command early), and never quoted.
func (r *report) secret(field, v string, max int) {
	switch {
	case strings.ContainsFunc(v, unicode.IsControl):
		r.add(field, "must not contain control characters")
	case len(v) > max:
		r.add(field, "must be at most %d bytes long", max)
	}
}

// certificates checks that a field holds one or more PEM certificates and
// nothing else.
func (r *report) certificates(field, v string) {
	if _, err := parseCertificates(v); err != nil {
		r.add(field, "%v", err)
	}
}

func parseCertificates(v string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(v)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("unexpected text after the last certificate")
	}
	return certs, nil
}

// keyPair checks a certificate chain and its private key.
func (r *report) keyPair(certField, keyField, certPEM, keyPEM string) {
	switch {
	case certPEM == "" && keyPEM == "":
		return
	case keyPEM == "":
		r.add(keyField, "required with %s", lastElem(certField))
		r.certificates(certField, certPEM)
		return
	case certPEM == "":
		r.add(certField, "required with %s", lastElem(keyField))
		return
	}
	if _, err := parseCertificates(certPEM); err != nil {
		r.add(certField, "%v", err)
		return
	}
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		// crypto/tls's messages name the problem without quoting the key.
		r.add(keyField, "not a private key matching %s: %s", lastElem(certField), strings.TrimPrefix(err.Error(), "tls: "))
	}
}

func lastElem(field string) string {
	return field[strings.LastIndexByte(field, '.')+1:]
}
