package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Connection settings. They are fixed rather than configurable because
// the stores' guarantees (durability, no SQLITE_BUSY under load) depend
// on them.
const (
	// BusyTimeout is how long a SQLite connection waits for a lock held by
	// another connection (in practice: another process on the same file)
	// before failing with SQLITE_BUSY, which Tx then retries.
	BusyTimeout = 5 * time.Second

	// MaxAttempts bounds how many times Tx and ReadTx run a transaction
	// that keeps failing with a retryable error.
	MaxAttempts = 8

	// PostgresMaxOpenConns is the size of the Postgres connection pool of
	// one DB. Size max_connections for replicas × services × this.
	PostgresMaxOpenConns = 16
	// PostgresMaxIdleConns is how many idle Postgres connections a DB
	// keeps.
	PostgresMaxIdleConns = 4
	// PostgresConnMaxIdleTime closes Postgres connections idle this long.
	PostgresConnMaxIdleTime = 5 * time.Minute
	// PostgresConnMaxLifetime recycles Postgres connections, so that a
	// fail-over or a pooler's rebalancing is picked up.
	PostgresConnMaxLifetime = 30 * time.Minute
)

// DB is a database opened by Open: a SQLite file or a Postgres database,
// with the caller's migrations applied. It is safe for concurrent use by
// many goroutines. Write through Tx, read through ReadTx, QueryContext or
// QueryRowContext; every SQL text must go through Dialect().Rebind.
//
// On SQLite a DB holds two pools over one file in WAL mode: a writer pool
// of exactly one connection whose transactions begin with BEGIN IMMEDIATE,
// and a pool of read-only connections. Writers of one process therefore
// queue in Go for the single writer connection instead of contending for
// SQLite's lock (and never see SQLITE_BUSY from each other, nor the
// deadlock of two deferred transactions upgrading to write), while readers
// proceed concurrently on WAL snapshots. Writers in other processes are
// held off by the lock BEGIN IMMEDIATE takes, waited for up to
// BusyTimeout, then retried by Tx. Every connection has foreign_keys=ON;
// synchronous=FULL makes a committed transaction survive a crash of the
// process and of the machine.
//
// On Postgres a DB is one pool (PostgresMaxOpenConns); write transactions
// run at READ COMMITTED, read transactions at REPEATABLE READ READ ONLY.
type DB struct {
	dialect  Dialect
	write    *sql.DB
	read     *sql.DB // == write for Postgres
	readOpts *sql.TxOptions
	// writeOpts pins the isolation of write transactions (Postgres: READ
	// COMMITTED, whatever the server's or role's default), which the
	// advisory-lock patterns rely on: after the lock, the next statement
	// sees what the previous holder committed.
	writeOpts *sql.TxOptions
	// namespace and version are the schema Open brought the database to,
	// which Ready checks is still there.
	namespace string
	version   int
}

// Open opens the database named by dsn and applies the pending migrations
// of namespace (see Migration) before returning.
//
// DSNs:
//
//	sqlite:///abs/path/keys.db    SQLite; "sqlite://rel/path.db" is relative
//	/abs/path/keys.db, keys.db    SQLite (no "://")
//	file:/abs/path/keys.db?…      SQLite URI; SQLite's own parameters pass
//	                              through, the driver's "_…" keys are refused
//	postgres://… postgresql://…   PostgreSQL (pgx); search_path=… and other
//	                              run-time parameters may be given as query keys
//
// The SQLite file is created if missing (its directory must exist), with
// FileMode (0600) whatever the umask; a database file, -wal or -shm that
// group or others may access is refused with an error that names the file
// and the fix (chmod 600). In-memory SQLite databases are refused. ctx bounds opening and
// migrating, not the DB's life. On error nothing is left open.
func Open(ctx context.Context, dsn, namespace string, migrations []Migration) (*DB, error) {
	return open(ctx, dsn, namespace, migrations, Options{})
}

func open(ctx context.Context, dsn, namespace string, migrations []Migration, opts Options) (*DB, error) {
	if namespace == "" {
		return nil, errors.New("sqlstore: empty migration namespace")
	}
	if err := checkMigrations(migrations); err != nil {
		return nil, err
	}
	t, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var db *DB
	switch t.dialect {
	case SQLite:
		db, err = openSQLite(ctx, t, opts.MustExist)
	case Postgres:
		db, err = openPostgres(ctx, t)
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx, namespace, migrations, opts); err != nil {
		db.Close()
		return nil, err
	}
	db.namespace, db.version = namespace, len(migrations)
	return db, nil
}

func openSQLite(ctx context.Context, t target, mustExist bool) (*DB, error) {
	path, err := t.filePath()
	if err != nil {
		return nil, err
	}
	if mustExist {
		if err := mustExistFile(path); err != nil {
			return nil, err
		}
	}
	if err := createPrivate(path, t.query.Get("mode") != "rw"); err != nil {
		return nil, err
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())
	// busy_timeout is applied first by the driver, so that switching to
	// WAL waits for other processes instead of failing.
	write, err := sql.Open("sqlite", t.sqliteDSN(
		"_txlock=immediate", busy,
		"_pragma=foreign_keys(1)", "_pragma=journal_mode(WAL)", "_pragma=synchronous(FULL)"))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: opening SQLite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	var mode string
	if err := write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlstore: opening SQLite: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		write.Close()
		return nil, fmt.Errorf("sqlstore: SQLite refused WAL mode (journal_mode is %q); is the file on a network file system?", mode)
	}
	// SQLite creates the -wal and -shm with the database's permission (and
	// resets an empty one's), but keeps those another connection has
	// filled as they are. It puts them beside the file that symbolic
	// links lead to, not beside the link.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := checkPrivate(real+suffix, false); err != nil {
			write.Close()
			return nil, err
		}
	}
	// Readers never write (query_only), so they need neither _txlock nor
	// journal_mode (WAL is a property of the file, set above).
	read, err := sql.Open("sqlite", t.sqliteDSN(busy,
		"_pragma=foreign_keys(1)", "_pragma=synchronous(FULL)", "_pragma=query_only(1)"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlstore: opening SQLite: %w", err)
	}
	n := min(max(4, runtime.GOMAXPROCS(0)), 16)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)
	read.SetConnMaxLifetime(0)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("sqlstore: opening SQLite: %w", err)
	}
	return &DB{dialect: SQLite, write: write, read: read, readOpts: &sql.TxOptions{ReadOnly: true}}, nil
}

