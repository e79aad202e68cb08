package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/veilchat/veil/identity"
)

const keygenUsage = `Usage: veil keygen --user ID --out FILE [--kind hybrid|x25519]
                   [--passphrase-file FILE | --passphrase-env VAR [--work-factor N]]
                   [--card FILE] [--force]

Generates a new identity (generation 0) for user ID and writes it to FILE
with mode 0600, and its public card to FILE.card (or --card). FILE is a
secret: it holds the private keys, as text that is also an age identity
file (age -d -i FILE grant). With --passphrase-file or
--passphrase-env, FILE is that text encrypted to the passphrase (age
scrypt, ASCII-armored; age -d opens it too).

The passphrase is the first line of --passphrase-file ("-" reads standard
input), or the value of the environment variable --passphrase-env names:
never a flag's value, which process lists show. veil keygen never prompts.

It prints the user, generation, kind and fingerprint of the new card, never
a private key. Compare safety numbers with 'veil verify FILE.card THEIRS'.
Existing files are kept unless --force replaces them.

Flags:
`

// maxPassphraseFile bounds what --passphrase-file reads.
const maxPassphraseFile = 4 << 10

func keygenCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "the user ID (a Stream user ID: 1 to 255 bytes of UTF-8, no control characters)")
	out := fs.String("out", "", "file to write the identity to (mode 0600)")
	cardOut := fs.String("card", "", "file to write the public card to (default: the --out path with .card appended)")
	kind := fs.String("kind", "hybrid", "encryption key type: hybrid (ML-KEM-768 + X25519, post-quantum) or x25519 (smaller cards, not post-quantum)")
	passFile := fs.String("passphrase-file", "", "protect the identity with the passphrase on the first line of this file (- for standard input)")
	passEnv := fs.String("passphrase-env", "", "protect the identity with the passphrase in this environment variable (its name, e.g. VEIL_PASSPHRASE)")
	workFactor := fs.Int("work-factor", identity.DefaultWorkFactor, fmt.Sprintf("scrypt work factor of a passphrase, %d to %d (2^N KiB of memory per guess)", identity.MinWorkFactor, identity.MaxWorkFactor))
	force := fs.Bool("force", false, "replace --out and --card if they exist")
	fs.Usage = func() {
		fmt.Fprint(stderr, keygenUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case len(rest) > 0:
		return usagef("keygen", "keygen takes flags only, and %d argument(s) are not flags", len(rest))
	case *user == "":
		return usagef("keygen", "--user is required: the user ID the identity is for")
	case identity.CheckUserID(*user) != nil:
		return usagef("keygen", "--user must be 1 to %d bytes of UTF-8 without control characters", identity.MaxUserIDLen)
	case *out == "":
		return usagef("keygen", "--out is required: the file to write the identity to")
	case *passFile != "" && *passEnv != "":
		return usagef("keygen", "give one of --passphrase-file and --passphrase-env")
	case given["work-factor"] && *passFile == "" && *passEnv == "":
		return usagef("keygen", "--work-factor applies to a passphrase: add --passphrase-file or --passphrase-env")
	case *workFactor < identity.MinWorkFactor || *workFactor > identity.MaxWorkFactor:
		return usagef("keygen", "--work-factor must be %d to %d", identity.MinWorkFactor, identity.MaxWorkFactor)
	}
	opts := identity.Options{}
	switch *kind {
	case "hybrid":
		opts.Kind = identity.KindHybrid
	case "x25519":
		opts.Kind = identity.KindX25519
	default:
		return usagef("keygen", "--kind must be hybrid or x25519")
	}
	if *cardOut == "" {
		*cardOut = *out + ".card"
	}
	if *cardOut == *out {
		return usagef("keygen", "--card must differ from --out")
	}

	var passphrase string
	switch {
	case *passFile != "":
		if passphrase, err = readPassphraseFile(*passFile); err != nil {
			return err
		}
	case *passEnv != "":
		if passphrase = os.Getenv(*passEnv); passphrase == "" {
			return fmt.Errorf("--passphrase-env: the environment variable %s is empty or unset", *passEnv)
		}
	}
	if passphrase != "" && utf8.RuneCountInString(passphrase) < 12 {
		fmt.Fprintln(stderr, "veil keygen: warning: a passphrase of fewer than 12 characters is weak against offline guessing")
	}
	if !*force {
		for _, p := range []string{*out, *cardOut} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists: choose another path, or --force to replace it", p)
			}
		}
	}

	id, err := identity.Generate(nil, *user, opts)
	if err != nil {
		return err
	}
	var secret []byte
	if passphrase != "" {
		secret, err = id.ExportWithPassphrase(passphrase, *workFactor)
		if err != nil {
			return err
		}
	} else {
		secret = id.Export()
	}
	err = writeNewFile(*out, secret, 0o600, *force)
	clear(secret)
	if err != nil {
		return err
	}
	card := id.Card()
	if err := writeNewFile(*cardOut, cardFileText(card), 0o644, *force); err != nil {
		os.Remove(*out) // no identity without its card: the run failed as a whole
		return err
	}

	protection := "not encrypted: keep the file private"
	if passphrase != "" {
		protection = fmt.Sprintf("passphrase-protected (age scrypt, work factor %d)", *workFactor)
	}
	fmt.Fprintf(stdout, "identity written to %s (mode 0600, %s)\n", *out, protection)
	fmt.Fprintf(stdout, "card written to %s (public)\n", *cardOut)
	r := &report{title: "card"}
	cardRows(r, "", card, false)
	r.write(stdout)
	fmt.Fprintf(stdout, "Compare safety numbers out of band: veil verify %s <their card>\n", *cardOut)
	return nil
}

// readPassphraseFile returns the first line of path ("-": standard input),
// without its line end.
func readPassphraseFile(path string) (string, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = readBounded(os.Stdin, maxPassphraseFile)
	} else {
		b, err = readFileBounded(path, maxPassphraseFile)
	}
	if err != nil {
		return "", fmt.Errorf("--passphrase-file: %w", err)
	}
	defer clear(b)
	line, _, _ := bytes.Cut(b, []byte("\n"))
	p := strings.TrimSuffix(string(line), "\r")
	if strings.TrimSpace(p) == "" {
		return "", errors.New("--passphrase-file: the first line is empty")
	}
	return p, nil
}
