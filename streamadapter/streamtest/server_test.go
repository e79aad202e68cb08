package streamtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
	"github.com/golang-jwt/jwt/v5"
)

var ctx = context.Background()

func streamErr(t *testing.T, err error) stream.Error {
	t.Helper()
	var se stream.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a stream.Error", err, err)
	}
	return se
}

func TestUsers(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	resp, err := c.UpsertUsers(ctx, &stream.User{ID: "alice", Name: "Alice", ExtraData: map[string]any{"team": "red"}},
		&stream.User{ID: "bob", Name: "Bob", ExtraData: map[string]any{"team": "blue"}})
	if err != nil || len(resp.Users) != 2 || resp.Users["alice"].ExtraData["team"] != "red" {
		t.Fatalf("upsert: %+v %v", resp, err)
	}
	q, err := c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{"team": map[string]any{"$in": []string{"blue"}}}})
	if err != nil || len(q.Users) != 1 || q.Users[0].ID != "bob" {
		t.Fatalf("query $in: %+v %v", q, err)
	}
	q, err = c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{"name": map[string]any{"$autocomplete": "ali"}}})
	if err != nil || len(q.Users) != 1 || q.Users[0].ID != "alice" {
		t.Fatalf("query $autocomplete: %+v %v", q, err)
	}
	q, err = c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{}, Limit: 1, Offset: 1}, &stream.SortOption{Field: "id", Direction: 1})
	if err != nil || len(q.Users) != 1 || q.Users[0].ID != "bob" {
		t.Fatalf("sort and page: %+v %v", q, err)
	}
	pu, err := c.PartialUpdateUsers(ctx, []stream.PartialUserUpdate{{ID: "alice", Set: map[string]any{"profile.city": "Lyon"}, Unset: []string{"team"}}})
	if err != nil || pu.Users["alice"].ExtraData["team"] != nil || pu.Users["alice"].ExtraData["profile"].(map[string]any)["city"] != "Lyon" {
		t.Fatalf("partial update: %+v %v", pu, err)
	}
	_, err = c.PartialUpdateUsers(ctx, []stream.PartialUserUpdate{{ID: "nobody", Set: map[string]any{"x": 1}}})
	if se := streamErr(t, err); se.Code != 16 || se.StatusCode != 404 {
		t.Fatalf("unknown user: %+v", se)
	}
}

