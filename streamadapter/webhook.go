package streamadapter

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/session"
)

// MaxWebhookBody bounds the body WebhookHandler and Guard read: larger
// calls are answered 413 Request Entity Too Large without being parsed.
// Stream's own limits (5,000 characters of text, 5 KB of custom data per
// message, channel and user) keep its calls far below it.
const MaxWebhookBody = 1 << 20

// Event is a Stream webhook event as the adapter's user sees it: Stream's
// event, and its message opened.
type Event struct {
	// Type is the event's type (stream.EventMessageNew, ...).
	Type stream.EventType
	// CID is the channel the event is about ("type:id"), empty for events
	// about no channel.
	CID string
	// Message is the event's message, opened for the adapter's user, for
	// message.new, message.updated and message.deleted events; nil for
	// other events. Check its Status before reading its Text: a message
	// that is not encrypted (StatusPlaintext) or did not open
	// (StatusFailed) arrives as well.
	Message *Message
	// Member and User are the event's member and user, as Stream sent
	// them.
	Member *stream.ChannelMember
	User   *stream.User
	// WebhookID is Stream's ID of the call (X-Webhook-Id). Stream retries
	// a call that fails or times out, with the same ID: a callback that
	// must act once can skip IDs it has seen.
	WebhookID string
	// Raw is the event as Stream sent it: its message's text is the
	// envelope.
	Raw *stream.Event

	self string
}

// FromSelf reports whether the event's message was sent by the adapter's
// user: a bot that answers messages skips its own, or it answers itself
// forever. It is false for events without a message. The sender is the one
// Stream names; for a message with StatusDecrypted it is also the one the
// envelope's signature authenticates.
func (ev *Event) FromSelf() bool {
	if ev == nil || ev.Raw == nil || ev.Raw.Message == nil || ev.self == "" {
		return false
	}
	return sender(ev.Raw.Message) == ev.self
}

// WebhookHandler returns the handler to set as the app's webhook URL
// (webhook_url in Stream's app settings). For each call it verifies
// X-Signature, the hex HMAC-SHA256 of the body under apiSecret, the app's
// API secret, in constant time; parses Stream's event; opens the message of
// a message.new, message.updated or message.deleted event for the adapter's
// user; and hands the event to fn.
//
// fn runs synchronously, on the request's goroutine: the handler answers
// 200 once fn returns, so events reach fn in the order Stream sends them,
// one call at a time per connection. Stream gives up on a call after a few
// seconds and retries it (with the same Event.WebhookID): keep fn short and
// hand long work to a goroutine or a queue, with a context of its own (ctx
// ends when the call does; context.WithoutCancel keeps its values). fn may
// call the adapter, to answer in the channel for example.
//
// The handler answers 405 to anything but POST, 413 to a body over
// MaxWebhookBody, 401 (without calling fn) to a missing or wrong
// signature, and 400 to a signed body that is not a Stream event. A
// signature does not say when the call was made: whoever recorded a call
// can replay it, which Event.WebhookID lets fn detect.
//
// The message is opened as Channel.GetMessages opens it: with the
// channel's session when the event carries the channel's data (its
// session_id), else bound to the event's channel, whose session's signed
// genesis must name it, as Client.GetMessage does. Opening may fetch the
// session and the sender's card from the key service; when that fails the
// message arrives with StatusFailed and ErrUnavailable, and fn still runs.
//
// WebhookHandler panics if apiSecret is empty (anyone could sign with an
// empty key) or fn is nil. The handler is safe for concurrent use.
func (c *Client) WebhookHandler(apiSecret string, fn func(ctx context.Context, ev *Event)) http.Handler {
	if apiSecret == "" {
		panic("streamadapter: WebhookHandler needs the app's API secret")
	}
	if fn == nil {
		panic("streamadapter: WebhookHandler needs a callback")
	}
	secret := []byte(apiSecret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := readSigned(w, r, secret)
		if !ok {
			return
		}
		raw, err := parseEvent(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fn(r.Context(), c.event(r.Context(), raw, r.Header.Get("X-Webhook-Id")))
		w.WriteHeader(http.StatusOK)
	})
}

// readSigned reads a webhook call's body and checks its signature. When the
// call is refused it answers it and returns false.
func readSigned(w http.ResponseWriter, r *http.Request, secret []byte) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "streamadapter: webhooks are POSTed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "streamadapter: webhook body too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "streamadapter: reading the webhook body failed", http.StatusBadRequest)
		}
		return nil, false
	}
	if !validSignature(body, r.Header.Get("X-Signature"), secret) {
		http.Error(w, "streamadapter: missing or invalid X-Signature", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// validSignature reports whether sig is the hex HMAC-SHA256 of body under
// secret, comparing in constant time.
func validSignature(body []byte, sig string, secret []byte) bool {
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(m.Sum(nil), got)
}

// errNotEvent is the answer to a signed body that is not a Stream event.
var errNotEvent = errors.New("streamadapter: the webhook body is not a Stream event (a JSON object with a type)")

// parseEvent decodes a webhook body as one Stream event.
func parseEvent(body []byte) (*stream.Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, errNotEvent
	}
	var ev stream.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" {
		return nil, errNotEvent
	}
	return &ev, nil
}

// event builds the Event of raw, opening its message for a message event.
func (c *Client) event(ctx context.Context, raw *stream.Event, webhookID string) *Event {
	ev := &Event{Type: raw.Type, CID: raw.CID, Member: raw.Member, User: raw.User, WebhookID: webhookID, Raw: raw, self: c.user}
	if ev.CID == "" && raw.Channel != nil {
		ev.CID = raw.Channel.CID
		if ev.CID == "" && raw.Channel.Type != "" && raw.Channel.ID != "" {
			ev.CID = raw.Channel.Type + ":" + raw.Channel.ID
		}
	}
	if ev.CID == "" && raw.Message != nil {
		ev.CID = raw.Message.CID
	}
	switch raw.Type {
	case stream.EventMessageNew, stream.EventMessageUpdated, stream.EventMessageDeleted:
		if raw.Message != nil {
			ev.Message = c.openEvent(ctx, ev.CID, raw)
		}
	}
	return ev
}

// openEvent opens an event's message, with the session the event's channel
// data names, if any.
func (c *Client) openEvent(ctx context.Context, cid string, raw *stream.Event) *Message {
	var sid *session.ID
	if raw.Channel != nil {
		id, err := channelSession(raw.Channel)
		switch {
		case err == nil:
			sid = &id
		case errors.Is(err, ErrNotEncrypted):
			// The channel's data names no session: bind to the channel.
		default:
			return &Message{Message: raw.Message, Status: StatusFailed, Err: err}
		}
	}
	return c.openPage(ctx, cid, sid, []*stream.Message{raw.Message})[0]
}
