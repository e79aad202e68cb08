package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// command is one subcommand of veil.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the subcommand table; each entry documents itself.
var commands = map[string]command{
	"serve":      {"serve the key service, or the SSKS with --ssks", serveCommand},
	"streamtest": {"serve a local emulation of Stream Chat's API", streamtestCommand},
	"dev":        {"run a local stack: key service, SSKS and Stream emulator", devCommand},
	"keygen":     {"generate an identity into a file", keygenCommand},
	"inspect":    {"show the public fields of an envelope, grant, card, log record or export", inspectCommand},
	"verify":     {"show the safety number of two cards, or of a user's directory card", verifyCommand},
	"token":      {"print a key-service user token signed with VEIL_JWT_SECRET, for trying the key service", tokenCommand},
	"version":    {"print the version of veil, Go and the protocol", versionCommand},
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = append([]string{"version"}, args[1:]...)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				c.run(ctx, []string{"--help"}, stdout, stderr)
				return 0
			}
		}
		if len(args) == 0 {
			usage(stderr)
			return 2
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok && strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "veil: unknown flag %s: veil takes --help and --version; other flags follow a command (see 'veil help')\n", args[0])
		return 2
	}
	if !ok {
		fmt.Fprintf(stderr, "veil: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if _, ok := err.(*reportedError); ok {
			return 1 // already in the log
		}
		var usageErr *usageError
		if errors.As(err, &usageErr) {
			fmt.Fprintf(stderr, "veil %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "veil %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: veil <command> [flags]\n       veil --version\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'veil <command> --help' for a command's flags.")
}

// serveUntilSignal serves srv on ln until ctx ends or SIGINT/SIGTERM
// arrives, then shuts it down gracefully (10 s at most).
func serveUntilSignal(ctx context.Context, srv *http.Server, ln net.Listener) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// ctx is done: the shutdown gets its own deadline, keeping ctx's values.
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
