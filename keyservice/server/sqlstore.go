package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/veilchat/veil/keyservice"
	"math"
	"slices"
	"time"

	"github.com/veilchat/veil/internal/sqlstore"
	"github.com/veilchat/veil/session"
)

// migrations is the key service's schema, namespace "keyservice". Released
// steps never change; add new ones at the end.
//
// Both dialects store the same columns: session IDs as 16 bytes, epochs
// and generations as integers in [0, 2³²), times as Unix microseconds
// (UTC). Postgres compares user IDs and channel CIDs byte-wise (COLLATE
// "C"), as SQLite does, so both sort members alike. Grants hang off their
// member, members off their session, both ON DELETE CASCADE.
var migrations = []sqlstore.Migration{{
	Version: 1,
	Name:    "cards, sessions, members, grants, idempotency",
	SQLite: `
CREATE TABLE cards (
	user_id    TEXT    NOT NULL,
	generation INTEGER NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
	card       BLOB    NOT NULL,
	PRIMARY KEY (user_id, generation)
);
CREATE TABLE sessions (
	id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
	channel_cid TEXT    NOT NULL UNIQUE,
	epoch       INTEGER NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
	created_by  TEXT    NOT NULL,
	created_at  INTEGER NOT NULL
);
CREATE TABLE members (
	session_id  BLOB    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	user_id     TEXT    NOT NULL,
	admin       INTEGER NOT NULL CHECK (admin IN (0, 1)),
	since_epoch INTEGER NOT NULL CHECK (since_epoch BETWEEN 0 AND 4294967295),
	PRIMARY KEY (session_id, user_id)
);
CREATE TABLE grants (
	session_id BLOB    NOT NULL,
	user_id    TEXT    NOT NULL,
	epoch      INTEGER NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
	grant_data BLOB    NOT NULL,
	PRIMARY KEY (session_id, user_id, epoch),
	FOREIGN KEY (session_id, user_id) REFERENCES members (session_id, user_id) ON DELETE CASCADE
);
CREATE TABLE idempotency (
	user_id      TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	request_hash BLOB    NOT NULL,
	status       INTEGER NOT NULL,
	response     BLOB    NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (user_id, key)
);`,
	Postgres: `
CREATE TABLE cards (
	user_id    TEXT COLLATE "C" NOT NULL,
	generation BIGINT NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
	card       BYTEA  NOT NULL,
	PRIMARY KEY (user_id, generation)
);
CREATE TABLE sessions (
	id          BYTEA  NOT NULL PRIMARY KEY CHECK (length(id) = 16),
	channel_cid TEXT COLLATE "C" NOT NULL UNIQUE,
	epoch       BIGINT NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
	created_by  TEXT COLLATE "C" NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE TABLE members (
	session_id  BYTEA   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	user_id     TEXT COLLATE "C" NOT NULL,
	admin       BOOLEAN NOT NULL,
	since_epoch BIGINT  NOT NULL CHECK (since_epoch BETWEEN 0 AND 4294967295),
	PRIMARY KEY (session_id, user_id)
);
CREATE TABLE grants (
	session_id BYTEA  NOT NULL,
	user_id    TEXT COLLATE "C" NOT NULL,
	epoch      BIGINT NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
	grant_data BYTEA  NOT NULL,
	PRIMARY KEY (session_id, user_id, epoch),
	FOREIGN KEY (session_id, user_id) REFERENCES members (session_id, user_id) ON DELETE CASCADE
);
CREATE TABLE idempotency (
	user_id      TEXT COLLATE "C" NOT NULL,
	key          TEXT COLLATE "C" NOT NULL,
	request_hash BYTEA   NOT NULL,
	status       INTEGER NOT NULL,
	response     BYTEA   NOT NULL,
	created_at   BIGINT  NOT NULL,
	PRIMARY KEY (user_id, key)
);`,
}}

// Batch bounds: how many user IDs go in one IN list, and how many rows in
// one multi-row INSERT (4 parameters each). Both stay far below SQLite's
// 32,766 and Postgres's 65,535 parameters per statement.
const (
	inChunk     = 1000
	insertChunk = 250
)

