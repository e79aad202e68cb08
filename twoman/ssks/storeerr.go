package ssks

import (
	"context"
	"errors"
	"time"

	"github.com/veilchat/veil/twoman"
)

// storeError is a failure of the [Store] that is none of its sentinels: the
// database failed. The handler answers it 503 unavailable, the code the
// API documents for a store that does not answer; it matches
// [twoman.ErrUnavailable].
type storeError struct{ err error }

func (e *storeError) Error() string { return "twoman: the store failed: " + e.err.Error() }

func (e *storeError) Unwrap() error { return e.err }

// Is matches twoman.ErrUnavailable.
func (e *storeError) Is(target error) bool { return target == twoman.ErrUnavailable }

// storeErr returns err, a Store's answer: a sentinel, a cancelled request
// or nil as it is, anything else as a *storeError.
func storeErr(err error) error {
	switch {
	case err == nil,
		errors.Is(err, twoman.ErrNotFound), errors.Is(err, twoman.ErrConflict),
		errors.Is(err, twoman.ErrRateLimited), errors.Is(err, twoman.ErrFactorMismatch),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &storeError{err}
}

// judgedStore is the handler's Store: every error a method returns goes
// through storeErr.
type judgedStore struct{ s Store }

func (j judgedStore) CreateChallenge(ctx context.Context, rec ChallengeRecord, since time.Time, max int) error {
	return storeErr(j.s.CreateChallenge(ctx, rec, since, max))
}

func (j judgedStore) Redeem(ctx context.Context, id [16]byte, now time.Time, maxAttempts int, check func(ChallengeRecord) bool) (ChallengeRecord, Verdict, error) {
	rec, v, err := j.s.Redeem(ctx, id, now, maxAttempts, check)
	return rec, v, storeErr(err)
}

func (j judgedStore) Identity(ctx context.Context, userID string) (IdentityRecord, error) {
	rec, err := j.s.Identity(ctx, userID)
	return rec, storeErr(err)
}

func (j judgedStore) PutIdentity(ctx context.Context, rec IdentityRecord, proof Proof) error {
	return storeErr(j.s.PutIdentity(ctx, rec, proof))
}

func (j judgedStore) DeleteIdentity(ctx context.Context, userID string, proof Proof) error {
	return storeErr(j.s.DeleteIdentity(ctx, userID, proof))
}

func (j judgedStore) Password(ctx context.Context, userID string) (PasswordRecord, error) {
	rec, err := j.s.Password(ctx, userID)
	return rec, storeErr(err)
}

func (j judgedStore) PutPassword(ctx context.Context, rec PasswordRecord, proof *Proof) error {
	return storeErr(j.s.PutPassword(ctx, rec, proof))
}

func (j judgedStore) PasswordAttempt(ctx context.Context, userID string, now time.Time, ok func(PasswordRecord) bool, maxFailures int, lock func(failures int) time.Duration) (PasswordRecord, bool, error) {
	rec, good, err := j.s.PasswordAttempt(ctx, userID, now, ok, maxFailures, lock)
	return rec, good, storeErr(err)
}

func (j judgedStore) Ping(ctx context.Context) error { return storeErr(j.s.Ping(ctx)) }

// Ready passes on the store's readiness check (schema applied) where it
// has one, for /readyz; else it pings.
func (j judgedStore) Ready(ctx context.Context) error {
	if r, ok := j.s.(interface{ Ready(context.Context) error }); ok {
		return storeErr(r.Ready(ctx))
	}
	return j.Ping(ctx)
}

func (j judgedStore) Close() error { return j.s.Close() }
