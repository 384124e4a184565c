package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestSizeFlag(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string // in the error, when there is one
	}{
		{in: "256MB", want: 256 << 20},
		{in: "1 GB", want: 1 << 30},
		{in: " 8gb ", want: 8 << 30},
		{in: "512KB", want: 512 << 10},
		{in: "0MB", err: "greater than zero"},
		{in: "256", err: "unit is required"},
		{in: "MB", err: "whole number"},
		{in: "-1MB", err: "whole number"},
		{in: "1.5GB", err: "unknown size unit"},
		{in: "256MiB", err: "unknown size unit"},
		{in: "99999999999999GB", err: "too large"},
		{in: "99999999999999999999KB", err: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var n int64 = -7
			err := sizeFlag{&n}.Set(tt.in)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Set(%q): %v", tt.in, err)
			case tt.err == "" && n != tt.want:
				t.Errorf("Set(%q): got %d bytes, want %d", tt.in, n, tt.want)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("Set(%q): got %v, want an error with %q", tt.in, err, tt.err)
			case tt.err != "" && n != -7:
				t.Errorf("Set(%q) failed but changed the value to %d", tt.in, n)
			}
		})
	}
	n := int64(256 << 20)
	if got := (sizeFlag{&n}).String(); got != "256MB" {
		t.Errorf("String: got %q, want 256MB", got)
	}
}

// TestSpoolMinFreeFlag: --spool-min-free (or OSPREY_SPOOL_MIN_FREE), or a
// --dns-server, that makes no sense stops `osprey sensor`, and `osprey
// dev` before it starts anything, with an error that names the flag.
func TestSpoolMinFreeFlag(t *testing.T) {
	tests := []struct {
		name string
		run  func(ctx context.Context, args []string, stderr io.Writer) error
		args []string
		env  string
		want string
	}{
		{"sensor below the minimum", runSensorArgs, []string{"--spool-min-free", "512KB"}, "",
			"--spool-min-free: 524288 bytes: want at least 1 MB"},
		{"sensor not a size", runSensorArgs, []string{"--spool-min-free", "lots"}, "",
			`invalid value "lots" for flag -spool-min-free`},
		{"sensor from the environment", runSensorArgs, nil, "0MB",
			`OSPREY_SPOOL_MIN_FREE: "0MB": size must be greater than zero`},
		{"dev below the minimum", runDevArgs, []string{"--spool-min-free", "1KB"}, "",
			"--spool-min-free: 1024 bytes: want at least 1 MB"},
		{"central with --sensor not a size", runCentralArgs, []string{"--sensor", "--spool-min-free", "1TB"}, "",
			`invalid value "1TB" for flag -spool-min-free`},
		{"sensor dns server without a port", runSensorArgs, []string{"--dns-server", "dns.example.com"}, "",
			`--dns-server: dns server "dns.example.com": want host:port or an IP address`},
		{"dev dns server without a port", runDevArgs, []string{"--dns-server", "dns.example.com"}, "",
			`--dns-server: dns server "dns.example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("OSPREY_SPOOL_MIN_FREE", tt.env)
			}
			var stderr bytes.Buffer
			args := append([]string{"--data-dir", t.TempDir(), "--log-format", "text"}, tt.args...)
			// Done already: were the flag not refused, what starts
			// stops at once.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := tt.run(ctx, args, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
				// Printed, as main prints nothing more for a usage error.
				if !strings.Contains(stderr.String(), tt.want) {
					t.Errorf("usage error, printed:\n%s\nwant %q", stderr.String(), tt.want)
				}
				return
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func runSensorArgs(ctx context.Context, args []string, stderr io.Writer) error {
	return runSensor(ctx, args, io.Discard, stderr)
}

func runDevArgs(ctx context.Context, args []string, stderr io.Writer) error {
	return runCentral(ctx, args, true, io.Discard, stderr)
}

func runCentralArgs(ctx context.Context, args []string, stderr io.Writer) error {
	return runCentral(ctx, args, false, io.Discard, stderr)
}
