package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// usageError is a mistake on the command line (an unknown flag, a missing
// argument): run prints it on one line and exits with status 2, the
// convention for usage errors. Its text names the flag and the fix; it
// never quotes a flag's value, which may be a secret.
type usageError struct {
	cmd string // the subcommand, for the pointer to its help
	msg string
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%s (see 'veil %s --help')", e.msg, e.cmd)
}

// usagef returns a usageError of command cmd.
func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// parseFlags parses args with fs, whose Usage prints the command's help,
// and returns the positional arguments. Flags may come after positional
// arguments ("veil inspect card.txt --full"), up to a "--" that ends the
// flags. A request for help prints the help and returns [flag.ErrHelp]; any
// other error is a one-line *usageError instead of the flag package's
// message followed by the whole help text.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = usage; fs.SetOutput(out) }()

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				usage()
				return nil, flag.ErrHelp
			}
			return nil, flagError(fs, err)
		}
		// fs.Parse stops at the first positional argument, or after a "--"
		// it consumed: in that case everything left is positional.
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// The flag package's messages, which name a flag with one dash and may
// quote its value.
var (
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	reNeedsArg  = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	reBadValue  = regexp.MustCompile(`^invalid (?:boolean )?(?:value|flag) .*?-+([A-Za-z0-9_.-]+)(?::|$)`)
	reBadSyntax = regexp.MustCompile(`^bad flag syntax: `)
)

// flagError rewrites an error of fs.Parse as a usageError that names the
// flag (with two dashes, as the help shows them) and says what to do.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	switch {
	case reUndefined.MatchString(msg):
		name := reUndefined.FindStringSubmatch(msg)[1]
		name, _, _ = strings.Cut(name, "=")
		if s := closestFlag(fs, name); s != "" {
			return usagef(fs.Name(), "unknown flag --%s: did you mean --%s?", name, s)
		}
		return usagef(fs.Name(), "unknown flag --%s", name)
	case reNeedsArg.MatchString(msg):
		name := reNeedsArg.FindStringSubmatch(msg)[1]
		return usagef(fs.Name(), "flag --%s needs a value: --%s VALUE", name, name)
	case reBadValue.MatchString(msg):
		name := reBadValue.FindStringSubmatch(msg)[1]
		if f := fs.Lookup(name); f != nil {
			return usagef(fs.Name(), "invalid value for --%s: %s", name, f.Usage)
		}
		return usagef(fs.Name(), "invalid value for --%s", name)
	case reBadSyntax.MatchString(msg):
		return usagef(fs.Name(), "bad flag syntax: flags are --name or --name=value")
	}
	return usagef(fs.Name(), "%s", msg)
}

// closestFlag returns the flag of fs nearest to name (an edit distance of at
// most 2, or one being a prefix of the other), or "".
func closestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if len(name) >= 3 && (strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name)) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b, bytewise; flag names
// are short.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
