package main

import (
	"bytes"
	"context"
	"flag"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestBadFlags: every command answers a bad flag with one line on stderr
// that names the flag and where the fix is, and exit status 2.
func TestBadFlags(t *testing.T) {
	tests := []struct {
		args   []string
		want   []string // in the one line
		reason string
	}{
		{[]string{"serve", "--adr", "127.0.0.1:0"}, []string{"--adr", "did you mean --addr?"}, "a typo gets the nearest flag"},
		{[]string{"serve", "--insecure-log-codes=maybe"}, []string{"--insecure-log-codes"}, "a bool flag with a value that is no bool"},
		{[]string{"serve", "extra"}, []string{"flags only"}, "serve takes no argument"},
		{[]string{"streamtest", "--secrt", "s"}, []string{"--secrt", "--secret"}, "a typo"},
		{[]string{"dev", "--keyservice", "127.0.0.1:0"}, []string{"--keyservice", "--keyservice-addr"}, "a prefix of a flag"},
		{[]string{"dev", "--stream-addr", "0.0.0.0:8182"}, []string{"--stream-addr", "loopback"}, "the development stack stays on loopback"},
		{[]string{"dev", "--verbose=loud"}, []string{"--verbose"}, "a bool flag with a bad value"},
		{[]string{"keygen", "--usr", "alice"}, []string{"--usr", "--user"}, "a typo"},
		{[]string{"keygen", "--out", "x"}, []string{"--user is required"}, "a missing required flag"},
		{[]string{"keygen", "--user", "alice"}, []string{"--out is required"}, "a missing required flag"},
		{[]string{"keygen", "--user", "a\x01b", "--out", "x"}, []string{"--user must be"}, "a user ID no card can carry"},
		{[]string{"keygen", "--user", "alice", "--out", "x", "--kind", "rsa"}, []string{"--kind must be hybrid or x25519"}, "an unknown kind"},
		{[]string{"keygen", "--user", "alice", "--out", "x", "--work-factor", "abc"}, []string{"invalid value for --work-factor", "15 to 18"}, "a number flag that is no number"},
		{[]string{"keygen", "--user", "alice", "--out", "x", "--work-factor", "16"}, []string{"--work-factor applies to a passphrase"}, "a work factor without passphrase"},
		{[]string{"keygen", "--user", "alice", "--out", "x", "--passphrase-env", "P", "--passphrase-file", "f"}, []string{"one of --passphrase-file and --passphrase-env"}, "two passphrase sources"},
		{[]string{"keygen", "--user", "alice", "--out"}, []string{"--out needs a value"}, "a flag without its value"},
		{[]string{"inspect", "--knd", "card"}, []string{"--knd", "--kind"}, "a typo"},
		{[]string{"inspect", "--kind", "letter"}, []string{"--kind must be one of"}, "an unknown kind"},
		{[]string{"inspect", "a", "b"}, []string{"one input"}, "two inputs"},
		{[]string{"verify", "--pined", "x"}, []string{"--pined", "--pinned"}, "a typo"},
		{[]string{"verify", "a.card"}, []string{"two card files"}, "one card is not a comparison"},
		{[]string{"verify", "--pinned", "p", "a", "b"}, []string{"--pinned applies with --keyservice"}, "a remote-only flag without the service"},
		{[]string{"verify", "--keyservice", "http://127.0.0.1:1", "a"}, []string{"--user is required"}, "the service without a user"},
		{[]string{"verify", "--keyservice", "http://127.0.0.1:1", "--user", "bob", "a"}, []string{"VEIL_KEYSERVICE_TOKEN"}, "no token"},
		{[]string{"version", "--short"}, []string{"--short"}, "version has no flags"},
		{[]string{"version", "extra"}, []string{"no arguments"}, "version takes no argument"},
	}
	// A flag before any command.
	if code, out, errOut := runVeil("--addr", "x"); code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "unknown flag --addr") {
		t.Errorf("veil --addr: exit %d, %q, %q", code, out, errOut)
	}
	t.Setenv("VEIL_KEYSERVICE_TOKEN", "")
	t.Setenv("VEIL_KEYSERVICE_URL", "")
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		line := errOut.String()
		ok := code == 2 && out.Len() == 0 && strings.Count(line, "\n") == 1 && strings.HasSuffix(line, "\n") &&
			strings.HasPrefix(line, "veil "+tc.args[0]+": ") && strings.Contains(line, "'veil "+tc.args[0]+" --help'")
		for _, w := range tc.want {
			ok = ok && strings.Contains(line, w)
		}
		if !ok {
			t.Errorf("veil %q (%s): exit %d, stdout %q, stderr %q; want exit 2 and one line on stderr with %q and the help's name",
				tc.args, tc.reason, code, out.String(), line, tc.want)
		}
	}
}

