package streamtest

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fuzzRoutes are every emulated route, with the path values filled in for
// the fixture that fuzzServer builds.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/users"}, {"GET", "/users"}, {"PATCH", "/users"}, {"POST", "/users/delete"},
	{"GET", "/tasks/t"}, {"POST", "/channels"}, {"POST", "/channels/delete"},
	{"POST", "/channels/messaging/query"}, {"POST", "/channels/messaging/x/query"},
	{"POST", "/channels/messaging/x"}, {"PATCH", "/channels/messaging/x"}, {"DELETE", "/channels/messaging/x"},
	{"POST", "/channels/messaging/x/message"}, {"POST", "/channels/messaging/x/file"},
	{"POST", "/channels/messaging/x/image"}, {"GET", "/messages/m1"}, {"PUT", "/messages/m1"},
	{"GET", "/messages/m1/replies"}, {"GET", "/channels/messaging/x/messages"},
	{"POST", "/channels/messaging/x/truncate"}, {"GET", "/members"},
	{"DELETE", "/channels/messaging/x/file"}, {"DELETE", "/channels/messaging/x/image"},
	{"POST", "/messages/m1"}, {"DELETE", "/messages/m1"},
	{"GET", "/app"}, {"PATCH", "/app"},
}

// fuzzServer starts a server holding users alice and bob, channel
// messaging:x with both, message m1 and its reply m2.
func fuzzServer(t testing.TB) (*Server, string, string) {
	s := NewServer(Config{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	srvTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"server": true}).SignedString([]byte(s.APISecret()))
	userTok, _ := s.Client().CreateToken("bob", time.Time{})
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/users", `{"users":{"alice":{"id":"alice"},"bob":{"id":"bob"}}}`},
		{"POST", "/channels/messaging/x/query", `{"data":{"members":["alice","bob"],"created_by":{"id":"alice"}}}`},
		{"POST", "/channels/messaging/x/message", `{"message":{"id":"m1","text":"hi","user_id":"alice"}}`},
		{"POST", "/channels/messaging/x/message", `{"message":{"id":"m2","text":"re","user_id":"bob","parent_id":"m1"}}`},
	} {
		req := httptest.NewRequest(step.method, step.path+"?api_key="+s.APIKey(), strings.NewReader(step.body))
		req.Header.Set("Stream-Auth-Type", "jwt")
		req.Header.Set("Authorization", srvTok)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("fixture %s %s: %d %s", step.method, step.path, rec.Code, rec.Body)
		}
	}
	return s, srvTok, userTok
}

// FuzzRoutes sends an arbitrary query string and body to every route, with
// a server or a user token: no panic, no 5xx, every answer JSON. Each input
// gets a fresh server so that a crash reproduces from its input alone.
func FuzzRoutes(f *testing.F) {
	seeds := []struct {
		route uint8
		query string
		body  string
	}{
		{1, "payload=" + url.QueryEscape(`{"filter_conditions":{"id":{"$in":["alice"]}},"limit":1}`), ""},
		{2, "", `{"users":[{"id":"alice","set":{"a.b":1},"unset":["c"]}]}`},
		{5, "", `{"filter_conditions":{"$or":[{"id":"x"}]},"limit":5,"offset":1}`},
		{8, "", `{"messages":{"limit":2,"id_lt":"m2"},"members":{"limit":1}}`},
		{9, "", `{"add_members":["carol"],"hide_history":true,"message":{"text":"added"}}`},
		{10, "", `{"set":{"session_id":"abc"},"unset":["x"]}`},
		{12, "", `{"message":{"text":"hello","id":"m3"},"pending":true}`},
		{13, "", "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nxyz\r\n--b--\r\n"},
		{16, "", `{"set":{"pinned":true,"pin_expires":"2020-01-01T00:00:00Z"},"user_id":"alice"}`},
		{17, "limit=1&id_gt=m1", ""},
		{18, "ids=m1,m2", ""},
		{20, "payload=" + url.QueryEscape(`{"type":"messaging","id":"x","filter_conditions":{},"limit":1}`), ""},
		{21, "url=http://x/files/abc", ""},
		{24, "hard=true", ""},
		{5, "", `{"filter_conditions":{},"limit":10,"offset":0}`},
		{16, "", `{"set":{"text":"x"},"unset":["pinned"]}`},
		{17, "limit=10&offset=0", ""},
		{5, "", `{"offset":-1}`},                  // paging used to panic
		{16, "", `{"unset":["created_at"]}`},      // used to break every later read
		{16, "", `{"set":{"user.id":"mallory"}}`}, // used to rewrite the stored user
		// Bodies as Stream's JavaScript SDK sends them, and the options
		// of truncation, member and channel queries.
		{7, "", `{"data":{"created_by_id":"alice","members":["alice",{"user_id":"bob","channel_role":"channel_moderator"}],"invites":["carol"]}}`},
		{7, "", `{"data":{"members":["alice"]}}`},
		{9, "", `{"add_members":[{"user_id":"carol","channel_role":"channel_admin"}],"message":{"text":"added"}}`},
		{9, "", `{"invites":["carol"]}`},
		{9, "", `{"accept_invite":true,"user_id":"bob","message":{"text":"joined"}}`},
		{12, "", `{"message":{"text":"**hi** <b>","mentioned_users":["bob",{"id":"alice"},7],"pinned":true}}`},
		{12, "", `{"message":{"text":"as bob","user":{"id":"bob"},"parent_id":"m1"},"pending":true,"pending_message_metadata":{"k":"v"}}`},
		{16, "", `{"set":{"pinned":true},"user":{"id":"bob"}}`},
		{19, "", `{"hard_delete":true,"skip_push":true,"truncated_at":"2026-01-01T00:00:00Z","user":{"id":"bob"},"message":{"text":"t"}}`},
		{19, "", `{"truncated_at":"2000-01-01T00:00:00Z","user_id":"alice"}`},
		{20, "payload=" + url.QueryEscape(`{"type":"messaging","id":"x","filter_conditions":{"invite":"pending","created_at":{"$gte":"2020-01-01T00:00:00Z"}},"sort":[{"field":"user_id","direction":-1}]}`), ""},
		{20, "payload=" + url.QueryEscape(`{"type":"messaging","members":[{"user_id":"alice"},"bob"],"filter_conditions":{"$nor":[{"is_moderator":true}]}}`), ""},
		{5, "", `{"filter_conditions":{"member_count":{"$gt":1},"last_message_at":{"$exists":true}},"sort":[{"field":"last_message_at","direction":1}],"message_limit":1,"member_limit":0}`},
		{3, "", `{"user_ids":[]}`},
		{24, "hard=true", ""},
		{25, "", ""},
		{26, "", `{"before_message_send_hook_attempt_timeout_ms":5000,"webhook_url":null,"name":"x"}`},
		{26, "", `{"before_message_send_hook_attempt_timeout_ms":1e300}`},
	}
	for _, s := range seeds {
		f.Add(s.route, false, s.query, []byte(s.body))
		f.Add(s.route, true, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, asUser bool, query string, body []byte) {
		s, srvTok, userTok := fuzzServer(t)
		defer s.Close()
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		q.Set("api_key", s.APIKey())
		req := httptest.NewRequest(r.method, r.path+"?"+q.Encode(), bytes.NewReader(body))
		req.Header.Set("Stream-Auth-Type", "jwt")
		req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		if asUser {
			req.Header.Set("Authorization", userTok)
		} else {
			req.Header.Set("Authorization", srvTok)
		}
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s %s?%s body %q: panic: %v", r.method, r.path, q.Encode(), body, p)
				}
			}()
			s.Handler().ServeHTTP(rec, req)
		}()
		if rec.Code >= 500 {
			t.Fatalf("%s %s: status %d", r.method, r.path, rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: non-JSON answer %q", r.method, r.path, rec.Body.Bytes())
		}
		// The channel must stay readable after any request.
		req = httptest.NewRequest("POST", "/channels/messaging/x/query?api_key="+s.APIKey(), strings.NewReader(`{"state":true}`))
		req.Header.Set("Stream-Auth-Type", "jwt")
		req.Header.Set("Authorization", srvTok)
		rec = httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("after %s %s?%s body %q, reading the channel panics: %v", r.method, r.path, q.Encode(), body, p)
				}
			}()
			s.Handler().ServeHTTP(rec, req)
		}()
		if rec.Code >= 500 {
			t.Fatalf("after %s %s, reading the channel: %d", r.method, r.path, rec.Code)
		}
	})
}

// allowedTag is every tag goldmark writes for CommonMark.
var allowedTag = regexp.MustCompile(`^</?(p|strong|em|a|code|pre|ul|ol|li|blockquote|h[1-6]|hr|br|img)[ >/]`)

// FuzzRenderHTML renders arbitrary text: no panic; text that skips the
// markdown parser renders as the parser would render it; and no HTML
// written in the text reaches html: every tag there is one the renderer
// writes.
func FuzzRenderHTML(f *testing.F) {
	for _, seed := range []string{"hello", "veil1:q83vEjRWeJA+/=", "a  b", "A-- b", "x \"q\" 'y' 100% $5 @me", "**b** _i_ `c`", "<script>alert(1)</script>", "<div>\nx\n</div>", "[x](javascript:1)", "- a\n- b", "<!-- c -->", "&lt;b&gt;", "![i](http://x/y.png \"t\")"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		out := renderHTML(text)
		if text != "" && plain(text) && out != renderMarkdown(text) {
			t.Fatalf("%q: the plain-text path renders %q, markdown %q", text, out, renderMarkdown(text))
		}
		for i := strings.IndexByte(out, '<'); i >= 0; i = next(out, i) {
			if !allowedTag.MatchString(out[i:]) {
				t.Fatalf("%q renders %q: text passed through as a tag at %d", text, out, i)
			}
		}
	})
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '<')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
