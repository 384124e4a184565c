package auth

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// BcryptCost is the bcrypt cost of new password hashes: 2^12 rounds, a quarter of a second
// or so on a server core. Sign-ins are rare and each guess costs an attacker as much; API
// automation uses tokens, which are checked with one SHA-256. Raising it later is safe:
// every hash carries its own cost.
const BcryptCost = 12

// MaxPasswordBytes is the longest password bcrypt takes.
const MaxPasswordBytes = 72

// MinPasswordBytes is the shortest password a new user may be given.
const MinPasswordBytes = 12

// NewPasswordProblem says what is wrong with a new user's password, or ""
// when it may be used. The API and the UI both apply it.
func NewPasswordProblem(password string) string {
	if len(password) < MinPasswordBytes || len(password) > MaxPasswordBytes {
		return fmt.Sprintf("must be between %d and %d bytes", MinPasswordBytes, MaxPasswordBytes)
	}
	return ""
}

// dummyHash is the bcrypt hash (at BcryptCost) of a random password that was thrown away.
// Sign-in compares against it when the user does not exist, so that a missing user costs as
// much time as a wrong password.
var dummyHash = []byte("$2a$12$1GXYgQ8VKzZB1/m7FXiANeMe33NMTEOBMD3HfKw264/1Bpqm6q1om")

// HashPassword returns the bcrypt hash of password, to store in a User.
func HashPassword(password string) ([]byte, error) {
	return hashPassword(password, BcryptCost)
}

func hashPassword(password string, cost int) ([]byte, error) {
	switch {
	case password == "":
		return nil, errors.New("hash password: empty password")
	case len(password) > MaxPasswordBytes:
		return nil, fmt.Errorf("hash password: longer than %d bytes", MaxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// CheckPassword reports whether password matches hash, made by HashPassword. The
// comparison takes the same time wherever the two differ.
func CheckPassword(hash []byte, password string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// passwordAlphabet has no characters that are easy to confuse (0 O o, 1 I l).
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"

// GeneratedPasswordLength is the length of GeneratePassword's passwords: 24 characters
// from a 56-letter alphabet, about 139 bits.
const GeneratedPasswordLength = 24

// GeneratePassword returns a random password, such as the bootstrap admin's.
func GeneratePassword() string {
	const n = len(passwordAlphabet)
	const limit = 256 - 256%n // bytes at or above limit would favour the first letters
	out := make([]byte, 0, GeneratedPasswordLength)
	buf := make([]byte, 2*GeneratedPasswordLength)
	for len(out) < GeneratedPasswordLength {
		rand.Read(buf) // never fails; see its documentation
		for _, b := range buf {
			if int(b) < limit && len(out) < GeneratedPasswordLength {
				out = append(out, passwordAlphabet[int(b)%n])
			}
		}
	}
	return string(out)
}
