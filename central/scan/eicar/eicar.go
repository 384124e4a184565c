// Package eicar is the scan engine that finds the EICAR anti-virus test
// file: the standard 68-byte string at the start of a file, followed only by
// the white space the standard permits (space, tab, CR, LF, Ctrl-Z) up to
// 128 bytes in all. It looks at attachments, archive members and bodies, so
// a test message can prove the whole path from ingestion to alert.
package eicar

import (
	"bytes"
	"context"

	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// String is the EICAR test file. It is split in the source so that the
// source files themselves are not the test file.
const String = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// RuleID is the rule_id of the engine's matches.
const RuleID = "EICAR-Test-File"

// Name is the engine's name.
const Name = "eicar"

// maxLen is the longest a conforming test file may be.
const maxLen = 128

// Engine finds the EICAR test file. The zero value is ready to use.
type Engine struct{}

// Name returns "eicar".
func (Engine) Name() string { return Name }

// ScanPart reports the test file in p. Rules do not apply.
func (Engine) ScanPart(_ context.Context, p *walk.Part, _ *ioc.RuleSet) ([]*ospreyv1.Match, error) {
	if p.Truncated || !Is(p.Head()[:min(len(p.Head()), int(p.Size))]) || p.Size > maxLen {
		return nil, nil
	}
	return []*ospreyv1.Match{{
		Engine:   Name,
		RuleId:   RuleID,
		Severity: ospreyv1.Severity_SEVERITY_HIGH,
		What:     p.Where() + " is the EICAR test file",
		Part:     p.Where(),
	}}, nil
}

// Is reports whether b is the EICAR test file.
func Is(b []byte) bool {
	if len(b) < len(String) || len(b) > maxLen || !bytes.HasPrefix(b, []byte(String)) {
		return false
	}
	for _, c := range b[len(String):] {
		switch c {
		case ' ', '\t', '\r', '\n', 0x1a:
		default:
			return false
		}
	}
	return true
}
