package twoman_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

// mailbox stands in for the user's email: it keeps the last code.
type mailbox struct{ last string }

func (m *mailbox) Send(_ context.Context, c ssks.Challenge) error {
	m.last = c.Code.Reveal()
	return nil
}

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ssks")
	defer os.RemoveAll(dir)

	// The SSKS, run by a party other than the app's backend.
	store, _ := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	defer store.Close()
	inbox := &mailbox{}
	appKey := []byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a") // the app's SSKS API key
	handler, _ := ssks.NewHandler(ssks.Config{Store: store, AppKeys: [][]byte{appKey}, HashKey: bytes.Repeat([]byte{2}, 32), Sender: inbox})
	srv := httptest.NewServer(handler)
	defer srv.Close()

	// The app's backend keeps twoManRuleKeys; the device talks to the SSKS.
	app, _ := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: srv.URL, AppKey: appKey})
	device, _ := twoman.NewClient(twoman.ClientConfig{BaseURL: srv.URL})
	email := twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}

	// Sign-up: the user proves the address with the code, and saves.
	alice, _ := identity.Generate(nil, "alice", identity.Options{})
	s, _ := app.StartChallenge(ctx, "alice", email, false)
	fmt.Println("sign-up needs a code:", s.MustAuthenticate)
	fmt.Println("saved:", device.SaveIdentity(ctx, s, inbox.last, alice))

	// New device: the code goes to alice's mailbox, never to the backend.
	s, _ = app.StartChallenge(ctx, "alice", email, false)
	fmt.Println("recovery needs a code:", s.MustAuthenticate)
	recovered, err := device.RetrieveIdentity(ctx, s, inbox.last)
	fmt.Println("recovered:", err == nil && recovered.Equal(alice))
	// Output:
	// sign-up needs a code: true
	// saved: <nil>
	// recovery needs a code: true
	// recovered: true
}
