package streamadapter_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// Tests of a hostile Stream, key service or member, beyond the tampering
// of members_test.go.

// newKeyService starts another key service (its own SQLite store) and
// returns its URL; ksClient returns a client of one acting as user.
var (
	newKeyService = streamadapter.NewKeyService
	ksClient      = streamadapter.KeyClient
)

// userWith is e.user with a Config edit and a stream-chat-go client whose
// transport edit may replace (to play a lying Stream for this user only).
func (e *env) userWith(name string, edit func(*streamadapter.Config), rt func(http.RoundTripper) http.RoundTripper) *streamadapter.Client {
	e.t.Helper()
	ctx := context.Background()
	sc := e.stream.Client()
	if _, err := sc.UpsertUser(ctx, &stream.User{ID: name, Name: name}); err != nil {
		e.t.Fatal(err)
	}
	if rt != nil {
		sc.SetClient(&http.Client{Timeout: time.Minute, Transport: rt(http.DefaultTransport)})
	}
	cfg := streamadapter.Config{Stream: sc, Veil: e2ee.Config{UserID: name, KeyService: ksClient(e.t, e.ksURL, name)}}
	if edit != nil {
		edit(&cfg)
	}
	c, err := streamadapter.New(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// roundTrip is an http.RoundTripper made of a function.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// splitService is a key service that serves some sessions from another
// store: a key service that lies about which sessions a channel has.
type splitService struct {
	session.Service
	other session.Service
	mu    sync.Mutex
	ids   map[session.ID]bool
}

func (s *splitService) route(id session.ID) session.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[id] {
		return s.other
	}
	return s.Service
}

func (s *splitService) add(id session.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[session.ID]bool{}
	}
	s.ids[id] = true
}

func (s *splitService) Log(ctx context.Context, id session.ID, from uint32) ([][]byte, error) {
	return s.route(id).Log(ctx, id, from)
}

func (s *splitService) Head(ctx context.Context, id session.ID) (session.Head, error) {
	return s.route(id).Head(ctx, id)
}

func (s *splitService) Grants(ctx context.Context, id session.ID) ([]session.GrantRecord, error) {
	return s.route(id).Grants(ctx, id)
}

