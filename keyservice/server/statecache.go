package server

import (
	"container/list"
	"sync"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

// stateCache keeps the verified membership-log state of recently used
// sessions, least recently used out, within an estimate of their memory.
// A state is only ever used at the head the store has (Handler.state
// compares them), so the cache is keyed, in effect, by (session ID, head
// sequence number, head hash): one entry per session, its newest state.
// Safe for concurrent use.
type stateCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	entries map[session.ID]*list.Element // values are *stateEntry
	lru     list.List                    // front: most recently used
}

type stateEntry struct {
	id     session.ID
	st     *memberlog.State
	weight int64
}

func newStateCache(maxBytes int64) *stateCache {
	return &stateCache{max: maxBytes, entries: map[session.ID]*list.Element{}}
}

// weight estimates the memory a state holds: its roster (an entry and a
// reader per member) and a key commitment per epoch.
func weight(st *memberlog.State) int64 {
	w := int64(256) + 32*(int64(st.Epoch())+1)
	for _, m := range st.Members() {
		w += 2*int64(len(m.UserID)) + 96
	}
	return w
}

// get returns the state cached for id, or nil.
func (c *stateCache) get(id session.ID) *memberlog.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[id]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*stateEntry).st
}

// put caches st as id's state, replacing the one held, and evicts the
// least recently used states until the estimate fits. A state larger than
// the whole cache is not kept.
func (c *stateCache) put(id session.ID, st *memberlog.State) {
	w := weight(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	if w > c.max {
		return
	}
	c.entries[id] = c.lru.PushFront(&stateEntry{id: id, st: st, weight: w})
	c.size += w
	for c.size > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *stateCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*stateEntry)
	delete(c.entries, e.id)
	c.size -= e.weight
}
