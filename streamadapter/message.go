package streamadapter

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/session"
)

// Status says what the adapter could make of a received message.
type Status int

const (
	// StatusDecrypted: the message opened; Text, Custom and Attachments
	// are what its sender sealed, and the sender is the one Stream names.
	StatusDecrypted Status = iota + 1
	// StatusPlaintext: the message is not encrypted (Err is ErrPlaintext).
	// In an encrypted channel nobody vouches for it: show it flagged, or
	// not at all.
	StatusPlaintext
	// StatusFailed: the message is encrypted but did not open; Err says
	// why (ErrTampered, ErrNoKey, ErrRemoved, ...).
	StatusFailed
	// StatusDeleted: the message was deleted; it has no content.
	StatusDeleted
)

// String names the status.
func (s Status) String() string {
	switch s {
	case StatusDecrypted:
		return "decrypted"
	case StatusPlaintext:
		return "plaintext"
	case StatusFailed:
		return "failed"
	case StatusDeleted:
		return "deleted"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Message is a message of an encrypted channel as the adapter's user reads
// it: Stream's message (whose Text is the sealed envelope) and what opening
// it gave.
type Message struct {
	// Message is the message as Stream returned it. Of a decrypted
	// message only its ID, channel, sender, thread parent, quoted message
	// and revision are authenticated (with Text, Custom and Attachments);
	// the rest (mentions, flags, public custom fields, reactions, times)
	// is Stream's word.
	*stream.Message
	// Status says whether the message opened; Err why not.
	Status Status
	Err    error
	// Text, Custom and Attachments are the sealed text, custom fields and
	// attachments (StatusDecrypted), or for StatusPlaintext Stream's text
	// (unauthenticated).
	Text        string
	Custom      map[string]any
	Attachments []Attachment
	// Revision is the message's edit revision: 0 as first sent.
	Revision uint32
}

// Reason returns the sentinel error Err matches — ErrPlaintext, ErrNoKey,
// ErrTampered and so on — without the detail it wraps, for a switch in a
// UI; nil for a message that opened.
func (m *Message) Reason() error {
	for _, r := range reasons {
		if errors.Is(m.Err, r) {
			return r
		}
	}
	return m.Err
}

// payload is what a message seals (docs/PROTOCOL.md §9.1).
type payload struct {
	Text        string           `json:"text"`
	Custom      map[string]any   `json:"custom,omitempty"`
	Attachments []wireAttachment `json:"attachments,omitempty"`
}

// maxAttachments bounds the attachments of one message.
const maxAttachments = 32

// SendOption is an option of Channel.SendMessage and Channel.UpdateMessage.
type SendOption func(*sendOptions)

type sendOptions struct {
	public   map[string]bool
	attach   []Attachment
	skipPush bool
}

// Public leaves the named custom fields of the message in the clear on
// Stream (for example a field a push template or a moderation rule
// reads). Every other custom field is sealed. Public fields are not
// authenticated: readers find them in the Stream message's ExtraData, as
// Stream serves them, not in Message.Custom.
func Public(fields ...string) SendOption {
	return func(o *sendOptions) {
		if o.public == nil {
			o.public = map[string]bool{}
		}
		for _, f := range fields {
			o.public[f] = true
		}
	}
}

// Attach carries attachments uploaded with Channel.UploadFile inside the
// sealed message.
func Attach(a ...Attachment) SendOption {
	return func(o *sendOptions) { o.attach = append(o.attach, a...) }
}

// SkipPush sends the message without push notifications.
func SkipPush() SendOption { return func(o *sendOptions) { o.skipPush = true } }

// reserved are custom field names the adapter writes or Stream owns.
var reserved = map[string]bool{"id": true, FieldEncrypted: true, FieldRevision: true}

// NewMessageID returns a random message ID (32 hex digits), the kind
// SendMessage chooses when the message has none.
func NewMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// seal builds the Stream message for msg, sealed as revision rev.
func (ch *Channel) seal(ctx context.Context, id string, msg *stream.Message, rev uint32, o sendOptions) (*stream.Message, payload, error) {
	if len(msg.Attachments) > 0 {
		return nil, payload{}, ErrPlaintextAttachment
	}
	if len(o.attach) > maxAttachments {
		return nil, payload{}, fmt.Errorf("streamadapter: %d attachments, at most %d per message", len(o.attach), maxAttachments)
	}
	p := payload{Text: msg.Text}
	public := map[string]any{}
	for k, v := range msg.ExtraData {
		switch {
		case reserved[k]:
			return nil, payload{}, fmt.Errorf("streamadapter: the custom field %q is the adapter's", k)
		case o.public[k]:
			public[k] = v
		default:
			if p.Custom == nil {
				p.Custom = map[string]any{}
			}
			p.Custom[k] = v
		}
	}
	var streamAtt []*stream.Attachment
	for _, a := range o.attach {
		if err := a.check(ch.c.maxFile); err != nil {
			return nil, payload{}, err
		}
		p.Attachments = append(p.Attachments, a.wire())
		streamAtt = append(streamAtt, &stream.Attachment{Type: "file", AssetURL: a.URL,
			ExtraData: map[string]any{FieldEncrypted: true}})
	}
	plain, err := marshalPayload(p)
	if err != nil {
		return nil, payload{}, err
	}
	if len(plain) > ch.c.maxPlain {
		return nil, payload{}, fmt.Errorf("%w: %d bytes once encoded (text, sealed fields and attachment descriptors), at most %d fit in Stream's %d characters",
			ErrTooLong, len(plain), ch.c.maxPlain, ch.c.limit)
	}
	b := session.Binding{ChannelCID: ch.cid, MessageID: id, SenderID: ch.c.user,
		ParentID: msg.ParentID, QuotedID: msg.QuotedMessageID, Revision: rev}
	text, err := ch.c.veil.Encrypt(ctx, b, plain)
	clear(plain)
	if err != nil {
		return nil, payload{}, err
	}
	public["id"] = id
	public[FieldEncrypted] = true
	if rev > 0 {
		public[FieldRevision] = rev
	}
	out := &stream.Message{Text: text, ParentID: msg.ParentID, QuotedMessageID: msg.QuotedMessageID,
		ShowInChannel: msg.ShowInChannel, Silent: msg.Silent, MentionedUsers: msg.MentionedUsers,
		Attachments: streamAtt, ExtraData: public, UserID: ch.c.user}
	return out, p, nil
}

// SendMessage seals msg and sends it to the channel as the adapter's user.
// The text and every custom field (ExtraData) not named by Public are
// sealed; ParentID (a thread reply) and QuotedMessageID are sent in the
// clear, as Stream needs them, and bound to the envelope; ShowInChannel,
// Silent and MentionedUsers are sent in the clear and not bound: Stream
// can change them, as it can the public fields. msg.ID is the message's
// ID if set, else a random one, chosen before sealing; msg.Attachments
// must be empty (pass files uploaded with Channel.UploadFile with
// Attach). URL enrichment is always off: a preview would show the URL to
// Stream.
//
// A message too long once sealed returns ErrTooLong before anything is
// sent; a message Stream's before-message-send hook rejects returns
// ErrRejected with the hook's text.
func (ch *Channel) SendMessage(ctx context.Context, msg *stream.Message, opts ...SendOption) (*Message, error) {
	if msg == nil {
		return nil, errors.New("streamadapter: SendMessage needs a message")
	}
	var o sendOptions
	for _, f := range opts {
		f(&o)
	}
	id := msg.ID
	if id == "" {
		id = NewMessageID()
	}
	out, p, err := ch.seal(ctx, id, msg, 0, o)
	if err != nil {
		return nil, err
	}
	sopts := []stream.SendMessageOption{stream.MessageSkipEnrichURL}
	if o.skipPush {
		sopts = append(sopts, stream.MessageSkipPush)
	}
	resp, err := ch.sc.SendMessage(ctx, out, ch.c.user, sopts...)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: sending to %s: %w", ch.cid, err)
	}
	return ch.sent(resp, id, p, o.attach, 0)
}

// sent checks Stream's answer to a sent or updated message.
func (ch *Channel) sent(resp *stream.MessageResponse, id string, p payload, atts []Attachment, rev uint32) (*Message, error) {
	if resp == nil || resp.Message == nil {
		return nil, fmt.Errorf("streamadapter: Stream answered no message for %s", id)
	}
	if resp.Message.Type == stream.MessageTypeError {
		return nil, fmt.Errorf("%w: %s", ErrRejected, resp.Message.Text)
	}
	if resp.Message.ID != id {
		return nil, fmt.Errorf("%w: sealed for %q, stored as %q", ErrIDMismatch, id, resp.Message.ID)
	}
	return &Message{Message: resp.Message, Status: StatusDecrypted, Text: p.Text, Custom: p.Custom, Attachments: atts, Revision: rev}, nil
}

// ErrRejected is returned when Stream (its before-message-send hook, such
// as the plaintext guard) refused a message.
var ErrRejected = errors.New("streamadapter: Stream rejected the message")

// UpdateMessage edits a message the adapter's user sent: msg's text and
// custom fields (sealed as SendMessage seals them) replace the message's,
// sealed under the same ID with the next revision, so that readers who saw
// this edit refuse the older text served again (ErrRolledBack). The
// attachments are kept unless Attach gives new ones. The message is read
// first: one that does not open, or that another user sent, is not edited
// (ErrNotSender).
func (ch *Channel) UpdateMessage(ctx context.Context, msgID string, msg *stream.Message, opts ...SendOption) (*Message, error) {
	if msg == nil || msgID == "" {
		return nil, errors.New("streamadapter: UpdateMessage needs a message ID and a message")
	}
	cur, err := ch.GetMessages(ctx, []string{msgID})
	if err != nil {
		return nil, err
	}
	if len(cur) != 1 || cur[0].ID != msgID {
		// The edit takes its thread, quote and attachments from it.
		return nil, fmt.Errorf("streamadapter: message %q is not in %s", msgID, ch.cid)
	}
	old := cur[0]
	if old.Status != StatusDecrypted {
		return nil, fmt.Errorf("streamadapter: message %q cannot be edited: %s: %w", msgID, old.Status, old.Err)
	}
	if sender(old.Message) != ch.c.user {
		return nil, ErrNotSender
	}
	if old.Revision == math.MaxUint32 {
		return nil, fmt.Errorf("streamadapter: message %q has no revision left", msgID)
	}
	var o sendOptions
	for _, f := range opts {
		f(&o)
	}
	if o.attach == nil {
		o.attach = old.Attachments
	}
	edit := *msg
	edit.ParentID, edit.QuotedMessageID = old.ParentID, old.QuotedMessageID
	rev := old.Revision + 1
	out, p, err := ch.seal(ctx, msgID, &edit, rev, o)
	if err != nil {
		return nil, err
	}
	delete(out.ExtraData, "id")
	resp, err := ch.c.sc.UpdateMessage(ctx, out, msgID)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: updating %s: %w", msgID, err)
	}
	return ch.sent(resp, msgID, p, o.attach, rev)
}

