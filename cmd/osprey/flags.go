package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/pkg/sizeunit"
)

// envName is the environment variable that sets a flag: OSPREY_DATA_DIR for --data-dir.
func envName(flagName string) string {
	return "OSPREY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is a command line that a command cannot run: a missing or
// unknown word, a bad flag value. withUsage prints its message and the
// command's usage on stderr, and main exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// withUsage prints a *usageError in err on stderr, as "osprey CMD: message",
// then the command's usage, and returns errUsage in its place. Other errors
// are returned as they are.
func withUsage(err error, stderr io.Writer, cmd string, usage func()) error {
	var ue *usageError
	if !errors.As(err, &ue) {
		return err
	}
	fmt.Fprintf(stderr, "osprey %s: %s\n\n", cmd, ue.msg)
	usage()
	return errUsage
}

// parseFlags parses args, then fills every flag that the command line left
// unset from its environment variable. The command line wins over the
// environment, which wins over the default.
func parseFlags(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if err := applyEnv(fs, lookupEnv); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// parseArgs parses args. The flag package prints its own errors with the
// usage, so a bad flag returns errUsage (and -h flag.ErrHelp).
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// applyEnv sets each flag not given on the command line from OSPREY_<FLAG>.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// newFlagSet makes a flag set whose usage names each flag's environment variable.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: osprey %s [flags]\n\n%s\n\nFlags (each also read from OSPREY_<FLAG>):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// stringList is a comma-separated list flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// sizeFlag is a size flag: a whole number and a unit of pkg/sizeunit (KB,
// MB, GB: binary multiples, as in the configuration), as "256MB" or
// "1 GB". Unlike a message size limit it has no ceiling of 1 GB.
type sizeFlag struct{ n *int64 }

func (f sizeFlag) String() string {
	if f.n == nil || *f.n == 0 {
		return "0"
	}
	return strings.ReplaceAll(sizeunit.Format(*f.n), " ", "")
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// parseSize parses a size as sizeFlag takes it.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q: want a whole number and a unit, as 256MB or 1GB", s)
	}
	u, err := sizeunit.ParseUnit(strings.TrimSpace(t[i:]))
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/int64(u) {
		return 0, fmt.Errorf("%q: too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%q: %w", s, sizeunit.ErrZero)
	}
	return n * int64(u), nil
}
