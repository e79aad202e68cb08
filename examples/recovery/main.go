package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "recovery:", err)
		os.Exit(1)
	}
}

// purpose is the domain separation of the statement the recovered identity
// signs: an application's own, outside the protocol's reserved prefix.
const purpose = "example.com/veil-recovery-demo"

// run recovers alice's identity under the two-man rule and from a password
// backup, printing each step on out. It returns an error if a step does
// not do what it says.
func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "veil-recovery-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The SSKS, run by another party than the app backend.
	appKey := hex.EncodeToString(random(32)) // the app backend's SSKS API key
	store, err := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	mail := &mailbox{codes: map[string]string{}}
	h, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: []ssks.Secret{ssks.NewSecret([]byte(appKey))},
		HashKey: ssks.NewSecret(random(32)), Sender: mail})
	if err != nil {
		return err
	}
	ssksURL, stop, err := serve(h)
	if err != nil {
		return err
	}
	defer stop()
	// The app backend's half: alice's twoManRuleKey.
	app, err := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: ssksURL, AppKey: backend.NewSecret([]byte(appKey))})
	if err != nil {
		return err
	}
	// The device's half, on every device.
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: ssksURL})
	if err != nil {
		return err
	}

	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		return err
	}
	card := alice.Card() // public: what the key service publishes
	email := twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}
	fmt.Fprintf(out, "alice's device made her identity: fingerprint %s\n", short(card.Fingerprint()))

	fmt.Fprintln(out, "\nTwo-man rule")
	s, err := app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		return err
	}
	if err := device.SaveIdentity(ctx, s, mail.read("alice"), alice); err != nil {
		return err
	}
	fmt.Fprintln(out, "  At sign-up the SSKS emails alice a code; she types it, and her device stores her")
	fmt.Fprintln(out, "  identity on the SSKS, encrypted under a key from the backend's twoManRuleKey.")

	alice = nil // the device is lost
	fmt.Fprintln(out, "  alice loses her device. On a new one she logs in to the app, whose backend has")
	fmt.Fprintln(out, "  the SSKS email her a new code.")
	s, err = app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		return err
	}
	code := mail.read("alice")
	_, err = device.RetrieveIdentity(ctx, s, "")
	if !errors.Is(err, twoman.ErrForbidden) {
		return fmt.Errorf("retrieving without the code: got %v, want ErrForbidden", err)
	}
	fmt.Fprintf(out, "  - the backend alone (its key, no code): refused\n      %v\n", err)
	_, err = device.RetrieveIdentity(ctx, s, mistype(code))
	if !errors.Is(err, twoman.ErrWrongCode) {
		return fmt.Errorf("retrieving with a wrong code: got %v, want ErrWrongCode", err)
	}
	fmt.Fprintf(out, "  - a mistyped code: refused\n      %v\n", err)
	key, err := twoman.NewRuleKey(nil) // not the backend's
	if err != nil {
		return err
	}
	withoutBackend := *s
	withoutBackend.RuleKey = key
	_, err = device.RetrieveIdentity(ctx, &withoutBackend, code)
	if !errors.Is(err, twoman.ErrDecrypt) {
		return fmt.Errorf("retrieving without the backend's key: got %v, want ErrDecrypt", err)
	}
	fmt.Fprintf(out, "  - the code without the backend's key (what the SSKS could try): nothing\n      %v\n", err)

	s, err = app.StartChallenge(ctx, "alice", email, false) // that session is used: a new code
	if err != nil {
		return err
	}
	recovered, err := device.RetrieveIdentity(ctx, s, mail.read("alice"))
	if err != nil {
		return err
	}
	if err := same(recovered, card); err != nil {
		return err
	}
	fmt.Fprintf(out, "  - a new code and the backend's key: recovered, fingerprint %s\n", short(recovered.Card().Fingerprint()))

	fmt.Fprintln(out, "\nPassword backup")
	const passphrase = "correct horse battery staple" // alice's own, never sent anywhere
	s, err = app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		return err
	}
	if err := device.SavePassword(ctx, s, mail.read("alice"), passphrase, recovered, nil); err != nil {
		return err
	}
	fmt.Fprintln(out, "  alice saves a backup under a passphrase: Argon2id derives from it a lookup")
	fmt.Fprintln(out, "  secret the SSKS checks and a key it never sees.")
	_, err = device.RetrievePassword(ctx, "alice", "correct horse battery stapler")
	if !errors.Is(err, twoman.ErrWrongPassphrase) {
		return fmt.Errorf("a wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}
	fmt.Fprintf(out, "  - a wrong passphrase: refused, and counted\n      %v\n", err)
	fromPassword, err := device.RetrievePassword(ctx, "alice", passphrase)
	if err != nil {
		return err
	}
	if err := same(fromPassword, card); err != nil {
		return err
	}
	fmt.Fprintf(out, "  - the passphrase: recovered, fingerprint %s\n", short(fromPassword.Card().Fingerprint()))
	return nil
}

// same checks that a recovered identity is the one whose card was
// published: the same keys, and a signature the card verifies.
func same(id *identity.Identity, published *identity.Card) error {
	msg := []byte("alice, recovered at " + time.Now().UTC().Format(time.RFC3339))
	if id.Card().Fingerprint() != published.Fingerprint() || !published.Verify(purpose, msg, id.Sign(purpose, msg)) {
		return errors.New("the recovered identity is not alice's")
	}
	return nil
}

// mailbox is the SSKS's development sender: it hands codes to this program
// (which plays alice reading her email) instead of emailing them.
type mailbox struct {
	mu    sync.Mutex
	codes map[string]string
}

// Send implements ssks.Sender.
func (m *mailbox) Send(_ context.Context, c ssks.Challenge) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[c.UserID] = c.Code.Reveal()
	return nil
}

// read is the last code sent to a user.
func (m *mailbox) read(userID string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.codes[userID]
}

// mistype changes the code's last digit.
func mistype(code string) string {
	b := []byte(code)
	b[len(b)-1] = '0' + (b[len(b)-1]-'0'+1)%10
	return string(b)
}

// serve serves h on a loopback port.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// random returns n bytes from crypto/rand, whose Read never fails.
func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// short is the start of a fingerprint, in groups of four.
func short(fp string) string {
	return fp[0:4] + " " + fp[4:8] + " " + fp[8:12] + " " + fp[12:16] + "…"
}