// TestRogueSessionOfTheChannel: anyone with a Veil identity can sign a
// genesis naming a channel, with the channel's members in it. With a key
// service that stores it beside the channel's real session, and Stream
// serving its messages in the channel, a reader must not open them as the
// channel's: only the session the reader verified for the channel (its
// session_id, bound on first contact) speaks for it, whichever call reads
// the message.
func TestRogueSessionOfTheChannel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	rogueURL := newKeyService(t)
	split := &splitService{other: ksClient(t, rogueURL, "alice")}
	alice := e.userWith("alice", func(c *streamadapter.Config) {
		ks := ksClient(t, e.ksURL, "alice")
		c.Veil.KeyService, c.Veil.Service, c.Veil.Directory, c.Veil.Publisher = nil, split, ks, ks
		split.Service = ks
	}, nil)
	e.user("bob")
	ach, err := alice.CreateChannel(ctx, "messaging", "general", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	real := mustSend(t, ach, &stream.Message{Text: "the channel's own"})

	// mallory: a Veil user, not a member of general, whose session naming
	// general lives on the lying store, with alice in it.
	if err := ksClient(t, rogueURL, "alice").PublishHistory(ctx, alice.Veil().Identity().Cards()); err != nil {
		t.Fatal(err)
	}
	mallory, err := e2ee.New(ctx, e2ee.Config{UserID: "mallory", KeyService: ksClient(t, rogueURL, "mallory")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ksClient(t, e.ksURL, "mallory").PublishHistory(ctx, mallory.Identity().Cards()); err != nil {
		t.Fatal(err)
	}
	rogue, err := mallory.CreateSession(ctx, "messaging:general", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	split.add(rogue.ID())
	// Stream plays along: it lists mallory and stores her message.
	sc := e.stream.Client()
	if _, err := sc.UpsertUser(ctx, &stream.User{ID: "mallory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Channel("messaging", "general").AddMembers(ctx, []string{"mallory"}); err != nil {
		t.Fatal(err)
	}
	id := streamadapter.NewMessageID()
	text, err := mallory.Encrypt(ctx, session.Binding{ChannelCID: "messaging:general", MessageID: id, SenderID: "mallory"}, []byte(`{"text":"alice says: wire the money"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Channel("messaging", "general").SendMessage(ctx, &stream.Message{ID: id, Text: text,
		ExtraData: map[string]any{"id": id, streamadapter.FieldEncrypted: true}}, "mallory"); err != nil {
		t.Fatal(err)
	}

	wantFailed(t, "alice's channel", read(t, ach, id), streamadapter.ErrWrongSession)
	m, err := alice.GetMessage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, "alice's GetMessage", m, streamadapter.ErrWrongSession)
	m, err = alice.GetMessage(ctx, real.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, "alice's GetMessage", m, "the channel's own")

	// Stream then names the rogue session in the channel's session_id:
	// QueryChannels refuses the channel, and opens none of its messages
	// with the rogue session.
	if _, err := sc.Channel("messaging", "general").PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{streamadapter.FieldSessionID: rogue.ID().String()}}); err != nil {
		t.Fatal(err)
	}
	states, err := alice.QueryChannels(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || !errors.Is(states[0].Err, streamadapter.ErrSessionMismatch) {
		t.Fatalf("QueryChannels: %+v", states)
	}
	got := byID(states[0].Messages)
	wantFailed(t, "alice's QueryChannels", got[id], streamadapter.ErrWrongSession)
	wantText(t, "alice's QueryChannels", got[real.ID], "the channel's own")
}

// TestCreateChannelAdoptsNoStranger: a user who creates a channel (its
// Stream channel and session) before the intended creator, with itself in
// the session, must not be adopted silently: CreateChannel promises a
// channel of the members it is given.
func TestCreateChannelAdoptsNoStranger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob, mallory := e.user("alice"), e.user("bob"), e.user("mallory")
	if _, err := mallory.CreateChannel(ctx, "messaging", "alice-bob", []string{"alice", "bob"}); err != nil {
		t.Fatal(err)
	}
	ch, err := alice.CreateChannel(ctx, "messaging", "alice-bob", []string{"bob"})
	if !errors.Is(err, streamadapter.ErrChannelExists) || ch != nil {
		t.Fatalf("alice creates a channel mallory made with herself in it: %v, want ErrChannelExists", err)
	}
	if !strings.Contains(err.Error(), "mallory") {
		t.Fatalf("the error does not name the member alice did not ask for: %v", err)
	}
	// Asked for, the same members are adopted (concurrent creators).
	if _, err := bob.CreateChannel(ctx, "messaging", "alice-bob", []string{"alice", "mallory"}); err != nil {
		t.Fatalf("bob asks for the members the session has: %v", err)
	}
	// And one's own session is adopted whatever its members now.
	own, err := alice.CreateChannel(ctx, "messaging", "mine", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if err := own.AddMembers(ctx, []string{"mallory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateChannel(ctx, "messaging", "mine", []string{"bob"}); err != nil {
		t.Fatalf("alice creates her own channel again: %v", err)
	}
}

// TestConcurrentQueries: a Channel is safe for concurrent use, Query
// included (stream-chat-go's Channel.Query rewrites the handle it is
// called on).
func TestConcurrentQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice := e.user("alice")
	e.user("bob")
	ch, err := alice.CreateChannel(ctx, "messaging", "busy", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	// Enough messages for OpenBatch to decrypt on every core.
	var m *streamadapter.Message
	for i := range 20 {
		m = mustSend(t, ch, &stream.Message{Text: fmt.Sprint("hello ", i)})
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			q, err := ch.Query(ctx, nil)
			if err != nil || len(q.Messages) != 20 {
				t.Errorf("query: %v", err)
				return
			}
			for _, m := range q.Messages {
				if m.Status != streamadapter.StatusDecrypted {
					t.Errorf("%s: %s %v", m.ID, m.Status, m.Err)
				}
			}
			if _, err := ch.GetMessages(ctx, []string{m.ID}); err != nil {
				t.Errorf("get: %v", err)
			}
		})
	}
	wg.Wait()
}

// TestSenderNamedTwice: Stream names a message's sender in user.id and in
// user_id; a message whose two disagree does not open, so that no caller
// reading either shows a sender other than the one verified.
func TestSenderNamedTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	ach, err := alice.CreateChannel(ctx, "messaging", "two-names", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "two-names")
	if err != nil {
		t.Fatal(err)
	}
	m := mustSend(t, ach, &stream.Message{Text: "from alice"})
	if err := e.stream.Tamper(m.ID, func(f map[string]any) { f["user_id"] = "bob" }); err != nil {
		t.Fatal(err)
	}
	got := read(t, bch, m.ID)
	if got.UserID != "bob" {
		t.Fatalf("the emulator did not keep the tampered user_id: %q", got.UserID)
	}
	wantFailed(t, "bob", got, streamadapter.ErrTampered)
}

// sendSealed sends plaintext as the sealed payload of a message of c's
// user in channel typ:id, as a member whose client is its own would.
func (e *env) sendSealed(c *streamadapter.Client, typ, id string, plaintext []byte) string {
	e.t.Helper()
	ctx := context.Background()
	msgID := streamadapter.NewMessageID()
	text, err := c.Veil().Encrypt(ctx, session.Binding{ChannelCID: typ + ":" + id, MessageID: msgID, SenderID: c.UserID()}, plaintext)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.stream.Client().Channel(typ, id).SendMessage(ctx, &stream.Message{Text: text,
		ExtraData: map[string]any{"id": msgID, streamadapter.FieldEncrypted: true}}, c.UserID()); err != nil {
		e.t.Fatal(err)
	}
	return msgID
}

// TestPayloadOneMeaning: a sealed payload has one meaning, so that no two
// readers (this package, a JavaScript client, a moderation bot) show one
// message differently. encoding/json alone matches names case
// insensitively, takes the last of repeated names, replaces invalid UTF-8,
// accepts null and ignores a stray closing bracket; a member can seal any
// of those.
func TestPayloadOneMeaning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	if _, err := alice.CreateChannel(ctx, "messaging", "json", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "json")
	if err != nil {
		t.Fatal(err)
	}
	const key = `"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`
	const sum = `"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"`
	desc := func(extra string) string {
		return `{"url":"https://cdn.example/f",` + key + `,"name":"a.txt","mime_type":"text/plain","size":0,` + sum + extra + `}`
	}
	for _, tc := range []struct {
		name, payload, text, reason string // text empty: ErrMalformed
	}{
		{"plain", `{"text":"hello"}`, "hello", "the ordinary payload"},
		{"unknown member", `{"text":"hello","later":{"a":[1,2]}}`, "hello", "readers ignore members they do not know"},
		{"nested custom", `{"text":"hello","custom":{"a":{"b":[{"c":null}]}}}`, "hello", "custom fields hold any JSON value"},
		{"descriptor", `{"text":"hello","attachments":[` + desc("") + `]}`, "hello", "a valid descriptor"},
		{"name in another case", `{"text":"hello","Text":"goodbye"}`, "", "encoding/json reads Text as text, a JavaScript reader does not"},
		{"name with a Kelvin sign", `{"text":"hello","attachments":[` + desc(`,"\u212aey":"x"`) + `]}`, "", "encoding/json folds U+212A to k"},
		{"repeated name", `{"text":"hello","text":"goodbye"}`, "", "readers disagree on which one counts"},
		{"repeated custom name", `{"text":"hello","custom":{"a":1,"a":2}}`, "", "readers disagree on which one counts"},
		{"repeated descriptor name", `{"text":"hello","attachments":[` + desc(`,"url":"https://other.example/f"`) + `]}`, "", "readers disagree on which file"},
		{"invalid UTF-8", "{\"text\":\"hel\xfflo\"}", "", "encoding/json replaces it, other readers refuse it"},
		{"null", `null`, "", "not a JSON object"},
		{"array", `[]`, "", "not a JSON object"},
		{"text missing", `{"custom":{"a":1}}`, "", "text is required"},
		{"text not a string", `{"text":null}`, "", "text is a string"},
		{"stray bracket", `{"text":"hello"}}`, "", "one JSON object and nothing else"},
		{"two objects", `{"text":"hello"} {"text":"goodbye"}`, "", "one JSON object and nothing else"},
	} {
		id := e.sendSealed(alice, "messaging", "json", []byte(tc.payload))
		m := read(t, bch, id)
		if tc.text != "" {
			if m.Status != streamadapter.StatusDecrypted || m.Text != tc.text {
				t.Errorf("%s: %s %q (%v), want %q (%s)", tc.name, m.Status, m.Text, m.Err, tc.text, tc.reason)
			}
			continue
		}
		if m.Status != streamadapter.StatusFailed || !errors.Is(m.Err, streamadapter.ErrMalformed) || m.Text != "" {
			t.Errorf("%s: %s %q (%v), want ErrMalformed (%s)", tc.name, m.Status, m.Text, m.Err, tc.reason)
		}
	}
}

// TestAttachmentRequestsStayPut: a reader downloads an attachment only from
// the host its URL names. Stream's CDN (the sealed URL's host) answering
// with a redirect elsewhere is not followed, and a member sealing a URL of
// an internal host makes a reader with Config.AllowAttachmentURL send no
// request there (a server-side bot's blind request forgery).
func TestAttachmentRequestsStayPut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	var mu sync.Mutex
	var internalHits []string
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		internalHits = append(internalHits, r.URL.Path)
		mu.Unlock()
	}))
	t.Cleanup(internal.Close)
	hits := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(internalHits)
	}
	streamHost := strings.TrimPrefix(e.stream.URL, "http://")

	alice := e.user("alice")
	// Stream's file host answers bob with a redirect to the internal host.
	redirecting := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == streamHost && strings.HasPrefix(r.URL.Path, "/files/") {
			return &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {internal.URL + "/latest/meta-data"}},
				Body: http.NoBody, Request: r}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	bob := e.userWith("bob", func(c *streamadapter.Config) { c.HTTPClient = redirecting }, nil)
	carol := e.userWith("carol", func(c *streamadapter.Config) {
		c.AllowAttachmentURL = func(u *url.URL) bool { return u.Scheme == "http" && u.Host == streamHost }
	}, nil)
	ach, err := alice.CreateChannel(ctx, "messaging", "files", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "files")
	if err != nil {
		t.Fatal(err)
	}
	cch, err := carol.Channel(ctx, "messaging", "files")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ach.UploadFile(ctx, strings.NewReader("a file"), "f.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	good := mustSend(t, ach, &stream.Message{Text: "a file"}, streamadapter.Attach(a))

	got := read(t, bch, good.ID)
	if _, err := bob.OpenAttachment(ctx, got.Attachments[0]); !errors.Is(err, streamadapter.ErrAttachmentURL) {
		t.Fatalf("a redirect off the file's host: %v, want ErrAttachmentURL", err)
	}
	if h := hits(); len(h) != 0 {
		t.Fatalf("a redirect from Stream's file host reached %v", h)
	}

	// alice seals the URL of an internal host.
	a.URL = internal.URL + "/admin/purge"
	bad := mustSend(t, ach, &stream.Message{Text: "look"}, streamadapter.Attach(a))
	got = read(t, cch, bad.ID)
	if _, err := carol.OpenAttachment(ctx, got.Attachments[0]); !errors.Is(err, streamadapter.ErrAttachmentURL) {
		t.Fatalf("a URL AllowAttachmentURL refuses: %v, want ErrAttachmentURL", err)
	}
	if h := hits(); len(h) != 0 {
		t.Fatalf("a URL AllowAttachmentURL refuses was requested: %v", h)
	}
	// ... while a file on the host it allows downloads.
	r, err := carol.OpenAttachment(ctx, read(t, cch, good.ID).Attachments[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "a file" {
		t.Fatalf("an allowed file: %q, %v", b, err)
	}
	// Without AllowAttachmentURL any http(s) URL is requested: the download
	// fails (the digest), but the request was made.
	r, err = alice.OpenAttachment(ctx, a)
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, session.ErrAttachment) || len(hits()) != 1 {
		t.Fatalf("by default: %v, requests %v", err, hits())
	}
}

// TestEndlessMemberList: a Stream that answers every page of a channel's
// member list in full would keep a client paging (and holding the list)
// forever; a session has at most 10,000 members, and the client stops
// there.
func TestEndlessMemberList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	var mu sync.Mutex
	lying, pages := false, 0
	alice := e.userWith("alice", nil, func(next http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			lie := lying && r.URL.Path == "/members"
			if lie {
				pages++
			}
			mu.Unlock()
			if !lie {
				return next.RoundTrip(r)
			}
			var b strings.Builder
			b.WriteString(`{"members":[{"user_id":"alice"},{"user_id":"bob"}`)
			for i := range 98 {
				fmt.Fprintf(&b, `,{"user_id":"u%d"}`, i)
			}
			b.WriteString(`]}`)
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(b.String())), Request: r}, nil
		})
	})
	e.user("bob")
	ch, err := alice.CreateChannel(ctx, "messaging", "crowd", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	lying = true
	mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := ch.SendMessage(ctx, &stream.Message{Text: "hello"}); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send with an endless member list: %v, want an error before the deadline", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if pages > 101 {
		t.Fatalf("%d pages of members read", pages)
	}
}

