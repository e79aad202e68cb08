package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Migration is one step of a service's schema. A service passes its whole
// history to Open, oldest first; Open applies the steps a database has not
// seen yet and records them in the table schema_migrations under the
// service's namespace, so that several services can share one database
// (each with its own table names).
//
// Versions start at 1 and grow by one. A released Migration must never
// change: add a new one instead. Each step runs inside the transaction
// that records it, so its SQL must be transactional (no VACUUM, no
// PRAGMA journal_mode, no CREATE INDEX CONCURRENTLY).
type Migration struct {
	// Version is the step's number: 1 for the first, then 2, 3, …
	Version int
	// Name says what the step does; it is recorded and checked against
	// the database on every Open.
	Name string
	// SQLite and Postgres are the step's SQL, one or more statements
	// separated by semicolons, for each dialect. Both are required.
	SQLite, Postgres string
}

// migrationLock is the pg_advisory_xact_lock key that serializes schema
// changes of every process on a Postgres database ("veil/mig").
const migrationLock int64 = 0x7665696c2f6d6967

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	namespace  TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	applied_at BIGINT  NOT NULL,
	PRIMARY KEY (namespace, version)
)`

// checkMigrations rejects a history that is not 1, 2, 3, … with names and
// SQL for both dialects.
func checkMigrations(ms []Migration) error {
	for i, m := range ms {
		switch {
		case m.Version != i+1:
			return fmt.Errorf("sqlstore: migration #%d has version %d, want %d", i, m.Version, i+1)
		case m.Name == "":
			return fmt.Errorf("sqlstore: migration %d has no name", m.Version)
		case m.SQLite == "" || m.Postgres == "":
			return fmt.Errorf("sqlstore: migration %d (%s) lacks SQL for a dialect", m.Version, m.Name)
		}
	}
	return nil
}

// SchemaVersionError is returned by Open when the database records a
// schema version of the namespace that the program does not know: the
// database was migrated by a newer release. Run that release or restore
// a backup; Open changes nothing.
type SchemaVersionError struct {
	Namespace string // the service's migration namespace
	Database  int    // highest version recorded in the database
	Program   int    // highest version the program knows
}

// Error implements error.
func (e *SchemaVersionError) Error() string {
	return fmt.Sprintf("sqlstore: database schema %q is at version %d, newer than this program's %d", e.Namespace, e.Database, e.Program)
}

// migrate applies the pending migrations of namespace in one transaction:
// on failure nothing of this run is applied. On Postgres the transaction
// first takes an advisory lock, so that processes starting together on
// one database wait for each other instead of racing to create the same
// tables; on SQLite BEGIN IMMEDIATE does the same.
func (db *DB) migrate(ctx context.Context, namespace string, ms []Migration, opts Options) error {
	d := db.dialect
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if d == Postgres {
			if _, err := tx.ExecContext(ctx, d.Rebind("SELECT pg_advisory_xact_lock(?)"), migrationLock); err != nil {
				return fmt.Errorf("sqlstore: locking for migrations: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return fmt.Errorf("sqlstore: creating schema_migrations: %w", err)
		}
		applied := make(map[int]string)
		rows, err := tx.QueryContext(ctx, d.Rebind("SELECT version, name FROM schema_migrations WHERE namespace = ?"), namespace)
		if err != nil {
			return fmt.Errorf("sqlstore: reading schema_migrations: %w", err)
		}
		highest := 0
		for rows.Next() {
			var v int
			var name string
			if err := rows.Scan(&v, &name); err != nil {
				rows.Close()
				return fmt.Errorf("sqlstore: reading schema_migrations: %w", err)
			}
			applied[v] = name
			highest = max(highest, v)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlstore: reading schema_migrations: %w", err)
		}
		if err := checkNamespaces(ctx, tx, namespace, len(applied) > 0, opts); err != nil {
			return err
		}
		if highest > len(ms) {
			return &SchemaVersionError{Namespace: namespace, Database: highest, Program: len(ms)}
		}
		now := time.Now().Unix()
		for _, m := range ms {
			if name, ok := applied[m.Version]; ok {
				if name != m.Name {
					return fmt.Errorf("sqlstore: migration %d of %q is %q in the database but %q in the program", m.Version, namespace, name, m.Name)
				}
				continue
			}
			q := m.SQLite
			if d == Postgres {
				q = m.Postgres
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("sqlstore: migration %d (%s) of %q: %w", m.Version, m.Name, namespace, err)
			}
			if _, err := tx.ExecContext(ctx, d.Rebind("INSERT INTO schema_migrations (namespace, version, name, applied_at) VALUES (?, ?, ?, ?)"),
				namespace, m.Version, m.Name, now); err != nil {
				return fmt.Errorf("sqlstore: recording migration %d of %q: %w", m.Version, namespace, err)
			}
		}
		return nil
	})
}
