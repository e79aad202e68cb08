package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/pgtest"

	"github.com/google/go-cmp/cmp"
	"modernc.org/sqlite"
)

func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, backends[0].fresh(t))
	ctx := context.Background()
	pragma := func(pool *sql.DB, name string) string {
		t.Helper()
		var v string
		if err := pool.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	tests := []struct {
		name   string
		pool   *sql.DB
		pragma string
		want   string
		reason string
	}{
		{"writer WAL", db.write, "journal_mode", "wal", "readers run beside the writer"},
		{"writer synchronous", db.write, "synchronous", "2", "FULL: a commit survives power loss, not only SIGKILL"},
		{"writer foreign keys", db.write, "foreign_keys", "1", "ON DELETE CASCADE must work"},
		{"writer busy timeout", db.write, "busy_timeout", "5000", "other processes are waited for"},
		{"writer not read-only", db.write, "query_only", "0", "it writes"},
		{"reader WAL", db.read, "journal_mode", "wal", "WAL is the file's"},
		{"reader query only", db.read, "query_only", "1", "a read path can never write"},
		{"reader foreign keys", db.read, "foreign_keys", "1", "same semantics on every connection"},
		{"reader busy timeout", db.read, "busy_timeout", "5000", "WAL recovery can briefly lock"},
	}
	for _, tt := range tests {
		if got := pragma(tt.pool, tt.pragma); got != tt.want {
			t.Errorf("%s: PRAGMA %s = %q, want %q (%s)", tt.name, tt.pragma, got, tt.want, tt.reason)
		}
	}
	if got := db.write.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool allows %d connections, want 1 (one writer, no SQLITE_BUSY between our own writers)", got)
	}
	if got := db.read.Stats().MaxOpenConnections; got < 2 {
		t.Errorf("reader pool allows %d connections, want several", got)
	}
}

func TestPostgresPool(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, pgtest.DSN(t))
	if db.read != db.write {
		t.Error("Postgres should use one pool")
	}
	if got := db.write.Stats().MaxOpenConnections; got != PostgresMaxOpenConns {
		t.Errorf("MaxOpenConnections = %d, want %d", got, PostgresMaxOpenConns)
	}
	var level string
	err := db.ReadTx(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow("SHOW transaction_isolation").Scan(&level)
	})
	if err != nil || level != "repeatable read" {
		t.Errorf("ReadTx isolation = %q, %v; want repeatable read (one snapshot for multi-query reads)", level, err)
	}
}

// TestPostgresWriteIsolationPinned: write transactions run at READ
// COMMITTED even where the server's default is another level (set here in
// the DSN), since the advisory-lock patterns rely on it; concurrent
// migrations then still apply each step once.
func TestPostgresWriteIsolationPinned(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_transaction_isolation", "repeatable read")
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads %20, not +, as a space
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	dbs := make([]*DB, n)
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), u.String(), "svc", history) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open #%d with a repeatable-read default: %v", i, errs[i])
			continue
		}
		defer dbs[i].Close()
	}
	if t.Failed() {
		return
	}
	var level string
	if err := dbs[0].Tx(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow("SHOW transaction_isolation").Scan(&level)
	}); err != nil || level != "read committed" {
		t.Errorf("Tx isolation = %q, %v; want read committed", level, err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		dsn       string
		namespace string
		ms        []Migration
		reason    string
	}{
		{"no namespace", "sqlite://" + filepath.Join(t.TempDir(), "a.db"), "", nil, "two services would mix their versions"},
		{"missing directory", "sqlite://" + filepath.Join(t.TempDir(), "nope", "a.db"), "test", nil, "directories are not created"},
		{"bad DSN", "mysql://x", "test", nil, "unsupported database"},
		{"bad migrations", "sqlite://" + filepath.Join(t.TempDir(), "b.db"), "test", []Migration{{Version: 2, Name: "x", SQLite: "SELECT 1", Postgres: "SELECT 1"}}, "versions start at 1"},
		{"no such server", "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", "test", nil, "connection refused is reported by Open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(ctx, tt.dsn, tt.namespace, tt.ms)
			if err == nil {
				db.Close()
				t.Fatalf("Open succeeded, want an error (%s)", tt.reason)
			}
			if db != nil {
				t.Error("Open returned a DB with its error")
			}
		})
	}
}

