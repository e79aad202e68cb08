package server

import (
	"context"
	"errors"
	"time"

	"github.com/veilchat/veil/session"
)

// [Store] errors. Store implementations return exactly these, or the
// keyservice package's [keyservice.ErrNotFound], [keyservice.ErrConflict] and [keyservice.ErrForbidden] (possibly
// wrapped), so that the handler maps them to stable API codes.
var (
	// ErrTooManyEpochs: Rotate from epoch 4294967295, after which no epoch
	// number is left.
	ErrTooManyEpochs = errors.New("keyservice: no epoch after 4294967295")
)

// SessionRecord is a session's row.
type SessionRecord struct {
	ID         session.ID
	ChannelCID string
	Epoch      uint32
	CreatedBy  string
	CreatedAt  time.Time
}

// IdempotencyRecord is the stored outcome of a create request, replayed
// when the same caller retries with the same key.
type IdempotencyRecord struct {
	UserID      string
	Key         string
	RequestHash []byte // SHA-256 of the request body; a different body under the same key is a conflict
	Status      int    // HTTP status of the first response
	Response    []byte // body of the first response
	CreatedAt   time.Time
}

// Store is the key service's persistence. Every method is atomic: it either
// applies completely or not at all (one transaction). Implementations must be
// safe for concurrent use by many goroutines and, for PostgreSQL, by several
// processes on one database. Durability: when a method returns nil, the
// change survives a crash of the process (SQLite: WAL with synchronous=FULL
// or NORMAL+checkpointing as documented; PostgreSQL: committed).
type Store interface {
	// InsertCard stores card (opaque bytes, already verified by the caller)
	// as generation gen of userID. [keyservice.ErrConflict] if that generation exists
	// for the user, or if gen > 0 and generation gen-1 does not exist.
	InsertCard(ctx context.Context, userID string, gen uint32, card []byte) error
	// LatestCards returns the newest card of each listed user that has one.
	LatestCards(ctx context.Context, userIDs []string) (map[string][]byte, error)
	// CardHistory returns every card of a user, generation 0 first;
	// [keyservice.ErrNotFound] if the user has none.
	CardHistory(ctx context.Context, userID string) ([][]byte, error)

	// CreateSession inserts a session at epoch 0, its members (the creator
	// is admin, every grantee a member since epoch 0) and its grants. If the
	// channel already has a session it stores nothing and returns that
	// session's ID with created false. [keyservice.ErrConflict] if the session ID exists.
	CreateSession(ctx context.Context, rec SessionRecord, grants []session.GrantRecord) (id session.ID, created bool, err error)
	// SessionByChannel returns the session of a channel or [keyservice.ErrNotFound].
	SessionByChannel(ctx context.Context, channelCID string) (session.ID, error)
	// Session returns a session and its members (sorted by user ID), or
	// [keyservice.ErrNotFound].
	Session(ctx context.Context, id session.ID) (SessionRecord, []session.Member, error)
	// Grants returns userID's grants in the session, epoch ascending
	// (possibly none).
	Grants(ctx context.Context, id session.ID, userID string) ([]session.GrantRecord, error)
	// Extend, atomically: [keyservice.ErrNotFound] if no session; [keyservice.ErrForbidden] unless
	// caller is a member; [keyservice.ErrConflict] unless the session is at atEpoch and
	// no grantee is already a member; then adds every grantee as a member
	// since atEpoch (not admin) and stores the grants (all for atEpoch).
	Extend(ctx context.Context, id session.ID, caller string, atEpoch uint32, grants []session.GrantRecord) error
	// Rotate, atomically: [ErrTooManyEpochs] if fromEpoch is 4294967295
	// (checked first, whatever the session); [keyservice.ErrNotFound] if no session;
	// [keyservice.ErrForbidden] unless caller is an admin member; [keyservice.ErrConflict] unless the
	// session is at fromEpoch; then sets the epoch to fromEpoch+1, deletes the members in
	// remove and all their grants, adds grantees that are not members yet
	// (since fromEpoch+1, not admin), and stores the grants (all for
	// fromEpoch+1). If a member is then left without a grant for the new
	// epoch (one was added since the caller read the membership), it
	// stores nothing and returns keyservice.ErrConflict.
	Rotate(ctx context.Context, id session.ID, caller string, fromEpoch uint32, remove []string, grants []session.GrantRecord) error
	// SetAdmin, atomically: [keyservice.ErrForbidden] unless caller is an admin member;
	// [keyservice.ErrNotFound] if userID is not a member; then sets its admin flag.
	SetAdmin(ctx context.Context, id session.ID, caller, userID string, admin bool) error
	// DeleteSession, atomically: [keyservice.ErrForbidden] unless caller is an admin
	// member (an empty caller means the service itself and is always
	// allowed); deletes the session, members and grants.
	DeleteSession(ctx context.Context, id session.ID, caller string) error

	// Idempotency returns the record stored for (userID, key) or
	// [keyservice.ErrNotFound].
	Idempotency(ctx context.Context, userID, key string) (IdempotencyRecord, error)
	// PutIdempotency stores a record; [keyservice.ErrConflict] if (userID, key) exists.
	PutIdempotency(ctx context.Context, rec IdempotencyRecord) error

	// Ping checks the database (for /healthz).
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
