package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/veilchat/veil/internal/memberlog"
)

// Records keeps the membership-log records a [Manager] verified, so that
// it can publish them again when its [Service] lost them: a key service
// restored from an older backup serves an older head of a log, and a
// member whose client holds the newer records sends them back (see
// Manager). Implementations must be safe for concurrent use.
type Records interface {
	// Records returns the kept records of session id, record i at index
	// i from the genesis on, or none. The caller does not modify them.
	Records(id ID) ([][]byte, error)
	// KeepRecords keeps records as records from, from+1, … of session
	// id's log. A Manager passes only records it verified, with from at
	// most the number already kept; what the implementation holds already
	// is the same log, and only what extends it is new.
	KeepRecords(ctx context.Context, id ID, from uint32, records [][]byte) error
}

// MemoryRecords is an in-memory [Records]: it keeps every record it is
// given, for its life — as much memory as the logs of the sessions used
// (a change is a few hundred bytes for a few members; a genesis about 70
// bytes per member). The zero value is ready; it is safe for concurrent
// use.
type MemoryRecords struct {
	mu sync.Mutex
	m  map[ID][][]byte
}

// Records implements [Records].
func (r *MemoryRecords) Records(id ID) ([][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.m[id]), nil
}

// KeepRecords implements [Records]. Records past a gap (from beyond the
// number kept) are dropped: the log they belong to is kept from its
// genesis or not at all.
func (r *MemoryRecords) KeepRecords(_ context.Context, id ID, from uint32, records [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	have := r.m[id]
	if int64(from) > int64(len(have)) {
		return nil
	}
	if skip := len(have) - int(from); skip < len(records) {
		if r.m == nil {
			r.m = map[ID][][]byte{}
		}
		for _, rec := range records[skip:] {
			have = append(have, slices.Clone(rec))
		}
		r.m[id] = have
	}
	return nil
}

// keep hands records from, from+1, … of session id to Config.Records. A
// failure to keep them is not the operation's: it only leaves this client
// unable to publish them again after a restore, which another member can
// do.
func (m *Manager) keep(ctx context.Context, id ID, from uint32, records ...[]byte) {
	_ = m.records.KeepRecords(ctx, id, from, records)
}

// heal is healLocked under the session's lock.
func (m *Manager) heal(ctx context.Context, id ID, cause error) (*cacheEntry, error) {
	unlock := m.lockSession(id)
	defer unlock()
	return m.healLocked(ctx, id, cause)
}

// healLocked answers a rollback (cause, matching ErrRollback): it
// publishes again the records the Service lost (republish) and fetches the
// session anew. If the log cannot be healed, the error is cause, with why
// — and ErrFork too when the Service's head is on another history.
func (m *Manager) healLocked(ctx context.Context, id ID, cause error) (*cacheEntry, error) {
	if err := m.republish(ctx, id); errors.Is(err, ErrFork) {
		// Not only behind: on another history. Both are said.
		return nil, fmt.Errorf("%w; %w", cause, err)
	} else if err != nil {
		return nil, fmt.Errorf("%w (publishing the records this client holds again: %v)", cause, err)
	}
	return m.fetchLocked(ctx, id)
}

// republish brings the Service's log of session id back up to this
// client's floor, when the Service's head is an older head of the same
// log — a key service restored from an older backup. It appends the
// records it keeps (Config.Records) after the Service's head, in order,
// each with the grants it needs wrapped anew from the epoch keys this
// client holds; another member may send the same records at the same
// time, which the Service answers as stored. It fails when the Service's
// head is not on the floor's log (a fork), when this client lacks a
// record or an epoch's key, and when the Service still does not reach the
// floor afterwards (a service that hides records rather than lost them).
func (m *Manager) republish(ctx context.Context, id ID) error {
	floor, ok := m.floors.Floor(id)
	if !ok {
		return errors.New("no floor")
	}
	recs, err := m.records.Records(id)
	if err != nil {
		return err
	}
	if int64(len(recs)) <= int64(floor.Seq) {
		return fmt.Errorf("this client keeps %d records of the log, not the %d up to its floor", len(recs), int64(floor.Seq)+1)
	}
	recs = recs[:floor.Seq+1]
	states, err := m.replay(ctx, id, recs)
	if err != nil {
		return err
	}
	if states[floor.Seq].Head() != floor.Hash {
		return fmt.Errorf("%w: the kept records of session %s are not the log of its floor", ErrFork, id)
	}
	var keys *Session
	if e := m.cached(id); e != nil {
		keys = e.s
	}
	for range maxAppendTries {
		head, err := m.cfg.Service.Head(ctx, id)
		if err != nil {
			return err
		}
		if head.Seq >= floor.Seq {
			return nil // healed; fetching verifies the log up to the head
		}
		if states[head.Seq].Head() != head.Hash {
			return fmt.Errorf("%w: session %s at record %d", ErrFork, id, head.Seq)
		}
	records:
		for i := head.Seq + 1; i <= floor.Seq; i++ {
			grants, err := m.regrant(ctx, keys, states[i-1], states[i])
			if err != nil {
				return err
			}
			switch err := m.cfg.Service.Append(ctx, id, recs[i], grants); {
			case errors.Is(err, ErrConflict):
				break records // another member sent one first: read the head again
			case err != nil:
				return err
			}
		}
	}
	return fmt.Errorf("%w: the service's head of session %s stays behind the records sent to it", ErrConflict, id)
}

// replay verifies records, a log from its genesis, and returns the state
// after each.
func (m *Manager) replay(ctx context.Context, id ID, records [][]byte) ([]*memberlog.State, error) {
	out := make([]*memberlog.State, len(records))
	var st *memberlog.State
	for i, raw := range records {
		var err error
		if st, err = m.next(ctx, id, st, raw); err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// regrant wraps again the grants the record that turned before into after
// needs, with keys, the epoch keys this client holds (nil: none).
func (m *Manager) regrant(ctx context.Context, keys *Session, before, after *memberlog.State) ([]GrantRecord, error) {
	need, users := memberlog.GrantsNeeded(before, after)
	if len(users) == 0 {
		return nil, nil
	}
	if keys == nil || !keys.HasEpoch(need) {
		return nil, fmt.Errorf("%w: record %d needs grants of epoch %d, whose key this client does not hold", ErrUnknownEpoch, after.Seq(), need)
	}
	cards, err := m.trustedLatest(ctx, after, users)
	if err != nil {
		return nil, err
	}
	return m.wrap(keys, need, cards)
}

// next verifies raw as the record after st (the genesis of session id when
// st is nil) and returns the state it leads to. A record that breaks the
// log's rules is ErrInvalidLog.
func (m *Manager) next(ctx context.Context, id ID, st *memberlog.State, raw []byte) (*memberlog.State, error) {
	var next *memberlog.State
	var err error
	if st == nil {
		next, err = memberlog.Verify(raw, id, m.cardSource(ctx))
	} else {
		next, err = st.Apply(raw, m.cardSource(ctx))
	}
	if errors.Is(err, memberlog.ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidLog, err)
	}
	return next, err
}
