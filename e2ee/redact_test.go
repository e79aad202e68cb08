package e2ee

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// TestStateKeyRedacted prints a Config and a Client under every fmt verb and
// through slog's text and JSON handlers, and demands that the StateKey
// appears in none of the encodings fmt, slog and encoding/json use for a
// []byte, while the non-secret user ID still does.
func TestStateKeyRedacted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	key := []byte("STATEKEY-0123456789abcdefghijklm") // printable, so %s and %q would show it too
	cfg := Config{UserID: "bot", Service: svc.As("bot"), Directory: &dir, Publisher: &dir,
		State: &FileStore{Path: filepath.Join(t.TempDir(), "s")}, StateKey: mustStateKey(key), Kind: identity.KindX25519}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Exported fields of a caller's struct: below the top level fmt calls
	// only the methods of the field's own type, not of its pointer.
	type holder struct {
		Cfg       Config
		ClientPtr *Client
		Client    Client
	}
	// Unexported fields: fmt prints them by reflection, calling no method.
	type private struct{ c Client }
	type privateConfig struct {
		cfg Config
		key StateKey
	}
	values := []struct {
		name, reason string
		v            any
		want         string // non-secret text that must be printed
	}{
		{"Config", "Config is passed by value and kept in callers' structs", cfg, "bot"},
		{"*Config", "a pointer to a Config must reach the value methods", &cfg, "bot"},
		{"*Client", "the Client keeps its Config; a client is what callers log", c, "bot"},
		{"Client", "a dereferenced *Client must redact with value-receiver methods", *c, "bot"},
		{"holder", "Config, *Client and Client as fields of another struct", holder{cfg, c, *c}, "bot"},
		{"*holder", "the same through a pointer, as %+v of a caller's config shows it", &holder{cfg, c, *c}, "bot"},
		{"private", "a Client in an unexported field is printed by reflection, even dereferenced by a bad verb: it must meet no key bytes", private{*c}, ""},
		{"private Config", "a Config and a StateKey in unexported fields are printed by reflection: the key's bytes must sit behind a pointer", privateConfig{cfg, cfg.StateKey}, ""},
	}
	needles := map[string]string{
		"raw":       string(key),
		"decimal":   fmt.Sprint(key)[1 : len(fmt.Sprint(key))-1], // "83 84 65 ..." as fmt prints []byte
		"hex":       hex.EncodeToString(key),
		"HEX":       strings.ToUpper(hex.EncodeToString(key)),
		"base64":    base64.StdEncoding.EncodeToString(key)[:40], // encoding/json, and so slog's JSON handler
		"base64url": base64.RawURLEncoding.EncodeToString(key)[:40],
	}
	check := func(t *testing.T, what, out, want string) {
		t.Helper()
		if out == "" || !strings.Contains(out, want) {
			t.Errorf("%s printed %q: want something containing %q", what, out, want)
		}
		for enc, n := range needles {
			if strings.Contains(out, n) {
				t.Errorf("%s prints the StateKey (%s): %s", what, enc, out)
			}
		}
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
				check(t, verb+" ("+v.reason+")", fmt.Sprintf(verb, v.v), v.want)
			}
			check(t, "Sprint", fmt.Sprint(v.v), v.want)
			for _, h := range []struct {
				name string
				new  func(*bytes.Buffer) slog.Handler
			}{
				{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
				{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
			} {
				var b bytes.Buffer
				slog.New(h.new(&b)).Info("m", "v", v.v, slog.Any("any", v.v), slog.Group("g", "v", v.v))
				check(t, "slog "+h.name+" ("+v.reason+")", b.String(), v.want)
			}
		})
	}
}
