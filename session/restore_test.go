package session

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
)

// snapshot returns a copy of the service's sessions, as a backup holds
// them; restore puts a copy of one back.
func (m *MemoryService) snapshot() (map[ID]*memSession, map[string]ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copySessions(m.sessions), maps.Clone(m.byChannel)
}

func (m *MemoryService) restore(sessions map[ID]*memSession, byChannel map[string]ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions, m.byChannel = copySessions(sessions), maps.Clone(byChannel)
}

func copySessions(in map[ID]*memSession) map[ID]*memSession {
	out := make(map[ID]*memSession, len(in))
	for id, s := range in {
		c := &memSession{records: slices.Clone(s.records), state: s.state, grants: map[string][]GrantRecord{}}
		for u, g := range s.grants {
			c.grants[u] = slices.Clone(g)
		}
		out[id] = c
	}
	return out
}

// TestRestoreHealsThroughRecords restores a service to an older state: a
// client that kept the newer records heals the log; one restarted since
// (floors kept, records not) cannot, reports the rollback, and works once
// another member has healed it; and a service whose log went another way
// since the restore is a fork, which nobody heals.
func TestRestoreHealsThroughRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	seal(t, bob, s.ID(), "m0", "before")
	backup, byChannel := w.svc.snapshot()
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	seal(t, bob, s.ID(), "m1", "after") // bob's floor: record 1
	w.svc.restore(backup, byChannel)

	restarted := as(t, &w, bob, w.svc.As("bob"), nil, 0) // bob's floors and pins, none of his records
	if _, err := restarted.SealText(ctx, s.ID(), ctxFor("bob", "m2"), []byte("x"), 5000); !errors.Is(err, ErrRollback) {
		t.Fatalf("a restarted client without the records: %v, want ErrRollback", err)
	}
	text := seal(t, bob, s.ID(), "m2", "healed")
	if h, err := w.svc.As("alice").Head(ctx, s.ID()); err != nil || h.Seq != 1 {
		t.Fatalf("the head after bob healed: %+v, %v; want record 1", h, err)
	}
	if got, err := open(alice, "bob", "m2", text); err != nil || got != "healed" {
		t.Fatalf("alice opens: %q, %v", got, err)
	}
	if _, err := open(carol, "bob", "m2", text); err == nil {
		t.Fatal("carol, removed again, opened a message sealed after the healing")
	}
	seal(t, restarted, s.ID(), "m3", "the restarted client works once the log is healed")

	// Restored again, and carol, still a member there, rotates first: the
	// service's log now goes another way than the one bob verified.
	w.svc.restore(backup, byChannel)
	if err := carol.Rotate(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SealText(ctx, s.ID(), ctxFor("bob", "m4"), []byte("x"), 5000); !errors.Is(err, ErrFork) {
		t.Fatalf("a restored log that went another way: %v, want ErrFork", err)
	}
}