// sender is the user a Stream message names as its author.
func sender(m *stream.Message) string {
	if m.User != nil && m.User.ID != "" {
		return m.User.ID
	}
	return m.UserID
}

// marshalPayload encodes p as compact JSON without HTML escaping.
func marshalPayload(p payload) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("streamadapter: a sealed custom field cannot be encoded as JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// parsePayload decodes a sealed payload.
func parsePayload(b []byte, maxFile int64) (payload, []Attachment, error) {
	if !utf8.Valid(b) || oneMeaning(b) != nil {
		return payload{}, nil, ErrMalformed
	}
	var p payload
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil || dec.More() {
		return payload{}, nil, ErrMalformed
	}
	if len(p.Attachments) > maxAttachments {
		return payload{}, nil, ErrMalformed
	}
	var atts []Attachment
	for _, w := range p.Attachments {
		a, err := w.attachment()
		if err != nil || a.check(maxFile) != nil {
			return payload{}, nil, ErrMalformed
		}
		atts = append(atts, a)
	}
	return p, atts, nil
}

// Where a JSON value is in a payload, for oneMeaning.
const (
	inValue       = iota // anywhere else
	inPayload            // the payload object
	inText               // its text
	inAttachments        // its attachments
	inDescriptor         // one of those
)

// payloadNames are the member names encoding/json matches in the payload
// and in a descriptor.
var payloadNames = map[int][]string{
	inPayload:    {"text", "custom", "attachments"},
	inDescriptor: {"url", "key", "name", "mime_type", "size", "sha256"},
}

// maxPayloadDepth bounds the nesting of a payload, as encoding/json does.
const maxPayloadDepth = 10000

// oneMeaning reports an error unless b is one JSON object with a string
// text in which no object repeats a name and the payload's and the
// descriptors' names are spelled exactly: encoding/json matches names case
// insensitively (K matching the Kelvin sign) and takes the last of
// repeated ones, where another reader of the same message (a JavaScript
// client) would read another text or another file. It scans b once,
// decoding only names; b's UTF-8 and the rest of its syntax are the
// decoder's to check.
func oneMeaning(b []byte) error {
	s := payloadScan{b: b}
	if err := s.value(inPayload, 0); err != nil {
		return err
	}
	s.space()
	if s.i != len(b) {
		return errors.New("more than one JSON value")
	}
	return nil
}

// payloadScan finds the names and the values of a JSON text, for
// oneMeaning.
type payloadScan struct {
	b []byte
	i int
}

var errNotJSON = errors.New("not JSON")

func (s *payloadScan) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// next returns the byte at the scan position after white space, 0 at the
// end.
func (s *payloadScan) next() byte {
	s.space()
	if s.i == len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// value scans the value at the scan position, found where 'where' says.
func (s *payloadScan) value(where, depth int) error {
	if depth > maxPayloadDepth {
		return errors.New("too deep")
	}
	c := s.next()
	switch {
	case where == inText && c != '"':
		return errors.New("text is not a string")
	case (where == inPayload || where == inDescriptor) && c != '{', where == inAttachments && c != '[':
		return errors.New("not an object or array where one is due")
	}
	switch c {
	case '"':
		_, err := s.str(false)
		return err
	case '[':
		s.i++
		in := inValue
		if where == inAttachments {
			in = inDescriptor
		}
		if s.next() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.value(in, depth+1); err != nil {
				return err
			}
			switch s.next() {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return errNotJSON
			}
		}
	case '{':
		s.i++
		seen := map[string]bool{}
		for more := s.next() != '}'; more; {
			if s.next() != '"' {
				return errNotJSON
			}
			name, err := s.str(true)
			if err != nil {
				return err
			}
			if seen[name] {
				return fmt.Errorf("the name %q repeats", name)
			}
			seen[name] = true
			for _, known := range payloadNames[where] {
				if name != known && strings.EqualFold(name, known) {
					return fmt.Errorf("%q is spelled %q", known, name)
				}
			}
			if s.next() != ':' {
				return errNotJSON
			}
			s.i++
			in := inValue
			switch {
			case where == inPayload && name == "text":
				in = inText
			case where == inPayload && name == "attachments":
				in = inAttachments
			}
			if err := s.value(in, depth+1); err != nil {
				return err
			}
			switch s.next() {
			case ',':
				s.i++
			case '}':
				more = false
			default:
				return errNotJSON
			}
		}
		s.i++ // the closing brace
		if where == inPayload && !seen["text"] {
			return errors.New("no text")
		}
		return nil
	}
	// A number, true, false or null: up to the next delimiter.
	start := s.i
	for s.i < len(s.b) && strings.IndexByte(",]} \t\n\r", s.b[s.i]) < 0 {
		s.i++
	}
	if s.i == start {
		return errNotJSON
	}
	return nil
}

// str scans the string at the scan position (its opening quote) and
// returns it decoded if decode is set.
func (s *payloadScan) str(decode bool) (string, error) {
	start, escaped := s.i, false
	for s.i++; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i++
		case '"':
			s.i++
			raw := s.b[start:s.i]
			switch {
			case !decode:
				return "", nil
			case !escaped:
				return string(raw[1 : len(raw)-1]), nil
			}
			var out string
			if err := json.Unmarshal(raw, &out); err != nil {
				return "", err
			}
			return out, nil
		}
	}
	return "", errNotJSON
}

