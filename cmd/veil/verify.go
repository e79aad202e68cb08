package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
)

const verifyUsage = `Usage: veil verify CARD THEIRS
       veil verify --keyservice URL --user ID [--pinned FILE] CARD

Prints the safety number of two users: 60 digits that both see the same
when each holds the other's real keys. Read them to each other, or compare
them side by side, over a channel you trust (in person, a call).

With two card files, CARD and THEIRS, it compares those cards. With
--keyservice, it fetches the card history of user ID from the key service,
checks that it is a chain of signed generations, and compares CARD (yours)
with ID's newest card. It also checks that the directory holds CARD for
you, and, with --pinned FILE (a card of ID you trusted before), that ID's
history chains from it; otherwise the keys changed, and only the safety
number tells a new device from an impostor.

A card file is what 'veil keygen' writes next to an identity (base64), or a
card in hex or binary, or an unencrypted identity export (its current card).

The key service needs a user token: --token, or better the environment
variable VEIL_KEYSERVICE_TOKEN (flags show in process lists). --keyservice
defaults to VEIL_KEYSERVICE_URL, which 'veil dev' prints.

Exit status: 0 when the safety number is printed, 1 on a failure (a key
change, an unreachable service, a bad card), 2 for a usage error.

Flags:
`

func verifyCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ksURL := fs.String("keyservice", "", "the key service's base URL [VEIL_KEYSERVICE_URL]")
	token := fs.String("token", "", "a key-service user token [VEIL_KEYSERVICE_TOKEN]")
	user := fs.String("user", "", "with --keyservice: the user whose directory card to compare with CARD")
	pinned := fs.String("pinned", "", "with --keyservice: a card of --user trusted before; the directory's history must chain from it")
	timeout := fs.Duration("timeout", 30*time.Second, "with --keyservice: how long to wait for the key service")
	fs.Usage = func() {
		fmt.Fprint(stderr, verifyUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	remote := *ksURL != "" || *user != ""
	if !remote {
		for _, name := range []string{"token", "pinned", "timeout"} {
			if given[name] {
				return usagef("verify", "--%s applies with --keyservice and --user", name)
			}
		}
		if len(rest) != 2 {
			return usagef("verify", "give two card files (CARD THEIRS), or --keyservice URL --user ID and one card file")
		}
		a, err := readCard(rest[0])
		if err != nil {
			return err
		}
		b, err := readCard(rest[1])
		if err != nil {
			return err
		}
		printSafetyNumber(stdout, a, b)
		return nil
	}

	if *ksURL == "" {
		*ksURL = os.Getenv("VEIL_KEYSERVICE_URL")
	}
	if *token == "" {
		*token = os.Getenv("VEIL_KEYSERVICE_TOKEN")
	}
	switch {
	case *ksURL == "":
		return usagef("verify", "--keyservice (or VEIL_KEYSERVICE_URL) is required with --user")
	case *user == "":
		return usagef("verify", "--user is required with --keyservice: whose card to fetch")
	case identity.CheckUserID(*user) != nil:
		return usagef("verify", "--user must be 1 to %d bytes of UTF-8 without control characters", identity.MaxUserIDLen)
	case *token == "":
		return usagef("verify", "the key service needs a token: set VEIL_KEYSERVICE_TOKEN (or --token)")
	case len(rest) != 1:
		return usagef("verify", "with --keyservice, give one card file: yours")
	case *timeout <= 0:
		return usagef("verify", "--timeout must be positive")
	}
	mine, err := readCard(rest[0])
	if err != nil {
		return err
	}
	var trusted *identity.Card
	if *pinned != "" {
		if trusted, err = readCard(*pinned); err != nil {
			return err
		}
		if trusted.UserID() != *user {
			return fmt.Errorf("--pinned: the card is of user %q, not of %q", trusted.UserID(), *user)
		}
	}
	ks, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: strings.TrimRight(*ksURL, "/"), Token: keyservice.StaticToken(*token), MaxRetries: 1})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	history, err := ks.History(ctx, *user)
	if err != nil {
		return fmt.Errorf("fetching the cards of %q: %w", *user, err)
	}
	theirs := history[len(history)-1]
	fmt.Fprintf(stdout, "directory: %q has %d card generation(s), a valid signed chain; the newest is generation %d\n", *user, len(history), theirs.Generation())
	if trusted != nil {
		pins := &identity.MemoryPins{}
		if err := pins.Pin(trusted); err != nil {
			return err
		}
		if err := identity.Check(pins, theirs, history); err != nil {
			var kc *identity.KeyChangeError
			if errors.As(err, &kc) {
				return fmt.Errorf("key change: the directory's card of %q (fingerprint %s) does not chain from the pinned card (fingerprint %s); compare the safety number below out of band before trusting it: %s",
					*user, kc.New.Fingerprint(), kc.Old.Fingerprint(), identity.ComputeSafetyNumber(mine, theirs))
			}
			return err
		}
		fmt.Fprintf(stdout, "pinned:    the directory's history chains from the pinned generation %d (fingerprint %s)\n", trusted.Generation(), trusted.Fingerprint())
	}
	status, ok := ownCardStatus(ctx, ks, mine)
	fmt.Fprintf(stdout, "yours:     %s\n", status)
	printSafetyNumber(stdout, mine, theirs)
	if !ok {
		return fmt.Errorf("the directory does not hold your card as you hold it: %s (check that the token's user is the card's, %q)", status, mine.UserID())
	}
	return nil
}

// ownCardStatus says whether the directory holds mine for its user and
// generation (ok): if it holds other keys there, it shows others a
// substitute.
func ownCardStatus(ctx context.Context, ks *keyservice.Client, mine *identity.Card) (string, bool) {
	h, err := ks.History(ctx, mine.UserID())
	if errors.Is(err, keyservice.ErrNotFound) {
		return fmt.Sprintf("the directory has no card of %q", mine.UserID()), false
	}
	if err != nil {
		return fmt.Sprintf("could not fetch the cards of %q: %v", mine.UserID(), err), false
	}
	for _, c := range h {
		if c.Generation() == mine.Generation() {
			if c.SameKeys(mine) {
				return fmt.Sprintf("the directory holds your card (generation %d) unchanged", mine.Generation()), true
			}
			return fmt.Sprintf("WARNING: the directory holds OTHER keys for %q generation %d (fingerprint %s, yours %s)", mine.UserID(), mine.Generation(), c.Fingerprint(), mine.Fingerprint()), false
		}
	}
	return fmt.Sprintf("the directory has no generation %d of %q (it has %d)", mine.Generation(), mine.UserID(), len(h)), false
}

// printSafetyNumber prints the two cards and their safety number, in two
// lines of six groups.
func printSafetyNumber(w io.Writer, a, b *identity.Card) {
	for _, c := range []*identity.Card{a, b} {
		fmt.Fprintf(w, "card:      %q generation %d, %s, fingerprint %s\n", c.UserID(), c.Generation(), c.Kind(), c.Fingerprint())
	}
	if a.UserID() == b.UserID() {
		fmt.Fprintln(w, "note:      both cards are of the same user")
	}
	sn := identity.ComputeSafetyNumber(a, b)
	groups := strings.Fields(sn.String())
	fmt.Fprintln(w, "safety number:")
	fmt.Fprintln(w, "  "+strings.Join(groups[:6], " "))
	fmt.Fprintln(w, "  "+strings.Join(groups[6:], " "))
	fmt.Fprintf(w, "scannable payload (hex): %x\n", sn.Payload())
}
