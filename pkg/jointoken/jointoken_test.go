package jointoken

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

const (
	testHash   = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	testID     = "0123456789abcdef"
	testSecret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" // bytes 0..31
)

func TestParse(t *testing.T) {
	valid := Prefix + testHash + "." + testID + "." + testSecret
	want := Token{CAHash: testHash, ID: testID, Secret: testSecret}
	tests := []struct {
		name    string
		in      string
		want    Token
		wantErr string // substring of the error; "" for success
	}{
		{name: "valid", in: valid, want: want},
		{name: "trailing newline", in: valid + "\n", want: want},
		{name: "surrounding spaces", in: "  " + valid + "\t", want: want},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "only spaces", in: " \n", wantErr: "empty"},
		{name: "API token", in: "osp_0123456789abcdef_" + testSecret, wantErr: "API token"},
		{name: "other version", in: "OSPJ2." + testHash + "." + testID + "." + testSecret, wantErr: "version 2 is not supported"},
		{name: "lower-case prefix", in: "ospj1." + testHash + "." + testID + "." + testSecret, wantErr: "does not start with OSPJ1."},
		{name: "no prefix", in: testHash + "." + testID + "." + testSecret, wantErr: "does not start with OSPJ1."},
		{name: "kubeadm style", in: "abcdef.0123456789abcdef", wantErr: "does not start with OSPJ1."},
		{name: "too few fields", in: Prefix + testHash + "." + testID, wantErr: "has 2 dot-separated fields"},
		{name: "too many fields", in: valid + ".x", wantErr: "has 4 dot-separated fields"},
		{name: "colon separators", in: Prefix + testHash + ":" + testID + ":" + testSecret, wantErr: "has 1 dot-separated fields"},
		{name: "short hash", in: Prefix + testHash[:63] + "." + testID + "." + testSecret, wantErr: "CA hash has 63 characters, want 64"},
		{name: "sha256: prefix on hash", in: Prefix + "sha256:" + testHash + "." + testID + "." + testSecret, wantErr: "CA hash has 71 characters"},
		{name: "upper-case hash", in: Prefix + strings.ToUpper(testHash) + "." + testID + "." + testSecret, wantErr: "CA hash has a character that is not lower-case hex at position 2"},
		{name: "non-hex hash", in: Prefix + testHash[:10] + "g" + testHash[11:] + "." + testID + "." + testSecret, wantErr: "CA hash has a character that is not lower-case hex at position 11"},
		{name: "long id", in: Prefix + testHash + "." + testID + "0." + testSecret, wantErr: "id has 17 characters, want 16"},
		{name: "empty id", in: Prefix + testHash + ".." + testSecret, wantErr: "id has 0 characters, want 16"},
		{name: "non-hex id", in: Prefix + testHash + ".0123456789abcdeF." + testSecret, wantErr: "id has a character that is not lower-case hex at position 16"},
		{name: "short secret", in: Prefix + testHash + "." + testID + "." + testSecret[:42], wantErr: "secret has 42 characters, want 43"},
		{name: "padded secret", in: valid + "=", wantErr: "secret has 44 characters, want 43"},
		{name: "standard base64 secret", in: Prefix + testHash + "." + testID + "." + "+" + testSecret[1:], wantErr: "secret has a character that is not base64url at position 1"},
		{name: "slash in secret", in: Prefix + testHash + "." + testID + "." + testSecret[:42] + "/", wantErr: "not base64url at position 43"},
		{name: "inner space", in: Prefix + testHash + "." + testID + "." + testSecret[:20] + " " + testSecret[21:], wantErr: "not base64url at position 21"},
		{name: "non-canonical secret", in: Prefix + testHash + "." + testID + "." + testSecret[:42] + "9", wantErr: "not canonical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: got error %v, want nil", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Parse (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse: got %v, want an error containing %q", got.Redacted(), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse: got error %q, want it to contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse: got error %v, want one matching ErrMalformed", err)
			}
			if !strings.HasPrefix(err.Error(), "malformed join token: ") {
				t.Errorf("Parse: got error %q, want it to start with %q", err, "malformed join token: ")
			}
			if strings.Contains(err.Error(), testSecret[5:25]) {
				t.Errorf("Parse: error %q quotes the secret", err)
			}
		})
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	tok, err := Generate(testHash)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != testHash {
		t.Errorf("CAHash: got %q, want %q", tok.CAHash, testHash)
	}
	s := tok.String()
	if got, want := len(s), len(Prefix)+CAHashLen+1+IDLen+1+SecretLen; got != want {
		t.Errorf("len(String()): got %d, want %d", got, want)
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-' || r == '_')
	}); i >= 0 {
		t.Errorf("String() has %q at %d, want only letters, digits, '.', '-' and '_'", s[i], i)
	}
	back, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(Generate().String()): %v", err)
	}
	if diff := cmp.Diff(tok, back); diff != "" {
		t.Errorf("Parse(String()) (-want +got):\n%s", diff)
	}

	other, err := Generate(testHash)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Errorf("two tokens share an id or a secret: %v and %v", tok.Redacted(), other.Redacted())
	}
}

