package server_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/veilchat/veil/internal/pgtest"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/internal/sqlstore"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/keyservice/server/storetest"
	"github.com/veilchat/veil/session"
)

// sqliteDSN returns the DSN of a new SQLite file for t.
func sqliteDSN(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "keys.db")
}

// openStore opens a Store on dsn and closes it when t ends.
func openStore(t testing.TB, dsn string) server.Store {
	t.Helper()
	st, err := server.OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

func TestSQLiteStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) server.Store { return openStore(t, sqliteDSN(t)) })
}

func TestPostgresStore(t *testing.T) {
	t.Parallel()
	if !pgtest.Available() {
		t.Skip("VEIL_TEST_POSTGRES not set")
	}
	storetest.Run(t, func(t *testing.T) server.Store { return openStore(t, pgtest.DSN(t)) })
}

// TestReopen checks that what a store acknowledged is there after Close
// and OpenStore on the same database, and that reopening (migrations
// already applied) works.
func TestReopen(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", sqliteDSN}, {"postgres", func(t testing.TB) string { return pgtest.DSN(t) }}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := b.dsn(t)
			st, err := server.OpenStore(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			id := session.ID{1, 2, 3}
			g := []session.GrantRecord{{Grantee: "alice", Epoch: 0, Grant: []byte("g")}}
			if err := st.InsertCard(ctx, "alice", 0, []byte("card")); err != nil {
				t.Fatal(err)
			}
			ns := server.NewSession{ID: id, ChannelCID: "messaging:x", Genesis: []byte("genesis"), Hash: [32]byte{7},
				Roster: []session.Member{{UserID: "alice", Admin: true}}, Grants: g}
			if _, err := st.CreateSession(ctx, ns); err != nil {
				t.Fatal(err)
			}
			next := server.Append{Prev: session.Head{Hash: ns.Hash}, Record: []byte("record 1"), Hash: [32]byte{8}, Roster: ns.Roster}
			if err := st.Append(ctx, id, next); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st = openStore(t, dsn)
			cards, err := st.CardHistory(ctx, "alice")
			if diff := cmp.Diff([][]byte{[]byte("card")}, cards); err != nil || diff != "" {
				t.Errorf("card after reopen: %v (-want +got)\n%s", err, diff)
			}
			grants, err := st.Grants(ctx, id, "alice")
			if diff := cmp.Diff(g, grants); err != nil || diff != "" {
				t.Errorf("grants after reopen: %v (-want +got)\n%s", err, diff)
			}
			log, head, err := st.Log(ctx, id, "alice", 0, 10, 1<<20)
			if diff := cmp.Diff([][]byte{[]byte("genesis"), []byte("record 1")}, log); err != nil || diff != "" || head != (session.Head{Seq: 1, Hash: [32]byte{8}}) {
				t.Errorf("log after reopen: %v, head %v (-want +got)\n%s", err, head, diff)
			}
		})
	}
}

func TestOpenStoreErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		dsn    string
		reason string
	}{
		{"empty", "", "no database named"},
		{"memory", ":memory:", "a key service that forgets on restart is a bug"},
		{"scheme", "mysql://localhost/veil", "unsupported database"},
		{"directory missing", "sqlite://" + filepath.Join(t.TempDir(), "no", "keys.db"), "the directory is not created"},
	}
	for _, tt := range tests {
		st, err := server.OpenStore(context.Background(), tt.dsn)
		if err == nil {
			st.Close()
			t.Errorf("%s: OpenStore(%q) succeeded, want an error (%s)", tt.name, tt.dsn, tt.reason)
		} else if st != nil {
			t.Errorf("%s: OpenStore returned a Store with its error", tt.name)
		}
	}
	// A store of another service in the same database is no obstacle, but a
	// keyservice schema newer than this program is refused.
	dsn := sqliteDSN(t)
	openStore(t, dsn).Close()
	db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO schema_migrations (namespace, version, name, applied_at) VALUES ('keyservice', 99, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(context.Background(), dsn)
	if err == nil {
		st.Close()
	}
	if sv, ok := errors.AsType[*sqlstore.SchemaVersionError](err); !ok || sv.Database != 99 {
		t.Errorf("OpenStore on a database migrated by a newer release = %v, want a SchemaVersionError", err)
	}
}

// BenchmarkStore gives sanity figures for the hot paths: LatestCards of
// one user (every message send looks up cards) and InsertCard (a durable
// write: one fsync'd transaction on SQLite, one commit on Postgres).
//
//	go test -run '^$' -bench Store -count 5 ./keyservice/
func BenchmarkStore(b *testing.B) {
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", sqliteDSN}, {"postgres", func(t testing.TB) string { return pgtest.DSN(t) }}} {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			st := openStore(b, be.dsn(b))
			card := make([]byte, 1500) // about a hybrid (ML-KEM) card
			for i := range 1000 {
				if err := st.InsertCard(ctx, fmt.Sprintf("user%04d", i), 0, card); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("LatestCards/1user", func(b *testing.B) {
				users := []string{"user0042"}
				for b.Loop() {
					if m, err := st.LatestCards(ctx, users); err != nil || len(m) != 1 {
						b.Fatal(m, err)
					}
				}
			})
			b.Run("LatestCards/1000users", func(b *testing.B) {
				users := make([]string, 1000)
				for i := range users {
					users[i] = fmt.Sprintf("user%04d", i)
				}
				for b.Loop() {
					if m, err := st.LatestCards(ctx, users); err != nil || len(m) != 1000 {
						b.Fatal(len(m), err)
					}
				}
			})
			var n atomic.Int64
			b.Run("InsertCard", func(b *testing.B) {
				for b.Loop() {
					if err := st.InsertCard(ctx, fmt.Sprintf("new%d", n.Add(1)), 0, card); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("InsertCard/parallel", func(b *testing.B) {
				b.SetParallelism(4) // 4 × GOMAXPROCS writers
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := st.InsertCard(ctx, fmt.Sprintf("new%d", n.Add(1)), 0, card); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// TestWorldReadableDatabaseRefused: the key service creates its SQLite
// file private and refuses one others can read, saying which file and how
// to fix it.
func TestWorldReadableDatabaseRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.db")
	st, err := server.OpenStore(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("new database has mode %04o, want 0600", got)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = server.OpenStore(context.Background(), path)
	if err == nil {
		st.Close()
		t.Fatal("a world-readable database was opened")
	}
	if !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("error %q does not name the file and the fix", err)
	}
}
