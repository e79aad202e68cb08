package streamadapter_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

func TestConcurrentCreatorsConverge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	var wg sync.WaitGroup
	chans := make([]*streamadapter.Channel, 2)
	errs := make([]error, 2)
	for i, c := range []*streamadapter.Client{alice, bob} {
		other := map[int]string{0: "bob", 1: "alice"}[i]
		wg.Go(func() { chans[i], errs[i] = c.CreateChannel(ctx, "messaging", "race", []string{other}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, streamadapter.ErrCreateConflict) {
			t.Fatalf("creator %d: %v", i, err)
		}
	}
	if errs[0] == nil && errs[1] == nil && chans[0].SessionID() != chans[1].SessionID() {
		t.Fatal("two creators ended in two sessions")
	}
	// Whoever won, both can talk in the channel's one session.
	a, err := alice.Channel(ctx, "messaging", "race")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bob.Channel(ctx, "messaging", "race")
	if err != nil {
		t.Fatal(err)
	}
	m := mustSend(t, a, &stream.Message{Text: "one session"})
	wantText(t, "bob", read(t, b, m.ID), "one session")
}

func TestChannelErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	sc := e.stream.Client()

	// A plaintext channel.
	if _, err := sc.CreateChannelWithMembers(ctx, "messaging", "plain", "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Channel(ctx, "messaging", "plain"); !errors.Is(err, streamadapter.ErrNotEncrypted) {
		t.Fatalf("plaintext channel: %v, want ErrNotEncrypted", err)
	}

	// session_id pointing at another channel's session.
	one, err := alice.CreateChannel(ctx, "messaging", "one", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Channel("messaging", "plain").PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"session_id": one.SessionID().String()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Channel(ctx, "messaging", "plain"); !errors.Is(err, streamadapter.ErrSessionMismatch) {
		t.Fatalf("borrowed session: %v, want ErrSessionMismatch", err)
	}
	// A session_id that is not one.
	if _, err := sc.Channel("messaging", "plain").PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"session_id": "not-a-session"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Channel(ctx, "messaging", "plain"); !errors.Is(err, streamadapter.ErrSessionMismatch) {
		t.Fatalf("garbage session_id: %v, want ErrSessionMismatch", err)
	}

	// The channel's session_id replaced after bob opened it.
	bone, err := bob.Channel(ctx, "messaging", "one")
	if err != nil {
		t.Fatal(err)
	}
	two, err := alice.CreateChannel(ctx, "messaging", "two", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Channel("messaging", "one").PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"session_id": two.SessionID().String()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bone.Query(ctx, nil); !errors.Is(err, streamadapter.ErrSessionMismatch) {
		t.Fatalf("session_id swapped under an open channel: %v, want ErrSessionMismatch", err)
	}
	if _, err := bob.Channel(ctx, "messaging", "one"); !errors.Is(err, streamadapter.ErrSessionMismatch) {
		t.Fatalf("reopening a channel whose session_id was swapped: %v, want ErrSessionMismatch", err)
	}

	// Sending: limits and refusals, before anything reaches Stream.
	before := len(e.stream.Snapshot().Messages)
	long := strings.Repeat("x", 4000)
	_, err = two.SendMessage(ctx, &stream.Message{Text: long})
	if !errors.Is(err, streamadapter.ErrTooLong) || !strings.Contains(err.Error(), "at most 3583") {
		t.Fatalf("too long: %v", err)
	}
	if _, err := two.SendMessage(ctx, &stream.Message{Text: "look", Attachments: []*stream.Attachment{{Type: "image", Title: "holiday.jpg"}}}); !errors.Is(err, streamadapter.ErrPlaintextAttachment) {
		t.Fatalf("plaintext attachment: %v", err)
	}
	if _, err := two.SendMessage(ctx, &stream.Message{Text: "x", ExtraData: map[string]any{streamadapter.FieldRevision: 3}}); err == nil {
		t.Fatal("a reserved custom field was accepted")
	}
	if n := len(e.stream.Snapshot().Messages); n != before {
		t.Fatalf("%d messages reached Stream", n-before)
	}

	// Only the sender edits.
	m := mustSend(t, two, &stream.Message{Text: "mine"})
	btwo, err := bob.Channel(ctx, "messaging", "two")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := btwo.UpdateMessage(ctx, m.ID, &stream.Message{Text: "bob's now"}); !errors.Is(err, streamadapter.ErrNotSender) {
		t.Fatalf("bob edits alice's message: %v, want ErrNotSender", err)
	}

	// QueryChannels: bob's channels, each opened, the plaintext one flagged.
	states, err := bob.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"type": "messaging"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range states {
		cid := st.Stream.CID
		seen[cid] = true
		switch cid {
		case "messaging:two":
			if st.Err != nil || st.Channel == nil || len(st.Messages) != 1 || st.Messages[0].Text != "mine" {
				t.Fatalf("%s: %v %v", cid, st.Err, st.Messages)
			}
		case "messaging:plain", "messaging:one":
			if st.Err == nil || st.Channel != nil {
				t.Fatalf("%s opened: %v", cid, st.Err)
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("bob's channels: %v", seen)
	}
}