func TestGenerateRefusesBadHash(t *testing.T) {
	for name, hash := range map[string]string{
		"empty":      "",
		"upper case": strings.ToUpper(testHash),
		"short":      testHash[:32],
		"prefixed":   "sha256:" + testHash,
	} {
		t.Run(name, func(t *testing.T) {
			if tok, err := Generate(hash); err == nil {
				t.Errorf("Generate(%q): got %v, want an error", hash, tok.Redacted())
			}
		})
	}
}

func TestSecretHashVerify(t *testing.T) {
	tok, err := Generate(testHash)
	if err != nil {
		t.Fatal(err)
	}
	stored := SecretHash(tok.Secret)
	if got := len(stored); got != 32 {
		t.Errorf("len(SecretHash): got %d, want 32", got)
	}
	if bytes.Contains(stored, []byte(tok.Secret)) {
		t.Error("SecretHash holds the secret")
	}
	tests := []struct {
		name   string
		secret string
		hash   []byte
		want   bool
	}{
		{name: "right secret", secret: tok.Secret, hash: stored, want: true},
		{name: "other secret", secret: testSecret, hash: stored, want: false},
		{name: "empty secret", secret: "", hash: stored, want: false},
		{name: "truncated hash", secret: tok.Secret, hash: stored[:31], want: false},
		{name: "no hash", secret: tok.Secret, hash: nil, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.secret, tt.hash); got != tt.want {
				t.Errorf("Verify: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogValueRedacts(t *testing.T) {
	tok := Token{CAHash: testHash, ID: testID, Secret: testSecret}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("made token", "token", tok)
	if strings.Contains(buf.String(), testSecret) {
		t.Errorf("log line %s holds the secret", buf.String())
	}
	if !strings.Contains(buf.String(), testID) {
		t.Errorf("log line %s lacks the token id %s", buf.String(), testID)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Prefix + testHash + "." + testID + "." + testSecret)
	f.Add(Prefix + testHash + "." + testID + "." + testSecret + "\n")
	f.Add("OSPJ2." + testHash + "." + testID + "." + testSecret)
	f.Add("osp_" + testID + "_" + testSecret)
	f.Add(Prefix + "..")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): error %v does not match ErrMalformed", s, err)
			}
			// The error must not quote the part where a secret would be. No
			// word of our messages has 16 characters, so a 16-character run
			// without white space can only come from the input.
			if i := strings.LastIndexByte(s, '.'); i >= 0 {
				tail := strings.TrimSpace(s[i+1:])
				if len(tail) >= 16 && !strings.ContainsFunc(tail, unicode.IsSpace) && strings.Contains(err.Error(), tail) {
					t.Fatalf("Parse(%q): error %q quotes the secret field", s, err)
				}
			}
			return
		}
		if got, want := tok.String(), strings.TrimSpace(s); got != want {
			t.Fatalf("Parse(%q).String(): got %q, want the trimmed input", s, got)
		}
		again, err := Parse(tok.String())
		if err != nil {
			t.Fatalf("Parse(Parse(%q).String()): %v", s, err)
		}
		if diff := cmp.Diff(tok, again); diff != "" {
			t.Fatalf("second Parse (-first +second):\n%s", diff)
		}
		if len(tok.CAHash) != CAHashLen || len(tok.ID) != IDLen || len(tok.Secret) != SecretLen {
			t.Fatalf("Parse(%q): field lengths %d/%d/%d", s, len(tok.CAHash), len(tok.ID), len(tok.Secret))
		}
	})
}
