package server

import (
	"context"

	"github.com/veilchat/veil/session"
)

// SessionRecord is a session as a [Store] keeps it: the channel its
// genesis names and the head of its membership log.
type SessionRecord struct {
	ID         session.ID
	ChannelCID string
	Head       session.Head
}

// NewSession is a session to store: its genesis (record 0 of the log, the
// session ID's source), the roster the genesis starts and the epoch-0
// grants. The handler has verified all of it (memberlog.Accept); a Store
// keeps the bytes without interpreting them.
type NewSession struct {
	ID         session.ID
	ChannelCID string
	Genesis    []byte
	Hash       [32]byte // the genesis's hash: the log's first head
	Roster     []session.Member
	Grants     []session.GrantRecord
	Quota      Quota // counts the session and its bytes against its creator
}

// Quota is what a write counts against its signer, in the transaction that
// stores it: one session for a [NewSession], and the bytes of the record
// (genesis or change) plus the bytes of the grants it carries — what the
// user signed and uploaded. Cards are not counted (each user's chain is
// its own and short). Sessions count creations: deleting one gives none
// back, so MaxSessions bounds how many a user can ever create. Bytes count
// what is stored: deleting a session frees, for each user, the bytes its
// records and their grants were charged (grants dropped when a member
// leaves stay counted until then). A write that would take User past
// MaxSessions or MaxBytes stores nothing and fails with
// [keyservice.ErrQuotaExceeded]; a write refused for any other reason
// counts nothing.
type Quota struct {
	User        string // whose usage the write counts against; "" counts nothing
	MaxSessions int64  // sessions User may create; zero or less: no limit
	MaxBytes    int64  // bytes User may store; zero or less: no limit
}

// Append is one record to add to a session's log: it must follow Prev, the
// head the handler verified it against. Roster replaces the stored roster.
// Readers are the users who may hold the epoch key in force after the
// record (memberlog's State.Readers): a member who left without a new
// epoch is one, until the next epoch. A user in neither Roster nor Readers
// loses its grants before Grants are stored; one who is only a reader
// keeps them, and reads them again if it is added back before the next
// epoch, when the log gives it no new grant.
type Append struct {
	Prev    session.Head
	Record  []byte   // record Prev.Seq+1
	Hash    [32]byte // its hash: the new head
	Roster  []session.Member
	Readers []string
	Grants  []session.GrantRecord
	Quota   Quota // counts the record's and grants' bytes against its signer
}

// Store is the key service's persistence. Every method is atomic: it either
// applies completely or not at all (one transaction). Implementations must
// be safe for concurrent use by many goroutines and, for PostgreSQL, by
// several processes on one database. Durability: when a method returns
// nil, the change survives a crash of the process.
//
// A Store does not interpret cards or log records: the handler verifies
// them. It keeps each session's roster (who may read, who is an admin) as
// the handler last gave it, and checks a caller against it in the same
// transaction as the read or delete it guards. Where a method takes a
// reader or caller, the empty string means the service itself, which is
// never refused.
//
// Errors: the keyservice package's [keyservice.ErrNotFound],
// [keyservice.ErrConflict], [keyservice.ErrForbidden] and
// [keyservice.ErrQuotaExceeded] (possibly wrapped), and [*session.SessionExistsError]; anything else is a failure
// of the database.
type Store interface {
	// InsertCard stores card (opaque bytes, already verified by the
	// caller) as generation gen of userID. [keyservice.ErrConflict] if
	// that generation exists for the user, or if gen > 0 and generation
	// gen-1 does not exist.
	InsertCard(ctx context.Context, userID string, gen uint32, card []byte) error
	// LatestCards returns the newest card of each listed user that has one.
	LatestCards(ctx context.Context, userIDs []string) (map[string][]byte, error)
	// CardHistory returns every card of a user, generation 0 first;
	// [keyservice.ErrNotFound] if the user has none.
	CardHistory(ctx context.Context, userID string) ([][]byte, error)

	// CreateSession stores a session with its genesis at sequence number
	// 0 as its head, its roster and its grants, and reports true. If the
	// ID exists already it stores nothing: it reports false if that
	// session's genesis is s.Genesis (sent again), else returns
	// [keyservice.ErrConflict]. If the channel has another session it
	// stores nothing and returns a [*session.SessionExistsError] naming
	// it. A session over s.Quota stores nothing and returns
	// [keyservice.ErrQuotaExceeded]; one sent again counts nothing.
	CreateSession(ctx context.Context, s NewSession) (created bool, err error)
	// SessionByChannel returns the session of a channel or
	// [keyservice.ErrNotFound].
	SessionByChannel(ctx context.Context, channelCID string) (session.ID, error)
	// Session returns a session's channel and head, or
	// [keyservice.ErrNotFound]. It checks no rights: it serves the
	// handler's own checks.
	Session(ctx context.Context, id session.ID) (SessionRecord, error)
	// Append adds a record to session id's log if the head is still
	// a.Prev, moves the head to it, replaces the roster, deletes the
	// grants of users in neither a.Roster nor a.Readers and stores
	// a.Grants.
	// [keyservice.ErrNotFound] if no session; [keyservice.ErrConflict] if
	// the head is not a.Prev (another record came first);
	// [keyservice.ErrQuotaExceeded], storing nothing, if the record and
	// grants would take a.Quota's user past its bytes.
	Append(ctx context.Context, id session.ID, a Append) error
	// Log returns session id's records from sequence number from on, in
	// order: at most limit of them, and no more once their sizes add up to
	// maxBytes or more (at least one record when any is left). It also
	// returns the head its records end at or before, read with them.
	// [keyservice.ErrNotFound] if no session; [keyservice.ErrForbidden]
	// if reader is not in its roster.
	Log(ctx context.Context, id session.ID, reader string, from uint32, limit, maxBytes int) ([][]byte, session.Head, error)
	// Head returns session id's head: [keyservice.ErrNotFound] if no
	// session, [keyservice.ErrForbidden] if reader is not in its roster.
	Head(ctx context.Context, id session.ID, reader string) (session.Head, error)
	// Grants returns reader's grants in session id, epoch ascending
	// (possibly none): [keyservice.ErrNotFound] if no session,
	// [keyservice.ErrForbidden] if reader is not in its roster.
	Grants(ctx context.Context, id session.ID, reader string) ([]session.GrantRecord, error)
	// Roster returns session id's roster, sorted by user ID, or
	// [keyservice.ErrNotFound].
	Roster(ctx context.Context, id session.ID) ([]session.Member, error)
	// DeleteSession deletes session id with its log, roster and grants,
	// and frees the bytes they were charged ([Quota]):
	// [keyservice.ErrNotFound] if no session, [keyservice.ErrForbidden]
	// unless caller is an admin in its roster.
	DeleteSession(ctx context.Context, id session.ID, caller string) error

	// Ping checks the database, for /readyz. A Store may also have a
	// method Ready(ctx context.Context) error, which /readyz then calls
	// instead, to check its schema too (the SQL store's does).
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