// TestUnboundFields pins what the envelope does not bind, as SendMessage's
// documentation says: Stream can change a message's mentions, silent and
// show_in_channel flags and public custom fields and it still opens, with
// the sealed content intact (a UI must not take those for the sender's).
func TestUnboundFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	e.user("carol")
	ach, err := alice.CreateChannel(ctx, "messaging", "unbound", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "unbound")
	if err != nil {
		t.Fatal(err)
	}
	m := mustSend(t, ach, &stream.Message{Text: "hi bob", MentionedUsers: []*stream.User{{ID: "bob"}},
		ExtraData: map[string]any{"tag": "public", "secret": "sealed"}}, streamadapter.Public("tag"))
	if err := e.stream.Tamper(m.ID, func(f map[string]any) {
		f["mentioned_users"] = []any{map[string]any{"id": "carol"}}
		f["silent"] = true
		f["tag"] = "changed"
	}); err != nil {
		t.Fatal(err)
	}
	got := read(t, bch, m.ID)
	wantText(t, "bob", got, "hi bob")
	if got.Custom["secret"] != "sealed" || got.ExtraData["tag"] != "changed" || !got.Silent ||
		len(got.MentionedUsers) != 1 || got.MentionedUsers[0].ID != "carol" {
		t.Fatalf("custom %v, Stream's %v, silent %v, mentions %v", got.Custom, got.ExtraData, got.Silent, got.MentionedUsers)
	}
}

