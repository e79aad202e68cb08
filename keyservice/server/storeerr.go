package server

import (
	"context"
	"errors"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/session"
)

// storeError is a failure of the [Store] that is none of its sentinels: by
// the Store's contract, the database failed (unreachable, down, full). The
// handler answers it 503 unavailable, which clients retry, and logs it; it
// matches [keyservice.ErrUnavailable].
type storeError struct{ err error }

func (e *storeError) Error() string { return "keyservice: the store failed: " + e.err.Error() }

func (e *storeError) Unwrap() error { return e.err }

// Is matches keyservice.ErrUnavailable.
func (e *storeError) Is(target error) bool { return target == keyservice.ErrUnavailable }

// storeErr returns err, a Store's answer, as the handler judges it: a
// sentinel, a cancelled request or nil as it is, anything else as a
// *storeError.
func storeErr(err error) error {
	var exists *session.SessionExistsError
	switch {
	case err == nil,
		errors.Is(err, keyservice.ErrNotFound), errors.Is(err, keyservice.ErrConflict),
		errors.Is(err, keyservice.ErrForbidden), errors.Is(err, keyservice.ErrQuotaExceeded),
		errors.As(err, &exists),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &storeError{err}
}

// judgedStore is the handler's Store: every error a method returns goes
// through storeErr.
type judgedStore struct{ s Store }

func (j judgedStore) InsertCard(ctx context.Context, userID string, gen uint32, card []byte) error {
	return storeErr(j.s.InsertCard(ctx, userID, gen, card))
}

func (j judgedStore) LatestCards(ctx context.Context, userIDs []string) (map[string][]byte, error) {
	m, err := j.s.LatestCards(ctx, userIDs)
	return m, storeErr(err)
}

func (j judgedStore) CardHistory(ctx context.Context, userID string) ([][]byte, error) {
	h, err := j.s.CardHistory(ctx, userID)
	return h, storeErr(err)
}

func (j judgedStore) CreateSession(ctx context.Context, s NewSession) (bool, error) {
	created, err := j.s.CreateSession(ctx, s)
	return created, storeErr(err)
}

func (j judgedStore) SessionByChannel(ctx context.Context, channelCID string) (session.ID, error) {
	id, err := j.s.SessionByChannel(ctx, channelCID)
	return id, storeErr(err)
}

func (j judgedStore) Session(ctx context.Context, id session.ID) (SessionRecord, error) {
	r, err := j.s.Session(ctx, id)
	return r, storeErr(err)
}

func (j judgedStore) Append(ctx context.Context, id session.ID, a Append) error {
	return storeErr(j.s.Append(ctx, id, a))
}

func (j judgedStore) Log(ctx context.Context, id session.ID, reader string, from uint32, limit, maxBytes int) ([][]byte, session.Head, error) {
	records, head, err := j.s.Log(ctx, id, reader, from, limit, maxBytes)
	return records, head, storeErr(err)
}

func (j judgedStore) Head(ctx context.Context, id session.ID, reader string) (session.Head, error) {
	h, err := j.s.Head(ctx, id, reader)
	return h, storeErr(err)
}

func (j judgedStore) Grants(ctx context.Context, id session.ID, reader string) ([]session.GrantRecord, error) {
	g, err := j.s.Grants(ctx, id, reader)
	return g, storeErr(err)
}

func (j judgedStore) Roster(ctx context.Context, id session.ID) ([]session.Member, error) {
	r, err := j.s.Roster(ctx, id)
	return r, storeErr(err)
}

func (j judgedStore) DeleteSession(ctx context.Context, id session.ID, caller string) error {
	return storeErr(j.s.DeleteSession(ctx, id, caller))
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
