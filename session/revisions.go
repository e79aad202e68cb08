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
// envelope with the revision of one already opened for the same message
// (the sender signed two versions of one revision), and for an envelope of
// another sender than the one the message was opened as (a member sealed
// an envelope for another's message ID, and the server shows it in its
// place).
var ErrEquivocation = errors.New("session: two different envelopes for one revision of a message")

// revisions remembers, per message, its sender, the highest revision
// opened and the hash of its envelope. Bounded: the least recently seen
// messages are forgotten first (a reader that forgot a message can be
// shown an older revision of it).
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
	sender   string
	revision uint32
	hash     [32]byte
}

func newRevisions(max int) *revisions {
	return &revisions{max: max, lru: list.New(), byKey: map[revKey]*list.Element{}}
}

// admit reports whether envelope, authenticated as msg, may be shown as
// revision msg.Revision of its message — of the sender it was first opened
// as, not older than a revision seen, and not another envelope of a seen
// revision — and if so records it. Both happen under one lock, so that of
// two envelopes opened at once only one passes.
func (r *revisions) admit(id ID, msg Binding, envelope []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := revKey{id, msg.MessageID}
	sum := sha256.Sum256(envelope)
	if el, ok := r.byKey[k]; ok {
		e := el.Value.(*revEntry)
		switch {
		case msg.SenderID != e.sender:
			return fmt.Errorf("%w: message %q was opened as %q's, now as %q's", ErrEquivocation, msg.MessageID, e.sender, msg.SenderID)
		case msg.Revision < e.revision:
			return fmt.Errorf("%w: revision %d of message %q, after revision %d", ErrStaleRevision, msg.Revision, msg.MessageID, e.revision)
		case msg.Revision == e.revision && sum != e.hash:
			return fmt.Errorf("%w: revision %d of message %q", ErrEquivocation, msg.Revision, msg.MessageID)
		}
		e.revision, e.hash = msg.Revision, sum
		r.lru.MoveToFront(el)
		return nil
	}
	r.byKey[k] = r.lru.PushFront(&revEntry{key: k, sender: msg.SenderID, revision: msg.Revision, hash: sum})
	for r.lru.Len() > r.max {
		last := r.lru.Back()
		r.lru.Remove(last)
		delete(r.byKey, last.Value.(*revEntry).key)
	}
	return nil
}