// TestAttachmentSwappedUnderItsKey: a member who read a message holds its
// attachments' keys, and with Stream's help can serve another file
// encrypted under one of them. Every chunk authenticates (the key is
// right), so what Read releases before the end is the other file; the
// digest fails it at the end, and Read never returns io.EOF. As
// OpenAttachment says: use the plaintext only once Read returned io.EOF.
func TestAttachmentSwappedUnderItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	ach, err := alice.CreateChannel(ctx, "messaging", "swap", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ach.UploadFile(ctx, strings.NewReader(strings.Repeat("A", 200_000)), "a.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	m := mustSend(t, ach, &stream.Message{Text: "the file"}, streamadapter.Attach(a))

	// bob takes the key from the sealed payload, encrypts other bytes
	// under it, and Stream serves them at the file's URL.
	plain, err := bob.Veil().Decrypt(ctx, session.Binding{ChannelCID: "messaging:swap", MessageID: m.ID, SenderID: "alice"}, m.Message.Text)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Attachments []struct{ Key string } `json:"attachments"`
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		t.Fatal(err)
	}
	kb, err := base64.RawURLEncoding.DecodeString(p.Attachments[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	key, err := session.ParseFileKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	w, err := session.EncryptStream(&ct, key)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, strings.Repeat("E", 200_000))
	w.Close()
	if err := e.stream.TamperFile(a.URL, ct.Bytes()); err != nil {
		t.Fatal(err)
	}

	cch, err := carol.Channel(ctx, "messaging", "swap")
	if err != nil {
		t.Fatal(err)
	}
	r, err := carol.OpenAttachment(ctx, read(t, cch, m.ID).Attachments[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var released int
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		released += n
		if err == io.EOF {
			t.Fatal("a file swapped under its key read to io.EOF")
		}
		if err != nil {
			if !errors.Is(err, session.ErrAttachment) {
				t.Fatalf("swapped under its key: %v, want ErrAttachment", err)
			}
			break
		}
	}
	t.Logf("%d bytes of the other file released before ErrAttachment", released)
}

// TestMessageChangesHands: Stream serves, in place of alice's message, an
// envelope bob sealed for its ID as a revision of his own. A reader who
// opened alice's message refuses it.
func TestMessageChangesHands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
	ach, err := alice.CreateChannel(ctx, "messaging", "hands", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	cch, err := carol.Channel(ctx, "messaging", "hands")
	if err != nil {
		t.Fatal(err)
	}
	m := mustSend(t, ach, &stream.Message{Text: "I approve"})
	wantText(t, "carol", read(t, cch, m.ID), "I approve")
	versions := e.stream.Versions(m.ID)
	original := versions[len(versions)-1]
	text, err := bob.Veil().Encrypt(ctx, session.Binding{ChannelCID: "messaging:hands", MessageID: m.ID, SenderID: "bob", Revision: 1},
		[]byte(`{"text":"I reject"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stream.Tamper(m.ID, func(f map[string]any) {
		f["text"], f["user"], f["user_id"], f[streamadapter.FieldRevision] = text, map[string]any{"id": "bob"}, "bob", 1
	}); err != nil {
		t.Fatal(err)
	}
	wantFailed(t, "carol", read(t, cch, m.ID), streamadapter.ErrRolledBack)
	// Served again, alice's message still opens.
	if err := e.stream.Tamper(m.ID, func(f map[string]any) {
		clear(f)
		maps.Copy(f, original)
	}); err != nil {
		t.Fatal(err)
	}
	wantText(t, "carol", read(t, cch, m.ID), "I approve")
}

// TestHostileFieldsHeld: what Stream can change in a message's fields, and
// what a member can seal, that already fails as it should.
func TestHostileFieldsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	ach, err := alice.CreateChannel(ctx, "messaging", "held", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateChannel(ctx, "messaging", "other", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "held")
	if err != nil {
		t.Fatal(err)
	}
	parent := mustSend(t, ach, &stream.Message{Text: "parent"})
	edited := mustSend(t, ach, &stream.Message{Text: "v0"})
	if _, err := ach.UpdateMessage(ctx, edited.ID, &stream.Message{Text: "v1"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, reason string
		msg          *stream.Message // sent by alice before the edit
		edit         func(map[string]any)
		want         error
	}{
		{"revision as a string", "only a JSON integer", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = "1" }, streamadapter.ErrTampered},
		{"revision as a fraction", "only a JSON integer", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = 1.5 }, streamadapter.ErrTampered},
		{"negative revision", "1 to 2³²−1", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = -1 }, streamadapter.ErrTampered},
		{"revision 0 written", "absent means 0", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = 0 }, streamadapter.ErrTampered},
		{"revision 2³²", "1 to 2³²−1", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = float64(1 << 32) }, streamadapter.ErrTampered},
		{"revision null", "only a JSON integer", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = nil }, streamadapter.ErrTampered},
		{"another revision", "bound to the envelope", nil, func(f map[string]any) { f[streamadapter.FieldRevision] = 2 }, streamadapter.ErrTampered},
		{"reply moved to the channel", "the thread parent is bound", &stream.Message{Text: "in thread", ParentID: parent.ID},
			func(f map[string]any) { delete(f, "parent_id") }, streamadapter.ErrTampered},
		{"message moved into a thread", "the thread parent is bound", &stream.Message{Text: "top level"},
			func(f map[string]any) { f["parent_id"] = parent.ID }, streamadapter.ErrTampered},
		{"quote changed", "the quoted message is bound", &stream.Message{Text: "agreed", QuotedMessageID: parent.ID},
			func(f map[string]any) { f["quoted_message_id"] = edited.ID }, streamadapter.ErrTampered},
		{"quote dropped", "the quoted message is bound", &stream.Message{Text: "agreed", QuotedMessageID: parent.ID},
			func(f map[string]any) { delete(f, "quoted_message_id") }, streamadapter.ErrTampered},
		{"header of another session", "an envelope of another channel pasted here", &stream.Message{Text: "x"},
			func(f map[string]any) {
				env, _ := session.DecodeText(f["text"].(string))
				env[1] ^= 1
				f["text"] = session.EncodeText(env)
			}, streamadapter.ErrWrongSession},
		{"text cut", "not canonical base64url", &stream.Message{Text: "x"},
			func(f map[string]any) { s := f["text"].(string); f["text"] = s[:len(s)-1] }, streamadapter.ErrTampered},
		{"text with a newline", "encoding/base64 would skip it", &stream.Message{Text: "x"},
			func(f map[string]any) { s := f["text"].(string); f["text"] = s[:20] + "\n" + s[20:] }, streamadapter.ErrTampered},
		{"another version prefix", "a newer format", &stream.Message{Text: "x"},
			func(f map[string]any) { f["text"] = "veil2:" + f["text"].(string)[6:] }, streamadapter.ErrTampered},
	} {
		id := edited.ID
		if tc.msg != nil {
			id = mustSend(t, ach, tc.msg).ID
			wantText(t, "bob", read(t, bch, id), tc.msg.Text)
		}
		versions := e.stream.Versions(id)
		if err := e.stream.Tamper(id, tc.edit); err != nil {
			t.Fatal(err)
		}
		m := read(t, bch, id)
		if m.Status != streamadapter.StatusFailed || m.Text != "" || !errors.Is(m.Err, tc.want) {
			t.Errorf("%s: %s %q (%v), want %v (%s)", tc.name, m.Status, m.Text, m.Err, tc.want, tc.reason)
		}
		if err := e.stream.Tamper(id, func(f map[string]any) { clear(f); maps.Copy(f, versions[len(versions)-1]) }); err != nil {
			t.Fatal(err)
		}
	}

	// A member seals attachments whose descriptor lies.
	a, err := ach.UploadFile(ctx, strings.NewReader(strings.Repeat("z", 100_000)), "z.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*streamadapter.Attachment)
	}{
		{"size too large", func(a *streamadapter.Attachment) { a.Size++ }},
		{"size too small", func(a *streamadapter.Attachment) { a.Size-- }},
		{"size zero", func(a *streamadapter.Attachment) { a.Size = 0 }},
		{"digest of another file", func(a *streamadapter.Attachment) { a.Digest[0] ^= 1 }},
	} {
		lie := a
		tc.edit(&lie)
		m := read(t, bch, mustSend(t, ach, &stream.Message{Text: tc.name}, streamadapter.Attach(lie)).ID)
		r, err := bob.OpenAttachment(ctx, m.Attachments[0])
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if !errors.Is(err, session.ErrAttachment) {
			t.Errorf("%s: %v, want ErrAttachment", tc.name, err)
		}
	}
	for _, u := range []string{"file:///etc/passwd", "gopher://cdn.example/f", "//cdn.example/f", "https://", "javascript:alert(1)"} {
		p := `{"text":"x","attachments":[{"url":"` + u + `","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","name":"a","mime_type":"text/plain","size":0,` +
			`"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}`
		m := read(t, bch, e.sendSealed(alice, "messaging", "held", []byte(p)))
		if m.Status != streamadapter.StatusFailed || !errors.Is(m.Err, streamadapter.ErrMalformed) {
			t.Errorf("attachment URL %q: %s %v, want ErrMalformed", u, m.Status, m.Err)
		}
	}
}

// TestStreamAddsNoReader: a user Stream lists in a channel (added there by
// Stream, or by anyone with the app's secret) reads nothing: Stream's list
// only ever removes readers.
func TestStreamAddsNoReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, mallory := e.user("alice"), e.user("mallory")
	e.user("bob")
	ach, err := alice.CreateChannel(ctx, "messaging", "closed", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.stream.Client().Channel("messaging", "closed").AddMembers(ctx, []string{"mallory"}); err != nil {
		t.Fatal(err)
	}
	m := mustSend(t, ach, &stream.Message{Text: "for bob"})
	if _, err := mallory.Channel(ctx, "messaging", "closed"); !errors.Is(err, streamadapter.ErrRemoved) {
		t.Fatalf("mallory opens the channel: %v, want ErrRemoved", err)
	}
	got, err := mallory.GetMessage(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, "mallory", got, streamadapter.ErrRemoved)
}

// TestEditReadsTheMessageAskedFor: UpdateMessage reads the message first
// and seals the edit with its thread parent, quote, attachments and next
// revision; Stream answering with another of the user's messages must not
// make the user sign those of another message.
func TestEditReadsTheMessageAskedFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	var mu sync.Mutex
	swap := map[string]string{} // message ID asked for → the one Stream answers
	alice := e.userWith("alice", nil, func(next http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			q := r.URL.Query()
			mu.Lock()
			other, ok := swap[q.Get("ids")]
			mu.Unlock()
			if ok && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/messages") {
				r = r.Clone(r.Context())
				q.Set("ids", other)
				r.URL.RawQuery = q.Encode()
			}
			return next.RoundTrip(r)
		})
	})
	bob := e.user("bob")
	ach, err := alice.CreateChannel(ctx, "messaging", "edits", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	parent := mustSend(t, ach, &stream.Message{Text: "a thread"})
	reply := mustSend(t, ach, &stream.Message{Text: "in the thread", ParentID: parent.ID})
	top := mustSend(t, ach, &stream.Message{Text: "top level"})
	mu.Lock()
	swap[top.ID] = reply.ID
	mu.Unlock()
	if _, err := ach.UpdateMessage(ctx, top.ID, &stream.Message{Text: "top level, edited"}); err == nil {
		bch, err := bob.Channel(ctx, "messaging", "edits")
		if err != nil {
			t.Fatal(err)
		}
		m := read(t, bch, top.ID)
		t.Fatalf("the edit of %s was sealed from %s: bob reads %s %q (%v)", top.ID, reply.ID, m.Status, m.Text, m.Err)
	}
}

// TestRepliesOfTheThreadAskedFor: the thread parent is bound to a reply,
// so Stream cannot list one thread's replies as another's, nor answer
// GetMessage with another message.
func TestRepliesOfTheThreadAskedFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	var mu sync.Mutex
	swap := map[string]string{} // path asked for → path Stream answers
	bob := e.userWith("bob", nil, func(next http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			other, ok := swap[r.URL.Path]
			mu.Unlock()
			if ok {
				r = r.Clone(r.Context())
				r.URL.Path = other
			}
			return next.RoundTrip(r)
		})
	})
	alice := e.user("alice")
	ach, err := alice.CreateChannel(ctx, "messaging", "threads", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "threads")
	if err != nil {
		t.Fatal(err)
	}
	p1 := mustSend(t, ach, &stream.Message{Text: "should we sell?"})
	p2 := mustSend(t, ach, &stream.Message{Text: "should we buy?"})
	mustSend(t, ach, &stream.Message{Text: "yes", ParentID: p1.ID})
	mu.Lock()
	swap["/messages/"+p2.ID+"/replies"] = "/messages/" + p1.ID + "/replies"
	swap["/messages/"+p2.ID] = "/messages/" + p1.ID
	mu.Unlock()
	replies, err := bch.GetReplies(ctx, p2.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 {
		t.Fatalf("%d replies", len(replies))
	}
	wantFailed(t, "bob", replies[0], streamadapter.ErrTampered)
	if m, err := bob.GetMessage(ctx, p2.ID); err == nil {
		t.Fatalf("GetMessage(%s) answered %s: %s %q", p2.ID, m.ID, m.Status, m.Text)
	}
}
