package keyservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
)

// ClientConfig configures a [Client]. BaseURL and Token are required.
type ClientConfig struct {
	// BaseURL is where the key service's handler is mounted, e.g.
	// "https://keys.example.com".
	BaseURL string
	// Token returns the bearer token for each request: a Veil user token
	// the app backend issued, or a Stream user token when the service
	// accepts them (see the Auth type of package keyservice/server).
	// [StaticToken] wraps a fixed one.
	Token func(ctx context.Context) (string, error)
	// HTTPClient sends the requests. Nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// MaxRetries is the number of retries after a 429, a 5xx or a network
	// error, with exponential backoff and jitter. Zero means 4; negative
	// means none. Every request may be sent again: the service stores a
	// genesis or a log record sent twice once, and answers the second
	// sending as the first.
	MaxRetries int
	// Backoff is the first retry delay, doubled each time up to 5 s. Zero
	// means 100 ms.
	Backoff time.Duration
}

// StaticToken returns a [ClientConfig.Token] that always returns tok.
func StaticToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

// Client is the Go client of the key service. It implements [session.Service]
// and [session.Directory], so a [session.Manager] works over HTTP exactly as in
// memory. Errors are [*APIError] values that match this package's and the
// session package's sentinels with [errors.Is]. A Client is safe for
// concurrent use.
type Client struct {
	cfg  ClientConfig
	base *url.URL
	http *http.Client
}

var (
	_ session.Service   = (*Client)(nil)
	_ session.Directory = (*Client)(nil)
)

// NewClient checks cfg and returns a [Client].
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("keyservice: ClientConfig.BaseURL must be an http(s) URL")
	}
	if cfg.Token == nil {
		return nil, errors.New("keyservice: ClientConfig.Token is required")
	}
	c := &Client{cfg: cfg, base: u, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.cfg.MaxRetries == 0 {
		c.cfg.MaxRetries = 4
	}
	if c.cfg.Backoff <= 0 {
		c.cfg.Backoff = 100 * time.Millisecond
	}
	return c, nil
}

// pathSegment escapes s as one segment of a URL path: every byte that
// could end or change the segment is percent-encoded ('/', '?', '#', '%'
// and so on), and so are the segments "." and "..", which a server or
// proxy would otherwise resolve as relative path elements. The key
// service decodes the segment back to s.
func pathSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// do sends a request and decodes a 2xx JSON response into out (if not
// nil). path is the escaped path under the base URL (each user-supplied
// segment through pathSegment). It retries on network errors, 429 and
// 5xx: every request of the API is idempotent.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, err
		}
	}
	// The path is kept escaped: the URL's Path is its decoded form, and
	// RawPath the form sent, so that an escaped '/' stays inside its
	// segment instead of being escaped a second time or splitting it.
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return 0, fmt.Errorf("keyservice: invalid request path: %w", err)
	}
	u := *c.base
	u.Path, u.RawPath = c.base.Path+decoded, c.base.EscapedPath()+path
	u.RawQuery = query.Encode()
	delay := c.cfg.Backoff
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := c.once(ctx, method, u.String(), body, out)
		retry := false
		var ae *APIError
		switch {
		case err == nil:
			return status, nil
		case errors.As(err, &ae):
			retry = ae.Status == http.StatusTooManyRequests || ae.Status >= 500
		case ctx.Err() != nil:
			return 0, ctx.Err()
		default:
			retry = true
		}
		if !retry || c.cfg.MaxRetries < 0 || attempt >= c.cfg.MaxRetries {
			return status, err
		}
		wait := delay/2 + time.Duration(mrand.Int64N(int64(delay)))
		if retryAfter > wait {
			wait = retryAfter
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (c *Client) once(ctx context.Context, method, u string, body []byte, out any) (int, time.Duration, error) {
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("keyservice: getting a token: %w", err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, 0, fmt.Errorf("keyservice: %w", httpjson.RedactURLError(err))
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("keyservice: %s %s: %w", method, req.URL.Path, httpjson.RedactURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, 0, fmt.Errorf("keyservice: reading response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb wire.ErrorBody
		ae := &APIError{Status: resp.StatusCode, Code: CodeInternal, Message: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message, ae.sessionID = eb.Error.Code, eb.Error.Message, eb.Error.SessionID
		}
		var ra time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 && s < 60 {
			ra = time.Duration(s) * time.Second
		}
		return resp.StatusCode, ra, ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, 0, fmt.Errorf("keyservice: malformed response: %w", err)
		}
	}
	return resp.StatusCode, 0, nil
}

// PublishCard publishes the authenticated user's card: generation 0 first,
// then each successor. Publishing the latest card again is a no-op.
func (c *Client) PublishCard(ctx context.Context, card *identity.Card) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/users/"+pathSegment(card.UserID())+"/cards", nil,
		wire.PublishCardRequest{Card: card.Marshal()}, nil)
	return err
}

