// Command pulse runs a pulse heartbeat server, a client agent that keeps a
// session alive, and the tools around them.
//
//	pulse serve [flags]       run the heartbeat server, its HTTP API and dashboard
//	pulse agent [flags]       register a name with a server and beat
//	pulse ls [flags]          list the live sessions
//	pulse watch [flags]       stream session events
//	pulse kick NAME [flags]   remove a session
//	pulse token [flags]       make a JWT for a name, for a server with --auth-jwt-key
//	pulse bench [flags]       run a heartbeat load against a server
//	pulse fdbench [flags]     measure failure detectors
//
// Run "pulse <command> --help" for a command's flags. Every flag can also
// come from an environment variable: --hello-timeout from
// PULSE_HELLO_TIMEOUT, and so on; a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulsehq/pulse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one gets the default treatment:
	// whoever presses Ctrl-C twice wants out now.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand.
type command interface {
	// Run runs the command with its arguments, the command name excluded.
	Run(ctx context.Context, args []string) error
}

// usageError is a mistake in how the command was called: a bad flag, a
// bad value. It exits with 2 and a pointer to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run runs the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdout, stderr, os.LookupEnv)
}

// runWith is run with the environment given as a lookup function.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var cmd command
	switch args[0] {
	case "serve":
		cmd = &serveCommand{stdout: stdout, stderr: stderr, env: env}
	case "agent":
		cmd = &agentCommand{stdout: stdout, stderr: stderr, env: env}
	case "ls":
		cmd = &lsCommand{stdout: stdout, stderr: stderr, env: env}
	case "watch":
		cmd = &watchCommand{stdout: stdout, stderr: stderr, env: env}
	case "kick":
		cmd = &kickCommand{stdout: stdout, stderr: stderr, env: env}
	case "bench":
		cmd = &benchCommand{stdout: stdout, stderr: stderr, env: env}
	case "fdbench":
		cmd = &fdbenchCommand{stdout: stdout, stderr: stderr, env: env}
	case "token":
		cmd = &tokenCommand{stdout: stdout, stderr: stderr, env: env}
	case "version", "--version":
		fmt.Fprintln(stdout, "pulse", pulse.Version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pulse: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd.Run(ctx, args[1:])
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(stderr, "pulse %s: %v\nRun 'pulse %s --help' for usage.\n", args[0], err, args[0])
		return 2
	default:
		fmt.Fprintf(stderr, "pulse %s: %v\n", args[0], err)
		return 1
	}
}

const usage = `pulse: heartbeat-based liveness and presence.

Usage:
  pulse <command> [flags]

Commands:
  serve     run the heartbeat server, with its HTTP API, dashboard and metrics
  agent     register a name with a server and keep it alive
  ls        list the live sessions of a server
  watch     stream the session events of a server as they happen
  kick      remove a session from a server
  bench     run a heartbeat load against a server and measure it
  fdbench   measure failure detectors on simulated or recorded heartbeats
  token     make a JWT for a session name, for a server with --auth-jwt-key
  version   print the version

Run 'pulse <command> --help' for the flags of a command. Every flag can also
be set by an environment variable: --listen by PULSE_LISTEN, and so on.

Examples:
  pulse serve
  pulse agent --server 127.0.0.1:7070 --name web-1
  pulse ls --state suspect
  pulse watch
  pulse kick web-1
  pulse token --key jwt.secret --name web-1 -o web-1.jwt
`