// OpenStore opens the key service's [Store] on the database named by dsn
// and brings its schema up to date (see [sqlstore.Open] for the DSN forms):
// "sqlite:///path/keys.db" (or a plain path) for SQLite, "postgres://…"
// for PostgreSQL. Several processes may open one Postgres database, and
// may start at the same time. The Store is safe for concurrent use; Close
// it when done. ctx bounds opening only.
//
// Times ([SessionRecord.CreatedAt], [IdempotencyRecord.CreatedAt]) are stored
// with microsecond precision and returned in UTC.
//
// Where the Store contract is silent, this store (and the storetest suite)
// settles it so: SetAdmin and DeleteSession on a session that does not
// exist return [keyservice.ErrNotFound] before any rights are checked, as Extend and
// Rotate do; grant lists that no correct caller sends (a grant for another
// epoch than the call's, two grants for one grantee) fail with an error
// that is no sentinel, and store nothing.
func OpenStore(ctx context.Context, dsn string) (Store, error) {
	db, err := sqlstore.Open(ctx, dsn, "keyservice", migrations)
	if err != nil {
		return nil, err
	}
	return &sqlStore{db: db, d: db.Dialect(), q: rebindAll(db.Dialect())}, nil
}

// sqlStore is the [Store] over internal/sqlstore, one SQL text for both
// dialects.
//
// Invariants under concurrency. SQLite runs one write transaction at a
// time. On Postgres (READ COMMITTED) every method that reads a session's
// state and then changes it starts by locking the session's row with a
// no-op UPDATE … RETURNING epoch (lockSession): Extend, Rotate, SetAdmin
// and DeleteSession on one session are serialized, each sees what the
// previous one committed, and the epoch it checks cannot move before it
// commits. The other writes are single conditional statements
// (INSERT … ON CONFLICT DO NOTHING) whose outcome the database decides.
type sqlStore struct {
	db *sqlstore.DB
	d  sqlstore.Dialect
	q  queries
}

var _ Store = (*sqlStore)(nil)

// queries holds the fixed SQL texts, rebound for the dialect once.
type queries struct {
	cardExists, insertCard, cardHistory            string
	insertSession, sessionIDByChannel, sessionByID string
	membersOf, grantsOf, lockSession, memberAdmin  string
	bumpEpoch, setAdmin                            string
	deleteGrantsOf, deleteMembersOf, deleteSession string
	idempotency, insertIdempotency                 string
}

func rebindAll(d sqlstore.Dialect) queries {
	return queries{
		cardExists:         d.Rebind("SELECT 1 FROM cards WHERE user_id = ? AND generation = ?"),
		insertCard:         d.Rebind("INSERT INTO cards (user_id, generation, card) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
		cardHistory:        d.Rebind("SELECT card FROM cards WHERE user_id = ? ORDER BY generation"),
		insertSession:      d.Rebind("INSERT INTO sessions (id, channel_cid, epoch, created_by, created_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING"),
		sessionIDByChannel: d.Rebind("SELECT id FROM sessions WHERE channel_cid = ?"),
		sessionByID:        d.Rebind("SELECT channel_cid, epoch, created_by, created_at FROM sessions WHERE id = ?"),
		membersOf:          d.Rebind("SELECT user_id, admin, since_epoch FROM members WHERE session_id = ? ORDER BY user_id"),
		grantsOf:           d.Rebind("SELECT epoch, grant_data FROM grants WHERE session_id = ? AND user_id = ? ORDER BY epoch"),
		lockSession:        d.Rebind("UPDATE sessions SET epoch = epoch WHERE id = ? RETURNING epoch"),
		memberAdmin:        d.Rebind("SELECT admin FROM members WHERE session_id = ? AND user_id = ?"),
		bumpEpoch:          d.Rebind("UPDATE sessions SET epoch = epoch + 1 WHERE id = ? AND epoch = ?"),
		setAdmin:           d.Rebind("UPDATE members SET admin = ? WHERE session_id = ? AND user_id = ?"),
		deleteGrantsOf:     d.Rebind("DELETE FROM grants WHERE session_id = ?"),
		deleteMembersOf:    d.Rebind("DELETE FROM members WHERE session_id = ?"),
		deleteSession:      d.Rebind("DELETE FROM sessions WHERE id = ?"),
		idempotency:        d.Rebind("SELECT request_hash, status, response, created_at FROM idempotency WHERE user_id = ? AND key = ?"),
		insertIdempotency:  d.Rebind("INSERT INTO idempotency (user_id, key, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
	}
}

// ---- cards ----

func (s *sqlStore) InsertCard(ctx context.Context, userID string, gen uint32, card []byte) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if gen > 0 {
			// Cards are never deleted, so once gen-1 is seen it stays.
			var one int
			err := tx.QueryRowContext(ctx, s.q.cardExists, userID, int64(gen)-1).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return keyservice.ErrConflict
			}
			if err != nil {
				return dbError("inserting a card", err)
			}
		}
		res, err := tx.ExecContext(ctx, s.q.insertCard, userID, int64(gen), nonNil(card))
		if err != nil {
			return dbError("inserting a card", err)
		}
		return oneRow(res, keyservice.ErrConflict)
	})
}

