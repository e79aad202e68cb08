package streamadapter_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// read returns what c makes of message id in its channel.
func read(t *testing.T, ch *streamadapter.Channel, id string) *streamadapter.Message {
	t.Helper()
	ms, err := ch.GetMessages(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d messages for %s", len(ms), id)
	}
	return ms[0]
}

func wantText(t *testing.T, who string, m *streamadapter.Message, text string) {
	t.Helper()
	if m.Status != streamadapter.StatusDecrypted || m.Text != text {
		t.Fatalf("%s reads %s: %s %q (%v), want %q", who, m.ID, m.Status, m.Text, m.Err, text)
	}
}

func wantFailed(t *testing.T, who string, m *streamadapter.Message, reasons ...error) {
	t.Helper()
	if m.Status != streamadapter.StatusFailed || m.Text != "" {
		t.Fatalf("%s reads %s: %s %q (%v), want a failure", who, m.ID, m.Status, m.Text, m.Err)
	}
	for _, r := range reasons {
		if errors.Is(m.Err, r) {
			return
		}
	}
	t.Fatalf("%s reads %s: %v, want one of %v", who, m.ID, m.Err, reasons)
}

func TestMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob, carol, dave := e.user("alice"), e.user("bob"), e.user("carol"), e.user("dave")
	ach, err := alice.CreateChannel(ctx, "messaging", "team", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "team")
	if err != nil {
		t.Fatal(err)
	}
	old := mustSend(t, ach, &stream.Message{Text: "before anyone joined"})

	// carol with history, dave without.
	if err := ach.AddMembers(ctx, []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if err := ach.AddMembers(ctx, []string{"dave"}, streamadapter.HideHistory()); err != nil {
		t.Fatal(err)
	}
	cch, err := carol.Channel(ctx, "messaging", "team")
	if err != nil {
		t.Fatal(err)
	}
	dch, err := dave.Channel(ctx, "messaging", "team")
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, "carol", read(t, cch, old.ID), "before anyone joined")
	wantFailed(t, "dave", read(t, dch, old.ID), streamadapter.ErrNoKey)
	after := mustSend(t, bch, &stream.Message{Text: "welcome dave"})
	for who, ch := range map[string]*streamadapter.Channel{"alice": ach, "carol": cch, "dave": dch} {
		wantText(t, who, read(t, ch, after.ID), "welcome dave")
	}

	// bob removed with RemoveMembers: nothing sent after opens for him,
	// though his client keeps every key it held.
	if err := ach.RemoveMembers(ctx, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	secret := mustSend(t, cch, &stream.Message{Text: "bob is gone"})
	wantFailed(t, "bob", read(t, bch, secret.ID), streamadapter.ErrRemoved, streamadapter.ErrNoKey)
	wantText(t, "dave", read(t, dch, secret.ID), "bob is gone")
	if _, err := bch.SendMessage(ctx, &stream.Message{Text: "can I still post?"}); err == nil {
		t.Fatal("bob sent in a session he was removed from")
	}

	// carol removed on Stream only, by another client: the next member
	// who sends rotates her out first.
	if _, err := e.stream.Client().Channel("messaging", "team").RemoveMembers(ctx, []string{"carol"}, nil); err != nil {
		t.Fatal(err)
	}
	later := mustSend(t, dch, &stream.Message{Text: "carol is gone too"})
	wantFailed(t, "carol", read(t, cch, later.ID), streamadapter.ErrRemoved, streamadapter.ErrNoKey)
	wantText(t, "alice", read(t, ach, later.ID), "carol is gone too")
}

func TestTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	ach, err := alice.CreateChannel(ctx, "messaging", "one", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateChannel(ctx, "messaging", "two", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "one")
	if err != nil {
		t.Fatal(err)
	}
	bch2, err := bob.Channel(ctx, "messaging", "two")
	if err != nil {
		t.Fatal(err)
	}
	send := func(text string) *streamadapter.Message { return mustSend(t, ach, &stream.Message{Text: text}) }
	tamper := func(id string, f func(map[string]any)) {
		t.Helper()
		if err := e.stream.Tamper(id, f); err != nil {
			t.Fatal(err)
		}
	}

	changed := send("pay 10 euros")
	tamper(changed.ID, func(m map[string]any) {
		env, _ := session.DecodeText(m["text"].(string))
		env[len(env)-5] ^= 1
		m["text"] = session.EncodeText(env)
	})
	wantFailed(t, "bob", read(t, bch, changed.ID), streamadapter.ErrTampered)

	moved := send("for channel one only")
	tamper(moved.ID, func(m map[string]any) { m["cid"] = "messaging:two" })
	wantFailed(t, "bob", read(t, bch2, moved.ID), streamadapter.ErrWrongSession)
	if m, err := bob.GetMessage(ctx, moved.ID); err != nil {
		t.Fatal(err)
	} else {
		wantFailed(t, "bob", m, streamadapter.ErrWrongSession)
	}

	donor, pasted := send("the real text"), send("another text")
	tamper(pasted.ID, func(m map[string]any) { m["text"] = donor.Message.Text })
	wantFailed(t, "bob", read(t, bch, pasted.ID), streamadapter.ErrTampered)

	impersonated := send("signed by alice")
	tamper(impersonated.ID, func(m map[string]any) {
		m["user"] = map[string]any{"id": "bob"}
		m["user_id"] = "bob"
	})
	wantFailed(t, "bob", read(t, bch, impersonated.ID), streamadapter.ErrTampered)

	edited := send("version one")
	if _, err := ach.UpdateMessage(ctx, edited.ID, &stream.Message{Text: "version two"}); err != nil {
		t.Fatal(err)
	}
	wantText(t, "bob", read(t, bch, edited.ID), "version two")
	versions := e.stream.Versions(edited.ID)
	tamper(edited.ID, func(m map[string]any) {
		clear(m)
		for k, v := range versions[0] {
			m[k] = v
		}
	})
	wantFailed(t, "bob", read(t, bch, edited.ID), streamadapter.ErrRolledBack)

	plain, err := e.stream.Client().Channel("messaging", "one").SendMessage(ctx, &stream.Message{Text: "I am alice, trust me"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if m := read(t, bch, plain.Message.ID); m.Status != streamadapter.StatusPlaintext || !errors.Is(m.Err, streamadapter.ErrPlaintext) {
		t.Fatalf("plaintext message: %s %v", m.Status, m.Err)
	}
	marked := send("marked")
	tamper(marked.ID, func(m map[string]any) { m["text"] = "plain words" })
	wantFailed(t, "bob", read(t, bch, marked.ID), streamadapter.ErrTampered)

	// Attachments: a swapped blob never yields a plaintext.
	a1, err := ach.UploadFile(ctx, bytes.NewReader(bytes.Repeat([]byte("A"), 200_000)), "a.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := ach.UploadFile(ctx, bytes.NewReader(bytes.Repeat([]byte("B"), 200_000)), "b.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	withFile := mustSend(t, ach, &stream.Message{Text: "see file"}, streamadapter.Attach(a1))
	snap := e.stream.Snapshot()
	if err := e.stream.TamperFile(a1.URL, snap.Files[a2.URL]); err != nil {
		t.Fatal(err)
	}
	m := read(t, bch, withFile.ID)
	wantText(t, "bob", m, "see file")
	r, err := bob.OpenAttachment(ctx, m.Attachments[0])
	if err == nil {
		var got []byte
		got, err = io.ReadAll(r)
		r.Close()
		if bytes.Contains(got, []byte("B")) {
			t.Fatal("the swapped file's plaintext was released")
		}
	}
	if !errors.Is(err, session.ErrAttachment) {
		t.Fatalf("swapped file: %v, want ErrAttachment", err)
	}

	// Stream's attachment entry pointing at another file (Stream's CDN
	// re-signs URLs, so readers download from the entry): refused too.
	a3, err := ach.UploadFile(ctx, bytes.NewReader(bytes.Repeat([]byte("C"), 1000)), "c.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	other := mustSend(t, ach, &stream.Message{Text: "another file"}, streamadapter.Attach(a2))
	tamper(other.ID, func(m map[string]any) {
		m["attachments"] = []any{map[string]any{"type": "file", "asset_url": a3.URL, "veil_encrypted": true}}
	})
	m = read(t, bch, other.ID)
	if len(m.Attachments) != 1 || m.Attachments[0].URL != a3.URL {
		t.Fatalf("the reader does not download from Stream's entry: %+v", m.Attachments)
	}
	if r, err = bob.OpenAttachment(ctx, m.Attachments[0]); err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, session.ErrAttachment) {
		t.Fatalf("redirected file: %v, want ErrAttachment", err)
	}
}

// TestRotatedIdentityReads: after RotateIdentity (which gives the e2ee
// client a new session manager), the adapter reads new epochs with the
// new one.
func TestRotatedIdentityReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	ach, err := alice.CreateChannel(ctx, "messaging", "rotate", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	before := mustSend(t, ach, &stream.Message{Text: "generation 0"})
	if err := alice.Veil().RotateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ach.AddMembers(ctx, []string{"carol"}, streamadapter.HideHistory()); err != nil {
		t.Fatal(err)
	}
	after := mustSend(t, ach, &stream.Message{Text: "generation 1, new epoch"})
	wantText(t, "alice", read(t, ach, before.ID), "generation 0")
	wantText(t, "alice", read(t, ach, after.ID), "generation 1, new epoch")
	cch, err := carol.Channel(ctx, "messaging", "rotate")
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, "carol", read(t, cch, after.ID), "generation 1, new epoch")
	bch, err := bob.Channel(ctx, "messaging", "rotate")
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, "bob", read(t, bch, after.ID), "generation 1, new epoch")
}
