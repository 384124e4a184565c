package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// A token is the string TokenPrefix + id + "_" + secret: id is 8 random bytes in lower-case
// hex (the key under which the token is stored), secret is 32 random bytes in unpadded
// base64url. The secret itself may contain "_", so a token is split by position, not by
// separator.
const (
	TokenPrefix   = "osp_"
	tokenIDLen    = 16 // hex characters
	secretLen     = 32 // bytes
	secretTextLen = 43 // base64url characters of secretLen bytes
	tokenLen      = len(TokenPrefix) + tokenIDLen + 1 + secretTextLen
)

var secretEncoding = base64.RawURLEncoding.Strict()

var errMalformedToken = fmt.Errorf("malformed token: %w", ErrUnauthenticated)

// IssuedToken is a new token: the bearer string to show its owner once, and what to store.
type IssuedToken struct {
	// ID is the token's id, the key to store it under.
	ID string
	// Bearer is the whole token, "osp_<id>_<secret>". Show it once; never store or log it.
	Bearer string
	// SecretHash is the SHA-256 of the secret, to store in the Token.
	SecretHash []byte
}

// NewToken returns a new random token.
func NewToken() IssuedToken {
	var id [tokenIDLen / 2]byte
	var secret [secretLen]byte
	rand.Read(id[:]) // never fails; see its documentation
	rand.Read(secret[:])
	hash := sha256.Sum256(secret[:])
	idText := hex.EncodeToString(id[:])
	return IssuedToken{
		ID:         idText,
		Bearer:     TokenPrefix + idText + "_" + secretEncoding.EncodeToString(secret[:]),
		SecretHash: hash[:],
	}
}

// ParseToken splits a bearer string into the token's id and the SHA-256 of its secret. An
// error wraps ErrUnauthenticated and does not repeat the token.
func ParseToken(bearer string) (id string, secretHash []byte, err error) {
	if len(bearer) != tokenLen || !strings.HasPrefix(bearer, TokenPrefix) {
		return "", nil, errMalformedToken
	}
	id = bearer[len(TokenPrefix) : len(TokenPrefix)+tokenIDLen]
	rest := bearer[len(TokenPrefix)+tokenIDLen:]
	if !isLowerHex(id) || rest[0] != '_' {
		return "", nil, errMalformedToken
	}
	secret, err := secretEncoding.DecodeString(rest[1:])
	if err != nil || len(secret) != secretLen {
		return "", nil, errMalformedToken
	}
	hash := sha256.Sum256(secret)
	return id, hash[:], nil
}

// TokenMatches reports whether secretHash, from ParseToken, is the hash stored in t. The
// comparison takes the same time wherever the hashes differ.
func TokenMatches(t *ospreyv1.Token, secretHash []byte) bool {
	stored := t.GetSecretHash()
	return len(stored) == sha256.Size && subtle.ConstantTimeCompare(stored, secretHash) == 1
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
