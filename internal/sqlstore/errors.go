package sqlstore

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Postgres SQLSTATE codes this package branches on.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// IsUniqueViolation reports whether err (or an error it wraps) is a
// violation of a PRIMARY KEY or UNIQUE constraint: SQLite's
// SQLITE_CONSTRAINT_PRIMARYKEY or SQLITE_CONSTRAINT_UNIQUE, Postgres's
// SQLSTATE 23505. Other constraint failures (NOT NULL, CHECK, FOREIGN KEY)
// are not unique violations. Stores map it to their own conflict error.
func IsUniqueViolation(err error) bool {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == pgUniqueViolation
	}
	return false
}

// retryable reports whether a transaction that failed with err may be run
// again from the start: SQLite was busy or locked (another process held the
// write lock past busy_timeout), or Postgres aborted it for a serialization
// failure or a deadlock. Nothing else is retried: in particular not a lost
// connection during COMMIT, whose outcome is unknown.
func retryable(err error) bool {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return false
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == pgSerializationFailure || pe.Code == pgDeadlockDetected
	}
	return false
}