func TestChannelsMembersMessages(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"}, &stream.User{ID: "carol"})
	created, err := c.CreateChannelWithMembers(ctx, "messaging", "general", "alice", "alice", "bob")
	if err != nil || created.Channel.CID != "messaging:general" || len(created.Channel.Members) != 2 {
		t.Fatalf("create: %+v %v", created, err)
	}
	ch := created.Channel
	// Get-or-create returns the same channel.
	again, err := c.CreateChannelWithMembers(ctx, "messaging", "general", "alice", "alice", "bob")
	if err != nil || again.Channel.CreatedAt != ch.CreatedAt {
		t.Fatalf("second create: %v", err)
	}
	// Distinct channel by members.
	d1, err := c.CreateChannelWithMembers(ctx, "messaging", "", "alice", "alice", "carol")
	d2, err2 := c.CreateChannelWithMembers(ctx, "messaging", "", "carol", "carol", "alice")
	if err != nil || err2 != nil || d1.Channel.CID != d2.Channel.CID {
		t.Fatalf("distinct channels: %v %v %v %v", d1, d2, err, err2)
	}
	// Custom data: session_id via partial update.
	if _, err := ch.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"session_id": "0123abcd"}}); err != nil {
		t.Fatal(err)
	}
	qc, err := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"session_id": map[string]any{"$eq": "0123abcd"}}})
	if err != nil || len(qc.Channels) != 1 || qc.Channels[0].ExtraData["session_id"] != "0123abcd" {
		t.Fatalf("query by session_id: %+v %v", qc, err)
	}
	qc, err = c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"members": map[string]any{"$in": []string{"carol"}}}})
	if err != nil || len(qc.Channels) != 1 || qc.Channels[0].CID != d1.Channel.CID {
		t.Fatalf("query by member: %+v %v", qc, err)
	}
	qc, err = c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"$or": []any{map[string]any{"id": "general"}, map[string]any{"cid": d1.Channel.CID}}}})
	if err != nil || len(qc.Channels) != 2 {
		t.Fatalf("$or: %d %v", len(qc.Channels), err)
	}
	if _, err := ch.Update(ctx, map[string]any{"name": "General", "session_id": "0123abcd"}, nil); err != nil {
		t.Fatal(err)
	}
	// Members.
	if _, err := ch.AddMembers(ctx, []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.RemoveMembers(ctx, []string{"bob"}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := c.CreateChannel(ctx, "messaging", "general", "alice", nil)
	ids := []string{}
	for _, m := range got.Channel.Members {
		ids = append(ids, m.UserID)
	}
	if fmt.Sprint(ids) != "[alice carol]" || got.Channel.ExtraData["name"] != "General" {
		t.Fatalf("after member changes: %v %v", ids, got.Channel.ExtraData)
	}

	// Messages: client-chosen ID through ExtraData, custom data preserved.
	msg := &stream.Message{Text: "veil1:AAAA <b>", ExtraData: map[string]any{"id": "m-1", "veil": map[string]any{"v": 1.0}}}
	sent, err := ch.SendMessage(ctx, msg, "alice", stream.MessageSkipPush)
	if err != nil || sent.Message.ID != "m-1" || sent.Message.HTML != "<p>veil1:AAAA &lt;b&gt;</p>\n" || sent.Message.User.ID != "alice" {
		t.Fatalf("send: %+v %v", sent.Message, err)
	}
	reply, err := ch.SendMessage(ctx, &stream.Message{Text: "re", ParentID: "m-1"}, "carol")
	if err != nil || reply.Message.Type != "reply" {
		t.Fatalf("reply: %+v %v", reply, err)
	}
	g, err := c.GetMessage(ctx, "m-1")
	if err != nil || g.Message.ExtraData["veil"].(map[string]any)["v"] != 1.0 || g.Message.ReplyCount != 1 {
		t.Fatalf("get: %+v %v", g.Message, err)
	}
	up, err := c.UpdateMessage(ctx, &stream.Message{Text: "edited", UserID: "alice"}, "m-1")
	if err != nil || up.Message.Text != "edited" || up.Message.ID != "m-1" {
		t.Fatalf("update: %+v %v", up, err)
	}
	if _, err := c.DeleteMessage(ctx, "m-1"); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.GetMessage(ctx, "m-1"); g.Message.Type != "deleted" || g.Message.DeletedAt == nil {
		t.Fatalf("soft delete: %+v", g.Message)
	}
	if _, err := c.HardDeleteMessage(ctx, "m-1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetMessage(ctx, "m-1")
	if se := streamErr(t, err); se.Code != 16 || se.StatusCode != 404 {
		t.Fatalf("hard-deleted message: %+v", se)
	}

	// Limits.
	_, err = ch.SendMessage(ctx, &stream.Message{Text: strings.Repeat("é", 5001)}, "alice")
	if se := streamErr(t, err); se.Code != 20 || se.StatusCode != 400 {
		t.Fatalf("5,001 characters: %+v", se)
	}
	if _, err := ch.SendMessage(ctx, &stream.Message{Text: strings.Repeat("é", 5000)}, "alice"); err != nil {
		t.Fatalf("5,000 characters (10,000 bytes) must fit: %v", err)
	}
	_, err = ch.SendMessage(ctx, &stream.Message{Text: "x", ExtraData: map[string]any{"blob": strings.Repeat("x", 6000)}}, "alice")
	if se := streamErr(t, err); se.Code != 22 {
		t.Fatalf("6 KB of custom data: %+v", se)
	}
	_, err = ch.SendMessage(ctx, &stream.Message{Text: "dup", ExtraData: map[string]any{"id": "m-2"}}, "alice")
	if err == nil {
		_, err = ch.SendMessage(ctx, &stream.Message{Text: "dup", ExtraData: map[string]any{"id": "m-2"}}, "alice")
	}
	if se := streamErr(t, err); se.Code != 4 {
		t.Fatalf("duplicate message ID: %+v", se)
	}
	unknown := c.Channel("messaging", "nope")
	_, err = unknown.SendMessage(ctx, &stream.Message{Text: "x"}, "alice")
	if se := streamErr(t, err); se.Code != 16 || se.StatusCode != 404 {
		t.Fatalf("unknown channel: %+v", se)
	}

	// Files: the URL serves the exact bytes.
	data := bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
	f, err := ch.SendFile(ctx, stream.SendFileRequest{Reader: bytes.NewReader(data), FileName: "blob.bin", User: &stream.User{ID: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(f.File)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(back, data) {
		t.Fatal("the uploaded file came back different")
	}
	if _, err := ch.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = ch.SendMessage(ctx, &stream.Message{Text: "x"}, "alice")
	if se := streamErr(t, err); se.Code != 16 {
		t.Fatalf("deleted channel: %+v", se)
	}
}

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewTestServer(t, Config{Now: func() time.Time { return now }})
	sign := func(secret string, claims jwt.MapClaims) string {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		return tok
	}
	// The client always signs with its secret; wrong secrets and dates are
	// produced by hand, sent by the real client with SetClientToken-free
	// raw requests through its BaseURL.
	tests := []struct {
		name string
		key  string
		tok  string
		code int
	}{
		{"wrong api key", "nope", sign(s.APISecret(), jwt.MapClaims{"server": true}), 5},
		{"no token", s.APIKey(), "", 5},
		{"expired", s.APIKey(), sign(s.APISecret(), jwt.MapClaims{"user_id": "a", "exp": now.Add(-time.Hour).Unix()}), 40},
		{"not valid yet", s.APIKey(), sign(s.APISecret(), jwt.MapClaims{"user_id": "a", "nbf": now.Add(time.Hour).Unix()}), 41},
		{"issued in the future", s.APIKey(), sign(s.APISecret(), jwt.MapClaims{"user_id": "a", "iat": now.Add(time.Hour).Unix()}), 42},
		{"wrong secret", s.APIKey(), sign("another secret", jwt.MapClaims{"server": true}), 43},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest("GET", s.URL+"/users?api_key="+tc.key, nil)
		req.Header.Set("Stream-Auth-Type", "jwt")
		if tc.tok != "" {
			req.Header.Set("Authorization", tc.tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var se stream.Error
		json.NewDecoder(resp.Body).Decode(&se)
		resp.Body.Close()
		if se.Code != tc.code || resp.StatusCode != 401 || se.StatusCode != 401 || resp.Header.Get("X-Ratelimit-Limit") == "" {
			t.Errorf("%s: HTTP %d, %+v; want code %d", tc.name, resp.StatusCode, se, tc.code)
		}
	}
	// Through the real client: a client with the wrong secret.
	bad, _ := stream.NewClient(s.APIKey(), "wrong-secret")
	bad.BaseURL = s.URL
	_, err := bad.UpsertUser(ctx, &stream.User{ID: "x"})
	if se := streamErr(t, err); se.Code != 43 || se.StatusCode != 401 {
		t.Fatalf("client with the wrong secret: %+v", se)
	}
	// A user token of the right app is accepted.
	tok, _ := s.Client().CreateToken("alice", now.Add(time.Hour))
	req, _ := http.NewRequest("GET", s.URL+"/users?api_key="+s.APIKey(), nil)
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("Authorization", tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("user token: %v %v", resp, err)
	}
}

func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	tok, _ := s.Client().CreateToken("alice", time.Time{})
	for _, body := range []string{`{`, `[]`, `{"users": 5}`, ``} {
		req, _ := http.NewRequest("POST", s.URL+"/users?api_key="+s.APIKey(), strings.NewReader(body))
		req.Header.Set("Stream-Auth-Type", "jwt")
		req.Header.Set("Authorization", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var se stream.Error
		json.NewDecoder(resp.Body).Decode(&se)
		resp.Body.Close()
		if resp.StatusCode != 400 || se.Code != 4 {
			t.Errorf("body %q: HTTP %d code %d", body, resp.StatusCode, se.Code)
		}
	}
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var types []string
	secret := "webhook-test-secret"
	got := make(chan struct{}, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		sig, _ := hex.DecodeString(r.Header.Get("X-Signature"))
		if !hmac.Equal(sig, m.Sum(nil)) {
			t.Errorf("webhook signature does not verify")
		}
		var ev struct{ Type string }
		json.Unmarshal(body, &ev)
		mu.Lock()
		types = append(types, ev.Type)
		mu.Unlock()
		got <- struct{}{}
	}))
	defer hook.Close()
	s := NewTestServer(t, Config{APISecret: NewSecret([]byte(secret)), WebhookURL: hook.URL})
	c := s.Client()
	ch, _ := c.CreateChannelWithMembers(ctx, "messaging", "hooks", "alice", "alice")
	ch.Channel.AddMembers(ctx, []string{"bob"})
	ch.Channel.SendMessage(ctx, &stream.Message{Text: "hi", ExtraData: map[string]any{"id": "h1"}}, "alice")
	c.UpdateMessage(ctx, &stream.Message{Text: "hi!"}, "h1")
	c.DeleteMessage(ctx, "h1")
	ch.Channel.RemoveMembers(ctx, []string{"bob"}, nil)
	ch.Channel.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"session_id": "x"}})
	ch.Channel.Delete(ctx)
	want := []string{"member.added", "message.new", "message.updated", "message.deleted", "member.removed", "channel.updated", "channel.deleted"}
	for range want {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v arrived", types)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v in order", types, want)
	}
}

