package streamadapter

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
)

// testKeySecret signs the user tokens of the tests' key services.
var testKeySecret = []byte("a key service HS256 secret of 32+ bytes")

// startTestKeyService runs a key service on its own SQLite store over
// loopback HTTP until the test ends, with cfg's limits, and returns its
// URL.
func startTestKeyService(tb testing.TB, cfg server.Config) string {
	tb.Helper()
	store, err := server.OpenStore(context.Background(), filepath.Join(tb.TempDir(), "keys.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	cfg.Store = store
	cfg.Auth = server.Auth{Keys: []server.Key{{HS256: server.NewSecret(testKeySecret)}}}
	h, err := server.NewHandler(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ks := httptest.NewServer(h)
	tb.Cleanup(ks.Close)
	return ks.URL
}

// testKeyClient returns a client of the key service at url acting as user,
// with the token an app backend would issue.
func testKeyClient(tb testing.TB, url, user string) *keyservice.Client {
	tb.Helper()
	tok, err := server.UserToken(testKeySecret, "", user, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: url, Token: keyservice.StaticToken(tok)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