// PublishHistory publishes the cards of a history that the directory does
// not have yet, in order (after a key rotation, or on a new service). It
// implements e2ee.Publisher. A card that differs from the one the directory
// holds for its generation returns a conflict (errors.Is ErrConflict and
// session.ErrConflict): the directory publishes another identity for the
// user, and skipping that card would leave the caller believing its own is
// published.
func (c *Client) PublishHistory(ctx context.Context, cards []*identity.Card) error {
	if len(cards) == 0 {
		return nil
	}
	var have []*identity.Card // consecutive generations, checked by History
	if h, err := c.History(ctx, cards[0].UserID()); err == nil {
		have = h
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	for _, card := range cards {
		if len(have) > 0 {
			i := int64(card.Generation()) - int64(have[0].Generation())
			if i < int64(len(have)) {
				if i < 0 || !have[i].Equal(card) {
					return &APIError{Status: http.StatusConflict, Code: CodeConflict,
						Message: fmt.Sprintf("the directory holds another card for generation %d of %q", card.Generation(), card.UserID())}
				}
				continue
			}
		}
		if err := c.PublishCard(ctx, card); err != nil {
			return err
		}
	}
	return nil
}

// Latest implements [session.Directory]: the newest card of each user that
// has one, parsed and self-signature checked. Trust (pinning) is the
// caller's business.
func (c *Client) Latest(ctx context.Context, userIDs []string) (map[string]*identity.Card, error) {
	out := make(map[string]*identity.Card, len(userIDs))
	for start := 0; start < len(userIDs); start += 1000 {
		chunk := userIDs[start:min(start+1000, len(userIDs))]
		var resp wire.LookupResponse
		if _, err := c.do(ctx, http.MethodPost, "/v1/cards/lookup", nil, wire.LookupRequest{UserIDs: chunk}, &resp); err != nil {
			return nil, err
		}
		for u, raw := range resp.Cards {
			card, err := identity.ParseCard(raw)
			if err != nil || card.UserID() != u {
				return nil, fmt.Errorf("keyservice: the directory returned an invalid card for %q", u)
			}
			out[u] = card
		}
	}
	return out, nil
}

// History implements [session.Directory]: a user's cards, generation 0 first,
// checked to form a chain.
func (c *Client) History(ctx context.Context, userID string) ([]*identity.Card, error) {
	var resp wire.CardsResponse
	if _, err := c.do(ctx, http.MethodGet, "/v1/users/"+pathSegment(userID)+"/cards", nil, nil, &resp); err != nil {
		return nil, err
	}
	cards := make([]*identity.Card, 0, len(resp.Cards))
	for _, raw := range resp.Cards {
		card, err := identity.ParseCard(raw)
		if err != nil || card.UserID() != userID {
			return nil, fmt.Errorf("keyservice: the directory returned an invalid card for %q", userID)
		}
		cards = append(cards, card)
	}
	if len(cards) == 0 {
		return nil, &APIError{Status: http.StatusNotFound, Code: CodeUnknownUser, Message: "no cards"}
	}
	if err := identity.VerifyChain(cards); err != nil {
		return nil, fmt.Errorf("keyservice: the directory's history of %q is not a chain: %w", userID, err)
	}
	return cards, nil
}

func toJSON(grants []session.GrantRecord) []wire.Grant {
	out := make([]wire.Grant, len(grants))
	for i, g := range grants {
		out[i] = wire.Grant{Grantee: g.Grantee, Epoch: g.Epoch, Grant: g.Grant}
	}
	return out
}

// Create implements [session.Service]. When the channel has another
// session it returns a [*session.SessionExistsError] naming the session
// the service reports (a hint, like Lookup's answer) and the channel the
// genesis names.
func (c *Client) Create(ctx context.Context, genesis []byte, grants []session.GrantRecord) error {
	var resp wire.CreateSessionResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions", nil, wire.CreateSessionRequest{Genesis: genesis, Grants: toJSON(grants)}, &resp)
	if ae, ok := errors.AsType[*APIError](err); ok && ae.Code == CodeSessionExists {
		r, perr := memberlog.Parse(genesis)
		id, iderr := session.ParseID(ae.sessionID)
		if perr == nil && r.Genesis != nil && iderr == nil {
			return &session.SessionExistsError{ChannelCID: r.Genesis.ChannelCID, ID: id}
		}
	}
	if err != nil {
		return err
	}
	if resp.ID != session.ID(memberlog.SessionIDOf(genesis)).String() {
		return fmt.Errorf("keyservice: the key service answered a session creation with another session ID")
	}
	return nil
}

// Append implements [session.Service].
func (c *Client) Append(ctx context.Context, id session.ID, record []byte, grants []session.GrantRecord) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+id.String()+"/log", nil, wire.AppendRequest{Record: record, Grants: toJSON(grants)}, nil)
	return err
}

// Lookup implements [session.Service]. A channel CID that no genesis can
// name — empty, over [session.MaxChannelCIDLen] bytes, not UTF-8, or
// holding a NUL — has no session: Lookup answers it with an error matching
// [session.ErrUnknownSession] and [ErrNotFound] without asking the
// service, whose HTTP API refuses such a channel_cid as invalid input
// ([CodeInvalidRequest]). So Lookup answers as [session.MemoryService]
// does.
func (c *Client) Lookup(ctx context.Context, channelCID string) (session.ID, error) {
	if !memberlog.ValidChannelCID(channelCID) {
		return session.ID{}, errNoSuchChannel
	}
	var resp wire.LookupSessionResponse
	if _, err := c.do(ctx, http.MethodGet, "/v1/sessions", url.Values{"channel_cid": {channelCID}}, nil, &resp); err != nil {
		return session.ID{}, err
	}
	return session.ParseID(resp.ID)
}

