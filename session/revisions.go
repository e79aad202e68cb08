package session

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

// ErrStaleRevision is returned by Manager.Open for an edit older than one
// already opened for the same message: a server replaying an old revision
// as current. Show the newer revision already held instead.
var ErrStaleRevision = errors.New("session: an older revision of a message than one already seen")

// ErrEquivocation is returned by Manager.Open for a second, different
// envelope with the revision of one already opened for the same message:
// the sender signed two versions of one revision.
var ErrEquivocation = errors.New("session: two different envelopes for one revision of a message")

// revisions remembers, per message, the highest revision opened and the
// hash of its envelope. Bounded: the least recently seen messages are
// forgotten first (a reader that forgot a message can be shown an older
// revision of it).
type revisions struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *revEntry, most recent first
	byKey map[revKey]*list.Element
}

type revKey struct {
	session ID
	message string
}

type revEntry struct {
	key      revKey
	revision uint32
	hash     [32]byte
}

func newRevisions(max int) *revisions {
	return &revisions{max: max, lru: list.New(), byKey: map[revKey]*list.Element{}}
}

// check reports whether envelope may be shown as revision rev of the
// message: not older than one seen, and not another envelope for a seen
// revision.
func (r *revisions) check(id ID, msg Binding, envelope []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.byKey[revKey{id, msg.MessageID}]
	if !ok {
		return nil
	}
	e := el.Value.(*revEntry)
	switch {
	case msg.Revision < e.revision:
		return fmt.Errorf("%w: revision %d of message %q, after revision %d", ErrStaleRevision, msg.Revision, msg.MessageID, e.revision)
	case msg.Revision == e.revision && sha256.Sum256(envelope) != e.hash:
		return fmt.Errorf("%w: revision %d of message %q", ErrEquivocation, msg.Revision, msg.MessageID)
	}
	return nil
}

// record notes an opened envelope.
func (r *revisions) record(id ID, msg Binding, envelope []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := revKey{id, msg.MessageID}
	if el, ok := r.byKey[k]; ok {
		e := el.Value.(*revEntry)
		if msg.Revision > e.revision {
			e.revision, e.hash = msg.Revision, sha256.Sum256(envelope)
		}
		r.lru.MoveToFront(el)
		return
	}
	r.byKey[k] = r.lru.PushFront(&revEntry{key: k, revision: msg.Revision, hash: sha256.Sum256(envelope)})
	for r.lru.Len() > r.max {
		last := r.lru.Back()
		r.lru.Remove(last)
		delete(r.byKey, last.Value.(*revEntry).key)
	}
}
