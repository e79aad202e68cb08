package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRevisionKeepsItsSender: a message opened as one member's is not
// shown afterwards as another member's higher revision. Another member can
// seal an envelope for any message ID; Stream serving it in place of the
// message (with the sender changed) would otherwise replace the message's
// author and text for a reader who saw the original, and refuse the
// original sender's later edits as stale.
func TestRevisionKeepsItsSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	sealAs := func(m *Manager, rev uint32, text string) (string, Binding) {
		b := Binding{ChannelCID: cid, MessageID: "m1", SenderID: m.Identity().UserID(), Revision: rev}
		out, err := m.SealText(ctx, s.ID(), b, []byte(text), 5000)
		if err != nil {
			t.Fatal(err)
		}
		return out, b
	}
	a0, ab0 := sealAs(alice, 0, "I approve the budget")
	c1, cb1 := sealAs(carol, 1, "I reject the budget")
	a1, ab1 := sealAs(alice, 1, "I approve the budget, amended")
	for _, tc := range []struct {
		name, reason string
		text         string
		b            Binding
		want         error
	}{
		{"alice's message", "first sight", a0, ab0, nil},
		{"carol's revision of it", "another sender for a message opened as alice's", c1, cb1, ErrEquivocation},
		{"alice's edit", "the sender's own edit still opens", a1, ab1, nil},
	} {
		_, err := bob.OpenText(ctx, tc.text, tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v (%s)", tc.name, err, tc.want, tc.reason)
		}
	}
}

// TestRevisionRuleUnderConcurrency: two different envelopes of one
// revision opened at the same time, by two goroutines sharing a Manager,
// never both open: the revision rule is checked and recorded at once.
func TestRevisionRuleUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	both := 0
	for i := range 300 {
		id := fmt.Sprintf("m%d", i)
		texts := []string{seal(t, alice, s.ID(), id, "version one"), seal(t, alice, s.ID(), id, "version two")}
		var opened atomic.Int32
		var wg sync.WaitGroup
		for _, text := range texts {
			wg.Go(func() {
				if _, err := open(bob, "alice", id, text); err == nil {
					opened.Add(1)
				} else if !errors.Is(err, ErrEquivocation) {
					t.Errorf("%s: %v", id, err)
				}
			})
		}
		wg.Wait()
		if opened.Load() == 2 {
			both++
		}
	}
	if both > 0 {
		t.Fatalf("both versions of one revision opened in %d of 300 races", both)
	}
}
