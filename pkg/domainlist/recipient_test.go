package domainlist

import (
	"errors"
	"strings"
	"testing"
)

func TestRecipientDomain(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{name: "plain", in: "user@example.com", want: "example.com"},
		{name: "brackets", in: "<user@Example.COM>", want: "example.com"},
		{name: "trailing dot", in: "user@example.com.", want: "example.com"},
		{name: "idna", in: "user@bücher.de", want: "xn--bcher-kva.de"},
		{name: "utf-8 local part", in: "jörg@example.com", want: "example.com"},
		{name: "plus and dots", in: "first.last+tag@example.com", want: "example.com"},
		{name: "quoted local part", in: `"john doe"@example.com`, want: "example.com"},
		{name: "quoted escaped quote", in: `"a\"b"@example.com`, want: "example.com"},
		{name: "local part of 64", in: strings.Repeat("a", 64) + "@example.com", want: "example.com"},
		{name: "source route", in: "@relay.example:user@example.com", wantErr: ErrSourceRoute},
		{name: "source route in brackets", in: "<@a,@b:user@example.com>", wantErr: ErrSourceRoute},
		{name: "colon in local part", in: "relay.example:user@example.com", wantErr: ErrSourceRoute},
		{name: "percent hack", in: "user%victim.example@example.com", wantErr: ErrRouting},
		{name: "bang path", in: "victim.example!user@example.com", wantErr: ErrRouting},
		{name: "quoted percent", in: `"user%victim.example"@example.com`, wantErr: ErrRouting},
		{name: "quoted at", in: `"user@victim.example"@example.com`, wantErr: ErrQuotedAt},
		{name: "quoted escaped at", in: `"user\@victim.example"@example.com`, wantErr: ErrQuotedAt},
		{name: "two ats", in: "user@victim.example@example.com", wantErr: ErrMultipleAt},
		{name: "quoted then two ats", in: `"user"@victim.example@example.com`, wantErr: ErrMultipleAt},
		{name: "no at", in: "postmaster", wantErr: ErrNoDomain},
		{name: "quoted no domain", in: `"postmaster"`, wantErr: ErrNoDomain},
		{name: "empty", in: "", wantErr: ErrNoDomain},
		{name: "null path", in: "<>", wantErr: ErrNoDomain},
		{name: "empty local part", in: "@example.com", wantErr: ErrSourceRoute},
		{name: "empty domain", in: "user@", wantErr: ErrEmpty},
		{name: "address literal", in: "user@[192.0.2.1]", wantErr: ErrAddressLiteral},
		{name: "ip as domain", in: "user@192.0.2.1", wantErr: ErrIPLiteral},
		{name: "single-label domain", in: "user@localhost", wantErr: ErrSingleLabel},
		{name: "unbalanced bracket", in: "<user@example.com", wantErr: ErrLocalPart},
		{name: "space", in: "us er@example.com", wantErr: ErrLocalPart},
		{name: "crlf", in: "user@example.com\r\nRCPT TO:<x@y.z>", wantErr: ErrLocalPart},
		{name: "quote in unquoted", in: `us"er@example.com`, wantErr: ErrLocalPart},
		{name: "backslash in unquoted", in: `us\er@example.com`, wantErr: ErrLocalPart},
		{name: "text after quote", in: `"user"x@example.com`, wantErr: ErrLocalPart},
		{name: "unterminated quote", in: `"user@example.com`, wantErr: ErrQuotedAt},
		{name: "unterminated quote no at", in: `"user`, wantErr: ErrLocalPart},
		{name: "long local part", in: strings.Repeat("a", 65) + "@example.com", wantErr: ErrLocalPart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RecipientDomain(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("RecipientDomain(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("RecipientDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