// errNoSuchChannel is Lookup's answer for a channel CID no genesis names.
var errNoSuchChannel = fmt.Errorf("%w: %w: no genesis names such a channel CID", ErrNotFound, session.ErrUnknownSession)

// Head implements [session.Service].
func (c *Client) Head(ctx context.Context, id session.ID) (session.Head, error) {
	var resp wire.Head
	if _, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id.String()+"/head", nil, nil, &resp); err != nil {
		return session.Head{}, err
	}
	h := session.Head{Seq: resp.Seq}
	if len(resp.Hash) != len(h.Hash) {
		return session.Head{}, errors.New("keyservice: malformed head in response")
	}
	copy(h.Hash[:], resp.Hash)
	return h, nil
}

// Bounds on what Log and Grants accept from a key service across pages.
// The service is not trusted to end its pages: each page must add at least
// one item past the previous cursor, and the items stop at these caps, so
// a faulty or hostile service cannot keep a client paging and allocating
// forever.
const (
	// maxLogRecords bounds the records of one Log call: four per epoch
	// the log may reach, far more than a session's membership ever
	// changes.
	maxLogRecords = 4 * session.MaxEpochs
	// maxLogBytes bounds their total size. A log that large is one no
	// client replays in reasonable time anyway.
	maxLogBytes = 256 << 20
	// maxGrants bounds a member's grants: one per epoch, and sessions
	// stop at [session.MaxEpochs] epochs.
	maxGrants = session.MaxEpochs
)

// errPaging is returned when a service's pages do not advance or do not
// end.
var errPaging = errors.New("keyservice: the key service's pages do not advance or exceed the limits")

// Log implements [session.Service]. It follows the pages of records, each
// starting where the previous one ended, at most maxLogRecords records and
// maxLogBytes bytes in all.
func (c *Client) Log(ctx context.Context, id session.ID, from uint32) ([][]byte, error) {
	return c.log(ctx, id, from, maxLogRecords, maxLogBytes)
}

// log is Log with at most maxRecords records of maxBytes bytes in all.
func (c *Client) log(ctx context.Context, id session.ID, from uint32, maxRecords, maxBytes int) ([][]byte, error) {
	var out [][]byte
	size := 0
	next := uint64(from)
	for {
		var resp wire.LogResponse
		q := url.Values{"from": {strconv.FormatUint(next, 10)}}
		if _, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id.String()+"/log", q, nil, &resp); err != nil {
			return nil, err
		}
		if len(out)+len(resp.Records) > maxRecords {
			return nil, errPaging
		}
		for _, r := range resp.Records {
			if size += len(r); size > maxBytes {
				return nil, errPaging
			}
		}
		out = append(out, resp.Records...)
		if resp.Next == nil {
			return out, nil
		}
		// The next page starts right after this one, which is not empty.
		if len(resp.Records) == 0 || uint64(*resp.Next) != next+uint64(len(resp.Records)) {
			return nil, errPaging
		}
		next = uint64(*resp.Next)
	}
}

// Grants implements [session.Service]. It follows the pages of grants, which
// must come in ascending epochs, each page past the cursor of the previous
// one, at most maxGrants in all.
func (c *Client) Grants(ctx context.Context, id session.ID) ([]session.GrantRecord, error) {
	return c.grants(ctx, id, maxGrants)
}

// grants is Grants with at most maxItems grants.
func (c *Client) grants(ctx context.Context, id session.ID, maxItems int) ([]session.GrantRecord, error) {
	var out []session.GrantRecord
	q := url.Values{}
	after := int64(-1) // the cursor sent, -1 before the first page
	for {
		var resp wire.GrantsResponse
		if _, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id.String()+"/grants", q, nil, &resp); err != nil {
			return nil, err
		}
		if len(out)+len(resp.Grants) > maxItems {
			return nil, errPaging
		}
		for _, g := range resp.Grants {
			if len(out) > 0 && g.Epoch <= out[len(out)-1].Epoch {
				return nil, errPaging
			}
			out = append(out, session.GrantRecord{Grantee: g.Grantee, Epoch: g.Epoch, Grant: g.Grant})
		}
		if resp.Next == nil || len(resp.Grants) == 0 {
			return out, nil
		}
		if *resp.Next < out[len(out)-1].Epoch || int64(*resp.Next) <= after {
			return nil, errPaging // the cursor must move forward
		}
		after = int64(*resp.Next)
		q.Set("after_epoch", strconv.FormatUint(uint64(after), 10))
	}
}

// Delete implements [session.Service].
func (c *Client) Delete(ctx context.Context, id session.ID) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/sessions/"+id.String(), nil, nil, nil)
	return err
}