func (s *sqlStore) LatestCards(ctx context.Context, userIDs []string) (map[string][]byte, error) {
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	query := func(q interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}) error {
		clear(out)
		for chunk := range slices.Chunk(ids, inChunk) {
			rows, err := q.QueryContext(ctx, s.d.Rebind(`SELECT c.user_id, c.card FROM cards c
WHERE c.user_id IN (`+sqlstore.Placeholders(len(chunk))+`)
AND c.generation = (SELECT MAX(m.generation) FROM cards m WHERE m.user_id = c.user_id)`), anys(chunk)...)
			if err != nil {
				return err
			}
			err = scanRows(rows, func(r *sql.Rows) error {
				var user string
				var card []byte
				if err := r.Scan(&user, &card); err != nil {
					return err
				}
				out[user] = card
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if len(ids) <= inChunk {
		err = query(s.db)
	} else {
		// Several queries: one snapshot for all of them.
		err = s.db.ReadTx(ctx, func(tx *sql.Tx) error { return query(tx) })
	}
	if err != nil {
		return nil, dbError("reading cards", err)
	}
	return out, nil
}

func (s *sqlStore) CardHistory(ctx context.Context, userID string) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, s.q.cardHistory, userID)
	if err != nil {
		return nil, dbError("reading cards", err)
	}
	var cards [][]byte
	err = scanRows(rows, func(r *sql.Rows) error {
		var c []byte
		err := r.Scan(&c)
		cards = append(cards, c)
		return err
	})
	if err != nil {
		return nil, dbError("reading cards", err)
	}
	if len(cards) == 0 {
		return nil, keyservice.ErrNotFound
	}
	return cards, nil
}

// ---- sessions ----

func (s *sqlStore) CreateSession(ctx context.Context, rec SessionRecord, grants []session.GrantRecord) (session.ID, bool, error) {
	if err := checkGrants(grants, 0); err != nil {
		return session.ID{}, false, err
	}
	var (
		id      session.ID
		created bool
	)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		id, created = session.ID{}, false
		res, err := tx.ExecContext(ctx, s.q.insertSession, rec.ID[:], rec.ChannelCID, rec.CreatedBy, rec.CreatedAt.UnixMicro())
		if err != nil {
			return dbError("creating a session", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("creating a session", err)
		} else if n == 0 {
			// The channel or the ID is taken. On Postgres the INSERT has
			// waited for a concurrent creator to commit, and this new
			// statement sees its row.
			var b []byte
			err := tx.QueryRowContext(ctx, s.q.sessionIDByChannel, rec.ChannelCID).Scan(&b)
			if errors.Is(err, sql.ErrNoRows) {
				return keyservice.ErrConflict // the ID belongs to another channel
			}
			if err != nil {
				return dbError("creating a session", err)
			}
			id, err = toID(b)
			return err
		}
		members := [][]any{{rec.ID[:], rec.CreatedBy, true, int64(0)}}
		for _, g := range grants {
			if g.Grantee != rec.CreatedBy {
				members = append(members, []any{rec.ID[:], g.Grantee, false, int64(0)})
			}
		}
		if err := s.insertRows(ctx, tx, "INSERT INTO members (session_id, user_id, admin, since_epoch) VALUES ", "", members); err != nil {
			return dbError("creating a session", err)
		}
		if err := s.insertGrants(ctx, tx, rec.ID, grants); err != nil {
			return dbError("creating a session", err)
		}
		id, created = rec.ID, true
		return nil
	})
	if err != nil {
		return session.ID{}, false, err
	}
	return id, created, nil
}

