package streamadapter

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/veilchat/veil/session"
)

// GuardText starts the text of every message Guard rejects; the rest says
// why. The sender gets it back as a message of type "error" (through the
// adapter, as ErrRejected).
const GuardText = "this channel is end-to-end encrypted: send through Veil"

// Guard returns a handler for Stream's before-message-send hook (the app
// setting before_message_send_hook_url) that keeps plaintext out of
// encrypted channels: a client that is misconfigured, or an old version
// that does not know a channel is encrypted, gets its message back as an
// error instead of having it stored and delivered in the clear.
//
// A channel is encrypted when its custom data has a session_id or
// veil_encrypted set. In one, Guard rejects every message but Stream's
// system messages unless
//
//   - its text is a well-formed envelope (session.DecodeText,
//     session.ParseHeader) of the session the channel's session_id names,
//   - it is marked veil_encrypted, as Channel.SendMessage marks it,
//   - its Stream attachments, if any, are the opaque ones the adapter
//     writes: type "file", veil_encrypted, an http(s) asset_url and no
//     other field set (no title, text, image or thumbnail that could carry
//     plaintext), and
//   - it carries no html, mml or i18n of its own.
//
// An encrypted channel whose session_id is missing or malformed rejects
// every message. The rejection answers {"message": {"type": "error",
// "text": GuardText + why}}; a message that passes, or any message of a
// channel that is not encrypted, gets an empty 200 and is stored
// unchanged.
//
// What Guard cannot check: that an envelope is genuine (it holds no key: a
// copy of another message's envelope of the same session passes, and its
// readers see it fail with ErrTampered), and custom fields, which pass
// unchecked because a sender may leave fields in the clear on purpose
// (Public) and Guard cannot tell those from a mistake. Nor does it keep
// plaintext from reaching Stream: Stream has received the message in the
// clear before it calls the hook. Guard keeps it from being stored and
// delivered to the channel's members.
// Stream does not pass edits (UpdateMessage, PartialUpdateMessage) through
// the hook either: an edit in the clear shows as StatusPlaintext or
// StatusFailed to readers, never as decrypted.
//
// Stream fails open: a hook that does not answer within its timeout
// (before_message_send_hook_attempt_timeout_ms, 1.5 s by default) or
// answers an error status lets the message through. Guard answers from the
// request alone, without any network call (BenchmarkGuard measures it), and
// a signed body it cannot read is rejected (fail closed), not answered with
// an error status. Calls that are not POSTs get 405, bodies
// over MaxWebhookBody 413, and a missing or wrong X-Signature (the hex
// HMAC-SHA256 of the body under apiSecret, the app's API secret, compared
// in constant time) 401: they do not come from Stream.
//
// Guard panics if apiSecret is empty (anyone could sign with an empty
// key). The handler is safe for concurrent use.
func Guard(apiSecret string) http.Handler {
	if apiSecret == "" {
		panic("streamadapter: Guard needs the app's API secret")
	}
	secret := []byte(apiSecret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := readSigned(w, r, secret)
		if !ok {
			return
		}
		why := inspect(body)
		if why == "" {
			w.WriteHeader(http.StatusOK)
			return
		}
		answer, _ := json.Marshal(map[string]any{"message": map[string]any{"type": "error", "text": GuardText + " (" + why + ")"}})
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
}

// inspect reads a before-message-send body and returns why the message
// must be rejected, or "" to let it through. Fields are read from maps, by
// their exact names: a struct would also match "Text" or "TEXT" (custom
// fields) to text.
func inspect(body []byte) string {
	const unreadable = "the guard cannot read the message"
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return unreadable
	}
	var ch map[string]any
	if json.Unmarshal(top["channel"], &ch) != nil || ch == nil {
		return unreadable
	}
	sid, encrypted, why := guardSession(ch)
	if !encrypted {
		return ""
	}
	if why != "" {
		return why
	}
	var msg map[string]any
	if json.Unmarshal(top["message"], &msg) != nil || msg == nil {
		return unreadable
	}
	if msg["type"] == "system" {
		return ""
	}
	text, ok := msg["text"].(string)
	if !ok || !session.IsText(text) {
		return "the message is not sealed"
	}
	env, err := session.DecodeText(text)
	if err != nil {
		return "the message's envelope is malformed"
	}
	h, err := session.ParseHeader(env)
	if err != nil {
		return "the message's envelope is malformed"
	}
	if h.SessionID != sid {
		return "the message was sealed for another session than the channel's"
	}
	if msg[FieldEncrypted] != true {
		return "the message is not marked " + FieldEncrypted
	}
	for _, k := range []string{"html", "mml", "i18n"} {
		if !isZero(msg[k]) {
			return "the message carries " + k + " beside its envelope"
		}
	}
	switch atts := msg["attachments"].(type) {
	case nil:
	case []any:
		if len(atts) > maxAttachments {
			return "the message has too many attachments"
		}
		for _, a := range atts {
			if !opaqueAttachment(a) {
				return "an attachment is not an encrypted file uploaded through Veil"
			}
		}
	default:
		return unreadable
	}
	return ""
}

// guardSession reads whether a hook's channel is encrypted and, if so, its
// session, or why no message can be accepted in it.
func guardSession(ch map[string]any) (sid session.ID, encrypted bool, why string) {
	raw, named := ch[FieldSessionID]
	named = named && !isZero(raw)
	marked := !isZero(ch[FieldEncrypted])
	switch {
	case !named && !marked:
		return session.ID{}, false, ""
	case !named:
		return session.ID{}, true, "the channel is marked encrypted but has no session_id"
	}
	s, ok := raw.(string)
	if !ok {
		return session.ID{}, true, "the channel's session_id is malformed"
	}
	id, err := session.ParseID(s)
	if err != nil {
		return session.ID{}, true, "the channel's session_id is malformed"
	}
	return id, true, ""
}

// opaqueAttachment reports whether a Stream attachment is one the adapter
// writes for an encrypted file: type "file", veil_encrypted, an http(s)
// asset_url, and nothing else that could carry plaintext.
func opaqueAttachment(v any) bool {
	a, ok := v.(map[string]any)
	if !ok || a["type"] != "file" || a[FieldEncrypted] != true {
		return false
	}
	for k, v := range a {
		switch k {
		case "type", FieldEncrypted:
		case "asset_url":
			s, ok := v.(string)
			if !ok {
				return false
			}
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return false
			}
		default:
			if !isZero(v) {
				return false
			}
		}
	}
	return true
}

// isZero reports whether a decoded JSON value is absent or empty.
func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case float64:
		return v == 0
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}
