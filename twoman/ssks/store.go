package ssks

import (
	"context"
	"time"

	"github.com/veilchat/veil/twoman"
)

// Proof is the factor a challenge session was answered on, as stored: its
// type and keyed hash. Writes to a user's identity or password backup carry
// the proof that authorizes them.
type Proof struct {
	FactorType twoman.FactorType
	FactorHash []byte
}

// ChallengeRecord is a challenge session as stored. Only hashes of the code
// and of the factor value are stored.
type ChallengeRecord struct {
	ID         [16]byte
	UserID     string
	FactorType twoman.FactorType
	FactorHash []byte // keyed hash of the normalized factor value
	CodeHash   []byte // keyed hash of the code (bound to ID)
	MustAuth   bool   // the code is required (the user already has an identity, or force_auth)
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Attempts   int  // wrong answers so far
	Used       bool // a right answer was given; the session cannot be used again
}

// IdentityRecord is a user's encrypted identity and factor.
type IdentityRecord struct {
	UserID     string
	FactorType twoman.FactorType
	FactorHash []byte
	Blob       []byte // encrypted on the client under a key the SSKS never sees
	UpdatedAt  time.Time
}

// PasswordRecord is a password-protected backup.
type PasswordRecord struct {
	UserID      string
	FactorType  twoman.FactorType // the factor whose challenge created it ("" for none)
	FactorHash  []byte
	LookupHash  []byte // keyed hash (under Config.HashKey) of the lookup secret derived from the passphrase
	Params      []byte // KDF parameters (JSON), returned to clients before they derive
	Salt        []byte // the KDF's random salt, drawn by the client at every save and returned with Params
	Blob        []byte
	Failures    int       // consecutive wrong lookups
	LockedUntil time.Time // no attempt is checked before this time
	UpdatedAt   time.Time
}

// Verdict is the outcome of [Store.Redeem].
type Verdict int

const (
	// Accepted: the code matched (or was not required); the session is
	// now used.
	Accepted Verdict = iota
	// WrongCode: the code did not match; the attempt was counted.
	WrongCode
	// Dead: too many wrong answers, already used, or expired.
	Dead
)

// Store is the SSKS persistence. Every method is atomic. Implementations
// must be safe for concurrent use (and, for PostgreSQL, across processes).
type Store interface {
	// CreateChallenge stores a new challenge session, unless max sessions
	// were already created since `since` for its user or for its factor
	// hash: then it returns [twoman.ErrRateLimited] and stores nothing. The count and
	// the insert are atomic, across replicas too: concurrent calls cannot
	// all pass the count.
	CreateChallenge(ctx context.Context, rec ChallengeRecord, since time.Time, max int) error
	// Redeem checks an answer to challenge id atomically: a session that is
	// used, expired at now, or has maxAttempts wrong answers is Dead; if
	// check(rec) is true the session becomes used (Accepted); otherwise its
	// attempts grow by one (WrongCode). It returns the record as it was
	// before the answer. [twoman.ErrNotFound] for an unknown session.
	Redeem(ctx context.Context, id [16]byte, now time.Time, maxAttempts int, check func(ChallengeRecord) bool) (ChallengeRecord, Verdict, error)

	// Identity returns a user's encrypted identity or [twoman.ErrNotFound].
	Identity(ctx context.Context, userID string) (IdentityRecord, error)
	// PutIdentity creates a user's encrypted identity, or replaces it if the
	// stored one is registered with the factor of proof; otherwise it
	// returns [twoman.ErrFactorMismatch] and changes nothing. rec's factor is the one
	// registered from then on (it differs from proof's on a factor change).
	// The check and the write are atomic.
	PutIdentity(ctx context.Context, rec IdentityRecord, proof Proof) error
	// DeleteIdentity removes a user's identity if it is registered with the
	// factor of proof: [twoman.ErrNotFound] if there is none, [twoman.ErrFactorMismatch]
	// (nothing removed) if it is registered with another.
	DeleteIdentity(ctx context.Context, userID string, proof Proof) error

	// Password returns a user's password backup or [twoman.ErrNotFound].
	Password(ctx context.Context, userID string) (PasswordRecord, error)
	// PutPassword creates or replaces a password backup. With a proof (the
	// write is authorized by a challenge session), it creates the backup,
	// bound to the proof's factor, or replaces one bound to that same
	// factor; a backup bound to another factor, or to none, is left alone
	// and [twoman.ErrFactorMismatch] returned. Without a proof (the caller checked
	// the current passphrase), it replaces the existing backup and keeps
	// its binding ([twoman.ErrNotFound] if there is none). The check and the write
	// are atomic.
	PutPassword(ctx context.Context, rec PasswordRecord, proof *Proof) error
	// PasswordAttempt records the outcome of a lookup atomically: on
	// success failures reset to 0; on failure they grow by one and, from
	// maxFailures on, LockedUntil = now + lock(failures). It returns the
	// record after the update. Attempts while locked change nothing.
	PasswordAttempt(ctx context.Context, userID string, now time.Time, ok func(PasswordRecord) bool, maxFailures int, lock func(failures int) time.Duration) (PasswordRecord, bool, error)

	// Ping checks the database, for /readyz. A Store may also have a
	// method Ready(ctx context.Context) error, which /readyz then calls
	// instead, to check its schema too (the SQL store's does).
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
