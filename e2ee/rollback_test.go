package e2ee

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// TestStateRollback restarts a client from various saved states and checks
// that New refuses exactly the states whose identity is older than the one
// the directory publishes.
func TestStateRollback(t *testing.T) {
	t.Parallel()
	type env struct {
		dir  *session.MemoryDirectory
		path string
		cfg  Config
	}
	mustNew := func(t *testing.T, cfg Config) *Client {
		t.Helper()
		c, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rotate := func(t *testing.T, c *Client) {
		t.Helper()
		if err := c.RotateIdentity(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	read := func(t *testing.T, path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(t *testing.T, path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, reason string
		// setup runs the earlier life of the client and returns the Config
		// of the restart under test.
		setup   func(t *testing.T, e env) Config
		wantErr error
		wantGen uint32
	}{{
		name:   "restart",
		reason: "a normal restart loads the saved identity",
		setup: func(t *testing.T, e env) Config {
			mustNew(t, e.cfg)
			return e.cfg
		},
	}, {
		name:   "restart after rotation",
		reason: "the newest state after RotateIdentity matches the directory",
		setup: func(t *testing.T, e env) Config {
			rotate(t, mustNew(t, e.cfg))
			return e.cfg
		},
		wantGen: 1,
	}, {
		name:   "old state after rotation",
		reason: "a state file from before RotateIdentity (generation 0, maybe compromised) put back while the directory publishes generation 1",
		setup: func(t *testing.T, e env) Config {
			c := mustNew(t, e.cfg)
			old := read(t, e.path)
			rotate(t, c)
			write(t, e.path, old)
			return e.cfg
		},
		wantErr: ErrStateRollback,
	}, {
		name:   "one rotation behind",
		reason: "a state of generation 1 while the directory publishes generation 2 is a rollback too, not only one to generation 0",
		setup: func(t *testing.T, e env) Config {
			c := mustNew(t, e.cfg)
			rotate(t, c)
			old := read(t, e.path)
			rotate(t, c)
			write(t, e.path, old)
			return e.cfg
		},
		wantErr: ErrStateRollback,
	}, {
		name:   "directory behind",
		reason: "a rotation saved but never published (the key service was down) is published at the next start, as before",
		setup: func(t *testing.T, e env) Config {
			c := mustNew(t, e.cfg)
			c.cfg.Publisher = failingPublisher{}
			if err := c.RotateIdentity(context.Background()); err == nil {
				t.Fatal("RotateIdentity published through a failing publisher")
			}
			return e.cfg
		},
		wantGen: 1,
	}, {
		name:   "old Config.Identity",
		reason: "an identity imported from a backup made before a rotation is as stale as an old state file",
		setup: func(t *testing.T, e env) Config {
			c := mustNew(t, e.cfg)
			old := c.Identity()
			rotate(t, c)
			cfg := e.cfg
			cfg.State = &FileStore{Path: e.path + ".new-device"}
			cfg.Identity = old
			return cfg
		},
		wantErr: ErrStateRollback,
	}, {
		name:   "current Config.Identity",
		reason: "a new device with the current identity (two-man-rule recovery) starts",
		setup: func(t *testing.T, e env) Config {
			c := mustNew(t, e.cfg)
			rotate(t, c)
			cfg := e.cfg
			cfg.State = &FileStore{Path: e.path + ".new-device"}
			cfg.Identity = c.Identity()
			return cfg
		},
		wantGen: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := env{dir: new(session.MemoryDirectory), path: filepath.Join(t.TempDir(), "bot.state")}
			svc := session.MemoryService{Directory: e.dir}
			e.cfg = Config{UserID: "bot", Service: svc.As("bot"), Directory: e.dir, Publisher: e.dir,
				State: &FileStore{Path: e.path}, StateKey: mustStateKey(bytes.Repeat([]byte{7}, StateKeySize)), Kind: identity.KindX25519}
			cfg := tt.setup(t, e)
			before, _ := os.ReadFile(e.path)
			c, err := New(ctx, cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || c != nil {
					t.Fatalf("New = %v, %v; want nil, %v (%s)", c, err, tt.wantErr, tt.reason)
				}
				if after, _ := os.ReadFile(e.path); !bytes.Equal(before, after) {
					t.Errorf("the refused state was overwritten (%s)", tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v (%s)", err, tt.reason)
			}
			if got := c.Identity().Generation(); got != tt.wantGen {
				t.Errorf("generation %d, want %d (%s)", got, tt.wantGen, tt.reason)
			}
			latest, err := e.dir.Latest(ctx, []string{"bot"})
			if err != nil {
				t.Fatal(err)
			}
			if !latest["bot"].Equal(c.Identity().Card()) {
				t.Errorf("the directory publishes generation %d, the client has %d (%s)",
					latest["bot"].Generation(), c.Identity().Generation(), tt.reason)
			}
		})
	}
}

// failingPublisher is a Publisher whose key service is unreachable.
type failingPublisher struct{}

func (failingPublisher) PublishHistory(context.Context, []*identity.Card) error {
	return errors.New("key service unreachable")
}
