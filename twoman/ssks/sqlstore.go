package ssks

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"encoding/hex"
	"errors"
	"time"

	"github.com/veilchat/veil/internal/sqlstore"
	"github.com/veilchat/veil/twoman"
)

var ssksMigrations = []sqlstore.Migration{{
	Version: 1,
	Name:    "ssks tables",
	SQLite: `
CREATE TABLE ssks_identities (
	user_id     TEXT PRIMARY KEY,
	factor_type TEXT NOT NULL,
	factor_hash BLOB NOT NULL,
	blob        BLOB NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE TABLE ssks_challenges (
	id          BLOB PRIMARY KEY,
	user_id     TEXT NOT NULL,
	factor_type TEXT NOT NULL,
	factor_hash BLOB NOT NULL,
	code_hash   BLOB NOT NULL,
	must_auth   INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	used        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ssks_challenges_user ON ssks_challenges (user_id, created_at);
CREATE INDEX ssks_challenges_factor ON ssks_challenges (factor_hash, created_at);
CREATE TABLE ssks_passwords (
	user_id      TEXT PRIMARY KEY,
	lookup_hash  BLOB NOT NULL,
	params       BLOB NOT NULL,
	blob         BLOB NOT NULL,
	failures     INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER NOT NULL DEFAULT 0,
	updated_at   INTEGER NOT NULL
)`,
	Postgres: `
CREATE TABLE ssks_identities (
	user_id     TEXT PRIMARY KEY,
	factor_type TEXT NOT NULL,
	factor_hash BYTEA NOT NULL,
	blob        BYTEA NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE TABLE ssks_challenges (
	id          BYTEA PRIMARY KEY,
	user_id     TEXT NOT NULL,
	factor_type TEXT NOT NULL,
	factor_hash BYTEA NOT NULL,
	code_hash   BYTEA NOT NULL,
	must_auth   INTEGER NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	used        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ssks_challenges_user ON ssks_challenges (user_id, created_at);
CREATE INDEX ssks_challenges_factor ON ssks_challenges (factor_hash, created_at);
CREATE TABLE ssks_passwords (
	user_id      TEXT PRIMARY KEY,
	lookup_hash  BYTEA NOT NULL,
	params       BYTEA NOT NULL,
	blob         BYTEA NOT NULL,
	failures     INTEGER NOT NULL DEFAULT 0,
	locked_until BIGINT NOT NULL DEFAULT 0,
	updated_at   BIGINT NOT NULL
)`,
}, {
	Version: 2,
	Name:    "password backups bound to a factor",
	SQLite: `
ALTER TABLE ssks_passwords ADD COLUMN factor_type TEXT NOT NULL DEFAULT '';
ALTER TABLE ssks_passwords ADD COLUMN factor_hash BLOB NOT NULL DEFAULT X''`,
	Postgres: `
ALTER TABLE ssks_passwords ADD COLUMN factor_type TEXT NOT NULL DEFAULT '',
	ADD COLUMN factor_hash BYTEA NOT NULL DEFAULT '\x'::bytea`,
}, {
	// Backups made before had no salt of their own and a plain SHA-256
	// lookup hash: no client derives their lookup secret any more, so they
	// are dropped (their users save again).
	Version: 3,
	Name:    "password backups with a random salt and a keyed lookup hash",
	SQLite: `
DELETE FROM ssks_passwords;
ALTER TABLE ssks_passwords ADD COLUMN salt BLOB NOT NULL DEFAULT X''`,
	Postgres: `
DELETE FROM ssks_passwords;
ALTER TABLE ssks_passwords ADD COLUMN salt BYTEA NOT NULL DEFAULT '\x'::bytea`,
}, {
	// The keyed check value of the HashKey (CheckHashKey).
	Version:  4,
	Name:     "settings: the hash key's check value",
	SQLite:   `CREATE TABLE ssks_settings (name TEXT PRIMARY KEY, value BLOB NOT NULL)`,
	Postgres: `CREATE TABLE ssks_settings (name TEXT PRIMARY KEY, value BYTEA NOT NULL)`,
}}

// sqlStore is the SQL [Store] (SQLite or PostgreSQL).
type sqlStore struct {
	db        *sqlstore.DB
	forUpdate string // " FOR UPDATE" on Postgres
}

// OpenStore opens the SSKS store: a SQLite file ("sqlite:///path/ssks.db" or
// a plain path), the embedded default, or PostgreSQL ("postgres://…"). It
// creates or migrates the schema. The SSKS's data belongs to another party
// than the app backend's and the key service's: a database that holds
// their tables (or any other service's) is refused with an error naming
// them, and nothing is added to it.
func OpenStore(ctx context.Context, dsn string) (Store, error) {
	return openStore(ctx, dsn, false)
}

// OpenExistingStore is [OpenStore] for a database the SSKS has already set
// up: a SQLite file that does not exist, or a database without the SSKS's
// tables, is refused with an error matching [ErrNoDatabase] and nothing
// is created — so that a mistyped path or DSN fails at start instead of
// serving an empty store, in which every user's recovery would fail.
// `veil serve --ssks` opens its database so unless --create is given.
func OpenExistingStore(ctx context.Context, dsn string) (Store, error) {
	return openStore(ctx, dsn, true)
}

