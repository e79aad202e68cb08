package twoman

import (
	"context"
	"errors"
	"time"
)

// Store errors.
var (
	// ErrNotFound: no such challenge session, identity or password backup.
	ErrNotFound = errors.New("twoman: not found")
	// ErrConflict: a uniqueness rule does not hold.
	ErrConflict = errors.New("twoman: conflict")
)

// ChallengeRecord is a challenge session as stored. Only hashes of the code
// and of the factor value are stored.
type ChallengeRecord struct {
	ID         [16]byte
	UserID     string
	FactorType FactorType
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
	FactorType FactorType
	FactorHash []byte
	Blob       []byte // encrypted on the client under a key the SSKS never sees
	UpdatedAt  time.Time
}

// PasswordRecord is a password-protected backup.
type PasswordRecord struct {
	UserID      string
	LookupHash  []byte // SHA-256 of the lookup secret derived from the passphrase
	Params      []byte // KDF parameters (JSON), returned to clients before they derive
	Blob        []byte
	Failures    int       // consecutive wrong lookups
	LockedUntil time.Time // no attempt is checked before this time
	UpdatedAt   time.Time
}

// Verdict is the outcome of Store.Redeem.
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
	// CreateChallenge stores a new challenge session.
	CreateChallenge(ctx context.Context, rec ChallengeRecord) error
	// CountChallenges counts challenge sessions created since a time for a
	// user, and for a factor hash (for rate limits across replicas).
	CountChallenges(ctx context.Context, userID string, factorHash []byte, since time.Time) (byUser, byFactor int, err error)
	// Redeem checks an answer to challenge id atomically: a session that is
	// used, expired at now, or has maxAttempts wrong answers is Dead; if
	// check(rec) is true the session becomes used (Accepted); otherwise its
	// attempts grow by one (WrongCode). It returns the record as it was
	// before the answer. ErrNotFound for an unknown session.
	Redeem(ctx context.Context, id [16]byte, now time.Time, maxAttempts int, check func(ChallengeRecord) bool) (ChallengeRecord, Verdict, error)

	// Identity returns a user's encrypted identity or ErrNotFound.
	Identity(ctx context.Context, userID string) (IdentityRecord, error)
	// PutIdentity creates or replaces a user's encrypted identity.
	PutIdentity(ctx context.Context, rec IdentityRecord) error
	// DeleteIdentity removes it (ErrNotFound if none).
	DeleteIdentity(ctx context.Context, userID string) error

	// Password returns a user's password backup or ErrNotFound.
	Password(ctx context.Context, userID string) (PasswordRecord, error)
	// PutPassword creates or replaces a password backup.
	PutPassword(ctx context.Context, rec PasswordRecord) error
	// PasswordAttempt records the outcome of a lookup atomically: on
	// success failures reset to 0; on failure they grow by one and, from
	// maxFailures on, LockedUntil = now + lock(failures). It returns the
	// record after the update. Attempts while locked change nothing.
	PasswordAttempt(ctx context.Context, userID string, now time.Time, ok func(PasswordRecord) bool, maxFailures int, lock func(failures int) time.Duration) (PasswordRecord, bool, error)

	// Ping checks the database.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
