package keyservice_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
)

// secret is the HS256 key the app backend signs Veil tokens with.
var secret = []byte("an HS256 secret of at least 32 bytes!")

// startKeyService runs a key service on a temporary SQLite file; the
// returned function stops it. In production it runs with `veil serve` or
// inside the app's own server.
func startKeyService(ctx context.Context) (url string, stop func()) {
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		log.Fatal(err)
	}
	store, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(secret)}}}})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	return srv.URL, func() {
		srv.Close()
		store.Close()
		os.RemoveAll(dir)
	}
}

// clientFor returns a client acting as user, with the token the app
// backend would hand to that user.
func clientFor(url, user string) *keyservice.Client {
	tok, err := server.UserToken(secret, "", user, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: url, Token: keyservice.StaticToken(tok)})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func Example() {
	ctx := context.Background()
	url, stop := startKeyService(ctx)
	defer stop()

	// Each user: an identity, its card published, and a session manager
	// over HTTP (the e2ee package does all of this in e2ee.New).
	manager := func(user string) *session.Manager {
		c := clientFor(url, user)
		id, err := identity.Generate(nil, user, identity.Options{})
		if err != nil {
			log.Fatal(err)
		}
		if err := c.PublishCard(ctx, id.Card()); err != nil {
			log.Fatal(err)
		}
		m, err := session.NewManager(session.Config{Identity: id, Service: c, Directory: c})
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	alice, bob := manager("alice"), manager("bob")

	s, err := alice.Create(ctx, "messaging:team", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:team", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("over HTTP"), 5000)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := bob.OpenText(ctx, text, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plain)
	// Output: over HTTP
}

func ExampleNewClient() {
	ctx := context.Background()
	url, stop := startKeyService(ctx)
	defer stop()

	tok, err := server.UserToken(secret, "", "alice", time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	// Token is asked for each request: return a fresh token there when
	// tokens are short-lived. MaxRetries and Backoff default to 4 retries
	// from 100 ms.
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: url, Token: keyservice.StaticToken(tok)})
	if err != nil {
		log.Fatal(err)
	}
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.PublishCard(ctx, id.Card()); err != nil {
		log.Fatal(err)
	}
	history, err := c.History(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(history), history[0].Equal(id.Card()))

	_, err = keyservice.NewClient(keyservice.ClientConfig{BaseURL: "keys.example.com", Token: keyservice.StaticToken(tok)})
	fmt.Println(err)
	// Output:
	// 1 true
	// keyservice: ClientConfig.BaseURL must be an http(s) URL
}

func ExampleAPIError() {
	ctx := context.Background()
	url, stop := startKeyService(ctx)
	defer stop()
	c := clientFor(url, "alice")

	_, err := c.History(ctx, "nobody")
	// Branch on sentinels: errors.Is matches this package's and the session
	// package's, so code written against session.Service works unchanged.
	fmt.Println(errors.Is(err, keyservice.ErrNotFound), errors.Is(err, session.ErrUnknownUser))
	// The *APIError carries the stable code.
	var ae *keyservice.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, ae.Code == keyservice.CodeUnknownUser)
	}
	// Output:
	// true true
	// 404 true
}

// A channel has one session: a second Create for it returns a
// *session.SessionExistsError naming the first, to open instead (here
// through the channel's session_id, as the application stored it).
func ExampleClient_Create() {
	ctx := context.Background()
	url, stop := startKeyService(ctx)
	defer stop()
	manager := func(user string) *session.Manager {
		c := clientFor(url, user)
		id, err := identity.Generate(nil, user, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			log.Fatal(err)
		}
		if err := c.PublishCard(ctx, id.Card()); err != nil {
			log.Fatal(err)
		}
		m, err := session.NewManager(session.Config{Identity: id, Service: c, Directory: c})
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	alice, bob := manager("alice"), manager("bob")
	first, err := alice.Create(ctx, "messaging:general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = bob.Create(ctx, "messaging:general", []string{"alice"})
	var exists *session.SessionExistsError
	if !errors.As(err, &exists) {
		log.Fatalf("want a *session.SessionExistsError, got %v", err)
	}
	fmt.Println(exists.ID == first.ID(), exists.ChannelCID)
	s, err := bob.OpenSession(ctx, exists.ID, exists.ChannelCID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.ID() == first.ID())
	// Output:
	// true messaging:general
	// true
}