func TestTx(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpen(t, b.fresh(t), counterTable)
			ctx := context.Background()
			read := func() int { return count(t, db, "SELECT n FROM counter") }
			boom := errors.New("boom")

			// Commit.
			if err := db.Tx(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec("UPDATE counter SET n = n + 1")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if got := read(); got != 1 {
				t.Fatalf("after a committed Tx n = %d, want 1", got)
			}

			// An error rolls back and is returned as is.
			attempts := 0
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				attempts++
				if _, err := tx.Exec("UPDATE counter SET n = n + 1"); err != nil {
					return err
				}
				return fmt.Errorf("wrapped: %w", boom)
			})
			if !errors.Is(err, boom) {
				t.Errorf("Tx returned %v, want fn's error", err)
			}
			if attempts != 1 {
				t.Errorf("a non-retryable error ran fn %d times, want 1", attempts)
			}
			if got := read(); got != 1 {
				t.Errorf("after a failed Tx n = %d, want 1 (rolled back)", got)
			}

			// A panic rolls back and goes on.
			func() {
				defer func() {
					if p := recover(); p != "oops" {
						t.Errorf("recovered %v, want the panic of fn", p)
					}
				}()
				db.Tx(ctx, func(tx *sql.Tx) error {
					tx.Exec("UPDATE counter SET n = n + 1")
					panic("oops")
				})
			}()
			if got := read(); got != 1 {
				t.Errorf("after a panicking Tx n = %d, want 1 (rolled back)", got)
			}
			// The writer is usable again (the panic did not leak the
			// transaction on SQLite's single writer connection).
			mustExec(t, db, "UPDATE counter SET n = n + 1")
			if got := read(); got != 2 {
				t.Errorf("n = %d, want 2", got)
			}

			// A cancelled context fails without running fn.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			ran := false
			if err := db.Tx(cctx, func(*sql.Tx) error { ran = true; return nil }); err == nil || ran {
				t.Errorf("Tx on a cancelled context: err %v, ran %v; want an error and no run", err, ran)
			}
		})
	}
}

func TestReadTx(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpen(t, b.fresh(t), counterTable)
			ctx := context.Background()
			err := db.ReadTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec("UPDATE counter SET n = 5")
				return err
			})
			if err == nil {
				t.Error("a write in ReadTx succeeded; read transactions must be read-only")
			}
			// One snapshot: a write committed while the read transaction
			// is open is not seen by its later queries.
			var first, second int
			err = db.ReadTx(ctx, func(tx *sql.Tx) error {
				if err := tx.QueryRow("SELECT n FROM counter").Scan(&first); err != nil {
					return err
				}
				mustExec(t, db, "UPDATE counter SET n = n + 10") // on the writer, concurrently
				return tx.QueryRow("SELECT n FROM counter").Scan(&second)
			})
			if err != nil {
				t.Fatal(err)
			}
			if first != 0 || second != 0 {
				t.Errorf("ReadTx saw n = %d then %d, want 0 twice (one snapshot)", first, second)
			}
			if got := count(t, db, "SELECT n FROM counter"); got != 10 {
				t.Errorf("after the read, n = %d, want 10", got)
			}
		})
	}
}

// TestTxRetry makes real retryable errors (SQLite busy, Postgres 40001 and
// 40P01) and checks that Tx runs fn again, a bounded number of times.
func TestTxRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("sqlite busy", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "busy.db")
		db := mustOpen(t, "sqlite://"+path, counterTable)
		// A second connection that does not wait for locks: while Tx holds
		// the write lock, its writes fail at once with SQLITE_BUSY.
		other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		busy := func() error {
			_, err := other.Exec("UPDATE counter SET n = 100")
			if err == nil {
				t.Fatal("a second writer got in during Tx; BEGIN IMMEDIATE should hold the lock")
			}
			return err
		}
		for _, tt := range []struct {
			name      string
			failFirst int // attempts that fail busy
			want      int // attempts run
			wantErr   bool
			reason    string
		}{
			{"once", 1, 2, false, "a busy transaction is run again"},
			{"always", 1000, MaxAttempts, true, "retries are bounded"},
		} {
			attempts := 0
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				attempts++
				if _, err := tx.Exec("UPDATE counter SET n = n + 1"); err != nil {
					return err
				}
				if attempts <= tt.failFirst {
					return busy()
				}
				return nil
			})
			if (err != nil) != tt.wantErr || attempts != tt.want {
				t.Errorf("%s: err %v after %d attempts; want error %v after %d (%s)", tt.name, err, attempts, tt.wantErr, tt.want, tt.reason)
			}
			if se, ok := errors.AsType[*sqlite.Error](err); tt.wantErr && !ok {
				t.Errorf("%s: error %v does not wrap the driver's", tt.name, err)
			} else if ok && se.Code()&0xff != 5 {
				t.Errorf("%s: code %d, want SQLITE_BUSY", tt.name, se.Code())
			}
		}
		if got := count(t, db, "SELECT n FROM counter"); got != 1 {
			t.Errorf("n = %d, want 1: exactly one attempt committed", got)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := mustOpen(t, pgtest.DSN(t), counterTable)
		for _, tt := range []struct {
			code   string
			want   int
			reason string
		}{
			{"40001", 2, "serialization failure is retried"},
			{"40P01", 2, "deadlock is retried"},
			{"23505", 1, "a unique violation is an answer, not a transient"},
			{"P0001", 1, "an ordinary error is not retried"},
		} {
			attempts := 0
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				attempts++
				if _, err := tx.Exec("UPDATE counter SET n = n + 1"); err != nil {
					return err
				}
				if attempts == 1 {
					_, err := tx.Exec(fmt.Sprintf(`DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '%s'; END $$`, tt.code))
					return err
				}
				return nil
			})
			if attempts != tt.want || (err == nil) != (tt.want == 2) {
				t.Errorf("SQLSTATE %s: %d attempts, err %v; want %d (%s)", tt.code, attempts, err, tt.want, tt.reason)
			}
		}
		if got := count(t, db, "SELECT n FROM counter"); got != 2 {
			t.Errorf("n = %d, want 2: one commit per retried code", got)
		}
	})
}

