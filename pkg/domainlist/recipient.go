package domainlist

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that [RecipientDomain] wraps besides those of [Normalize].
var (
	ErrNoDomain       = errors.New("address has no domain")
	ErrSourceRoute    = errors.New("source routes are not accepted")
	ErrRouting        = errors.New("'%' and '!' are not accepted in the local part")
	ErrMultipleAt     = errors.New("more than one '@' in address")
	ErrQuotedAt       = errors.New("quoted local part contains '@'")
	ErrLocalPart      = errors.New("invalid local part")
	ErrAddressLiteral = errors.New("address literals are not accepted as recipient domains")
)

// RecipientDomain returns the normalised domain of an SMTP recipient
// (a RCPT TO forward-path, with or without its angle brackets), for deciding
// whether the recipient is in scope with [List.Match].
//
// It refuses the address forms that let a message reach a domain other
// than the one the check sees, which is how open relays are abused:
//
//   - source routes ("@relay.example:user@example.com", RFC 5321 §C), since
//     a server that honours them delivers to the host after the colon;
//   - '%' or '!' anywhere in the local part ("user%victim.example@example.com",
//     "victim.example!user@example.com"): the percent hack and UUCP bang
//     paths still make some mail servers forward to another host;
//   - a quoted local part containing '@' ("\"user@victim.example\"@example.com"),
//     which a careless next hop may split at the wrong '@';
//   - more than one '@' outside quotes, and a '"' or '\' in an unquoted local
//     part;
//   - address literals ("user@[192.0.2.1]"): a literal names a host, not a
//     mail domain, so no destination-domain entry can cover it;
//   - an empty local part or one longer than 64 octets (RFC 5321 §4.5.3.1.1),
//     control characters anywhere, and spaces outside a quoted local part.
//
// An address without '@' (such as "postmaster", which RFC 5321 requires a
// server to accept) has no domain: the caller decides what to do with it.
// The domain is normalised by [Normalize], so a trailing dot is removed
// and internationalised domains are returned as A-labels.
func RecipientDomain(addr string) (string, error) {
	if a, ok := strings.CutPrefix(addr, "<"); ok {
		if a, ok = strings.CutSuffix(a, ">"); !ok {
			return "", fmt.Errorf("%w: unbalanced '<'", ErrLocalPart)
		}
		addr = a
	}
	for _, r := range addr {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character", ErrLocalPart)
		}
	}
	if strings.HasPrefix(addr, "@") {
		return "", ErrSourceRoute
	}
	local, domain, err := splitAddress(addr)
	if err != nil {
		return "", err
	}
	if local == "" {
		return "", fmt.Errorf("%w: empty", ErrLocalPart)
	}
	if len(local) > 64 {
		return "", fmt.Errorf("%w: longer than 64 octets", ErrLocalPart)
	}
	if strings.ContainsAny(local, "%!") {
		return "", ErrRouting
	}
	if strings.HasPrefix(domain, "[") {
		return "", ErrAddressLiteral
	}
	return Normalize(domain)
}

// splitAddress splits at the '@' that ends the local part, which may be
// quoted.
func splitAddress(addr string) (local, domain string, err error) {
	if !strings.HasPrefix(addr, `"`) {
		if strings.ContainsAny(addr, `"\ `) {
			return "", "", fmt.Errorf("%w: quote, backslash or space outside a quoted local part", ErrLocalPart)
		}
		local, domain, ok := strings.Cut(addr, "@")
		if !ok {
			return "", "", ErrNoDomain
		}
		if strings.Contains(domain, "@") {
			return "", "", ErrMultipleAt
		}
		if strings.Contains(local, ":") {
			return "", "", ErrSourceRoute
		}
		return local, domain, nil
	}
	// Quoted string: '\' escapes the next character, '"' ends it.
	for i := 1; i < len(addr); i++ {
		switch addr[i] {
		case '\\':
			i++
			if i < len(addr) && addr[i] == '@' {
				return "", "", ErrQuotedAt
			}
		case '@':
			return "", "", ErrQuotedAt
		case '"':
			rest := addr[i+1:]
			if rest == "" {
				return "", "", ErrNoDomain
			}
			domain, ok := strings.CutPrefix(rest, "@")
			if !ok {
				return "", "", fmt.Errorf("%w: text after the closing quote", ErrLocalPart)
			}
			if strings.Contains(domain, "@") {
				return "", "", ErrMultipleAt
			}
			return addr[:i+1], domain, nil
		}
	}
	return "", "", fmt.Errorf("%w: unterminated quoted string", ErrLocalPart)
}
