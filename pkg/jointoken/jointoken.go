// Package jointoken is the format of the join tokens that enroll sensors:
// the central node makes them, the sensor parses them. It is a package of its
// own, importing only the standard library, because both sides need it and
// neither may import the other.
//
// A join token is one string that carries everything a sensor needs to join a
// cluster safely, as kubeadm's and k3s's tokens do:
//
//	OSPJ1.<ca-hash>.<id>.<secret>
//
// where:
//
//   - "OSPJ1" names the format (Osprey join token, version 1).
//   - ca-hash is the SHA-256 of the cluster CA's SubjectPublicKeyInfo, 64
//     lower-case hex characters. The sensor pins the CA to it before it sends
//     anything, so a man in the middle cannot pose as the cluster.
//   - id is 16 lower-case hex characters (8 random bytes): the central node
//     looks the token up by it.
//   - secret is 32 random bytes in unpadded base64url (43 characters): it
//     proves the token. The central node keeps only its SHA-256
//     ([SecretHash]).
//
// Every character is a letter, a digit, '.', '-' or '_', so the token needs no
// quoting in a shell, an environment file, YAML or a URL, and '.' never occurs
// inside a field. Errors never quote the secret or the token.
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Prefix starts every join token of this format version.
const Prefix = "OSPJ1."

// Field lengths, in characters.
const (
	CAHashLen = 64 // hex of a SHA-256
	IDLen     = 16 // hex of 8 random bytes
	SecretLen = 43 // unpadded base64url of 32 random bytes
)

const (
	idBytes     = IDLen / 2
	secretBytes = 32
)

// secretEncoding is strict, so that a secret has exactly one spelling.
var secretEncoding = base64.RawURLEncoding.Strict()

// ErrMalformed is matched (with errors.Is) by every error of [Parse].
var ErrMalformed = errors.New("malformed join token")

type parseError struct{ msg string }

func (e *parseError) Error() string        { return "malformed join token: " + e.msg }
func (e *parseError) Is(target error) bool { return target == ErrMalformed }

func malformed(format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...)}
}

// Token is a parsed join token. Its String form is the token itself, secret
// included; log it through slog (which calls [Token.LogValue]) or
// [Token.Redacted].
type Token struct {
	// CAHash is the hex SHA-256 of the cluster CA's SubjectPublicKeyInfo.
	CAHash string
	// ID identifies the token to the central node.
	ID string
	// Secret proves the token.
	Secret string
}

// String returns the token in its one textual form, "OSPJ1.<ca-hash>.<id>.<secret>".
func (t Token) String() string {
	return Prefix + t.CAHash + "." + t.ID + "." + t.Secret
}

// Redacted returns the token with its secret replaced, fit for logs and
// listings.
func (t Token) Redacted() string {
	return Prefix + t.CAHash + "." + t.ID + ".REDACTED"
}

// LogValue makes slog log the token redacted.
func (t Token) LogValue() slog.Value {
	return slog.StringValue(t.Redacted())
}

// Generate makes a token with a random id and secret for the CA whose
// SubjectPublicKeyInfo hashes to caHash (64 lower-case hex characters).
func Generate(caHash string) (Token, error) {
	if err := checkHex(caHash, CAHashLen); err != nil {
		return Token{}, fmt.Errorf("generate join token: CA hash %s", err)
	}
	buf := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return Token{}, fmt.Errorf("generate join token: %w", err)
	}
	return Token{
		CAHash: caHash,
		ID:     hex.EncodeToString(buf[:idBytes]),
		Secret: secretEncoding.EncodeToString(buf[idBytes:]),
	}, nil
}

// Parse reads a token in the form [Token.String] makes. White space around it
// (a newline from a file) is ignored; everything else is strict: the prefix,
// the number of fields, each field's length and alphabet (hex in lower case),
// and the secret's canonical base64url. Errors match [ErrMalformed] and never
// quote the input.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, malformed("empty")
	}
	if !strings.HasPrefix(s, Prefix) {
		return Token{}, prefixError(s)
	}
	fields := strings.Split(s[len(Prefix):], ".")
	if len(fields) != 3 {
		return Token{}, malformed("has %d dot-separated fields after %s, want 3", len(fields), Prefix)
	}
	t := Token{CAHash: fields[0], ID: fields[1], Secret: fields[2]}
	if err := checkHex(t.CAHash, CAHashLen); err != nil {
		return Token{}, malformed("CA hash %s", err)
	}
	if err := checkHex(t.ID, IDLen); err != nil {
		return Token{}, malformed("id %s", err)
	}
	if err := checkSecret(t.Secret); err != nil {
		return Token{}, malformed("secret %s", err)
	}
	return t, nil
}

// prefixError explains a token that does not start with [Prefix], quoting
// nothing but a short version number.
func prefixError(s string) error {
	if strings.HasPrefix(s, "osp_") {
		return malformed("this is an API token, not a join token (which starts with %s)", Prefix)
	}
	if rest, ok := strings.CutPrefix(s, "OSPJ"); ok {
		v, _, _ := strings.Cut(rest, ".")
		if len(v) > 0 && len(v) <= 3 && strings.Trim(v, "0123456789") == "" {
			return malformed("format version %s is not supported (this program reads version 1)", v)
		}
	}
	return malformed("does not start with %s", Prefix)
}

// checkHex reports, as a phrase to follow a field's name, why s is not n
// lower-case hex characters.
func checkHex(s string, n int) error {
	if len(s) != n {
		return fmt.Errorf("has %d characters, want %d", len(s), n)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("has a character that is not lower-case hex at position %d", i+1)
		}
	}
	return nil
}

// checkSecret is checkHex for the secret, which it never quotes.
func checkSecret(s string) error {
	if len(s) != SecretLen {
		return fmt.Errorf("has %d characters, want %d", len(s), SecretLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("has a character that is not base64url at position %d", i+1)
		}
	}
	if _, err := secretEncoding.DecodeString(s); err != nil {
		return errors.New("is not canonical base64url (its last character is wrong)")
	}
	return nil
}

// SecretHash is what the central node stores instead of a token's secret: its
// SHA-256. The secret is 256 random bits, so a fast hash is enough; a slow
// password hash would add nothing.
func SecretHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Verify reports whether secret is the one whose [SecretHash] is hash, in
// time that does not depend on where they differ.
func Verify(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(SecretHash(secret), hash) == 1
}