// TestDeferredWritersFailWithoutImmediate shows the failure BEGIN
// IMMEDIATE avoids: two deferred transactions that read and then write
// cannot both succeed in WAL mode, and the loser gets SQLITE_BUSY at once,
// whatever busy_timeout says. Our Tx classifies that error as retryable.
func TestDeferredWritersFailWithoutImmediate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "deferred.db")
	mustOpen(t, "sqlite://"+path, counterTable)
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	a, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Rollback()
	b, err := raw.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	var n int
	a.QueryRow("SELECT n FROM counter").Scan(&n)
	b.QueryRow("SELECT n FROM counter").Scan(&n)
	if _, err := a.Exec("UPDATE counter SET n = 1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	_, err = b.Exec("UPDATE counter SET n = 2")
	if err == nil {
		t.Fatal("the second deferred writer succeeded on a stale snapshot")
	}
	if !retryable(err) {
		t.Errorf("retryable(%v) = false, want true", err)
	}
}

// TestConcurrentWriters hammers one database with read-modify-write
// transactions from many goroutines through two DBs (as two processes
// would), with readers alongside: no transaction may fail (on SQLite: no
// SQLITE_BUSY escapes) and no update may be lost.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.fresh(t)
			dbs := []*DB{mustOpen(t, dsn, counterTable), mustOpen(t, dsn, counterTable)}
			const writers, rounds = 16, 25
			ctx := context.Background()
			// On SQLite a plain read is enough: BEGIN IMMEDIATE serializes
			// whole transactions. Postgres runs READ COMMITTED, so the
			// transaction first locks the row the way stores do.
			read := "SELECT n FROM counter"
			if b.name == "postgres" {
				read = "UPDATE counter SET n = n RETURNING n"
			}
			var writersWG, readersWG sync.WaitGroup
			errs := make(chan error, writers+4)
			for w := range writers {
				db := dbs[w%2]
				writersWG.Go(func() {
					for range rounds {
						err := db.Tx(ctx, func(tx *sql.Tx) error {
							var n int
							if err := tx.QueryRow(read).Scan(&n); err != nil {
								return err
							}
							_, err := tx.Exec(db.Dialect().Rebind("UPDATE counter SET n = ?"), n+1)
							return err
						})
						if err != nil {
							errs <- fmt.Errorf("writer %d: %w", w, err)
							return
						}
					}
				})
			}
			done := make(chan struct{})
			for r := range 4 {
				db := dbs[r%2]
				readersWG.Go(func() {
					last := 0
					for {
						select {
						case <-done:
							return
						default:
						}
						var n int
						if err := db.QueryRowContext(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
							errs <- fmt.Errorf("reader: %w", err)
							return
						}
						if n < last {
							errs <- fmt.Errorf("reader saw n go back from %d to %d", last, n)
							return
						}
						last = n
						time.Sleep(time.Millisecond)
					}
				})
			}
			writersWG.Wait()
			close(done)
			readersWG.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := count(t, dbs[0], "SELECT n FROM counter"); got != writers*rounds {
				t.Errorf("n = %d, want %d: updates were lost", got, writers*rounds)
			}
		})
	}
}