// revision reads a message's FieldRevision.
func revision(m *stream.Message) (uint32, bool) {
	v, ok := m.ExtraData[FieldRevision]
	if !ok {
		return 0, true
	}
	f, ok := v.(float64)
	if !ok || f < 1 || f > math.MaxUint32 || f != math.Trunc(f) {
		return 0, false
	}
	return uint32(f), true
}

// openPage opens a page of Stream messages of channel cid (cid empty: each
// message's own). sid is the channel's session, or nil for the one this
// client verified for each message's channel (see verifiedSession): an
// envelope of another session is ErrWrongSession, since anyone can sign a
// genesis naming a channel.
func (c *Client) openPage(ctx context.Context, cid string, sid *session.ID, msgs []*stream.Message) []*Message {
	out := make([]*Message, len(msgs))
	var batch []session.Sealed
	var where []int
	type verified struct {
		id  session.ID
		err error
	}
	channels := map[string]verified{} // when sid is nil
	for i, sm := range msgs {
		m := &Message{Message: sm}
		out[i] = m
		if sm == nil {
			m.Message = &stream.Message{}
			m.Status, m.Err = StatusFailed, fmt.Errorf("%w: an empty message", ErrTampered)
			continue
		}
		switch {
		case sm.Type == "deleted" || sm.DeletedAt != nil:
			m.Status = StatusDeleted
			continue
		case !session.IsText(sm.Text):
			if _, marked := sm.ExtraData[FieldEncrypted]; marked {
				m.Status, m.Err = StatusFailed, fmt.Errorf("%w: marked encrypted, but its text is not an envelope", ErrTampered)
				continue
			}
			m.Status, m.Err, m.Text = StatusPlaintext, ErrPlaintext, sm.Text
			continue
		}
		fail := func(err error) { m.Status, m.Err = StatusFailed, err }
		env, err := session.DecodeText(sm.Text)
		if err != nil {
			fail(reason(err))
			continue
		}
		h, err := session.ParseHeader(env)
		if err != nil {
			fail(reason(err))
			continue
		}
		mcid := cid
		if mcid == "" {
			mcid = sm.CID
		}
		want := sid
		if want == nil {
			v, ok := channels[mcid]
			if !ok {
				v.id, v.err = c.verifiedSession(ctx, mcid)
				channels[mcid] = v
			}
			if v.err != nil {
				fail(channelReason(v.err))
				continue
			}
			want = &v.id
		}
		if h.SessionID != *want {
			fail(fmt.Errorf("%w: session %s in a channel of session %s", ErrWrongSession, h.SessionID, *want))
			continue
		}
		rev, ok := revision(sm)
		if !ok {
			fail(fmt.Errorf("%w: a malformed %s", ErrTampered, FieldRevision))
			continue
		}
		m.Revision = rev
		if sm.User != nil && sm.User.ID != "" && sm.UserID != "" && sm.User.ID != sm.UserID {
			// A caller may read either: both must name the sender verified.
			fail(fmt.Errorf("%w: Stream names two senders, %q and %q", ErrTampered, sm.User.ID, sm.UserID))
			continue
		}
		batch = append(batch, session.Sealed{Envelope: env, Binding: session.Binding{ChannelCID: mcid, MessageID: sm.ID,
			SenderID: sender(sm), ParentID: sm.ParentID, QuotedID: sm.QuotedMessageID, Revision: rev}})
		where = append(where, i)
	}
	for k, r := range c.mgr().OpenBatch(ctx, batch) {
		m := out[where[k]]
		if r.Err != nil {
			m.Status, m.Err = StatusFailed, reason(r.Err)
			continue
		}
		p, atts, err := parsePayload(r.Plaintext, c.maxFile)
		clear(r.Plaintext)
		if err != nil {
			m.Status, m.Err = StatusFailed, err
			continue
		}
		// Stream's CDN re-signs the URLs it serves: download from the
		// entry Stream returns, which the digest makes as safe as the
		// sealed one, if it is on the sealed URL's host (so that Stream
		// cannot send a bot's requests elsewhere).
		for i := range atts {
			if i < len(m.Message.Attachments) && m.Message.Attachments[i] != nil {
				if u := m.Message.Attachments[i].AssetURL; sameOrigin(u, atts[i].URL) {
					atts[i].URL = u
				}
			}
		}
		m.Status, m.Text, m.Custom, m.Attachments = StatusDecrypted, p.Text, p.Custom, atts
	}
	return out
}
