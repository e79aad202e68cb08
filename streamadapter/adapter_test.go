package streamadapter_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// env is Stream (the emulator) and a key service over HTTP on SQLite.
type env struct {
	t      *testing.T
	stream *streamtest.Server
	ksURL  string
}

func newEnv(t *testing.T, cfg streamtest.Config) *env {
	t.Helper()
	return &env{t: t, stream: streamtest.NewTestServer(t, cfg), ksURL: newKeyService(t)}
}

// user returns the adapter of a new user, and makes the user on Stream.
func (e *env) user(name string) *streamadapter.Client {
	e.t.Helper()
	ctx := context.Background()
	sc := e.stream.Client()
	if _, err := sc.UpsertUser(ctx, &stream.User{ID: name, Name: name}); err != nil {
		e.t.Fatal(err)
	}
	c, err := streamadapter.New(ctx, streamadapter.Config{Stream: sc, Veil: e2ee.Config{UserID: name, KeyService: ksClient(e.t, e.ksURL, name)}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// byID indexes opened messages.
func byID(ms []*streamadapter.Message) map[string]*streamadapter.Message {
	out := map[string]*streamadapter.Message{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

func mustSend(t *testing.T, ch *streamadapter.Channel, msg *stream.Message, opts ...streamadapter.SendOption) *streamadapter.Message {
	t.Helper()
	m, err := ch.SendMessage(context.Background(), msg, opts...)
	if err != nil {
		t.Fatalf("send %q: %v", msg.Text, err)
	}
	return m
}

func TestConversation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")

	ach, err := alice.CreateChannel(ctx, "messaging", "general", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "general")
	if err != nil {
		t.Fatal(err)
	}
	if bch.SessionID() != ach.SessionID() {
		t.Fatal("bob opened another session")
	}

	secrets := []string{"the launch code is 0000", "meet at the old mill", "bring the blue folder", "reply in thread: ok", "quoting: agreed", "edited: at noon instead"}
	m1 := mustSend(t, ach, &stream.Message{Text: secrets[0], ExtraData: map[string]any{"location": "the old mill, 51.5N 0.1W", "color": "visible"}},
		streamadapter.Public("color"))
	m2 := mustSend(t, bch, &stream.Message{Text: secrets[1]})
	reply := mustSend(t, bch, &stream.Message{Text: secrets[3], ParentID: m1.ID})
	quote := mustSend(t, ach, &stream.Message{Text: secrets[4], QuotedMessageID: m2.ID})

	file := make([]byte, 10_000_000)
	rand.Read(file)
	att, err := ach.UploadFile(ctx, bytes.NewReader(file), "plans-for-the-heist.pdf", "")
	if err != nil {
		t.Fatal(err)
	}
	withFile := mustSend(t, ach, &stream.Message{Text: secrets[2]}, streamadapter.Attach(att))
	edited, err := ach.UpdateMessage(ctx, m1.ID, &stream.Message{Text: secrets[5], ExtraData: map[string]any{"location": "the new mill"}})
	if err != nil {
		t.Fatal(err)
	}
	if edited.Revision != 1 || edited.Text != secrets[5] {
		t.Fatalf("edit: revision %d, %q", edited.Revision, edited.Text)
	}

	// bob reads everything.
	q, err := bch.Query(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := byID(q.Messages)
	for id, want := range map[string]string{m1.ID: secrets[5], m2.ID: secrets[1], quote.ID: secrets[4], withFile.ID: secrets[2]} {
		m := got[id]
		if m == nil || m.Status != streamadapter.StatusDecrypted || m.Text != want {
			t.Fatalf("message %s: %+v", id, m)
		}
	}
	if got[m1.ID].Custom["location"] != "the new mill" || got[m1.ID].Revision != 1 {
		t.Fatalf("edited custom fields: %v, revision %d", got[m1.ID].Custom, got[m1.ID].Revision)
	}
	replies, err := bch.GetReplies(ctx, m1.ID, nil)
	if err != nil || len(replies) != 1 || replies[0].Text != secrets[3] || replies[0].ID != reply.ID {
		t.Fatalf("replies: %v %v", replies, err)
	}
	f := got[withFile.ID].Attachments
	if len(f) != 1 || f[0].Name != "plans-for-the-heist.pdf" || f[0].MIMEType != "application/pdf" || f[0].Size != int64(len(file)) {
		t.Fatalf("attachment: %+v", f)
	}
	r, err := bob.OpenAttachment(ctx, f[0])
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, file) {
		t.Fatalf("attachment read back: %d bytes, %v", len(back), err)
	}

	// Stream holds none of it.
	snap := e.stream.Snapshot()
	needles := append(secrets, "the old mill, 51.5N 0.1W", "the new mill", "plans-for-the-heist.pdf", "location")
	for _, s := range needles {
		if where := snap.Find([]byte(s)); len(where) > 0 {
			t.Errorf("Stream holds %q at %v", s, where)
		}
	}
	if where := snap.Find(file[1000:1032]); len(where) > 0 {
		t.Errorf("Stream holds the file's bytes at %v", where)
	}
	// ... and the scan is not vacuous: it finds what Stream does hold.
	for _, s := range []string{"veil1:", "visible", strings.TrimPrefix(att.URL, "")} {
		if len(snap.Find([]byte(s))) == 0 {
			t.Errorf("the scan does not find %q", s)
		}
	}
	if len(snap.Files) != 1 {
		t.Fatalf("%d files on Stream", len(snap.Files))
	}
	for _, b := range snap.Files {
		if int64(len(b)) <= int64(len(file)) {
			t.Fatalf("the stored file is %d bytes, no larger than the plaintext", len(b))
		}
	}
}
