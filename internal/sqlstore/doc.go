// Package sqlstore is the SQL plumbing shared by Veil's services (the key
// service, the SSKS): opening SQLite or PostgreSQL from one DSN with the
// settings their guarantees need, schema migrations per service, write
// transactions with bounded retries, and the one driver-specific question
// stores ask of an error (IsUniqueViolation).
//
// A store writes one SQL text for both databases: ? placeholders, turned
// into $1, $2, … for Postgres by Dialect.Rebind; only DDL (the
// Migration's SQLite and Postgres fields) differs. Portable SQL that both
// accept includes INSERT … ON CONFLICT DO NOTHING, UPDATE … RETURNING and
// multi-row VALUES.
//
// # SQLite
//
// modernc.org/sqlite (pure Go) in WAL mode with synchronous=FULL (a
// transaction is durable once Tx returns, across a SIGKILL and a power
// loss), foreign_keys=ON and busy_timeout=BusyTimeout. All writes of a DB
// go through one connection, and its transactions begin IMMEDIATE: writers
// in one process queue for that connection instead of failing with
// SQLITE_BUSY, writers in several processes wait on SQLite's lock and are
// retried. Reads use a separate pool of read-only connections that run
// concurrently with the writer on WAL snapshots. See DB. The files are
// private to the service's user (FileMode): Open creates them so and
// refuses files that group or others may access.
//
// # PostgreSQL
//
// github.com/jackc/pgx/v5 through database/sql, one pool per DB. Write
// transactions run at READ COMMITTED, so stores take row locks (UPDATE …
// WHERE … on the row that guards an aggregate) or single-statement
// conditional writes for their invariants; Tx retries serialization
// failures and deadlocks. Migrations take pg_advisory_xact_lock, so that
// replicas starting together migrate once. Put search_path in the DSN to
// give a service (or a test) its own schema.
package sqlstore