func TestIsUniqueViolation(t *testing.T) {
	t.Parallel()
	schema := Migration{Version: 1, Name: "people",
		SQLite:   "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, boss INTEGER REFERENCES people(id), age INTEGER CHECK (age >= 0))",
		Postgres: "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, boss INTEGER REFERENCES people(id), age INTEGER CHECK (age >= 0))",
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpen(t, b.fresh(t), schema)
			mustExec(t, db, "INSERT INTO people (id, email) VALUES (1, 'a@x')")
			insert := func(query string) error {
				return db.Tx(context.Background(), func(tx *sql.Tx) error {
					_, err := tx.Exec(query)
					return err
				})
			}
			tests := []struct {
				name   string
				err    error
				want   bool
				reason string
			}{
				{"primary key", insert("INSERT INTO people (id, email) VALUES (1, 'b@x')"), true, "same id"},
				{"unique", insert("INSERT INTO people (id, email) VALUES (2, 'a@x')"), true, "same email"},
				{"wrapped", fmt.Errorf("ctx: %w", insert("INSERT INTO people (id, email) VALUES (1, 'c@x')")), true, "seen through %w"},
				{"not null", insert("INSERT INTO people (id) VALUES (3)"), false, "a NOT NULL failure is no duplicate"},
				{"foreign key", insert("INSERT INTO people (id, email, boss) VALUES (4, 'd@x', 99)"), false, "a dangling reference is no duplicate (and proves foreign_keys=ON)"},
				{"check", insert("INSERT INTO people (id, email, age) VALUES (5, 'e@x', -1)"), false, "a CHECK failure is no duplicate"},
				{"syntax", insert("INSERT INTO nowhere VALUES (1)"), false, "not a constraint at all"},
				{"plain", errors.New("duplicate key"), false, "only driver errors count"},
				{"nil", nil, false, "no error"},
			}
			for _, tt := range tests {
				if tt.err == nil && tt.name != "nil" {
					t.Errorf("%s: the statement succeeded, want a failure", tt.name)
					continue
				}
				if got := IsUniqueViolation(tt.err); got != tt.want {
					t.Errorf("%s: IsUniqueViolation(%v) = %v, want %v (%s)", tt.name, tt.err, got, tt.want, tt.reason)
				}
			}
		})
	}
}

func TestPingClose(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db, err := Open(context.Background(), b.fresh(t), "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Ping(context.Background()); err != nil {
				t.Errorf("Ping: %v", err)
			}
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := db.Ping(context.Background()); err == nil {
				t.Error("Ping after Close succeeded")
			}
			got := []string{}
			if err := db.Close(); err != nil {
				got = append(got, err.Error())
			}
			if diff := cmp.Diff([]string{}, got); diff != "" {
				t.Errorf("second Close (-want +got)\n%s", diff)
			}
		})
	}
}

// TestOpenErrorsHidePasswords: a DSN whose password is left unencoded, or
// whose scheme is mistyped, fails to open with an error that quotes no
// part of the password. pgx reads the user information up to the first '@' or '/',
// net/url up to the last '@': for "user:pass@word@host" pgx would connect
// to the host "word@host" and report it in its error, and for
// "user:1234/word@host" to the database "word@host".
func TestOpenErrorsHidePasswords(t *testing.T) {
	t.Parallel()
	const secret = "S3CRETPART"
	for _, tc := range []struct {
		name, dsn, reason string
	}{
		{"@ in password, parse error", "postgres://veil:pw@" + secret + "@127.0.0.1:1/db?sslmode=bogus", "pgx's parse error would quote the part after the first '@' as the host"},
		{"@ in password, connect error", "postgres://veil:pw@" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "pgx's connect error would quote the part after the first '@' as the host"},
		{"/ in password", "postgres://veil:1234/" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "the part after the '/' would be the database, quoted in pgx's connect error"},
		{"no scheme", "veil:" + secret + "@db.internal:5432/veil", "a bare name is a SQLite file, and the failure to create it quotes its name"},
		{"scheme without slashes", "postgres:veil:" + secret + "@db.internal/veil", "not postgres://, so a SQLite file name"},
		{"mistyped scheme", "postgresql//veil:" + secret + "@db.internal/veil", "no \"://\", so a SQLite file name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			db, err := Open(ctx, tc.dsn, "test", nil)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded, want an error (%s)", tc.dsn, tc.reason)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open's error quotes the password: %v (%s)", err, tc.reason)
			}
		})
	}
}
