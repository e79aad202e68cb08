package server

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/veilchat/veil/internal/sqlstore"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/session"
)

// migrations is the key service's schema, namespace "keyservice". Released
// steps never change; add new ones at the end. (Protocol v1 is not frozen:
// until it is, a change of the schema replaces this step, and databases of
// older builds are recreated.)
//
// Both dialects store the same columns: session IDs as 16 bytes, hashes as
// 32, sequence numbers, epochs and generations as integers in [0, 2³²),
// roles as the log's role byte (0 member, 1 admin). Postgres compares user
// IDs and channel CIDs byte-wise (COLLATE "C"), as SQLite does, so both
// sort rosters alike. A session's log records, roster and grants hang off
// it, ON DELETE CASCADE.
var migrations = []sqlstore.Migration{{
	Version: 1,
	Name:    "cards, sessions, membership logs, rosters, grants",
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
	head_seq    INTEGER NOT NULL CHECK (head_seq BETWEEN 0 AND 4294967295),
	head_hash   BLOB    NOT NULL CHECK (length(head_hash) = 32)
);
CREATE TABLE log_records (
	session_id BLOB    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
	record     BLOB    NOT NULL,
	hash       BLOB    NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (session_id, seq)
);
CREATE TABLE roster (
	session_id BLOB    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	user_id    TEXT    NOT NULL,
	role       INTEGER NOT NULL CHECK (role IN (0, 1)),
	PRIMARY KEY (session_id, user_id)
);
CREATE TABLE grants (
	session_id BLOB    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	user_id    TEXT    NOT NULL,
	epoch      INTEGER NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
	grant_data BLOB    NOT NULL,
	PRIMARY KEY (session_id, user_id, epoch)
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
	head_seq    BIGINT NOT NULL CHECK (head_seq BETWEEN 0 AND 4294967295),
	head_hash   BYTEA  NOT NULL CHECK (length(head_hash) = 32)
);
CREATE TABLE log_records (
	session_id BYTEA  NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	seq        BIGINT NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
	record     BYTEA  NOT NULL,
	hash       BYTEA  NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (session_id, seq)
);
CREATE TABLE roster (
	session_id BYTEA    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	user_id    TEXT COLLATE "C" NOT NULL,
	role       SMALLINT NOT NULL CHECK (role IN (0, 1)),
	PRIMARY KEY (session_id, user_id)
);
CREATE TABLE grants (
	session_id BYTEA  NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	user_id    TEXT COLLATE "C" NOT NULL,
	epoch      BIGINT NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
	grant_data BYTEA  NOT NULL,
	PRIMARY KEY (session_id, user_id, epoch)
);`,
}, {
	Version: 2,
	Name:    "per-user usage for quotas",
	SQLite: `
CREATE TABLE user_usage (
	user_id  TEXT    NOT NULL PRIMARY KEY,
	sessions INTEGER NOT NULL,
	bytes    INTEGER NOT NULL
);`,
	Postgres: `
CREATE TABLE user_usage (
	user_id  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	sessions BIGINT NOT NULL,
	bytes    BIGINT NOT NULL
);`,
}, {
	Version: 3,
	Name:    "each record's charge, freed when its session is deleted",
	SQLite: `
ALTER TABLE log_records ADD COLUMN charged_user  TEXT    NOT NULL DEFAULT '';
ALTER TABLE log_records ADD COLUMN charged_bytes INTEGER NOT NULL DEFAULT 0;`,
	Postgres: `
ALTER TABLE log_records ADD COLUMN charged_user  TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE log_records ADD COLUMN charged_bytes BIGINT NOT NULL DEFAULT 0;`,
}}

// Batch bounds: how many user IDs go in one IN list, and how many rows in
// one multi-row INSERT (4 parameters at most each). Both stay far below
// SQLite's 32,766 and Postgres's 65,535 parameters per statement.
const (
	inChunk     = 1000
	insertChunk = 250
)

// OpenStore opens the key service's [Store] on the database named by dsn
// and brings its schema up to date. DSNs: "sqlite:///abs/path/keys.db",
// "sqlite://rel/path.db" or a plain path for SQLite (the file is created
// 0600 if missing; its directory must exist); "postgres://…" or
// "postgresql://…" for PostgreSQL. Several processes may open one Postgres database, and
// may start at the same time. The Store is safe for concurrent use; Close
// it when done. ctx bounds opening only.
//
// Where the Store contract is silent, this store (and the storetest suite)
// settles it so: grant lists that no correct caller sends (two grants for
// one grantee and epoch) fail with an error that is no sentinel, and store
// nothing.
//
// It creates the database (the SQLite file; the tables) when it is not
// set up yet; [OpenExistingStore] refuses to. Either refuses a database
// that holds another service's tables but the two-man-rule backend's
// (twoman/backend.OpenKeyStore, of the same party) — the SSKS's above
// all, whose data the key service's operator must not hold — with an
// error naming them, and changes nothing in it.
func OpenStore(ctx context.Context, dsn string) (Store, error) {
	return openStore(ctx, dsn, false)
}

// OpenExistingStore is [OpenStore] for a database the key service has
// already set up: a SQLite file that does not exist, or a database without
// the key service's tables, is refused with an error matching
// [ErrNoDatabase] and nothing is created — so that a mistyped path or DSN
// fails at start instead of serving an empty directory. `veil serve`
// opens its database so unless --create is given.
func OpenExistingStore(ctx context.Context, dsn string) (Store, error) {
	return openStore(ctx, dsn, true)
}

// ErrNoDatabase is matched by [OpenExistingStore]'s error when the
// database is not set up.
var ErrNoDatabase = sqlstore.ErrNoDatabase

// storeNamespace is the key service's migration namespace; companions are
// the namespaces of the same party that may share its database.
const storeNamespace = "keyservice"

var storeCompanions = []string{"twoman-backend"}

func openStore(ctx context.Context, dsn string, mustExist bool) (Store, error) {
	db, err := sqlstore.OpenWith(ctx, dsn, storeNamespace, migrations,
		sqlstore.Options{MustExist: mustExist, Exclusive: true, Companions: storeCompanions})
	if err != nil {
		return nil, err
	}
	return &sqlStore{db: db, d: db.Dialect(), q: rebindAll(db.Dialect())}, nil
}

// sqlStore is the [Store] over internal/sqlstore, one SQL text for both
// dialects.
//
// Invariants under concurrency. SQLite runs one write transaction at a
// time. On Postgres (READ COMMITTED) Append moves the head with one
// conditional UPDATE … WHERE head_seq = ? AND head_hash = ?: a concurrent
// append of the same session waits for the first to commit, then finds
// the head moved and changes nothing, so exactly one of two appends at one
// head wins, and the winner holds the session's row lock until its roster
// and grants are written. DeleteSession locks the row the same way before
// it checks the caller's role. Reads run in one snapshot each (ReadTx), so
// a roster check and the rows it guards are of one state. The other
// writes are single conditional statements (INSERT … ON CONFLICT DO
// NOTHING) whose outcome the database decides.
//
// Quotas: CreateSession and Append count a write against its user's row
// of user_usage with one INSERT … ON CONFLICT DO UPDATE … RETURNING in the
// transaction that stores it, and roll back if the totals it returns pass
// the limits. On Postgres the upsert locks the user's row until commit, so
// concurrent writes of one user, on any replica, add up one after the
// other and each checks a total that includes all committed before it;
// SQLite serializes the writes. Each record row keeps whom it was charged
// to and how many bytes (the record's and its grants'); DeleteSession
// takes them off those users' rows. Locks are taken session row first,
// usage rows second (DeleteSession's in user ID order), in every
// transaction, so they cannot deadlock.
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
	insertRecord, recordAt, recordsFrom, moveHead  string
	rosterOf, roleOf, deleteMember, upsertMember   string
	grantsOf, granteesOf, lockSession, deleteRow   string
	chargeUsage, chargesOf, refundUsage            string
}

func rebindAll(d sqlstore.Dialect) queries {
	return queries{
		cardExists:         d.Rebind("SELECT 1 FROM cards WHERE user_id = ? AND generation = ?"),
		insertCard:         d.Rebind("INSERT INTO cards (user_id, generation, card) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
		cardHistory:        d.Rebind("SELECT card FROM cards WHERE user_id = ? ORDER BY generation"),
		insertSession:      d.Rebind("INSERT INTO sessions (id, channel_cid, head_seq, head_hash) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING"),
		sessionIDByChannel: d.Rebind("SELECT id FROM sessions WHERE channel_cid = ?"),
		sessionByID:        d.Rebind("SELECT channel_cid, head_seq, head_hash FROM sessions WHERE id = ?"),
		insertRecord:       d.Rebind("INSERT INTO log_records (session_id, seq, record, hash, charged_user, charged_bytes) VALUES (?, ?, ?, ?, ?, ?)"),
		recordAt:           d.Rebind("SELECT record FROM log_records WHERE session_id = ? AND seq = ?"),
		recordsFrom:        d.Rebind("SELECT record FROM log_records WHERE session_id = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"),
		moveHead:           d.Rebind("UPDATE sessions SET head_seq = ?, head_hash = ? WHERE id = ? AND head_seq = ? AND head_hash = ?"),
		rosterOf:           d.Rebind("SELECT user_id, role FROM roster WHERE session_id = ? ORDER BY user_id"),
		roleOf:             d.Rebind("SELECT role FROM roster WHERE session_id = ? AND user_id = ?"),
		deleteMember:       d.Rebind("DELETE FROM roster WHERE session_id = ? AND user_id = ?"),
		upsertMember:       d.Rebind("UPDATE roster SET role = ? WHERE session_id = ? AND user_id = ?"),
		grantsOf:           d.Rebind("SELECT epoch, grant_data FROM grants WHERE session_id = ? AND user_id = ? ORDER BY epoch"),
		granteesOf:         d.Rebind("SELECT DISTINCT user_id FROM grants WHERE session_id = ?"),
		lockSession:        d.Rebind("UPDATE sessions SET head_seq = head_seq WHERE id = ? RETURNING head_seq"),
		deleteRow:          d.Rebind("DELETE FROM sessions WHERE id = ?"),
		chargeUsage: d.Rebind(`INSERT INTO user_usage (user_id, sessions, bytes) VALUES (?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET sessions = user_usage.sessions + excluded.sessions, bytes = user_usage.bytes + excluded.bytes
			RETURNING sessions, bytes`),
		chargesOf: d.Rebind(`SELECT charged_user, CAST(SUM(charged_bytes) AS BIGINT) FROM log_records
			WHERE session_id = ? AND charged_user <> '' GROUP BY charged_user ORDER BY charged_user`),
		refundUsage: d.Rebind("UPDATE user_usage SET bytes = CASE WHEN bytes > ? THEN bytes - ? ELSE 0 END WHERE user_id = ?"),
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

func (s *sqlStore) CreateSession(ctx context.Context, ns NewSession) (bool, error) {
	if err := checkGrants(ns.Grants); err != nil {
		return false, err
	}
	var created bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		created = false
		res, err := tx.ExecContext(ctx, s.q.insertSession, ns.ID[:], ns.ChannelCID, ns.Hash[:])
		if err != nil {
			return dbError("creating a session", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("creating a session", err)
		} else if n == 0 {
			// The ID or the channel is taken. On Postgres the INSERT has
			// waited for a concurrent creator to commit, and these new
			// statements see its rows.
			return s.taken(ctx, tx, ns)
		}
		charged, err := s.charge(ctx, tx, ns.Quota, 1, ns.Genesis, ns.Grants)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q.insertRecord, ns.ID[:], int64(0), nonNil(ns.Genesis), ns.Hash[:], ns.Quota.User, charged); err != nil {
			return dbError("creating a session", err)
		}
		if err := s.replaceRoster(ctx, tx, ns.ID, ns.Roster); err != nil {
			return err
		}
		if err := s.insertGrants(ctx, tx, ns.ID, ns.Grants); err != nil {
			return dbError("creating a session", err)
		}
		created = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// charge counts sessions and the bytes of record and grants against
// q.User in tx, and returns the bytes counted (0 without a user), or
// keyservice.ErrQuotaExceeded if the totals pass q's limits: the caller's
// transaction then rolls back, the count with it.
func (s *sqlStore) charge(ctx context.Context, tx *sql.Tx, q Quota, sessions int64, record []byte, grants []session.GrantRecord) (int64, error) {
	if q.User == "" {
		return 0, nil
	}
	n := int64(len(record))
	for _, g := range grants {
		n += int64(len(g.Grant))
	}
	var totalSessions, totalBytes int64
	if err := tx.QueryRowContext(ctx, s.q.chargeUsage, q.User, sessions, n).Scan(&totalSessions, &totalBytes); err != nil {
		return 0, dbError("counting usage", err)
	}
	if (q.MaxSessions > 0 && totalSessions > q.MaxSessions) || (q.MaxBytes > 0 && totalBytes > q.MaxBytes) {
		return 0, keyservice.ErrQuotaExceeded
	}
	return n, nil
}

// refund takes the bytes charged for session id's records (and their
// grants) off the rows of the users they were charged to, in user ID
// order. It runs in DeleteSession's transaction, with the session's row
// locked.
func (s *sqlStore) refund(ctx context.Context, tx *sql.Tx, id session.ID) error {
	type charge struct {
		user  string
		bytes int64
	}
	rows, err := tx.QueryContext(ctx, s.q.chargesOf, id[:])
	if err != nil {
		return err
	}
	var charges []charge
	err = scanRows(rows, func(r *sql.Rows) error {
		var c charge
		err := r.Scan(&c.user, &c.bytes)
		charges = append(charges, c)
		return err
	})
	if err != nil {
		return err
	}
	for _, c := range charges {
		if _, err := tx.ExecContext(ctx, s.q.refundUsage, c.bytes, c.bytes, c.user); err != nil {
			return err
		}
	}
	return nil
}

// taken says why a new session's row was not inserted: nil if the same
// genesis is there already, a *session.SessionExistsError if the channel
// has another session, keyservice.ErrConflict if the ID is another
// genesis's (or the session went meanwhile).
func (s *sqlStore) taken(ctx context.Context, tx *sql.Tx, ns NewSession) error {
	var genesis []byte
	err := tx.QueryRowContext(ctx, s.q.recordAt, ns.ID[:], int64(0)).Scan(&genesis)
	switch {
	case err == nil && bytes.Equal(genesis, ns.Genesis):
		return nil
	case err == nil:
		return keyservice.ErrConflict
	case !errors.Is(err, sql.ErrNoRows):
		return dbError("creating a session", err)
	}
	var b []byte
	err = tx.QueryRowContext(ctx, s.q.sessionIDByChannel, ns.ChannelCID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return keyservice.ErrConflict
	}
	if err != nil {
		return dbError("creating a session", err)
	}
	id, err := toID(b)
	if err != nil {
		return err
	}
	return &session.SessionExistsError{ChannelCID: ns.ChannelCID, ID: id}
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

// querier is what reads need of a *sql.Tx or a *sqlstore.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// session reads a session's row, or keyservice.ErrNotFound.
func (s *sqlStore) session(ctx context.Context, q querier, id session.ID) (SessionRecord, error) {
	rec := SessionRecord{ID: id}
	var seq int64
	var hash []byte
	err := q.QueryRowContext(ctx, s.q.sessionByID, id[:]).Scan(&rec.ChannelCID, &seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return SessionRecord{}, keyservice.ErrNotFound
	}
	if err != nil {
		return SessionRecord{}, dbError("reading a session", err)
	}
	if len(hash) != len(rec.Head.Hash) {
		return SessionRecord{}, fmt.Errorf("keyservice: stored head hash has %d bytes", len(hash))
	}
	rec.Head.Seq = uint32(seq)
	copy(rec.Head.Hash[:], hash)
	return rec, nil
}

// role returns userID's role in the session's roster, or
// keyservice.ErrForbidden if the roster does not list it.
func (s *sqlStore) role(ctx context.Context, q querier, id session.ID, userID string) (int, error) {
	var role int
	err := q.QueryRowContext(ctx, s.q.roleOf, id[:], userID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, keyservice.ErrForbidden
	}
	if err != nil {
		return 0, dbError("reading a roster", err)
	}
	return role, nil
}

// readable reads a session's row and checks that reader (unless empty) is
// in its roster.
func (s *sqlStore) readable(ctx context.Context, q querier, id session.ID, reader string) (SessionRecord, error) {
	rec, err := s.session(ctx, q, id)
	if err != nil {
		return SessionRecord{}, err
	}
	if reader != "" {
		if _, err := s.role(ctx, q, id, reader); err != nil {
			return SessionRecord{}, err
		}
	}
	return rec, nil
}

func (s *sqlStore) Session(ctx context.Context, id session.ID) (SessionRecord, error) {
	return s.session(ctx, s.db, id)
}

func (s *sqlStore) Append(ctx context.Context, id session.ID, a Append) error {
	if err := checkGrants(a.Grants); err != nil {
		return err
	}
	if a.Prev.Seq == 1<<32-1 {
		return errors.New("keyservice: no sequence number after 4294967295")
	}
	next := int64(a.Prev.Seq) + 1
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q.moveHead, next, a.Hash[:], id[:], int64(a.Prev.Seq), a.Prev.Hash[:])
		if err != nil {
			return dbError("appending a record", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("appending a record", err)
		} else if n == 0 {
			if _, err := s.session(ctx, tx, id); err != nil {
				return err
			}
			return keyservice.ErrConflict
		}
		charged, err := s.charge(ctx, tx, a.Quota, 0, a.Record, a.Grants)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q.insertRecord, id[:], next, nonNil(a.Record), a.Hash[:], a.Quota.User, charged); err != nil {
			return dbError("appending a record", err)
		}
		if err := s.replaceRoster(ctx, tx, id, a.Roster); err != nil {
			return err
		}
		if err := s.dropGrants(ctx, tx, id, a.Roster, a.Readers); err != nil {
			return dbError("deleting the grants of users gone", err)
		}
		return dbError("storing grants", s.insertGrants(ctx, tx, id, a.Grants))
	})
}

// dropGrants deletes the grants of session id's grantees who are in
// neither roster nor readers. It runs in Append's transaction, after the
// head moved: on Postgres the session's row is locked, so no other append
// adds grants meanwhile.
func (s *sqlStore) dropGrants(ctx context.Context, tx *sql.Tx, id session.ID, roster []session.Member, readers []string) error {
	keep := make(map[string]bool, len(roster)+len(readers))
	for _, m := range roster {
		keep[m.UserID] = true
	}
	for _, u := range readers {
		keep[u] = true
	}
	rows, err := tx.QueryContext(ctx, s.q.granteesOf, id[:])
	if err != nil {
		return err
	}
	var gone []string
	err = scanRows(rows, func(r *sql.Rows) error {
		var u string
		if err := r.Scan(&u); err != nil {
			return err
		}
		if !keep[u] {
			gone = append(gone, u)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(gone, inChunk) {
		q := s.d.Rebind("DELETE FROM grants WHERE session_id = ? AND user_id IN (" + sqlstore.Placeholders(len(chunk)) + ")")
		if _, err := tx.ExecContext(ctx, q, append([]any{id[:]}, anys(chunk)...)...); err != nil {
			return err
		}
	}
	return nil
}

// replaceRoster makes the stored roster of session id equal roster,
// writing only the differences.
func (s *sqlStore) replaceRoster(ctx context.Context, tx *sql.Tx, id session.ID, roster []session.Member) error {
	old, err := s.roster(ctx, tx, id)
	if err != nil {
		return err
	}
	had := make(map[string]bool, len(old))
	for _, m := range old {
		had[m.UserID] = m.Admin
	}
	var add [][]any
	seen := make(map[string]bool, len(roster))
	for _, m := range roster {
		if seen[m.UserID] {
			return fmt.Errorf("keyservice: %q twice in a roster", m.UserID)
		}
		seen[m.UserID] = true
		admin, ok := had[m.UserID]
		switch {
		case !ok:
			add = append(add, []any{id[:], m.UserID, roleOf(m.Admin)})
		case admin != m.Admin:
			if _, err := tx.ExecContext(ctx, s.q.upsertMember, roleOf(m.Admin), id[:], m.UserID); err != nil {
				return dbError("writing a roster", err)
			}
		}
	}
	for _, m := range old {
		if !seen[m.UserID] {
			if _, err := tx.ExecContext(ctx, s.q.deleteMember, id[:], m.UserID); err != nil {
				return dbError("writing a roster", err)
			}
		}
	}
	return dbError("writing a roster", s.insertRows(ctx, tx, "INSERT INTO roster (session_id, user_id, role) VALUES ", "", add))
}

// roleOf is the stored role of an admin or a member: the log's role byte.
func roleOf(admin bool) int {
	if admin {
		return 1
	}
	return 0
}

func (s *sqlStore) roster(ctx context.Context, q querier, id session.ID) ([]session.Member, error) {
	rows, err := q.QueryContext(ctx, s.q.rosterOf, id[:])
	if err != nil {
		return nil, dbError("reading a roster", err)
	}
	var out []session.Member
	err = scanRows(rows, func(r *sql.Rows) error {
		var m session.Member
		var role int
		err := r.Scan(&m.UserID, &role)
		m.Admin = role == 1
		out = append(out, m)
		return err
	})
	return out, dbError("reading a roster", err)
}

func (s *sqlStore) Roster(ctx context.Context, id session.ID) ([]session.Member, error) {
	var out []session.Member
	err := s.db.ReadTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.session(ctx, tx, id); err != nil {
			return err
		}
		var err error
		out, err = s.roster(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *sqlStore) Log(ctx context.Context, id session.ID, reader string, from uint32, limit, maxBytes int) ([][]byte, session.Head, error) {
	var (
		out  [][]byte
		head session.Head
	)
	err := s.db.ReadTx(ctx, func(tx *sql.Tx) error {
		out = nil
		rec, err := s.readable(ctx, tx, id, reader)
		if err != nil {
			return err
		}
		head = rec.Head
		if from > head.Seq || limit <= 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, s.q.recordsFrom, id[:], int64(from), int64(head.Seq), int64(limit))
		if err != nil {
			return dbError("reading a log", err)
		}
		size := 0
		return dbError("reading a log", scanRows(rows, func(r *sql.Rows) error {
			if len(out) > 0 && size >= maxBytes {
				return nil // the page is full: skip the rest
			}
			var b []byte
			if err := r.Scan(&b); err != nil {
				return err
			}
			size += len(b)
			out = append(out, b)
			return nil
		}))
	})
	if err != nil {
		return nil, session.Head{}, err
	}
	return out, head, nil
}

func (s *sqlStore) Head(ctx context.Context, id session.ID, reader string) (session.Head, error) {
	var head session.Head
	err := s.db.ReadTx(ctx, func(tx *sql.Tx) error {
		rec, err := s.readable(ctx, tx, id, reader)
		head = rec.Head
		return err
	})
	if err != nil {
		return session.Head{}, err
	}
	return head, nil
}

func (s *sqlStore) Grants(ctx context.Context, id session.ID, reader string) ([]session.GrantRecord, error) {
	var out []session.GrantRecord
	err := s.db.ReadTx(ctx, func(tx *sql.Tx) error {
		out = nil
		if _, err := s.readable(ctx, tx, id, reader); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.q.grantsOf, id[:], reader)
		if err != nil {
			return dbError("reading grants", err)
		}
		return dbError("reading grants", scanRows(rows, func(r *sql.Rows) error {
			g := session.GrantRecord{Grantee: reader}
			var epoch int64
			err := r.Scan(&epoch, &g.Grant)
			g.Epoch = uint32(epoch)
			out = append(out, g)
			return err
		}))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *sqlStore) DeleteSession(ctx context.Context, id session.ID, caller string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		var seq int64
		err := tx.QueryRowContext(ctx, s.q.lockSession, id[:]).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return keyservice.ErrNotFound
		}
		if err != nil {
			return dbError("locking a session", err)
		}
		if caller != "" {
			if role, err := s.role(ctx, tx, id, caller); err != nil {
				return err
			} else if role != 1 {
				return keyservice.ErrForbidden
			}
		}
		if err := s.refund(ctx, tx, id); err != nil {
			return dbError("freeing a session's bytes", err)
		}
		// The rows below would go with the session (ON DELETE CASCADE);
		// deleting them explicitly keeps the deletion independent of it.
		for _, table := range []string{"grants", "roster", "log_records"} {
			if _, err := tx.ExecContext(ctx, s.d.Rebind("DELETE FROM "+table+" WHERE session_id = ?"), id[:]); err != nil {
				return dbError("deleting a session", err)
			}
		}
		_, err = tx.ExecContext(ctx, s.q.deleteRow, id[:])
		return dbError("deleting a session", err)
	})
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
// two grants for one grantee and epoch. This is the handler's bug, not a
// conflict, so the error is no sentinel.
func checkGrants(grants []session.GrantRecord) error {
	type key struct {
		user  string
		epoch uint32
	}
	seen := make(map[key]bool, len(grants))
	for _, g := range grants {
		k := key{g.Grantee, g.Epoch}
		if seen[k] {
			return fmt.Errorf("keyservice: two grants for %q at epoch %d", g.Grantee, g.Epoch)
		}
		seen[k] = true
	}
	return nil
}

// ---- plumbing ----

func (s *sqlStore) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Ready checks the database and its schema, for /readyz.
func (s *sqlStore) Ready(ctx context.Context) error { return s.db.Ready(ctx) }

func (s *sqlStore) Close() error { return s.db.Close() }

// dbError wraps a database error with what the store was doing; nil and
// the store's sentinels pass through unchanged.
func dbError(doing string, err error) error {
	if err == nil || errors.Is(err, keyservice.ErrNotFound) || errors.Is(err, keyservice.ErrConflict) || errors.Is(err, keyservice.ErrForbidden) || errors.Is(err, session.ErrSessionExists) {
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
