package backend

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/veilchat/veil/internal/sqlstore"
	"github.com/veilchat/veil/twoman"
)

var keyStoreMigrations = []sqlstore.Migration{{
	Version:  1,
	Name:     "two-man rule keys",
	SQLite:   `CREATE TABLE twoman_rule_keys (user_id TEXT PRIMARY KEY, rule_key BLOB NOT NULL, created_at INTEGER NOT NULL)`,
	Postgres: `CREATE TABLE twoman_rule_keys (user_id TEXT PRIMARY KEY, rule_key BYTEA NOT NULL, created_at BIGINT NOT NULL)`,
}}

// SQLKeyStore is a [KeyStore] in the app backend's own SQLite or PostgreSQL
// database (table twoman_rule_keys). It is safe for concurrent use.
type SQLKeyStore struct {
	db *sqlstore.DB
}

var _ KeyStore = (*SQLKeyStore)(nil)

// OpenKeyStore opens (and migrates) the backend's key store: a SQLite file
// or a "postgres://" DSN, as for OpenStore. It must not be the SSKS's
// database: the two halves belong to different parties. A database that
// holds another service's tables but the key service's (of the same
// party) is refused with an error naming them, and nothing is added.
func OpenKeyStore(ctx context.Context, dsn string) (*SQLKeyStore, error) {
	db, err := sqlstore.OpenWith(ctx, dsn, "twoman-backend", keyStoreMigrations,
		sqlstore.Options{Exclusive: true, Companions: []string{"keyservice"}})
	if err != nil {
		return nil, err
	}
	return &SQLKeyStore{db: db}, nil
}

// RuleKey implements [KeyStore].
func (s *SQLKeyStore) RuleKey(ctx context.Context, userID string) (twoman.RuleKey, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, s.db.Dialect().Rebind(`SELECT rule_key FROM twoman_rule_keys WHERE user_id = ?`), userID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return twoman.RuleKey{}, twoman.ErrNotFound
	}
	if err != nil {
		return twoman.RuleKey{}, err
	}
	defer clear(b)
	return twoman.ParseRuleKey(b)
}

// PutRuleKey implements [KeyStore].
func (s *SQLKeyStore) PutRuleKey(ctx context.Context, userID string, k twoman.RuleKey) error {
	kb := k.Bytes()
	defer clear(kb)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Dialect().Rebind(`INSERT INTO twoman_rule_keys (user_id, rule_key, created_at) VALUES (?, ?, ?)`),
			userID, kb, time.Now().UnixMicro())
		return err
	})
	if sqlstore.IsUniqueViolation(err) {
		return twoman.ErrConflict
	}
	return err
}

// Close closes the database.
func (s *SQLKeyStore) Close() error { return s.db.Close() }
