package streamadapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
)

// Field names the adapter writes on Stream objects.
const (
	// FieldSessionID is the channel custom field that names the channel's
	// encryption session: the root of trust of its membership.
	FieldSessionID = "session_id"
	// FieldEncrypted marks a channel, a message and a Stream attachment as
	// encrypted (true), for UIs, push templates and the plaintext guard.
	FieldEncrypted = "veil_encrypted"
	// FieldRevision is a message's edit revision, absent for the message
	// as first sent. It is bound to the envelope: a changed value does not
	// open.
	FieldRevision = "veil_revision"
)

// Config configures a Client.
type Config struct {
	// Stream is the stream-chat-go client, made with the app's key and
	// secret (stream.NewClient). Required.
	Stream *stream.Client
	// Veil configures the e2ee.Client the adapter acts through, for the
	// user Veil.UserID. Leave Veil.Members and Veil.SessionID unset: the
	// adapter sets them from the Stream channel (its member list and its
	// session_id).
	Veil e2ee.Config
	// HTTPClient downloads attachments. Nil means http.DefaultClient. A
	// redirect is followed only to the scheme and host of the URL
	// requested (whatever its CheckRedirect), so that neither Stream's CDN
	// nor any other host sends a download elsewhere.
	HTTPClient *http.Client
	// AllowAttachmentURL, if set, is asked before every attachment
	// download and redirect: a URL it refuses is never requested
	// (ErrAttachmentURL). Nil allows every http(s) URL. A member of a
	// channel chooses the URLs its attachments name, so a reader that can
	// reach hosts the member cannot — a bot inside a private network —
	// should allow only its Stream CDN's hosts, or the member can make it
	// send GET requests to internal services (their answers never reach
	// the member, and fail the digest).
	AllowAttachmentURL func(*url.URL) bool
	// TextLimit is the longest message text Stream accepts, in
	// characters. Zero means Stream's default of 5,000.
	TextLimit int
	// MaxAttachmentSize bounds the plaintext size of a downloaded
	// attachment a descriptor may announce. Zero means 2 GiB.
	MaxAttachmentSize int64
}

// Client is a Veil user on Stream: a stream-chat-go client acting as that
// user, and the user's e2ee.Client. It is safe for concurrent use.
type Client struct {
	sc       *stream.Client
	veil     *e2ee.Client
	mgr      func() *session.Manager // veil.Manager: RotateIdentity replaces it
	user     string
	http     *http.Client
	allowURL func(*url.URL) bool
	limit    int
	maxFile  int64
	maxPlain int
}

// New returns a Client for cfg.Veil.UserID. It makes the user's
// e2ee.Client (loading or generating its identity and publishing its
// cards, see e2ee.New) with a member list and a session_id read from the
// Stream channel, so that removing a member on Stream (by any client) takes
// it out of the channel's next epoch, and a channel is bound only to the
// session its session_id names.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Stream == nil {
		return nil, errors.New("streamadapter: Config.Stream is required: a stream-chat-go client (stream.NewClient with the app's key and secret)")
	}
	if cfg.Veil.UserID == "" {
		return nil, errors.New("streamadapter: Config.Veil.UserID is required: the Stream user the adapter acts as")
	}
	if cfg.Veil.Members != nil || cfg.Veil.SessionID != nil {
		return nil, errors.New("streamadapter: leave Config.Veil.Members and Config.Veil.SessionID unset: the adapter reads both from the Stream channel")
	}
	if cfg.TextLimit == 0 {
		cfg.TextLimit = e2ee.StreamTextLimit
	}
	maxPlain := session.MaxPlaintext(cfg.TextLimit)
	if maxPlain < 0 {
		return nil, fmt.Errorf("streamadapter: Config.TextLimit %d is too small for any sealed message", cfg.TextLimit)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	hc := *cfg.HTTPClient
	hc.CheckRedirect = stayPut(cfg.AllowAttachmentURL, cfg.HTTPClient.CheckRedirect)
	if cfg.MaxAttachmentSize <= 0 {
		cfg.MaxAttachmentSize = 2 << 30
	}
	c := &Client{sc: cfg.Stream, user: cfg.Veil.UserID, http: &hc, allowURL: cfg.AllowAttachmentURL, limit: cfg.TextLimit,
		maxFile: cfg.MaxAttachmentSize, maxPlain: maxPlain}
	vc := cfg.Veil
	vc.Members = c.members
	vc.SessionID = c.sessionID
	veil, err := e2ee.New(ctx, vc)
	if err != nil {
		return nil, err
	}
	c.veil, c.mgr = veil, veil.Manager
	return c, nil
}