func TestSecretNotPrinted(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{APISecret: NewSecret([]byte("super-secret-value"))})
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, s); strings.Contains(out, "super-secret-value") {
			t.Fatalf("%s prints the secret: %s", verb, out)
		}
	}
}

func FuzzRequestDecoding(f *testing.F) {
	s := NewServer(Config{})
	defer s.Close()
	tok, _ := s.Client().CreateToken("alice", time.Time{})
	paths := []string{"/users", "/channels", "/channels/messaging/x/query", "/channels/messaging/x", "/channels/messaging/x/message", "/messages/m"}
	for i, seed := range []string{`{"users":{"a":{"id":"a"}}}`, `{"filter_conditions":{"$or":[{"id":"x"}]}}`, `{"data":{"members":["a"]}}`, `{"add_members":["b"]}`, `{"message":{"text":"hi"}}`, `{"message":{"text":1}}`, `{`, `null`} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		req := httptest.NewRequest("POST", paths[int(route)%len(paths)]+"?api_key="+s.APIKey(), bytes.NewReader(body))
		req.Header.Set("Stream-Auth-Type", "jwt")
		req.Header.Set("Authorization", tok)
		rec := httptest.NewRecorder()
		s.http.Config.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("non-JSON answer")
		}
	})
}

// TestRefusedPartialUpdatesChangeNothing: a partial update that Stream
// refuses (custom data over 5 KB, an unknown user in the batch) leaves
// every object as it was, nested objects included, and a batch of users
// is applied all or nothing.
func TestRefusedPartialUpdatesChangeNothing(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	if _, err := c.UpsertUsers(ctx, &stream.User{ID: "alice", ExtraData: map[string]any{"profile": map[string]any{"city": "Lyon"}}},
		&stream.User{ID: "bob"}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("b", 6000)
	for i, batch := range [][]stream.PartialUserUpdate{
		{{ID: "alice", Set: map[string]any{"profile.city": "Paris"}}, {ID: "bob", Set: map[string]any{"bio": big}}},
		{{ID: "alice", Set: map[string]any{"profile.city": "Paris"}}, {ID: "nobody", Set: map[string]any{"x": 1}}},
		{{ID: "alice", Set: map[string]any{"profile.city": "Paris", "profile.bio": big}}},
	} {
		if _, err := c.PartialUpdateUsers(ctx, batch); err == nil {
			t.Fatalf("batch %d accepted", i)
		}
	}
	q, err := c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{}}, &stream.SortOption{Field: "id", Direction: 1})
	if err != nil || len(q.Users) != 2 || q.Users[0].ExtraData["profile"].(map[string]any)["city"] != "Lyon" || q.Users[1].ExtraData["bio"] != nil {
		t.Fatalf("a refused batch changed the users: %+v %v", q, err)
	}
	// A batch that names a user twice applies both updates.
	pu, err := c.PartialUpdateUsers(ctx, []stream.PartialUserUpdate{{ID: "bob", Set: map[string]any{"a": "1"}}, {ID: "bob", Set: map[string]any{"b": "2"}}})
	if err != nil || pu.Users["bob"].ExtraData["a"] != "1" || pu.Users["bob"].ExtraData["b"] != "2" {
		t.Fatalf("two updates of one user: %+v %v", pu, err)
	}

	ch, err := c.CreateChannelWithMembers(ctx, "messaging", "atomic", "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Channel.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"veil.session": "s1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Channel.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"veil.session": "s2", "veil.blob": big}}); err == nil {
		t.Fatal("6 KB of nested channel data accepted")
	}
	got, err := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"id": "atomic"}})
	if err != nil || len(got.Channels) != 1 || got.Channels[0].ExtraData["veil"].(map[string]any)["session"] != "s1" {
		t.Fatalf("a refused channel update changed the channel: %+v %v", got, err)
	}

	sent, err := ch.Channel.SendMessage(ctx, &stream.Message{Text: "hi", ExtraData: map[string]any{"veil": map[string]any{"epoch": 1.0}}}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PartialUpdateMessage(ctx, sent.Message.ID, &stream.MessagePartialUpdateRequest{UserID: "alice",
		PartialUpdate: stream.PartialUpdate{Set: map[string]any{"veil.epoch": 2.0, "text": strings.Repeat("x", 5001)}}})
	if err == nil {
		t.Fatal("a 5,001-character text accepted")
	}
	m, err := c.GetMessage(ctx, sent.Message.ID)
	if err != nil || m.Message.ExtraData["veil"].(map[string]any)["epoch"] != 1.0 {
		t.Fatalf("a refused message update changed the message: %+v %v", m, err)
	}
}