func (s *sqlStore) SessionByChannel(ctx context.Context, channelCID string) (session.ID, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, s.q.sessionIDByChannel, channelCID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return session.ID{}, keyservice.ErrNotFound
	}
	if err != nil {
		return session.ID{}, dbError("reading a session", err)
	}
	return toID(b)
}

func (s *sqlStore) Session(ctx context.Context, id session.ID) (SessionRecord, []session.Member, error) {
	var (
		rec     SessionRecord
		members []session.Member
	)
	err := s.db.ReadTx(ctx, func(tx *sql.Tx) error {
		rec, members = SessionRecord{ID: id}, nil
		var epoch, created int64
		err := tx.QueryRowContext(ctx, s.q.sessionByID, id[:]).Scan(&rec.ChannelCID, &epoch, &rec.CreatedBy, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return keyservice.ErrNotFound
		}
		if err != nil {
			return dbError("reading a session", err)
		}
		rec.Epoch, rec.CreatedAt = uint32(epoch), time.UnixMicro(created).UTC()
		rows, err := tx.QueryContext(ctx, s.q.membersOf, id[:])
		if err != nil {
			return dbError("reading members", err)
		}
		return dbError("reading members", scanRows(rows, func(r *sql.Rows) error {
			var m session.Member
			var since int64
			err := r.Scan(&m.UserID, &m.Admin, &since)
			m.Since = uint32(since)
			members = append(members, m)
			return err
		}))
	})
	if err != nil {
		return SessionRecord{}, nil, err
	}
	return rec, members, nil
}

func (s *sqlStore) Grants(ctx context.Context, id session.ID, userID string) ([]session.GrantRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.q.grantsOf, id[:], userID)
	if err != nil {
		return nil, dbError("reading grants", err)
	}
	var out []session.GrantRecord
	err = scanRows(rows, func(r *sql.Rows) error {
		g := session.GrantRecord{Grantee: userID}
		var epoch int64
		err := r.Scan(&epoch, &g.Grant)
		g.Epoch = uint32(epoch)
		out = append(out, g)
		return err
	})
	if err != nil {
		return nil, dbError("reading grants", err)
	}
	return out, nil
}

func (s *sqlStore) Extend(ctx context.Context, id session.ID, caller string, atEpoch uint32, grants []session.GrantRecord) error {
	if err := checkGrants(grants, atEpoch); err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		epoch, err := s.lock(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := s.member(ctx, tx, id, caller); err != nil {
			return err
		}
		if epoch != atEpoch {
			return keyservice.ErrConflict
		}
		rows := make([][]any, len(grants))
		for i, g := range grants {
			rows[i] = []any{id[:], g.Grantee, false, int64(atEpoch)}
		}
		if err := s.insertRows(ctx, tx, "INSERT INTO members (session_id, user_id, admin, since_epoch) VALUES ", "", rows); err != nil {
			if sqlstore.IsUniqueViolation(err) {
				return keyservice.ErrConflict // a grantee is a member already
			}
			return dbError("adding members", err)
		}
		return dbError("storing grants", s.insertGrants(ctx, tx, id, grants))
	})
}