// Veil returns the user's e2ee.Client.
func (c *Client) Veil() *e2ee.Client { return c.veil }

// Stream returns the stream-chat-go client. Messages sent through it
// directly are not encrypted.
func (c *Client) Stream() *stream.Client { return c.sc }

// UserID returns the Stream user the client acts as.
func (c *Client) UserID() string { return c.user }

// splitCID splits "type:id".
func splitCID(cid string) (typ, id string, err error) {
	typ, id, ok := strings.Cut(cid, ":")
	if !ok || typ == "" || id == "" {
		return "", "", fmt.Errorf("streamadapter: %q is not a channel CID (type:id)", cid)
	}
	return typ, id, nil
}

// memberPage is the page size of member queries.
const memberPage = 100

// maxMembers bounds the member list read from Stream: a session has at most
// 10,000 members (docs/PROTOCOL.md §10.2), and a Stream that answers every
// page in full would otherwise keep the client paging forever.
const maxMembers = 10000

// members lists a channel's members on Stream (invited ones included):
// the application's member list of session.Config.Members.
func (c *Client) members(ctx context.Context, cid string) ([]string, error) {
	typ, id, err := splitCID(cid)
	if err != nil {
		return nil, err
	}
	ch := c.sc.Channel(typ, id)
	var out []string
	for offset := 0; ; offset += memberPage {
		resp, err := ch.QueryMembers(ctx, &stream.QueryOption{Filter: map[string]any{}, Limit: memberPage, Offset: offset})
		if err != nil {
			return nil, fmt.Errorf("streamadapter: listing the members of %s: %w", cid, err)
		}
		for _, m := range resp.Members {
			if m.UserID != "" {
				out = append(out, m.UserID)
			} else if m.User != nil {
				out = append(out, m.User.ID)
			}
		}
		if len(resp.Members) < memberPage {
			return out, nil
		}
		if len(out) > maxMembers {
			return nil, fmt.Errorf("streamadapter: %s lists more than %d members on Stream, more than a session can have", cid, maxMembers)
		}
	}
}

// sessionID reads a channel's session_id from Stream.
func (c *Client) sessionID(ctx context.Context, cid string) (session.ID, error) {
	typ, id, err := splitCID(cid)
	if err != nil {
		return session.ID{}, err
	}
	// The channel's data only: no messages, no members (it runs before
	// every seal).
	none := 0
	resp, err := c.sc.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"type": typ, "id": id},
		Limit: 1, MessageLimit: &none, MemberLimit: &none})
	if err != nil {
		return session.ID{}, fmt.Errorf("streamadapter: reading %s: %w", cid, err)
	}
	if len(resp.Channels) != 1 || resp.Channels[0] == nil {
		return session.ID{}, fmt.Errorf("streamadapter: reading %s: Stream has no such channel", cid)
	}
	ch := resp.Channels[0]
	if ch.CID == "" {
		ch.CID = cid
	}
	if ch.CID != cid {
		return session.ID{}, fmt.Errorf("%w: asked for %s, Stream answered %s", ErrSessionMismatch, cid, ch.CID)
	}
	return channelSession(ch)
}

// channelSession returns the session a Stream channel's custom data names.
func channelSession(ch *stream.Channel) (session.ID, error) {
	raw, ok := ch.ExtraData[FieldSessionID]
	if !ok || raw == nil || raw == "" {
		return session.ID{}, fmt.Errorf("%w (%s)", ErrNotEncrypted, ch.CID)
	}
	s, ok := raw.(string)
	if !ok {
		return session.ID{}, fmt.Errorf("%w: %s's session_id is not a string", ErrSessionMismatch, ch.CID)
	}
	id, err := session.ParseID(s)
	if err != nil {
		return session.ID{}, fmt.Errorf("%w: %s's session_id: %w", ErrSessionMismatch, ch.CID, err)
	}
	return id, nil
}
