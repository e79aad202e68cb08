package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

// outbox stands in for the SSKS's email sender.
type outbox struct{ sent atomic.Int32 }

func (o *outbox) Send(context.Context, ssks.Challenge) error {
	o.sent.Add(1)
	return nil
}

func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "backend")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The backend's twoManRuleKeys live in its own database, never in the
	// SSKS's: a postgres:// DSN or a SQLite file.
	keys, err := backend.OpenKeyStore(ctx, filepath.Join(dir, "rule-keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	b, err := backend.New(backend.Config{
		Keys:    keys,
		SSKSURL: "https://ssks.example.com",
		AppKey:  backend.NewSecret([]byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a")), // issued by the SSKS's operator
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(b != nil)

	_, err = backend.New(backend.Config{Keys: keys, SSKSURL: "https://ssks.example.com", AppKey: backend.NewSecret([]byte("short"))})
	fmt.Println(err != nil)
	// Output:
	// true
	// true
}

func ExampleBackend_StartChallenge() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ssks")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	appKey := []byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a")
	mail := &outbox{}
	h, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: []ssks.Secret{ssks.NewSecret(appKey)}, HashKey: ssks.NewSecret(bytes.Repeat([]byte{7}, 32)), Sender: mail})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	b, err := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: srv.URL, AppKey: backend.NewSecret(appKey)})
	if err != nil {
		log.Fatal(err)
	}
	// Only for a user the app has already authenticated: the session goes
	// back to that user's device over the app's own API.
	s, err := b.StartChallenge(ctx, "alice", twoman.Factor{Type: twoman.Email, Value: "Alice@Example.com"}, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.UserID, s.Factor.Value, s.MustAuthenticate, mail.sent.Load())

	_, err = b.StartChallenge(ctx, "alice", twoman.Factor{Type: twoman.Email, Value: "not an address"}, false)
	fmt.Println(errors.Is(err, twoman.ErrInvalidFactor))
	// Output:
	// alice alice@example.com true 1
	// true
}
