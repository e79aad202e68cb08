package keyservice

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/httpjson"
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
	// means none. Requests that are not idempotent (extend, rotate) are
	// retried only on 429, which the service answers before doing anything.
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

// retryPolicy says when a request may be sent again.
type retryPolicy int

const (
	retrySafe       retryPolicy = iota // idempotent: retry on network errors, 429 and 5xx
	retryOnlyLimits                    // not idempotent: retry only on 429
)

// do sends a request and decodes a 2xx JSON response into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, policy retryPolicy, header http.Header) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, err
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	delay := c.cfg.Backoff
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := c.once(ctx, method, u.String(), body, out, header)
		retry := false
		var ae *APIError
		switch {
		case err == nil:
			return status, nil
		case errors.As(err, &ae):
			retry = ae.Status == http.StatusTooManyRequests || (policy == retrySafe && ae.Status >= 500)
		case ctx.Err() != nil:
			return 0, ctx.Err()
		default:
			retry = policy == retrySafe
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

func (c *Client) once(ctx context.Context, method, u string, body []byte, out any, header http.Header) (int, time.Duration, error) {
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
	for k, v := range header {
		req.Header[k] = v
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
		var eb errorBody
		ae := &APIError{Status: resp.StatusCode, Code: CodeInternal, Message: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
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
	_, err := c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(card.UserID())+"/cards", nil,
		wire.PublishCardRequest{Card: card.Marshal()}, nil, retrySafe, nil)
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
		if _, err := c.do(ctx, http.MethodPost, "/v1/cards/lookup", nil, wire.LookupRequest{UserIDs: chunk}, &resp, retrySafe, nil); err != nil {
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
	if _, err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(userID)+"/cards", nil, nil, &resp, retrySafe, nil); err != nil {
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

// Create implements [session.Service]. It sends an Idempotency-Key so that
// retries are safe.
func (c *Client) Create(ctx context.Context, id session.ID, channelCID string, grants []session.GrantRecord) (session.CreateResult, error) {
	var key [16]byte
	crand.Read(key[:])
	h := http.Header{"Idempotency-Key": {hex.EncodeToString(key[:])}}
	var resp wire.CreateSessionResponse
	if _, err := c.do(ctx, http.MethodPost, "/v1/sessions", nil,
		wire.CreateSessionRequest{ID: id.String(), ChannelCID: channelCID, Grants: toJSON(grants)}, &resp, retrySafe, h); err != nil {
		return session.CreateResult{}, err
	}
	got, err := session.ParseID(resp.ID)
	if err != nil {
		return session.CreateResult{}, fmt.Errorf("keyservice: malformed session ID in response: %w", err)
	}
	return session.CreateResult{ID: got, Created: resp.Created}, nil
}

// Lookup implements [session.Service].
func (c *Client) Lookup(ctx context.Context, channelCID string) (session.ID, error) {
	var resp wire.LookupSessionResponse
	if _, err := c.do(ctx, http.MethodGet, "/v1/sessions", url.Values{"channel_cid": {channelCID}}, nil, &resp, retrySafe, nil); err != nil {
		return session.ID{}, err
	}
	return session.ParseID(resp.ID)
}

// Bounds on what Info and Grants accept from a key service across pages.
// The service is not trusted to end its pages: each page must add at least
// one item past the previous cursor, and the items stop at these caps, so
// a faulty or hostile service cannot keep a client paging and allocating
// forever.
const (
	// maxInfoMembers bounds a session's members. The service sets no
	// limit, but a session is rotated with one grant per member in one
	// call of at most Config.MaxMembersPerCall (1,000 by default).
	maxInfoMembers = 1 << 20
	// maxGrants bounds a member's grants: one per epoch, and the service
	// stops sessions at [session.MaxEpochs] epochs.
	maxGrants = session.MaxEpochs
)

// errPaging is returned when a service's pages do not advance or do not
// end.
var errPaging = errors.New("keyservice: the key service's pages do not advance or exceed the limits")

// Info implements [session.Service]. It follows the pages of members, which
// must come in ascending user ID order, each page past the cursor of the
// previous one, at most maxInfoMembers in all.
func (c *Client) Info(ctx context.Context, id session.ID) (session.Info, error) {
	return c.info(ctx, id, maxInfoMembers)
}

// info is Info with at most maxMembers members.
func (c *Client) info(ctx context.Context, id session.ID, maxMembers int) (session.Info, error) {
	info := session.Info{ID: id}
	q := url.Values{}
	last := "" // the greatest user ID so far (user IDs are not empty)
	for {
		var resp wire.SessionResponse
		if _, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id.String(), q, nil, &resp, retrySafe, nil); err != nil {
			return session.Info{}, err
		}
		if len(info.Members)+len(resp.Members) > maxMembers {
			return session.Info{}, errPaging
		}
		info.ChannelCID, info.Epoch = resp.ChannelCID, resp.Epoch
		for _, m := range resp.Members {
			if m.UserID <= last {
				return session.Info{}, errPaging
			}
			last = m.UserID
			info.Members = append(info.Members, session.Member{UserID: m.UserID, Admin: m.Admin, Since: m.Since})
		}
		if resp.Next == "" || len(resp.Members) == 0 {
			return info, nil
		}
		if resp.Next < last || resp.Next <= q.Get("after") {
			return session.Info{}, errPaging // the cursor must move forward
		}
		q.Set("after", resp.Next)
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
		if _, err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id.String()+"/grants", q, nil, &resp, retrySafe, nil); err != nil {
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

// Extend implements [session.Service].
func (c *Client) Extend(ctx context.Context, id session.ID, grants []session.GrantRecord) error {
	if len(grants) == 0 {
		return session.ErrInvalidGrants
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+id.String()+"/members", nil,
		wire.ExtendRequest{Epoch: grants[0].Epoch, Grants: toJSON(grants)}, nil, retryOnlyLimits, nil)
	return err
}

// Rotate implements [session.Service]. The new epoch is the grants' epoch.
func (c *Client) Rotate(ctx context.Context, id session.ID, remove []string, grants []session.GrantRecord) error {
	if len(grants) == 0 || grants[0].Epoch == 0 {
		return session.ErrInvalidGrants
	}
	if remove == nil {
		remove = []string{}
	}
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions/"+id.String()+"/rotate", nil,
		wire.RotateRequest{FromEpoch: grants[0].Epoch - 1, Remove: remove, Grants: toJSON(grants)}, nil, retryOnlyLimits, nil)
	return err
}

// SetAdmin implements [session.Service].
func (c *Client) SetAdmin(ctx context.Context, id session.ID, userID string, admin bool) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/sessions/"+id.String()+"/admins/"+url.PathEscape(userID), nil,
		wire.AdminRequest{Admin: admin}, nil, retrySafe, nil)
	return err
}

// Delete implements [session.Service].
func (c *Client) Delete(ctx context.Context, id session.ID) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/sessions/"+id.String(), nil, nil, nil, retrySafe, nil)
	return err
}
