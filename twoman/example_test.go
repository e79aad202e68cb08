package twoman_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

// mailbox stands in for the user's email: it keeps the last code.
type mailbox struct {
	mu   sync.Mutex
	last string
}

func (m *mailbox) Send(_ context.Context, c ssks.Challenge) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = c.Code.Reveal()
	return nil
}

// code is what the user types after reading the mailbox.
func (m *mailbox) code() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// recovery is the three parties of the examples: an SSKS, the app's
// backend, and the user's mailbox.
type recovery struct {
	ssksURL string
	app     *backend.Backend
	inbox   *mailbox
	stop    func()
}

// startRecovery runs an SSKS on a temporary SQLite file and the app's
// backend next to it. In production they run on different parties'
// machines.
func startRecovery(ctx context.Context) *recovery {
	dir, err := os.MkdirTemp("", "ssks")
	if err != nil {
		log.Fatal(err)
	}
	store, err := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	if err != nil {
		log.Fatal(err)
	}
	inbox := &mailbox{}
	appKey := []byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a") // the app's SSKS API key
	h, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: []ssks.Secret{ssks.NewSecret(appKey)}, HashKey: ssks.NewSecret(bytes.Repeat([]byte{2}, 32)), Sender: inbox})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	app, err := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: srv.URL, AppKey: backend.NewSecret(appKey)})
	if err != nil {
		log.Fatal(err)
	}
	return &recovery{ssksURL: srv.URL, app: app, inbox: inbox, stop: func() {
		srv.Close()
		store.Close()
		os.RemoveAll(dir)
	}}
}

var email = twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}

func Example() {
	ctx := context.Background()
	r := startRecovery(ctx)
	defer r.stop()
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: r.ssksURL})
	if err != nil {
		log.Fatal(err)
	}

	// Sign-up: the user proves the address with the code, and saves.
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s, err := r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sign-up needs a code:", s.MustAuthenticate)
	if err := device.SaveIdentity(ctx, s, r.inbox.code(), alice); err != nil {
		log.Fatal(err)
	}

	// New device: the code goes to alice's mailbox, never to the backend.
	s, err = r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recovery needs a code:", s.MustAuthenticate)
	recovered, err := device.RetrieveIdentity(ctx, s, r.inbox.code())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recovered:", recovered.Equal(alice))
	// Output:
	// sign-up needs a code: true
	// recovery needs a code: true
	// recovered: true
}

func ExampleNewClient() {
	// The device needs only the SSKS's address; HTTPClient nil means a
	// client with a 30 s timeout.
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: "https://ssks.example.com"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(device != nil)

	_, err = twoman.NewClient(twoman.ClientConfig{BaseURL: "ssks.example.com"})
	fmt.Println(err)
	// Output:
	// true
	// twoman: ClientConfig.BaseURL must be an http(s) URL
}

func ExampleClient_SaveIdentity() {
	ctx := context.Background()
	r := startRecovery(ctx)
	defer r.stop()
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: r.ssksURL})
	if err != nil {
		log.Fatal(err)
	}
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// The app's backend starts the challenge for its logged-in user and
	// hands the session (with the twoManRuleKey) to the device.
	s, err := r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	// A wrong code is refused, and counted.
	err = device.SaveIdentity(ctx, s, "00000000", alice)
	var ae *twoman.APIError
	fmt.Println(errors.As(err, &ae) && ae.Code == twoman.CodeWrongCode)

	// The code from the mailbox: the identity is stored, encrypted.
	fmt.Println(device.SaveIdentity(ctx, s, r.inbox.code(), alice))
	// Output:
	// true
	// <nil>
}

func ExampleClient_RetrieveIdentity() {
	ctx := context.Background()
	r := startRecovery(ctx)
	defer r.stop()
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: r.ssksURL})
	if err != nil {
		log.Fatal(err)
	}
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s, err := r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	if err := device.SaveIdentity(ctx, s, r.inbox.code(), alice); err != nil {
		log.Fatal(err)
	}

	// On a new device, after logging in to the app:
	s, err = r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	recovered, err := device.RetrieveIdentity(ctx, s, r.inbox.code())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(recovered.UserID(), recovered.Equal(alice))

	// A challenge to another address is refused: the code goes only to the
	// factor registered at sign-up.
	_, err = r.app.StartChallenge(ctx, "alice", twoman.Factor{Type: twoman.Email, Value: "mallory@example.com"}, false)
	fmt.Println(errors.Is(err, twoman.ErrFactorMismatch))
	// Output:
	// alice true
	// true
}

func ExampleClient_SavePassword() {
	ctx := context.Background()
	r := startRecovery(ctx)
	defer r.stop()
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: r.ssksURL})
	if err != nil {
		log.Fatal(err)
	}
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// Creating a backup needs a challenge session for the user; nil
	// parameters mean DefaultPasswordParams (Argon2id, 64 MiB).
	s, err := r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	err = device.SavePassword(ctx, s, r.inbox.code(), "correct horse battery staple", alice, nil)
	fmt.Println(err)
	// Output: <nil>
}

func ExampleClient_RetrievePassword() {
	ctx := context.Background()
	r := startRecovery(ctx)
	defer r.stop()
	// The smallest parameters allowed keep this example fast; a real
	// backup uses nil, DefaultPasswordParams, and a client that accepts
	// nothing weaker (MinPasswordParams nil).
	fast := &twoman.PasswordParams{Alg: "argon2id", Time: 1, Memory: twoman.MinPasswordMemory, Threads: 1, Version: 1}
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: r.ssksURL, MinPasswordParams: fast})
	if err != nil {
		log.Fatal(err)
	}
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s, err := r.app.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		log.Fatal(err)
	}
	if err := device.SavePassword(ctx, s, r.inbox.code(), "correct horse battery staple", alice, fast); err != nil {
		log.Fatal(err)
	}

	// On a new device, with nothing but the user ID and the passphrase.
	recovered, err := device.RetrievePassword(ctx, "alice", "correct horse battery staple")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(recovered.Equal(alice))

	// The SSKS counts wrong passphrases and locks the backup after a few.
	_, err = device.RetrievePassword(ctx, "alice", "wrong")
	fmt.Println(errors.Is(err, twoman.ErrWrongPassphrase))
	// Output:
	// true
	// true
}
