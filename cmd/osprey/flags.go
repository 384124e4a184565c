package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
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