// ErrNoDatabase is matched by [OpenExistingStore]'s error when the
// database is not set up.
var ErrNoDatabase = sqlstore.ErrNoDatabase

func openStore(ctx context.Context, dsn string, mustExist bool) (Store, error) {
	db, err := sqlstore.OpenWith(ctx, dsn, "ssks", ssksMigrations, sqlstore.Options{MustExist: mustExist, Exclusive: true})
	if err != nil {
		return nil, err
	}
	s := &sqlStore{db: db}
	if db.Dialect() == sqlstore.Postgres {
		s.forUpdate = " FOR UPDATE"
	}
	return s, nil
}

func (s *sqlStore) q(query string) string { return s.db.Dialect().Rebind(query) }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sqlStore) CreateChallenge(ctx context.Context, rec ChallengeRecord, since time.Time, max int) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect() == sqlstore.Postgres {
			// Serialize the count-then-insert per user and per factor
			// (SQLite serializes every write transaction already). Locks
			// are always taken in this order.
			for _, key := range []string{"user:" + rec.UserID, "factor:" + hex.EncodeToString(rec.FactorHash)} {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "veil/ssks/challenges/"+key); err != nil {
					return err
				}
			}
		}
		var byUser, byFactor int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM ssks_challenges WHERE user_id = ? AND created_at >= ?`), rec.UserID, micros(since)).Scan(&byUser); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM ssks_challenges WHERE factor_hash = ? AND created_at >= ?`), rec.FactorHash, micros(since)).Scan(&byFactor); err != nil {
			return err
		}
		if byUser >= max || byFactor >= max {
			return twoman.ErrRateLimited
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO ssks_challenges
			(id, user_id, factor_type, factor_hash, code_hash, must_auth, created_at, expires_at, attempts, used)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0)`),
			rec.ID[:], rec.UserID, string(rec.FactorType), rec.FactorHash, rec.CodeHash, boolInt(rec.MustAuth), micros(rec.CreatedAt), micros(rec.ExpiresAt))
		return err
	})
	if sqlstore.IsUniqueViolation(err) {
		return twoman.ErrConflict
	}
	return err
}

func (s *sqlStore) Redeem(ctx context.Context, id [16]byte, now time.Time, maxAttempts int, check func(ChallengeRecord) bool) (ChallengeRecord, Verdict, error) {
	var rec ChallengeRecord
	var verdict Verdict
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		rec = ChallengeRecord{ID: id}
		var ft string
		var mustAuth, used int
		var created, expires int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT user_id, factor_type, factor_hash, code_hash, must_auth, created_at, expires_at, attempts, used
			FROM ssks_challenges WHERE id = ?`+s.forUpdate), id[:]).
			Scan(&rec.UserID, &ft, &rec.FactorHash, &rec.CodeHash, &mustAuth, &created, &expires, &rec.Attempts, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return twoman.ErrNotFound
		}
		if err != nil {
			return err
		}
		rec.FactorType, rec.MustAuth, rec.Used = twoman.FactorType(ft), mustAuth == 1, used == 1
		rec.CreatedAt, rec.ExpiresAt = fromMicros(created), fromMicros(expires)
		switch {
		case rec.Used || !now.Before(rec.ExpiresAt) || rec.Attempts >= maxAttempts:
			verdict = Dead
			return nil
		case check(rec):
			verdict = Accepted
			_, err = tx.ExecContext(ctx, s.q(`UPDATE ssks_challenges SET used = 1 WHERE id = ?`), id[:])
		default:
			verdict = WrongCode
			_, err = tx.ExecContext(ctx, s.q(`UPDATE ssks_challenges SET attempts = attempts + 1 WHERE id = ?`), id[:])
		}
		return err
	})
	if err != nil {
		return ChallengeRecord{}, 0, err
	}
	return rec, verdict, nil
}

func (s *sqlStore) Identity(ctx context.Context, userID string) (IdentityRecord, error) {
	rec := IdentityRecord{UserID: userID}
	var ft string
	var updated int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT factor_type, factor_hash, blob, updated_at FROM ssks_identities WHERE user_id = ?`), userID).
		Scan(&ft, &rec.FactorHash, &rec.Blob, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return IdentityRecord{}, twoman.ErrNotFound
	}
	if err != nil {
		return IdentityRecord{}, err
	}
	rec.FactorType, rec.UpdatedAt = twoman.FactorType(ft), fromMicros(updated)
	return rec, nil
}

func (s *sqlStore) PutIdentity(ctx context.Context, rec IdentityRecord, proof Proof) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		// One statement: an existing row is replaced only if it is
		// registered with the proved factor.
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO ssks_identities (user_id, factor_type, factor_hash, blob, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET factor_type = excluded.factor_type, factor_hash = excluded.factor_hash,
				blob = excluded.blob, updated_at = excluded.updated_at
			WHERE ssks_identities.factor_type = ? AND ssks_identities.factor_hash = ?`),
			rec.UserID, string(rec.FactorType), rec.FactorHash, rec.Blob, micros(rec.UpdatedAt), string(proof.FactorType), proof.FactorHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return twoman.ErrFactorMismatch
		}
		return nil
	})
}