// TestUpsertReplaces: as with Stream, an upsert replaces a user's data
// (fields it leaves out are gone; partial updates are the way to keep
// them), keeps the creation time, defaults the role, and a batch with one
// refused user stores none.
func TestUpsertReplaces(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	first, err := c.UpsertUser(ctx, &stream.User{ID: "alice", Name: "Alice", Role: "admin", ExtraData: map[string]any{"team": "red"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.UpsertUser(ctx, &stream.User{ID: "alice", ExtraData: map[string]any{"city": "Lyon"}})
	if err != nil {
		t.Fatal(err)
	}
	u := again.User
	if u.Name != "" || u.ExtraData["team"] != nil || u.ExtraData["city"] != "Lyon" || u.Role != "user" {
		t.Fatalf("upsert merged instead of replacing: %+v", u)
	}
	if u.CreatedAt == nil || first.User.CreatedAt == nil || !u.CreatedAt.Equal(*first.User.CreatedAt) {
		t.Fatalf("created_at changed: %v then %v", first.User.CreatedAt, u.CreatedAt)
	}
	_, err = c.UpsertUsers(ctx, &stream.User{ID: "alice", ExtraData: map[string]any{"city": "Paris"}},
		&stream.User{ID: "bob", ExtraData: map[string]any{"bio": strings.Repeat("b", 6000)}})
	if streamErr(t, err).Code != 22 {
		t.Fatalf("oversized batch: %v", err)
	}
	q, err := c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{}})
	if err != nil || len(q.Users) != 1 || q.Users[0].ExtraData["city"] != "Lyon" {
		t.Fatalf("a refused batch changed the users: %+v %v", q, err)
	}
}
