package sqlstore

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRebind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		reason         string
	}{
		{"none", "SELECT 1", "SELECT 1", "no placeholders, unchanged"},
		{"several", "SELECT a FROM t WHERE b = ? AND c IN (?, ?)", "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)", "numbered left to right"},
		{"many", Placeholders(12), "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12", "two-digit numbers"},
		{"string literal", "SELECT '?', ? FROM t", "SELECT '?', $1 FROM t", "a ? in a string is text"},
		{"escaped quote", "SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", "a doubled quote keeps the literal open"},
		{"identifier", `SELECT "a?b", ?`, `SELECT "a?b", $1`, "a ? in a quoted identifier is a name"},
		{"line comment", "SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2", "a ? in a comment is prose"},
		{"block comment", "SELECT /* ? */ ?", "SELECT /* ? */ $1", "a ? in a block comment is prose"},
		{"unterminated", "SELECT ?, 'a?", "SELECT $1, 'a?", "an unterminated literal is copied, not looped on"},
		{"unterminated comment", "SELECT ? /* ?", "SELECT $1 /* ?", "an unterminated comment is copied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Postgres.Rebind(tt.in); got != tt.want {
				t.Errorf("Postgres.Rebind(%q) = %q, want %q (%s)", tt.in, got, tt.want, tt.reason)
			}
			if got := SQLite.Rebind(tt.in); got != tt.in {
				t.Errorf("SQLite.Rebind(%q) = %q, want it unchanged", tt.in, got)
			}
		})
	}
}

func TestPlaceholdersPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Placeholders(0) did not panic")
		}
	}()
	Placeholders(0)
}

func TestDialectString(t *testing.T) {
	t.Parallel()
	got := []string{Dialect(0).String(), SQLite.String(), Postgres.String()}
	if diff := cmp.Diff([]string{"unknown", "sqlite", "postgres"}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dsn     string
		want    target
		wantErr bool
		reason  string
	}{
		{"sqlite absolute", "sqlite:///var/lib/veil/keys.db", target{dialect: SQLite, path: "/var/lib/veil/keys.db"}, false, "three slashes: absolute path"},
		{"sqlite relative", "sqlite://keys.db", target{dialect: SQLite, path: "keys.db"}, false, "what `veil serve --db keys.db` produces"},
		{"plain path", "/tmp/k.db", target{dialect: SQLite, path: "/tmp/k.db"}, false, "no scheme means a SQLite file"},
		{"plain relative", "k.db", target{dialect: SQLite, path: "k.db"}, false, "no scheme means a SQLite file"},
		{"file URI", "file:/tmp/k.db?cache=private", target{dialect: SQLite, path: "file:/tmp/k.db", query: url.Values{"cache": {"private"}}}, false, "SQLite URI parameters pass through"},
		{"file URI rw", "file:/tmp/k.db?mode=rwc", target{dialect: SQLite, path: "file:/tmp/k.db", query: url.Values{"mode": {"rwc"}}}, false, "read-write modes are fine"},
		{"postgres", "postgres://u@localhost/db?sslmode=disable", target{dialect: Postgres, path: "postgres://u@localhost/db?sslmode=disable"}, false, "handed to pgx as is"},
		{"postgresql", "postgresql://u@localhost/db", target{dialect: Postgres, path: "postgresql://u@localhost/db"}, false, "both URL schemes of libpq"},
		{"postgres encoded password", "postgres://u:p%40s%2Fs@localhost/db", target{dialect: Postgres, path: "postgres://u:p%40s%2Fs@localhost/db"}, false, "an encoded '@' or '/' reads the same to pgx and net/url"},
		{"postgres @ in password", "postgres://u:p@ss@localhost/db", target{}, true, "pgx would take ss@localhost for the host, and quote it"},
		{"postgres / in password", "postgres://u:1/ss@localhost/db", target{}, true, "pgx and net/url would take ss@localhost/db for the database, and pgx quote it"},
		{"empty", "", target{}, true, "no database"},
		{"driver pragma", "file:/tmp/k.db?_pragma=synchronous(OFF)", target{}, true, "would weaken durability behind our back"},
		{"driver txlock", "file:/tmp/k.db?_txlock=deferred", target{}, true, "would bring back SQLITE_BUSY between writers"},
		{"read-only mode", "file:/tmp/k.db?mode=ro", target{}, true, "the writer could not write"},
		{"memory mode", "file:k?mode=memory", target{}, true, "two pools would see two databases"},
		{"memory URI", "file::memory:", target{}, true, "two pools would see two databases"},
		{"memory name", ":memory:", target{}, true, "two pools would see two databases"},
		{"sqlite memory", "sqlite://:memory:", target{}, true, "two pools would see two databases"},
		{"sqlite empty", "sqlite://", target{}, true, "no file"},
		{"query on path", "/tmp/k.db?_pragma=x", target{}, true, "the driver would cut the name at ?"},
		{"sqlite query", "sqlite:///tmp/k.db?x=1", target{}, true, "the driver would cut the name at ?"},
		{"other scheme", "mysql://u@h/db", target{}, true, "unsupported database"},
		{"keyword DSN", "host=localhost dbname=veil", target{}, true, "must not become a file named host=…"},
		{"URL without scheme", "veil:pw@db.internal:5432/veil", target{}, true, "must not become a file named after the password"},
		{"URL with a colon for a scheme", "postgres:veil:pw@db.internal/veil", target{}, true, "postgres: is not postgres://"},
		{"at in a file name", "/var/lib/veil@2/keys.db", target{dialect: SQLite, path: "/var/lib/veil@2/keys.db"}, false, "an '@' alone is not user information"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDSN(tt.dsn)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseDSN(%q) error = %v, want error %v (%s)", tt.dsn, err, tt.wantErr, tt.reason)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(target{})); diff != "" {
				t.Errorf("parseDSN(%q) (-want +got) (%s)\n%s", tt.dsn, tt.reason, diff)
			}
		})
	}
}