func (s *sqlStore) DeleteIdentity(ctx context.Context, userID string, proof Proof) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM ssks_identities WHERE user_id = ? AND factor_type = ? AND factor_hash = ?`),
			userID, string(proof.FactorType), proof.FactorHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n > 0 {
			return nil
		}
		var one int
		err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM ssks_identities WHERE user_id = ?`), userID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return twoman.ErrNotFound
		}
		if err != nil {
			return err
		}
		return twoman.ErrFactorMismatch
	})
}

func scanPassword(row interface{ Scan(...any) error }, userID string) (PasswordRecord, error) {
	rec := PasswordRecord{UserID: userID}
	var locked, updated int64
	var ft string
	err := row.Scan(&ft, &rec.FactorHash, &rec.LookupHash, &rec.Params, &rec.Salt, &rec.Blob, &rec.Failures, &locked, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return PasswordRecord{}, twoman.ErrNotFound
	}
	if err != nil {
		return PasswordRecord{}, err
	}
	rec.FactorType, rec.LockedUntil, rec.UpdatedAt = twoman.FactorType(ft), fromMicros(locked), fromMicros(updated)
	return rec, nil
}

const selectPassword = `SELECT factor_type, factor_hash, lookup_hash, params, salt, blob, failures, locked_until, updated_at FROM ssks_passwords WHERE user_id = ?`

func (s *sqlStore) Password(ctx context.Context, userID string) (PasswordRecord, error) {
	return scanPassword(s.db.QueryRowContext(ctx, s.q(selectPassword), userID), userID)
}

func (s *sqlStore) PutPassword(ctx context.Context, rec PasswordRecord, proof *Proof) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if proof != nil {
			res, err = tx.ExecContext(ctx, s.q(`INSERT INTO ssks_passwords (user_id, factor_type, factor_hash, lookup_hash, params, salt, blob, failures, locked_until, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?)
				ON CONFLICT (user_id) DO UPDATE SET lookup_hash = excluded.lookup_hash, params = excluded.params, salt = excluded.salt,
					blob = excluded.blob, failures = 0, locked_until = 0, updated_at = excluded.updated_at
				WHERE ssks_passwords.factor_type = excluded.factor_type AND ssks_passwords.factor_hash = excluded.factor_hash`),
				rec.UserID, string(proof.FactorType), proof.FactorHash, rec.LookupHash, rec.Params, rec.Salt, rec.Blob, micros(rec.UpdatedAt))
		} else {
			res, err = tx.ExecContext(ctx, s.q(`UPDATE ssks_passwords SET lookup_hash = ?, params = ?, salt = ?, blob = ?, failures = 0, locked_until = 0, updated_at = ?
				WHERE user_id = ?`),
				rec.LookupHash, rec.Params, rec.Salt, rec.Blob, micros(rec.UpdatedAt), rec.UserID)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 && proof != nil {
			return twoman.ErrFactorMismatch
		} else if n == 0 {
			return twoman.ErrNotFound
		}
		return nil
	})
}

func (s *sqlStore) PasswordAttempt(ctx context.Context, userID string, now time.Time, ok func(PasswordRecord) bool, maxFailures int, lock func(int) time.Duration) (PasswordRecord, bool, error) {
	var rec PasswordRecord
	var good bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		good = false
		if rec, err = scanPassword(tx.QueryRowContext(ctx, s.q(selectPassword+s.forUpdate), userID), userID); err != nil {
			return err
		}
		if rec.LockedUntil.After(now) {
			return nil
		}
		if ok(rec) {
			good = true
			rec.Failures, rec.LockedUntil = 0, time.Time{}
		} else {
			rec.Failures++
			if rec.Failures >= maxFailures {
				rec.LockedUntil = now.Add(lock(rec.Failures))
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE ssks_passwords SET failures = ?, locked_until = ? WHERE user_id = ?`),
			rec.Failures, micros(rec.LockedUntil), userID)
		return err
	})
	if err != nil {
		return PasswordRecord{}, false, err
	}
	return rec, good, nil
}

// CheckKey implements [KeyChecker].
func (s *sqlStore) CheckKey(ctx context.Context, check []byte) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		var stored []byte
		err := tx.QueryRowContext(ctx, s.q("SELECT value FROM ssks_settings WHERE name = ?"), "hash_key_check").Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, s.q("INSERT INTO ssks_settings (name, value) VALUES (?, ?)"), "hash_key_check", check)
			return err
		case err != nil:
			return err
		case !hmac.Equal(stored, check):
			return ErrHashKeyMismatch
		}
		return nil
	})
}

func (s *sqlStore) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Ready checks the database and its schema, for /readyz.
func (s *sqlStore) Ready(ctx context.Context) error { return s.db.Ready(ctx) }

func (s *sqlStore) Close() error { return s.db.Close() }

var _ Store = (*sqlStore)(nil)