// reHelpFlag finds the flags a help text mentions; reDefaultsFlag the flags
// PrintDefaults lists.
var (
	reHelpFlag     = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	reDefaultsFlag = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)
)

// TestHelp: every command's --help exits 0, starts with its usage line, lists
// its flags, and mentions no flag the command does not have; "veil help
// CMD" prints the same.
func TestHelp(t *testing.T) {
	for name := range commands {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{name, "--help"}, &out, &errOut)
		help := errOut.String()
		if code != 0 || !strings.HasPrefix(help, "Usage: veil "+name) {
			t.Errorf("veil %s --help: exit %d, help %.60q", name, code, help)
			continue
		}
		defined := map[string]bool{"help": true}
		for _, m := range reDefaultsFlag.FindAllStringSubmatch(help, -1) {
			defined[m[1]] = true
		}
		if name != "version" && len(defined) < 2 {
			t.Errorf("veil %s --help lists no flag:\n%s", name, help)
		}
		for _, m := range reHelpFlag.FindAllStringSubmatch(help, -1) {
			if !defined[m[1]] && m[1] != "version" {
				t.Errorf("veil %s --help mentions --%s, which it does not have", name, m[1])
			}
		}
		var out2, errOut2 bytes.Buffer
		if code := run(context.Background(), []string{"help", name}, &out2, &errOut2); code != 0 || errOut2.String() != help {
			t.Errorf("veil help %s: exit %d, and not the --help text", name, code)
		}
	}
	// The command list names every command.
	var out bytes.Buffer
	run(context.Background(), []string{"help"}, &out, &out)
	for name := range commands {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("veil help does not list %s", name)
		}
	}
}

// TestParseFlagsInterleaved: flags may follow positional arguments, up to
// a "--".
func TestParseFlagsInterleaved(t *testing.T) {
	tests := []struct {
		args       []string
		positional []string
		kind       string
		full       bool
	}{
		{[]string{"a"}, []string{"a"}, "", false},
		{[]string{"a", "--kind", "card", "b"}, []string{"a", "b"}, "card", false},
		{[]string{"--full", "a", "--kind=grant"}, []string{"a"}, "grant", true},
		{[]string{"a", "--", "--kind", "x"}, []string{"a", "--kind", "x"}, "", false},
		{[]string{"-", "--full"}, []string{"-"}, "", true},
	}
	for _, tc := range tests {
		fs := newTestFlagSet()
		kind := fs.String("kind", "", "")
		full := fs.Bool("full", false, "")
		got, err := parseFlags(fs, tc.args)
		if err != nil || !slices.Equal(got, tc.positional) || *kind != tc.kind || *full != tc.full {
			t.Errorf("parseFlags(%q) = %q, %v, kind %q, full %v; want %q, kind %q, full %v", tc.args, got, err, *kind, *full, tc.positional, tc.kind, tc.full)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut)
		if code != 0 || !strings.HasPrefix(out.String(), "veil ") || !strings.Contains(out.String(), "go:       go1.") ||
			!strings.Contains(out.String(), `protocol: v1 (envelope text "veil1:", envelope version 1)`) {
			t.Errorf("veil %v: exit %d:\n%s%s", args, code, out.String(), errOut.String())
		}
	}
	// What a release build records.
	info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/veilchat/veil", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}}
	got := versionText(info)
	for _, want := range []string{"veil v0.3.0 (github.com/veilchat/veil)\n", "commit:   0123456789ab with local changes, 2026-01-02T03:04:05Z\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("versionText = %q; want %q in it", got, want)
		}
	}
	if got := versionText(nil); !strings.HasPrefix(got, "veil unknown") {
		t.Errorf("versionText(nil) = %q", got)
	}
}

func newTestFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }
