package streamadapter

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

const testSecret = "the app's API secret"

func sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// fakeEnvelope returns the text form of a well-formed envelope of session
// sid (header and sizes right, nothing inside authentic): what the guard,
// which holds no key, can check.
func fakeEnvelope(sid session.ID) string {
	env := make([]byte, session.Overhead+32)
	env[0] = session.Version
	copy(env[1:], sid[:])
	return session.EncodeText(env)
}

func testID(t testing.TB, b byte) session.ID {
	t.Helper()
	id, err := session.ParseID(strings.Repeat(hex.EncodeToString([]byte{b}), session.IDSize))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hookBody builds a before-message-send body with a message and a channel
// (nil leaves a part out).
func hookBody(t testing.TB, msg, channel map[string]any) []byte {
	t.Helper()
	p := map[string]any{"user": map[string]any{"id": "alice"}, "request_info": map[string]any{"type": "server"}}
	if msg != nil {
		p["message"] = msg
	}
	if channel != nil {
		p["channel"] = channel
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInspect(t *testing.T) {
	t.Parallel()
	sid, other := testID(t, 0x11), testID(t, 0x22)
	enc := map[string]any{"cid": "messaging:x", FieldSessionID: sid.String(), FieldEncrypted: true}
	plainCh := map[string]any{"cid": "messaging:y"}
	sealed := func(extra map[string]any) map[string]any {
		m := map[string]any{"id": "m1", "type": "regular", "text": fakeEnvelope(sid), "html": "", FieldEncrypted: true,
			"attachments": []any{}, "mentioned_users": []any{}, "colour": "public custom field"}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	opaque := map[string]any{"type": "file", "asset_url": "https://cdn.example/f/encrypted.bin", FieldEncrypted: true, "title": ""}
	tests := []struct {
		name    string
		body    []byte
		reject  string // "" to pass, else a substring of the reason
		reason  string
		channel map[string]any
	}{
		{name: "sealed", body: hookBody(t, sealed(nil), enc), reason: "a sealed message of the channel's session, as the adapter sends it"},
		{name: "sealed reply with opaque file", body: hookBody(t, sealed(map[string]any{"type": "reply", "parent_id": "m0", "attachments": []any{opaque}}), enc),
			reason: "the adapter's own attachments carry nothing in the clear"},
		{name: "session_id only", body: hookBody(t, sealed(nil), map[string]any{FieldSessionID: sid.String()}),
			reason: "a session_id alone makes the channel encrypted, and this message fits it"},
		{name: "plaintext channel", body: hookBody(t, map[string]any{"text": "hello"}, plainCh), reason: "channels without a session are not the guard's business"},
		{name: "plaintext channel, malformed message", body: hookBody(t, map[string]any{"text": 42}, plainCh), reason: "the message of a plaintext channel is not read"},
		{name: "system message", body: hookBody(t, map[string]any{"type": "system", "text": "bob joined"}, enc), reason: "Stream's system messages pass"},
		{name: "plaintext", body: hookBody(t, map[string]any{"type": "regular", "text": "the launch code is 0000"}, enc), reject: "not sealed",
			reason: "plaintext in an encrypted channel is what the guard exists for"},
		{name: "plaintext marked encrypted", body: hookBody(t, sealed(map[string]any{"text": "hello"}), enc), reject: "not sealed",
			reason: "a marker does not make a text an envelope"},
		{name: "empty text", body: hookBody(t, sealed(map[string]any{"text": ""}), enc), reject: "not sealed", reason: "an empty text is no envelope"},
		{name: "text not a string", body: hookBody(t, sealed(map[string]any{"text": 7}), enc), reject: "not sealed", reason: "only a string can be an envelope"},
		{name: "malformed envelope", body: hookBody(t, sealed(map[string]any{"text": "veil1:AAAA"}), enc), reject: "malformed",
			reason: "a prefix alone is not an envelope"},
		{name: "unknown version", body: hookBody(t, sealed(map[string]any{"text": "veil9:" + strings.Repeat("A", 200)}), enc), reject: "malformed",
			reason: "an envelope the guard cannot parse is refused"},
		{name: "other session", body: hookBody(t, sealed(map[string]any{"text": fakeEnvelope(other)}), enc), reject: "another session",
			reason: "an envelope pasted from another channel's session"},
		{name: "not marked", body: hookBody(t, sealed(map[string]any{FieldEncrypted: nil}), enc), reject: "not marked",
			reason: "UIs and push templates rely on the marker"},
		{name: "marked as a string", body: hookBody(t, sealed(map[string]any{FieldEncrypted: "true"}), enc), reject: "not marked",
			reason: "the marker is the boolean true"},
		{name: "html", body: hookBody(t, sealed(map[string]any{"html": "<p>the launch code</p>"}), enc), reject: "html",
			reason: "html beside the envelope could carry the plaintext"},
		{name: "i18n", body: hookBody(t, sealed(map[string]any{"i18n": map[string]any{"fr_text": "le code"}}), enc), reject: "i18n",
			reason: "translations beside the envelope could carry the plaintext"},
		{name: "mml", body: hookBody(t, sealed(map[string]any{"mml": "<mml>secret</mml>"}), enc), reject: "mml", reason: "mml could carry the plaintext"},
		{name: "image attachment", body: hookBody(t, sealed(map[string]any{"attachments": []any{map[string]any{"type": "image", "image_url": "https://x.example/i.png"}}}), enc),
			reject: "attachment", reason: "a plaintext image"},
		{name: "file with a title", body: hookBody(t, sealed(map[string]any{"attachments": []any{merge(opaque, map[string]any{"title": "plans.pdf"})}}), enc),
			reject: "attachment", reason: "a title would leak the file name"},
		{name: "file with text", body: hookBody(t, sealed(map[string]any{"attachments": []any{merge(opaque, map[string]any{"text": "secret"})}}), enc),
			reject: "attachment", reason: "an attachment's text is plaintext"},
		{name: "file not marked", body: hookBody(t, sealed(map[string]any{"attachments": []any{merge(opaque, map[string]any{FieldEncrypted: false})}}), enc),
			reject: "attachment", reason: "only files marked encrypted are the adapter's"},
		{name: "file with a data URL", body: hookBody(t, sealed(map[string]any{"attachments": []any{merge(opaque, map[string]any{"asset_url": "data:text/plain,secret"})}}), enc),
			reject: "attachment", reason: "a data URL carries its content"},
		{name: "attachment not an object", body: hookBody(t, sealed(map[string]any{"attachments": []any{"secret"}}), enc),
			reject: "attachment", reason: "an attachment is an object"},
		{name: "attachments not a list", body: hookBody(t, sealed(map[string]any{"attachments": "secret"}), enc),
			reject: "cannot read", reason: "unreadable attachments are refused"},
		{name: "too many attachments", body: hookBody(t, sealed(map[string]any{"attachments": func() []any {
			out := make([]any, maxAttachments+1)
			for i := range out {
				out[i] = opaque
			}
			return out
		}()}), enc), reject: "too many", reason: "the adapter never sends more than maxAttachments"},
		{name: "marked channel without session", body: hookBody(t, sealed(nil), map[string]any{FieldEncrypted: true}), reject: "no session_id",
			reason: "a channel marked encrypted must name its session"},
		{name: "malformed session_id", body: hookBody(t, sealed(nil), map[string]any{FieldSessionID: "not hex"}), reject: "session_id is malformed",
			reason: "a session_id that does not parse cannot be matched"},
		{name: "session_id not a string", body: hookBody(t, sealed(nil), map[string]any{FieldSessionID: 12}), reject: "session_id is malformed",
			reason: "a session_id is a string"},
		{name: "no channel", body: hookBody(t, map[string]any{"text": "hello"}, nil), reject: "cannot read",
			reason: "without the channel the guard cannot tell: it fails closed"},
		{name: "no message", body: hookBody(t, nil, enc), reject: "cannot read", reason: "an encrypted channel's hook call without a message fails closed"},
		{name: "not JSON", body: []byte("hello"), reject: "cannot read", reason: "an unreadable body fails closed"},
		{name: "JSON array", body: []byte("[]"), reject: "cannot read", reason: "the payload is an object"},
		{name: "custom field spelled TEXT", body: hookBody(t, map[string]any{"type": "regular", "text": "the launch code", "TEXT": fakeEnvelope(sid), FieldEncrypted: true}, enc),
			reject: "not sealed", reason: "fields are matched by their exact names, not case-insensitively"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := inspect(tt.body)
			switch {
			case tt.reject == "" && got != "":
				t.Errorf("rejected with %q, want it passed: %s", got, tt.reason)
			case tt.reject != "" && !strings.Contains(got, tt.reject):
				t.Errorf("inspect = %q, want a rejection containing %q: %s", got, tt.reject, tt.reason)
			}
		})
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// post sends body to h, signed with secret unless sig is given.
func post(h http.Handler, method string, body []byte, sig *string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/hook", bytes.NewReader(body))
	s := sign(body, testSecret)
	if sig != nil {
		s = *sig
	}
	if s != "" {
		req.Header.Set("X-Signature", s)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestGuardHandler(t *testing.T) {
	t.Parallel()
	sid := testID(t, 0x11)
	enc := map[string]any{FieldSessionID: sid.String(), FieldEncrypted: true}
	h := Guard(testSecret)
	ptr := func(s string) *string { return &s }
	plain := hookBody(t, map[string]any{"text": "the launch code"}, enc)
	big := bytes.Repeat([]byte(" "), MaxWebhookBody+1)
	tests := []struct {
		name   string
		method string
		body   []byte
		sig    *string
		code   int
		reject bool
		reason string
	}{
		{name: "sealed", method: "POST", body: hookBody(t, map[string]any{"text": fakeEnvelope(sid), FieldEncrypted: true}, enc), code: 200,
			reason: "a sealed message passes with an empty answer"},
		{name: "plaintext", method: "POST", body: plain, code: 200, reject: true, reason: "Stream needs a 2xx answer with an error message to reject"},
		{name: "unreadable", method: "POST", body: []byte("{"), code: 200, reject: true, reason: "fail closed: an error status would let Stream store the message"},
		{name: "no signature", method: "POST", body: plain, sig: ptr(""), code: 401, reason: "unsigned calls are not Stream's"},
		{name: "wrong signature", method: "POST", body: plain, sig: ptr(sign(plain, "another secret")), code: 401, reason: "signed under another key"},
		{name: "truncated signature", method: "POST", body: plain, sig: ptr(sign(plain, testSecret)[:62]), code: 401, reason: "a prefix of the MAC"},
		{name: "signature not hex", method: "POST", body: plain, sig: ptr(strings.Repeat("z", 64)), code: 401, reason: "not hex"},
		{name: "GET", method: "GET", body: nil, code: 405, reason: "Stream POSTs"},
		{name: "too large", method: "POST", body: big, code: 413, reason: "bodies are bounded before the MAC is computed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := post(h, tt.method, tt.body, tt.sig)
			if w.Code != tt.code {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tt.code, tt.reason)
			}
			if w.Code != 200 {
				return
			}
			var answer struct {
				Message *struct{ Type, Text string } `json:"message"`
			}
			if w.Body.Len() > 0 {
				if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
					t.Fatalf("answer %q: %v", w.Body, err)
				}
			}
			if w.Body.Len() > 0 && w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("answer of type %q", w.Header().Get("Content-Type"))
			}
			rejected := answer.Message != nil && answer.Message.Type == "error" && strings.HasPrefix(answer.Message.Text, GuardText)
			if rejected != tt.reject {
				t.Fatalf("answer %q, rejected %v, want %v: %s", w.Body, rejected, tt.reject, tt.reason)
			}
		})
	}
}

func TestGuardPanicsWithoutSecret(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("Guard(\"\") did not panic: an empty key would accept anyone's signature")
		}
	}()
	Guard("")
}

// memoryClient is a Client over an in-memory session service, for tests
// of what the adapter does without Stream answering.
func memoryClient(t testing.TB, user string) *Client {
	t.Helper()
	dir := &session.MemoryDirectory{}
	svc := &session.MemoryService{Directory: dir}
	srv := streamtest.NewTestServer(t, streamtest.Config{})
	c, err := New(context.Background(), Config{Stream: srv.Client(),
		Veil: e2ee.Config{UserID: user, Service: svc.As(user), Directory: dir, Publisher: dir}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWebhookHandlerRefuses(t *testing.T) {
	t.Parallel()
	c := memoryClient(t, "bot")
	var calls atomic.Int32
	h := c.WebhookHandler(testSecret, func(context.Context, *Event) { calls.Add(1) })
	ptr := func(s string) *string { return &s }
	ev := []byte(`{"type":"member.added","cid":"messaging:x","member":{"user_id":"carol"}}`)
	tests := []struct {
		name   string
		method string
		body   []byte
		sig    *string
		code   int
		reason string
	}{
		{name: "signed event", method: "POST", body: ev, code: 200, reason: "a signed event reaches the callback"},
		{name: "no signature", method: "POST", body: ev, sig: ptr(""), code: 401, reason: "unsigned calls are not Stream's"},
		{name: "wrong signature", method: "POST", body: ev, sig: ptr(sign(ev, "another secret")), code: 401, reason: "signed under another key"},
		{name: "signature of another body", method: "POST", body: ev, sig: ptr(sign(append(ev, ' '), testSecret)), code: 401, reason: "the MAC covers every byte"},
		{name: "upper-case hex", method: "POST", body: ev, sig: ptr(strings.ToUpper(sign(ev, testSecret))), code: 200, reason: "hex is case-insensitive"},
		{name: "GET", method: "GET", code: 405, reason: "Stream POSTs"},
		{name: "too large", method: "POST", body: bytes.Repeat([]byte(" "), MaxWebhookBody+1), code: 413, reason: "bounded before parsing"},
		{name: "malformed JSON", method: "POST", body: []byte(`{"type":`), code: 400, reason: "a signed body that is not JSON"},
		{name: "no type", method: "POST", body: []byte(`{"cid":"messaging:x"}`), code: 400, reason: "every Stream event has a type"},
		{name: "array", method: "POST", body: []byte(`[{"type":"message.new"}]`), code: 400, reason: "an event is an object"},
		{name: "bad message", method: "POST", body: []byte(`{"type":"message.new","message":{"text":3}}`), code: 400, reason: "a message whose text is not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			w := post(h, tt.method, tt.body, tt.sig)
			if w.Code != tt.code {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tt.code, tt.reason)
			}
			if called := calls.Load() > before; called != (tt.code == 200) {
				t.Fatalf("callback called %v on HTTP %d: %s", called, w.Code, tt.reason)
			}
		})
	}
}

func TestWebhookEvent(t *testing.T) {
	t.Parallel()
	c := memoryClient(t, "bot")
	sid, other := testID(t, 0x11), testID(t, 0x22)
	var got *Event
	h := c.WebhookHandler(testSecret, func(_ context.Context, ev *Event) { got = ev })
	msg := func(text, user string) map[string]any {
		return map[string]any{"id": "m1", "cid": "messaging:x", "type": "regular", "text": text, "user": map[string]any{"id": user}, FieldEncrypted: true}
	}
	tests := []struct {
		name     string
		event    map[string]any
		status   Status
		err      error
		fromSelf bool
		reason   string
	}{
		{name: "other session in the channel's data", event: map[string]any{"type": "message.new", "cid": "messaging:x", "message": msg(fakeEnvelope(other), "alice"),
			"channel": map[string]any{"cid": "messaging:x", "type": "messaging", "id": "x", FieldSessionID: sid.String()}},
			status: StatusFailed, err: ErrWrongSession, reason: "the channel's data names the session an envelope must belong to"},
		{name: "malformed session_id in the channel's data", event: map[string]any{"type": "message.new", "cid": "messaging:x", "message": msg(fakeEnvelope(sid), "alice"),
			"channel": map[string]any{"cid": "messaging:x", FieldSessionID: "zz"}},
			status: StatusFailed, err: ErrSessionMismatch, reason: "a session_id that does not parse opens nothing"},
		{name: "unknown session", event: map[string]any{"type": "message.updated", "cid": "messaging:x", "message": msg(fakeEnvelope(sid), "alice")},
			status: StatusFailed, err: ErrUnavailable, reason: "without channel data the channel's verified session is looked up on Stream, where this channel does not exist: nothing opens"},
		{name: "plaintext", event: map[string]any{"type": "message.new", "cid": "messaging:x", "message": map[string]any{"id": "m2", "text": "hi", "user": map[string]any{"id": "alice"}}},
			status: StatusPlaintext, err: ErrPlaintext, reason: "plaintext arrives flagged"},
		{name: "marked but plaintext", event: map[string]any{"type": "message.new", "cid": "messaging:x", "message": msg("hi", "alice")},
			status: StatusFailed, err: ErrTampered, reason: "a marked message whose text is no envelope was altered"},
		{name: "deleted", event: map[string]any{"type": "message.deleted", "cid": "messaging:x", "message": map[string]any{"id": "m3", "type": "deleted", "user": map[string]any{"id": "bot"}}},
			status: StatusDeleted, fromSelf: true, reason: "a deletion carries no content; the bot's own message is FromSelf"},
		{name: "member event", event: map[string]any{"type": "member.added", "cid": "messaging:x", "member": map[string]any{"user_id": "bot"}, "user": map[string]any{"id": "bot"}},
			reason: "other events have no Message, and FromSelf is about messages only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			body, _ := json.Marshal(tt.event)
			if w := post(h, "POST", body, nil); w.Code != 200 {
				t.Fatalf("HTTP %d: %s", w.Code, w.Body)
			}
			if got == nil {
				t.Fatal("callback not called")
			}
			if got.CID != "messaging:x" || string(got.Type) != tt.event["type"] || got.Raw == nil {
				t.Fatalf("event %q %q, raw %v", got.Type, got.CID, got.Raw != nil)
			}
			if got.FromSelf() != tt.fromSelf {
				t.Errorf("FromSelf() = %v: %s", got.FromSelf(), tt.reason)
			}
			if tt.status == 0 {
				if got.Message != nil {
					t.Fatalf("Message = %+v, want nil: %s", got.Message, tt.reason)
				}
				if got.Member == nil || got.User == nil {
					t.Fatalf("member and user not passed on: %s", tt.reason)
				}
				return
			}
			if got.Message == nil || got.Message.Status != tt.status {
				t.Fatalf("message %+v, want status %v: %s", got.Message, tt.status, tt.reason)
			}
			if tt.err != nil && !errors.Is(got.Message.Err, tt.err) {
				t.Fatalf("Err = %v, want %v: %s", got.Message.Err, tt.err, tt.reason)
			}
		})
	}
}

func FuzzGuard(f *testing.F) {
	sid := testID(f, 0x11)
	enc := map[string]any{FieldSessionID: sid.String(), FieldEncrypted: true}
	f.Add(hookBody(f, map[string]any{"text": fakeEnvelope(sid), FieldEncrypted: true}, enc))
	f.Add(hookBody(f, map[string]any{"text": fakeEnvelope(sid), FieldEncrypted: true,
		"attachments": []any{map[string]any{"type": "file", "asset_url": "https://x.example/a", FieldEncrypted: true}}}, enc))
	f.Add(hookBody(f, map[string]any{"text": "hello"}, enc))
	f.Add(hookBody(f, map[string]any{"text": "hello"}, map[string]any{"cid": "messaging:y"}))
	f.Add([]byte(`{"message":{"type":"system"},"channel":{"veil_encrypted":1}}`))
	f.Add([]byte(`{"message":null,"channel":{"session_id":null}}`))
	h := Guard(testSecret)
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > MaxWebhookBody {
			return
		}
		why := inspect(body)
		w := post(h, "POST", body, nil)
		if w.Code != 200 {
			t.Fatalf("HTTP %d for a signed body", w.Code)
		}
		if (why == "") != (w.Body.Len() == 0) {
			t.Fatalf("inspect %q, answer %q", why, w.Body)
		}
		if why != "" {
			var answer struct {
				Message struct{ Type, Text string } `json:"message"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil || answer.Message.Type != "error" || !strings.HasPrefix(answer.Message.Text, GuardText) {
				t.Fatalf("rejection %q: %v", w.Body, err)
			}
		}
		// A body accepted in an encrypted channel has an envelope of its
		// session as text.
		var p struct {
			Message map[string]any `json:"message"`
		}
		if why == "" && json.Unmarshal(body, &p) == nil && p.Message != nil && p.Message["type"] != "system" {
			var top map[string]json.RawMessage
			var ch map[string]any
			if json.Unmarshal(body, &top) == nil && json.Unmarshal(top["channel"], &ch) == nil {
				if id, encrypted, _ := guardSession(ch); encrypted {
					text, _ := p.Message["text"].(string)
					env, err := session.DecodeText(text)
					if err != nil {
						t.Fatalf("accepted %q in an encrypted channel", text)
					}
					if hd, err := session.ParseHeader(env); err != nil || hd.SessionID != id {
						t.Fatalf("accepted an envelope of another session: %v", err)
					}
				}
			}
		}
	})
}

func FuzzWebhook(f *testing.F) {
	sid := testID(f, 0x11)
	for _, ev := range []map[string]any{
		{"type": "message.new", "cid": "messaging:x", "message": map[string]any{"id": "m1", "text": fakeEnvelope(sid), "user": map[string]any{"id": "alice"}, FieldEncrypted: true},
			"channel": map[string]any{"cid": "messaging:x", FieldSessionID: sid.String()}},
		{"type": "message.updated", "message": map[string]any{"id": "m1", "cid": "messaging:x", "text": "hi", FieldRevision: 3}},
		{"type": "message.deleted", "cid": "messaging:x", "message": map[string]any{"id": "m1", "type": "deleted"}},
		{"type": "member.removed", "cid": "messaging:x", "member": map[string]any{"user_id": "bob"}},
	} {
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	c := memoryClient(f, "bot")
	var calls int
	var last *Event
	h := c.WebhookHandler(testSecret, func(_ context.Context, ev *Event) { calls++; last = ev })
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > MaxWebhookBody {
			return
		}
		before := calls
		w := post(h, "POST", body, nil)
		switch w.Code {
		case 200:
			if calls != before+1 || last == nil || last.Raw == nil {
				t.Fatal("HTTP 200 without one callback")
			}
			if m := last.Message; m != nil && (m.Message == nil || m.Status < StatusDecrypted || m.Status > StatusDeleted ||
				(m.Status == StatusFailed) != (m.Err != nil && !errors.Is(m.Err, ErrPlaintext))) {
				t.Fatalf("message %+v", m)
			}
			if last.Message != nil && last.Message.Status == StatusDecrypted {
				t.Fatal("a fuzzed envelope decrypted")
			}
		case 400:
			if calls != before {
				t.Fatal("callback called for a malformed event")
			}
		default:
			t.Fatalf("HTTP %d", w.Code)
		}
	})
}

// BenchmarkGuard measures a before-message-send call answered by Guard:
// Stream lets a message through when the hook does not answer in time.
func BenchmarkGuard(b *testing.B) {
	sid := testID(b, 0x11)
	enc := map[string]any{"cid": "messaging:x", FieldSessionID: sid.String(), FieldEncrypted: true,
		"members": []any{}, "created_by": map[string]any{"id": "alice"}}
	env := make([]byte, session.Overhead+3000)
	env[0] = session.Version
	copy(env[1:], sid[:])
	for _, bc := range []struct {
		name string
		msg  map[string]any
	}{
		{"sealed 3KB", map[string]any{"id": "m1", "type": "regular", "text": session.EncodeText(env), "html": "", FieldEncrypted: true, "attachments": []any{}}},
		{"plaintext", map[string]any{"id": "m1", "type": "regular", "text": "hello", "html": "", "attachments": []any{}}},
	} {
		body := hookBody(b, bc.msg, enc)
		h := Guard(testSecret)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if w := post(h, "POST", body, nil); w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
