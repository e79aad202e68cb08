package keyservice_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keys")
	defer os.RemoveAll(dir)

	// The service: SQLite by default, a postgres:// DSN for replicas.
	store, _ := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	defer store.Close()
	secret := []byte("an HS256 secret of at least 32 bytes!")
	h, _ := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(secret)}}}})
	srv := httptest.NewServer(h)
	defer srv.Close()

	// Each user: an identity, a client with the token the app backend
	// issued, and a session manager over HTTP.
	manager := func(user string) *session.Manager {
		tok, _ := server.UserToken(secret, "", user, time.Hour)
		c, _ := keyservice.NewClient(keyservice.ClientConfig{BaseURL: srv.URL, Token: keyservice.StaticToken(tok)})
		id, _ := identity.Generate(nil, user, identity.Options{})
		c.PublishCard(ctx, id.Card())
		m, _ := session.NewManager(session.Config{Identity: id, Service: c, Directory: c})
		return m
	}
	alice, bob := manager("alice"), manager("bob")

	s, _ := alice.Create(ctx, "messaging:team", []string{"bob"})
	msg := session.Binding{ChannelCID: "messaging:team", MessageID: "m1", SenderID: "alice"}
	text, _ := alice.SealText(ctx, s.ID(), msg, []byte("over HTTP"), 5000)
	plain, err := bob.OpenText(ctx, text, msg)
	fmt.Println(string(plain), err)
	// Output: over HTTP <nil>
}
