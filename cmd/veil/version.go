package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/veilchat/veil/session"
)

const versionUsage = `Usage: veil version   (or: veil --version)

Prints the version of this veil binary (its Go module version, and the
commit it was built from when the build recorded one), the Go version that
built it, and the protocol version it writes (docs/PROTOCOL.md): envelopes
"veil1:", cards, grants and membership-log records of version 1.
`

// protocolVersion is the version of docs/PROTOCOL.md this build implements.
const protocolVersion = "v1"

func versionCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, versionUsage) }
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("version", "version takes no arguments")
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprint(stdout, versionText(info))
	return nil
}

// versionText describes the build: info may be nil (a binary built without
// module support).
func versionText(info *debug.BuildInfo) string {
	mod, ver := "github.com/veilchat/veil", "unknown"
	var rev, modified, at string
	if info != nil {
		if info.Main.Path != "" {
			mod = info.Main.Path
		}
		if info.Main.Version != "" {
			ver = info.Main.Version // "(devel)" when built in the module's own tree
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			case "vcs.time":
				at = s.Value
			}
		}
	}
	out := fmt.Sprintf("veil %s (%s)\n", ver, mod)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified == "true" {
			rev += " with local changes"
		}
		if at != "" {
			rev += ", " + at
		}
		out += "commit:   " + rev + "\n"
	}
	out += "go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	out += fmt.Sprintf("protocol: %s (envelope text %q, envelope version %d)\n", protocolVersion, session.TextPrefix, session.Version)
	return out
}
