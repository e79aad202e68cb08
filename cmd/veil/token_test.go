package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
)

// TestToken: the token veil token prints is accepted by a key service that
// holds the same secret, for the user named; bad input is a one-line usage
// error that never shows the secret.
func TestToken(t *testing.T) {
	secret := strings.Repeat("q", 40)
	t.Setenv("VEIL_JWT_SECRET", secret)
	code, out, errOut := runVeil("token", "--user", "alice")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ctx := context.Background()
	store, err := server.OpenStore(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret([]byte(secret))}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: srv.URL, Token: keyservice.StaticToken(strings.TrimSpace(out)), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.History(ctx, "nobody"); err == nil || strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("the key service refused the token: %v", err)
	}
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{secret, []string{"token"}, "--user is required"},
		{secret, []string{"token", "--user", "a", "--ttl", "48h"}, "--ttl"},
		{"", []string{"token", "--user", "a"}, "VEIL_JWT_SECRET is empty"},
		{"short", []string{"token", "--user", "a"}, "fewer than 32 bytes"},
	} {
		t.Setenv("VEIL_JWT_SECRET", tc.env)
		code, out, errOut := runVeil(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || out != "" {
			t.Errorf("veil %v: exit %d, %q %q; want one line naming %s", tc.args, code, out, errOut, tc.want)
		}
		if tc.env != "" && strings.Contains(out+errOut, tc.env) {
			t.Errorf("veil %v printed the secret", tc.args)
		}
	}
}
