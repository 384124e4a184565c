// Package sizeunit converts message size limits between the configuration
// model (a number and a unit, or "unlimited") and byte counts.
//
// Units are binary multiples, as in the SMTP integration settings of the
// products Osprey follows and in the proto enum [ospreyv1.SizeUnit]:
// 1 KB = 1024 bytes, 1 MB = 1024 KB, 1 GB = 1024 MB. Unit names are parsed
// case-insensitively and always printed upper-case ("25 MB").
//
// Every limit, including "unlimited", is bounded by [HardCeiling] (1 GB). The
// ceiling exists because a sensor keeps each message whole: it is written to
// the spool, uploaded in one stream and parsed as MIME by a Central Node, so a
// message of several gigabytes could exhaust a node's disk or memory. The
// largest limits mail servers ship with are of the same order (Exchange caps
// its message size at 2 GB, most installations stay below 150 MB), and an
// explicit limit above the ceiling is refused rather than silently clipped, so
// that "unlimited" is never smaller than a limit one can type.
package sizeunit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Unit is a size unit expressed as its number of bytes.
type Unit int64

// The units of a size limit.
const (
	KB Unit = 1 << 10
	MB Unit = 1 << 20
	GB Unit = 1 << 30
)

// HardCeiling is the largest message size, in bytes, that any limit allows,
// and the limit that "unlimited" stands for (see the package comment).
const HardCeiling int64 = 1 << 30

// Errors returned by [Bytes], [ParseUnit] and [FromProto]; match them with
// [errors.Is].
var (
	ErrZero         = errors.New("size must be greater than zero")
	ErrTooLarge     = fmt.Errorf("size exceeds the maximum of %s", Format(HardCeiling))
	ErrUnknownUnit  = errors.New("unknown size unit, want KB, MB or GB")
	ErrNoUnit       = errors.New("size unit is required")
	errSyntaxNumber = errors.New("size must be a whole number")
)

// units lists the valid units from the largest down, so that Format picks the
// largest unit that divides a size exactly.
var units = [...]Unit{GB, MB, KB}

// String returns the unit's name ("KB", "MB", "GB"), or a description of an
// invalid unit.
func (u Unit) String() string {
	switch u {
	case KB:
		return "KB"
	case MB:
		return "MB"
	case GB:
		return "GB"
	}
	return fmt.Sprintf("Unit(%d)", int64(u))
}

// Valid reports whether u is one of KB, MB and GB.
func (u Unit) Valid() bool {
	return u == KB || u == MB || u == GB
}

// ParseUnit parses a unit name, case-insensitively: "KB", "mb", "Gb".
func ParseUnit(s string) (Unit, error) {
	for _, u := range units {
		if strings.EqualFold(s, u.String()) {
			return u, nil
		}
	}
	if s == "" {
		return 0, ErrNoUnit
	}
	return 0, fmt.Errorf("%q: %w", s, ErrUnknownUnit)
}

// Bytes returns value × unit in bytes. It fails when value is zero, when the
// unit is not KB, MB or GB, and when the product exceeds [HardCeiling]
// (which also rules out any overflow).
func Bytes(value uint64, unit Unit) (int64, error) {
	if !unit.Valid() {
		if unit == 0 {
			return 0, ErrNoUnit
		}
		return 0, fmt.Errorf("%v: %w", unit, ErrUnknownUnit)
	}
	if value == 0 {
		return 0, ErrZero
	}
	if value > uint64(HardCeiling/int64(unit)) {
		return 0, fmt.Errorf("%d %v: %w", value, unit, ErrTooLarge)
	}
	return int64(value) * int64(unit), nil
}

// Format prints a byte count with the largest unit that divides it exactly
// ("25 MB", "1536 KB"), or in bytes ("1000 B") when no unit does.
func Format(bytes int64) string {
	for _, u := range units {
		if bytes != 0 && bytes%int64(u) == 0 {
			return strconv.FormatInt(bytes/int64(u), 10) + " " + u.String()
		}
	}
	return strconv.FormatInt(bytes, 10) + " B"
}

// Parse parses a size as printed by [Format] and typed by people: a whole
// number, optional spaces and a unit ("25 MB", "25mb", "512 KB"). A size
// without a unit or in bytes is refused: limits are set in KB, MB or GB.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q: %w", s, errSyntaxNumber)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, ErrTooLarge)
	}
	u, err := ParseUnit(strings.TrimSpace(t[i:]))
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return Bytes(n, u)
}

// FromProto converts a proto unit. SIZE_UNIT_UNSPECIFIED is [ErrNoUnit].
func FromProto(u ospreyv1.SizeUnit) (Unit, error) {
	switch u {
	case ospreyv1.SizeUnit_SIZE_UNIT_KB:
		return KB, nil
	case ospreyv1.SizeUnit_SIZE_UNIT_MB:
		return MB, nil
	case ospreyv1.SizeUnit_SIZE_UNIT_GB:
		return GB, nil
	case ospreyv1.SizeUnit_SIZE_UNIT_UNSPECIFIED:
		return 0, ErrNoUnit
	}
	return 0, fmt.Errorf("%v: %w", u, ErrUnknownUnit)
}

// Proto converts u to the proto enum; an invalid unit is SIZE_UNIT_UNSPECIFIED.
func (u Unit) Proto() ospreyv1.SizeUnit {
	switch u {
	case KB:
		return ospreyv1.SizeUnit_SIZE_UNIT_KB
	case MB:
		return ospreyv1.SizeUnit_SIZE_UNIT_MB
	case GB:
		return ospreyv1.SizeUnit_SIZE_UNIT_GB
	}
	return ospreyv1.SizeUnit_SIZE_UNIT_UNSPECIFIED
}

// Limit returns the number of bytes a configured limit allows: [HardCeiling]
// for a nil or unlimited limit, value × unit otherwise.
func Limit(l *ospreyv1.SizeLimit) (int64, error) {
	if l == nil || l.GetUnlimited() {
		return HardCeiling, nil
	}
	u, err := FromProto(l.GetUnit())
	if err != nil {
		return 0, err
	}
	return Bytes(l.GetValue(), u)
}

// FormatLimit prints a configured limit: "unlimited" or "25 MB". It prints
// an invalid limit as its raw value and unit, for logs and messages.
func FormatLimit(l *ospreyv1.SizeLimit) string {
	if l == nil || l.GetUnlimited() {
		return "unlimited"
	}
	u, err := FromProto(l.GetUnit())
	if err != nil {
		return fmt.Sprintf("%d %v", l.GetValue(), l.GetUnit())
	}
	return strconv.FormatUint(l.GetValue(), 10) + " " + u.String()
}