func (s *sqlStore) Rotate(ctx context.Context, id session.ID, caller string, fromEpoch uint32, remove []string, grants []session.GrantRecord) error {
	if fromEpoch == math.MaxUint32 {
		return ErrTooManyEpochs
	}
	next := fromEpoch + 1
	if err := checkGrants(grants, next); err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		epoch, err := s.lock(ctx, tx, id)
		if err != nil {
			return err
		}
		if admin, err := s.member(ctx, tx, id, caller); err != nil {
			return err
		} else if !admin {
			return keyservice.ErrForbidden
		}
		if epoch != fromEpoch {
			return keyservice.ErrConflict
		}
		res, err := tx.ExecContext(ctx, s.q.bumpEpoch, id[:], int64(fromEpoch))
		if err != nil {
			return dbError("rotating", err)
		}
		if err := oneRow(res, keyservice.ErrConflict); err != nil {
			return err
		}
		for chunk := range slices.Chunk(remove, inChunk) {
			args := append([]any{id[:]}, anys(chunk)...)
			in := sqlstore.Placeholders(len(chunk))
			// The foreign key would cascade; deleting the grants
			// explicitly keeps removal independent of it.
			if _, err := tx.ExecContext(ctx, s.d.Rebind("DELETE FROM grants WHERE session_id = ? AND user_id IN ("+in+")"), args...); err != nil {
				return dbError("removing members", err)
			}
			if _, err := tx.ExecContext(ctx, s.d.Rebind("DELETE FROM members WHERE session_id = ? AND user_id IN ("+in+")"), args...); err != nil {
				return dbError("removing members", err)
			}
		}
		rows := make([][]any, len(grants))
		for i, g := range grants {
			rows[i] = []any{id[:], g.Grantee, false, int64(next)}
		}
		if err := s.insertRows(ctx, tx, "INSERT INTO members (session_id, user_id, admin, since_epoch) VALUES ", " ON CONFLICT (session_id, user_id) DO NOTHING", rows); err != nil {
			return dbError("adding members", err)
		}
		if err := s.insertGrants(ctx, tx, id, grants); err != nil {
			return dbError("storing grants", err)
		}
		// Every member must hold the new epoch: a member added since the
		// caller read the membership would otherwise be locked out.
		var missing int
		if err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT COUNT(*) FROM members m WHERE m.session_id = ? AND NOT EXISTS
			(SELECT 1 FROM grants g WHERE g.session_id = m.session_id AND g.user_id = m.user_id AND g.epoch = ?)`), id[:], int64(next)).Scan(&missing); err != nil {
			return dbError("checking grants", err)
		}
		if missing > 0 {
			return keyservice.ErrConflict
		}
		return nil
	})
}

func (s *sqlStore) SetAdmin(ctx context.Context, id session.ID, caller, userID string, admin bool) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.lock(ctx, tx, id); err != nil {
			return err
		}
		if isAdmin, err := s.member(ctx, tx, id, caller); err != nil {
			return err
		} else if !isAdmin {
			return keyservice.ErrForbidden
		}
		res, err := tx.ExecContext(ctx, s.q.setAdmin, admin, id[:], userID)
		if err != nil {
			return dbError("setting admin", err)
		}
		return oneRow(res, keyservice.ErrNotFound)
	})
}

func (s *sqlStore) DeleteSession(ctx context.Context, id session.ID, caller string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.lock(ctx, tx, id); err != nil {
			return err
		}
		if caller != "" {
			if admin, err := s.member(ctx, tx, id, caller); err != nil {
				return err
			} else if !admin {
				return keyservice.ErrForbidden
			}
		}
		for _, q := range []string{s.q.deleteGrantsOf, s.q.deleteMembersOf, s.q.deleteSession} {
			if _, err := tx.ExecContext(ctx, q, id[:]); err != nil {
				return dbError("deleting a session", err)
			}
		}
		return nil
	})
}

// lock takes the session's row lock (Postgres; SQLite holds the database
// write lock already) and returns its epoch, or keyservice.ErrNotFound.
func (s *sqlStore) lock(ctx context.Context, tx *sql.Tx, id session.ID) (uint32, error) {
	var epoch int64
	err := tx.QueryRowContext(ctx, s.q.lockSession, id[:]).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, keyservice.ErrNotFound
	}
	if err != nil {
		return 0, dbError("locking a session", err)
	}
	return uint32(epoch), nil
}

// member reports whether userID is an admin of the session, or returns
// keyservice.ErrForbidden if it is not a member.
func (s *sqlStore) member(ctx context.Context, tx *sql.Tx, id session.ID, userID string) (admin bool, err error) {
	err = tx.QueryRowContext(ctx, s.q.memberAdmin, id[:], userID).Scan(&admin)
	if errors.Is(err, sql.ErrNoRows) {
		return false, keyservice.ErrForbidden
	}
	if err != nil {
		return false, dbError("reading a member", err)
	}
	return admin, nil
}

func (s *sqlStore) insertGrants(ctx context.Context, tx *sql.Tx, id session.ID, grants []session.GrantRecord) error {
	rows := make([][]any, len(grants))
	for i, g := range grants {
		rows[i] = []any{id[:], g.Grantee, int64(g.Epoch), nonNil(g.Grant)}
	}
	return s.insertRows(ctx, tx, "INSERT INTO grants (session_id, user_id, epoch, grant_data) VALUES ", "", rows)
}

// insertRows inserts rows (all of one width) with multi-row INSERTs of at
// most insertChunk rows: prefix ends with "VALUES ", suffix may add an ON
// CONFLICT clause.
func (s *sqlStore) insertRows(ctx context.Context, tx *sql.Tx, prefix, suffix string, rows [][]any) error {
	for chunk := range slices.Chunk(rows, insertChunk) {
		row := "(" + sqlstore.Placeholders(len(chunk[0])) + ")"
		values := make([]byte, 0, len(chunk)*(len(row)+2))
		args := make([]any, 0, len(chunk)*len(chunk[0]))
		for i, r := range chunk {
			if i > 0 {
				values = append(values, ", "...)
			}
			values = append(values, row...)
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, s.d.Rebind(prefix+string(values)+suffix), args...); err != nil {
			return err
		}
	}
	return nil
}

// checkGrants rejects grants that no caller following the contract sends:
// a grant for another epoch, or two grants for one grantee. These are the
// handler's bugs, not conflicts, so the error is no sentinel.
func checkGrants(grants []session.GrantRecord, epoch uint32) error {
	seen := make(map[string]bool, len(grants))
	for _, g := range grants {
		if g.Epoch != epoch {
			return fmt.Errorf("keyservice: grant for %q is for epoch %d, want %d", g.Grantee, g.Epoch, epoch)
		}
		if seen[g.Grantee] {
			return fmt.Errorf("keyservice: two grants for %q", g.Grantee)
		}
		seen[g.Grantee] = true
	}
	return nil
}

// ---- idempotency ----

func (s *sqlStore) Idempotency(ctx context.Context, userID, key string) (IdempotencyRecord, error) {
	rec := IdempotencyRecord{UserID: userID, Key: key}
	var status, created int64
	err := s.db.QueryRowContext(ctx, s.q.idempotency, userID, key).Scan(&rec.RequestHash, &status, &rec.Response, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return IdempotencyRecord{}, keyservice.ErrNotFound
	}
	if err != nil {
		return IdempotencyRecord{}, dbError("reading an idempotency record", err)
	}
	rec.Status, rec.CreatedAt = int(status), time.UnixMicro(created).UTC()
	return rec, nil
}

func (s *sqlStore) PutIdempotency(ctx context.Context, rec IdempotencyRecord) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q.insertIdempotency, rec.UserID, rec.Key,
			nonNil(rec.RequestHash), int64(rec.Status), nonNil(rec.Response), rec.CreatedAt.UnixMicro())
		if err != nil {
			return dbError("storing an idempotency record", err)
		}
		return oneRow(res, keyservice.ErrConflict)
	})
}

// ---- plumbing ----

func (s *sqlStore) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

func (s *sqlStore) Close() error { return s.db.Close() }

// dbError wraps a database error with what the store was doing; nil and
// the store's sentinels pass through unchanged.
func dbError(doing string, err error) error {
	if err == nil || errors.Is(err, keyservice.ErrNotFound) || errors.Is(err, keyservice.ErrConflict) || errors.Is(err, keyservice.ErrForbidden) || errors.Is(err, ErrTooManyEpochs) {
		return err
	}
	return fmt.Errorf("keyservice: %s: %w", doing, err)
}

// oneRow returns nil if res changed a row, else ifNone.
func oneRow(res sql.Result, ifNone error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ifNone
	}
	return nil
}

// scanRows calls scan for each row and closes rows.
func scanRows(rows *sql.Rows, scan func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return errors.Join(rows.Err(), rows.Close())
}

func toID(b []byte) (session.ID, error) {
	var id session.ID
	if len(b) != len(id) {
		return session.ID{}, fmt.Errorf("keyservice: stored session ID has %d bytes", len(b))
	}
	copy(id[:], b)
	return id, nil
}

// nonNil turns a nil slice into an empty one: drivers bind nil as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