func openPostgres(ctx context.Context, t target) (*DB, error) {
	pool, err := sql.Open("pgx", t.path)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: opening Postgres: %w", err)
	}
	pool.SetMaxOpenConns(PostgresMaxOpenConns)
	pool.SetMaxIdleConns(PostgresMaxIdleConns)
	pool.SetConnMaxIdleTime(PostgresConnMaxIdleTime)
	pool.SetConnMaxLifetime(PostgresConnMaxLifetime)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		// pgconn redacts the password from its errors, once parseDSN
		// has refused what it would misread.
		return nil, fmt.Errorf("sqlstore: connecting to Postgres: %w", err)
	}
	return &DB{dialect: Postgres, write: pool, read: pool,
		readOpts:  &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
		writeOpts: &sql.TxOptions{Isolation: sql.LevelReadCommitted}}, nil
}

// Dialect returns the database's dialect.
func (db *DB) Dialect() Dialect { return db.dialect }

// Tx runs fn in a write transaction and commits it if fn returns nil, or
// rolls it back and returns fn's error. If fn panics, the transaction is
// rolled back and the panic goes on.
//
// A transaction that fails with a retryable error (SQLite busy or locked;
// Postgres serialization failure 40001 or deadlock 40P01) — from fn, from
// BEGIN or from COMMIT — is rolled back and run again, at most MaxAttempts
// times in all, after a short randomized back-off. fn must therefore be
// safe to run more than once: derive everything from the database inside
// fn and reset captured results at its start. fn must not keep tx or
// anything read through it after returning.
//
// When Tx returns nil the transaction is committed (durably on SQLite, see
// DB). fn's and the driver's errors are returned as they are, or wrapped
// with %w when retries ran out, so errors.Is, errors.As and
// IsUniqueViolation see them.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.run(ctx, db.write, db.writeOpts, fn)
}

// ReadTx runs fn in a read-only transaction that sees one consistent
// snapshot of the database (SQLite: a WAL read transaction on a read-only
// connection, concurrent with writers; Postgres: REPEATABLE READ READ
// ONLY). It never commits changes: any write fails. Retries and panics
// are handled as by Tx.
func (db *DB) ReadTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.run(ctx, db.read, db.readOpts, fn)
}

// QueryContext runs one read-only query (already rebound) outside an
// explicit transaction, on the read pool. The caller closes the rows.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.read.QueryContext(ctx, query, args...)
}

// QueryRowContext runs one read-only query (already rebound) that returns
// at most one row, on the read pool. Scan reports sql.ErrNoRows when there
// is none.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return db.read.QueryRowContext(ctx, query, args...)
}

// Ping checks that the database answers (for health checks).
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return err
	}
	if db.read != db.write {
		return db.read.PingContext(ctx)
	}
	return nil
}

// Ready checks, for a readiness probe, that the database answers and
// that its schema is the one Open left: every migration of the program
// applied, none newer. A database swapped under a running process (a
// restored backup of an older release, an empty one) or migrated since by
// a newer release fails, with a *SchemaVersionError in the second case.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.Ping(ctx); err != nil {
		return err
	}
	var v sql.NullInt64
	err := db.read.QueryRowContext(ctx, db.dialect.Rebind("SELECT MAX(version) FROM schema_migrations WHERE namespace = ?"), db.namespace).Scan(&v)
	if err != nil {
		return fmt.Errorf("sqlstore: reading the schema version: %w", err)
	}
	switch {
	case int(v.Int64) > db.version:
		return &SchemaVersionError{Namespace: db.namespace, Database: int(v.Int64), Program: db.version}
	case int(v.Int64) < db.version:
		return fmt.Errorf("sqlstore: database schema %q is at version %d, behind this program's %d: restart to migrate it", db.namespace, v.Int64, db.version)
	}
	return nil
}

// Close closes the pools; on SQLite the last connection to close
// checkpoints the WAL into the database file. Calls after the first
// return nil or the first call's error.
func (db *DB) Close() error {
	var err error
	if db.read != db.write {
		err = db.read.Close()
	}
	return errors.Join(err, db.write.Close())
}

func (db *DB) run(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	backoff := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := runOnce(ctx, pool, opts, fn)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if attempt == MaxAttempts {
			return fmt.Errorf("sqlstore: transaction failed %d times: %w", attempt, err)
		}
		// Full jitter keeps racing retries from colliding again.
		timer := time.NewTimer(rand.N(backoff) + time.Millisecond)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

func runOnce(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(*sql.Tx) error) (err error) {
	tx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			// fn's error (or panic) is the one to report; database/sql
			// discards a connection whose rollback failed.
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true // Commit releases the transaction even when it fails
	return tx.Commit()
}
