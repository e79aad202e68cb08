package streamtest

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
	"github.com/golang-jwt/jwt/v5"
)

// raw sends one request straight to the handler with the given token; a
// handler panic is returned instead of crashing the test binary.
func raw(s *Server, method, path, tok, body string) (rec *httptest.ResponseRecorder, panicked any) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req := httptest.NewRequest(method, path+sep+"api_key="+s.APIKey(), strings.NewReader(body))
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("Authorization", tok)
	rec = httptest.NewRecorder()
	func() {
		defer func() { panicked = recover() }()
		s.Handler().ServeHTTP(rec, req)
	}()
	return rec, panicked
}

func signed(s *Server, c jwt.MapClaims) string {
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(s.APISecret()))
	return tok
}

// TestConcurrentReadsAndWrites: responses share maps with the stored
// state; concurrent requests must not race (run with -race) or crash.
func TestConcurrentReadsAndWrites(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"})
	created, err := c.CreateChannelWithMembers(ctx, "messaging", "g", "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	created.Channel.SendMessage(ctx, &stream.Message{Text: "hi", ExtraData: map[string]any{"id": "m1"}}, "alice")
	task, err := c.DeleteUsers(ctx, []string{"bob"}, stream.DeleteUserOptions{User: stream.SoftDelete})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				c.GetTask(ctx, task.TaskID)
				c.GetMessage(ctx, "m1")
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			c.UpsertUser(ctx, &stream.User{ID: "alice", Name: strings.Repeat("n", i)})
		}
	})
	wg.Wait()
}

// TestHostileInputs: inputs that used to panic a handler or overflow the
// stack get an answer below 500.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"})
	c.CreateChannelWithMembers(ctx, "messaging", "general", "alice", "alice", "bob")
	srv := signed(s, jwt.MapClaims{"server": true})
	deep := strings.Repeat("a.", 1<<18) + "a"
	for _, tc := range []struct{ method, path, body, reason string }{
		{"GET", "/users?payload=" + url.QueryEscape(`{"filter_conditions":{},"offset":-1}`), "", "negative offset"},
		{"GET", "/users?payload=" + url.QueryEscape(`{"filter_conditions":{},"offset":1,"limit":9223372036854775807}`), "", "offset+limit overflows"},
		{"POST", "/channels", `{"filter_conditions":{},"offset":-1}`, "negative offset"},
		{"POST", "/channels/messaging/general/query", `{"members":{"offset":-1}}`, "negative member offset"},
		{"POST", "/channels/messaging/general/query", `{"messages":{"offset":-1}}`, "negative message offset"},
		{"GET", "/members?payload=" + url.QueryEscape(`{"type":"messaging","id":"general","filter_conditions":{},"offset":-5}`), "", "negative offset"},
		{"PATCH", "/channels/messaging/general", `{"set":{"` + deep + `":1}}`, "a key nesting 2^18 maps"},
		{"PATCH", "/users", `{"users":[{"id":"alice","set":{"` + deep + `":1}}]}`, "a key nesting 2^18 maps"},
	} {
		rec, p := raw(s, tc.method, tc.path, srv, tc.body)
		if p != nil || rec.Code >= 500 {
			t.Errorf("%s %.60s (%s): panic=%v status=%d", tc.method, tc.path, tc.reason, p, rec.Code)
		}
	}
}

// TestReservedFieldsStay: partial message updates cannot touch the fields
// only Stream sets (and the stored user behind "user"), so the channel
// stays readable and users keep their IDs.
func TestReservedFieldsStay(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"})
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "g", "alice", "alice")
	created.Channel.SendMessage(ctx, &stream.Message{Text: "hi", ExtraData: map[string]any{"id": "m1"}}, "alice")
	for _, u := range []stream.PartialUpdate{
		{Unset: []string{"created_at"}},
		{Set: map[string]any{"created_at.x": 1}},
		{Set: map[string]any{"user.role": "admin", "user.id": "mallory"}},
	} {
		_, err := c.PartialUpdateMessage(ctx, "m1", &stream.MessagePartialUpdateRequest{UserID: "alice", PartialUpdate: u})
		var se stream.Error
		if !errors.As(err, &se) || se.Code != codeInputError {
			t.Errorf("partial update %+v: %v, want Stream error code %d", u, err, codeInputError)
		}
	}
	if _, err := c.CreateChannelWithMembers(ctx, "messaging", "g", "alice", "alice"); err != nil {
		t.Fatalf("reading the channel: %v", err)
	}
	q, err := c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{}})
	if err != nil || len(q.Users) != 1 || q.Users[0].ID != "alice" || q.Users[0].Role != "user" {
		t.Fatalf("users after the refused updates: %+v, %v", q, err)
	}
}

// TestTokensNameAUserOrTheServer: a validly signed token that is neither a
// server token nor names a user (as a non-empty string) is refused.
func TestTokensNameAUserOrTheServer(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	exp := time.Now().Add(time.Hour).Unix()
	for _, claims := range []jwt.MapClaims{
		{"user_id": 42, "exp": exp}, {"user_id": "", "exp": exp}, {"exp": exp}, {"server": "true"},
	} {
		if rec, p := raw(s, "GET", "/users", signed(s, claims), ""); p != nil || rec.Code != 401 {
			t.Errorf("token %v: status %d (panic %v), want 401", claims, rec.Code, p)
		}
	}
	if rec, _ := raw(s, "GET", "/users?payload="+url.QueryEscape(`{"filter_conditions":{}}`), signed(s, jwt.MapClaims{"server": true}), ""); rec.Code != 200 {
		t.Errorf("a server token: status %d", rec.Code)
	}
}
