// Command osprey is the single binary of the Osprey platform: a Central Node
// (`osprey central`), a Sensor (`osprey sensor`), everything in one process
// for a first try (`osprey dev`), the command-line client of the REST API
// (`osprey ctl`), backup and restore (`osprey admin`) and `osprey version`.
//
// This package only parses flags and wires; the behaviour lives in central/,
// sensor/ and api/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ospreysec/osprey/internal/buildinfo"
)

const usage = `Usage: osprey <command> [flags]

Commands:
  dev       run a Central Node with embedded etcd and everything on loopback
  central   run a Central Node
  sensor    run a Sensor agent
  ctl       talk to the REST API of a Central Node
  admin     back up a running Central Node, restore a stopped one
  version   print the version

Every flag can also be set as an environment variable: OSPREY_ and the flag's
name in upper case with dashes as underscores (--data-dir: OSPREY_DATA_DIR).
Run "osprey <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var usageErr *usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.As(err, &usageErr): // a command that did not print its usage
		fmt.Fprintln(os.Stderr, "osprey:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "osprey:", err)
		os.Exit(1)
	}
}

// errUsage ends a command line that could not run once its message and the
// command's usage are on stderr (see withUsage): main exits with status 2.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "osprey: no command\n\n%s", usage)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "dev":
		return runCentral(ctx, rest, true, stdout, stderr)
	case "central":
		return runCentral(ctx, rest, false, stdout, stderr)
	case "sensor":
		return runSensor(ctx, rest, stdout, stderr)
	case "ctl":
		return runCtl(ctx, rest, stdout, stderr)
	case "admin":
		return runAdmin(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, buildinfo.String())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "osprey: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
