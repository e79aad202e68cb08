package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOpenMustExist: with Options.MustExist, a SQLite file that does not
// exist is not created, and a database without the namespace's migrations
// (empty, or another service's) is refused and left unchanged; one the
// namespace has set up opens.
func TestOpenMustExist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "typo.db")
	_, err := OpenWith(ctx, "sqlite://"+missing, "svc", []Migration{counterTable}, Options{MustExist: true})
	if !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("a missing file: %v, want ErrNoDatabase", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file was created: %v", err)
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.fresh(t)
			other := mustOpen(t, dsn, counterTable) // namespace "test"
			_, err := OpenWith(ctx, dsn, "svc", []Migration{counterTable}, Options{MustExist: true})
			if !errors.Is(err, ErrNoDatabase) {
				t.Fatalf("a database without the namespace: %v, want ErrNoDatabase", err)
			}
			if got := namespaces(t, other); !slices.Equal(got, []string{"test"}) {
				t.Fatalf("the refused open recorded %v", got)
			}
			db, err := OpenWith(ctx, dsn, "test", []Migration{counterTable}, Options{MustExist: true})
			if err != nil {
				t.Fatalf("a database the namespace set up: %v", err)
			}
			db.Close()
		})
	}
}

// TestOpenExclusive: with Options.Exclusive, a database that records
// another namespace's migrations (not a companion) is refused and left
// unchanged, and an exclusive namespace's database is refused by an
// exclusive other; companions share.
func TestOpenExclusive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other := Migration{Version: 1, Name: "other", SQLite: "CREATE TABLE other_t (n INTEGER)", Postgres: "CREATE TABLE other_t (n INTEGER)"}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.fresh(t)
			keys, err := OpenWith(ctx, dsn, "keys", []Migration{counterTable}, Options{Exclusive: true, Companions: []string{"backend"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { keys.Close() })
			_, err = OpenWith(ctx, dsn, "vault", []Migration{other}, Options{Exclusive: true})
			var fe *ForeignDatabaseError
			if !errors.As(err, &fe) || fe.Namespace != "vault" || !slices.Equal(fe.Found, []string{"keys"}) {
				t.Fatalf("an exclusive namespace on another's database: %v, want a ForeignDatabaseError naming keys", err)
			}
			if got := namespaces(t, keys); !slices.Equal(got, []string{"keys"}) {
				t.Fatalf("the refused open recorded %v", got)
			}
			backend, err := OpenWith(ctx, dsn, "backend", []Migration{other}, Options{Exclusive: true, Companions: []string{"keys"}})
			if err != nil {
				t.Fatalf("a companion: %v", err)
			}
			backend.Close()
			if _, err := OpenWith(ctx, dsn, "keys", []Migration{counterTable}, Options{Exclusive: true}); !errors.As(err, &fe) {
				t.Fatalf("a namespace whose companion is not listed: %v, want a ForeignDatabaseError", err)
			}
		})
	}
}

func namespaces(t *testing.T, db *DB) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT DISTINCT namespace FROM schema_migrations ORDER BY namespace")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ns string
		if err := rows.Scan(&ns); err != nil {
			t.Fatal(err)
		}
		out = append(out, ns)
	}
	return out
}
