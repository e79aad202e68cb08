package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
)

func ExampleNewHandler() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// SQLite by default; a postgres:// DSN for several replicas.
	store, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	h, err := server.NewHandler(server.Config{
		Store: store,
		Auth:  server.Auth{Keys: []server.Key{{ID: "2026", HS256: server.NewSecret([]byte("an HS256 secret of at least 32 bytes!"))}}},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Mount it in the app's own server, next to its other routes.
	mux := http.NewServeMux()
	mux.Handle("/keys/", http.StripPrefix("/keys", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/keys/healthz")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))

	_, err = server.NewHandler(server.Config{Store: store})
	fmt.Println(err != nil) // no way to authenticate
	// Output:
	// 200 {"status":"ok"}
	// true
}

func ExampleUserToken() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	secret := []byte("an HS256 secret of at least 32 bytes!")
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{ID: "2026", HS256: server.NewSecret(secret)}}}})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// The app backend issues a short-lived token to its logged-in user,
	// naming the key it signed with so that keys can rotate.
	tok, err := server.UserToken(secret, "2026", "alice", time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	// The user's device sends it with every request.
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: srv.URL, Token: keyservice.StaticToken(tok)})
	if err != nil {
		log.Fatal(err)
	}
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.PublishCard(ctx, alice.Card()))

	// A token for Bob cannot publish Alice's card.
	bobTok, err := server.UserToken(secret, "2026", "bob", time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	bob, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: srv.URL, Token: keyservice.StaticToken(bobTok)})
	if err != nil {
		log.Fatal(err)
	}
	err = bob.PublishCard(ctx, alice.Card())
	fmt.Println(errors.Is(err, keyservice.ErrForbidden))
	// Output:
	// <nil>
	// true
}
