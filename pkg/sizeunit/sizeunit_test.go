package sizeunit

import (
	"errors"
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestParseUnit(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Unit
		wantErr error
	}{
		{name: "upper", in: "KB", want: KB},
		{name: "lower", in: "mb", want: MB},
		{name: "mixed", in: "Gb", want: GB},
		{name: "empty", in: "", wantErr: ErrNoUnit},
		{name: "bytes", in: "B", wantErr: ErrUnknownUnit},
		{name: "tera", in: "TB", wantErr: ErrUnknownUnit},
		{name: "iec", in: "MiB", wantErr: ErrUnknownUnit},
		{name: "padded", in: " MB", wantErr: ErrUnknownUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUnit(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseUnit(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseUnit(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		name    string
		value   uint64
		unit    Unit
		want    int64
		wantErr error
	}{
		{name: "kb", value: 1, unit: KB, want: 1024},
		{name: "mb", value: 25, unit: MB, want: 25 << 20},
		{name: "gb", value: 1, unit: GB, want: 1 << 30},
		{name: "ceiling in kb", value: 1 << 20, unit: KB, want: HardCeiling},
		{name: "ceiling in mb", value: 1024, unit: MB, want: HardCeiling},
		{name: "zero", value: 0, unit: MB, wantErr: ErrZero},
		{name: "over ceiling", value: 1025, unit: MB, wantErr: ErrTooLarge},
		{name: "two gb", value: 2, unit: GB, wantErr: ErrTooLarge},
		{name: "overflow", value: 1 << 63, unit: GB, wantErr: ErrTooLarge},
		{name: "max uint64", value: ^uint64(0), unit: KB, wantErr: ErrTooLarge},
		{name: "no unit", value: 1, unit: 0, wantErr: ErrNoUnit},
		{name: "bad unit", value: 1, unit: 1000, wantErr: ErrUnknownUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Bytes(tt.value, tt.unit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Bytes(%d, %v) error = %v, want %v", tt.value, tt.unit, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Bytes(%d, %v) = %d, want %d", tt.value, tt.unit, got, tt.want)
			}
		})
	}
}

func TestFormatParse(t *testing.T) {
	tests := []struct {
		name  string
		bytes int64
		want  string
	}{
		{name: "mb", bytes: 25 << 20, want: "25 MB"},
		{name: "gb", bytes: 1 << 30, want: "1 GB"},
		{name: "kb", bytes: 1536 << 10, want: "1536 KB"},
		{name: "not a multiple", bytes: 1000, want: "1000 B"},
		{name: "zero", bytes: 0, want: "0 B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Format(tt.bytes)
			if got != tt.want {
				t.Fatalf("Format(%d) = %q, want %q", tt.bytes, got, tt.want)
			}
			if tt.bytes%int64(KB) != 0 || tt.bytes == 0 {
				return
			}
			back, err := Parse(got)
			if err != nil || back != tt.bytes {
				t.Errorf("Parse(%q) = %d, %v, want %d", got, back, err, tt.bytes)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr error
	}{
		{name: "spaced", in: "25 MB", want: 25 << 20},
		{name: "compact lower", in: "25mb", want: 25 << 20},
		{name: "padded", in: "  10 kb ", want: 10 << 10},
		{name: "no unit", in: "25", wantErr: ErrNoUnit},
		{name: "bytes", in: "25 B", wantErr: ErrUnknownUnit},
		{name: "no number", in: "MB", wantErr: errSyntaxNumber},
		{name: "negative", in: "-1 MB", wantErr: errSyntaxNumber},
		{name: "fraction", in: "1.5 MB", wantErr: ErrUnknownUnit},
		{name: "zero", in: "0 MB", wantErr: ErrZero},
		{name: "too large", in: "99999999999999999999999 KB", wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestProto(t *testing.T) {
	for _, u := range []Unit{KB, MB, GB} {
		got, err := FromProto(u.Proto())
		if err != nil || got != u {
			t.Errorf("FromProto(%v.Proto()) = %v, %v, want %v", u, got, err, u)
		}
	}
	if _, err := FromProto(ospreyv1.SizeUnit_SIZE_UNIT_UNSPECIFIED); !errors.Is(err, ErrNoUnit) {
		t.Errorf("FromProto(UNSPECIFIED) error = %v, want %v", err, ErrNoUnit)
	}
	if _, err := FromProto(ospreyv1.SizeUnit(42)); !errors.Is(err, ErrUnknownUnit) {
		t.Errorf("FromProto(42) error = %v, want %v", err, ErrUnknownUnit)
	}
	if got := Unit(3).Proto(); got != ospreyv1.SizeUnit_SIZE_UNIT_UNSPECIFIED {
		t.Errorf("Unit(3).Proto() = %v, want UNSPECIFIED", got)
	}
}

func TestLimit(t *testing.T) {
	tests := []struct {
		name      string
		in        *ospreyv1.SizeLimit
		want      int64
		wantText  string
		wantError bool
	}{
		{name: "nil", in: nil, want: HardCeiling, wantText: "unlimited"},
		{name: "unlimited", in: &ospreyv1.SizeLimit{Unlimited: true, Value: 5, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}, want: HardCeiling, wantText: "unlimited"},
		{name: "25 MB", in: &ospreyv1.SizeLimit{Value: 25, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}, want: 25 << 20, wantText: "25 MB"},
		{name: "no unit", in: &ospreyv1.SizeLimit{Value: 25}, wantText: "25 SIZE_UNIT_UNSPECIFIED", wantError: true},
		{name: "zero", in: &ospreyv1.SizeLimit{Unit: ospreyv1.SizeUnit_SIZE_UNIT_KB}, wantText: "0 KB", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Limit(tt.in)
			if (err != nil) != tt.wantError {
				t.Fatalf("Limit() error = %v, want error %t", err, tt.wantError)
			}
			if got != tt.want {
				t.Errorf("Limit() = %d, want %d", got, tt.want)
			}
			if text := FormatLimit(tt.in); text != tt.wantText {
				t.Errorf("FormatLimit() = %q, want %q", text, tt.wantText)
			}
		})
	}
}
