package backend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// KeyStore keeps the backend's twoManRuleKeys. Implementations must be safe
// for concurrent use.
type KeyStore interface {
	// RuleKey returns a user's key, or [twoman.ErrNotFound].
	RuleKey(ctx context.Context, userID string) (twoman.RuleKey, error)
	// PutRuleKey stores a user's key; [twoman.ErrConflict] if the user has one.
	PutRuleKey(ctx context.Context, userID string, k twoman.RuleKey) error
}

// MemoryKeyStore is an in-memory [KeyStore] for tests and examples. The zero
// value is ready.
type MemoryKeyStore struct {
	mu sync.Mutex
	m  map[string]twoman.RuleKey
}

// RuleKey implements [KeyStore].
func (m *MemoryKeyStore) RuleKey(_ context.Context, userID string) (twoman.RuleKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.m[userID]
	if !ok {
		return twoman.RuleKey{}, twoman.ErrNotFound
	}
	return k, nil
}

// PutRuleKey implements [KeyStore].
func (m *MemoryKeyStore) PutRuleKey(_ context.Context, userID string, k twoman.RuleKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]twoman.RuleKey{}
	}
	if _, ok := m.m[userID]; ok {
		return twoman.ErrConflict
	}
	m.m[userID] = k
	return nil
}

// Config configures a [Backend]. Keys, SSKSURL and AppKey are required.
type Config struct {
	// Keys is the backend's own store of twoManRuleKeys.
	Keys KeyStore
	// SSKSURL is the SSKS's base URL; AppKey the app's SSKS API key.
	SSKSURL string
	AppKey  Secret
	// HTTPClient reaches the SSKS; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// Rand generates keys; nil means crypto/rand.
	Rand io.Reader
}

// Backend is what the app's backend embeds: it holds each user's
// twoManRuleKey and asks the SSKS to challenge the user. The app calls it
// for an already authenticated user and returns the [twoman.Session] to that user's
// device. The backend never sees the one-time code. Safe for concurrent use.
type Backend struct {
	cfg  Config
	http *http.Client
}

// New checks cfg and returns a [Backend].
func New(cfg Config) (*Backend, error) {
	if cfg.Keys == nil || !wire.ValidAppKey(cfg.AppKey.Reveal()) {
		return nil, errors.New("twoman: Config needs Keys and an AppKey of at least 32 printable ASCII characters")
	}
	if u, err := url.Parse(cfg.SSKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("twoman: Config.SSKSURL must be an http(s) URL")
	}
	b := &Backend{cfg: cfg, http: cfg.HTTPClient}
	if b.http == nil {
		b.http = &http.Client{Timeout: 15 * time.Second}
	}
	return b, nil
}

// StartChallenge makes sure userID has a twoManRuleKey (creating one on
// first use), asks the SSKS to challenge factor (sending the user a code if
// they must authenticate), and returns the [twoman.Session] for the user's device.
// forceAuth requires the code even for a new user.
func (b *Backend) StartChallenge(ctx context.Context, userID string, factor twoman.Factor, forceAuth bool) (*twoman.Session, error) {
	f, err := factor.Normalize()
	if err != nil {
		return nil, err
	}
	key, err := b.cfg.Keys.RuleKey(ctx, userID)
	if errors.Is(err, twoman.ErrNotFound) {
		if key, err = twoman.NewRuleKey(b.cfg.Rand); err != nil {
			return nil, err
		}
		if err = b.cfg.Keys.PutRuleKey(ctx, userID, key); errors.Is(err, twoman.ErrConflict) {
			key, err = b.cfg.Keys.RuleKey(ctx, userID) // a concurrent request created it
		}
	}
	if err != nil {
		return nil, err
	}
	var resp wire.ChallengeResponse
	if err := wire.PostJSON(ctx, b.http, strings.TrimRight(b.cfg.SSKSURL, "/")+"/v1/challenges", "Bearer "+string(b.cfg.AppKey.Reveal()),
		wire.ChallengeRequest{UserID: userID, Factor: wire.Factor{Type: string(f.Type), Value: f.Value}, ForceAuth: forceAuth}, &resp, twoman.CodeInternal, apiError); err != nil {
		return nil, err
	}
	return &twoman.Session{UserID: userID, Factor: f, SessionID: resp.SessionID, RuleKey: key, MustAuthenticate: resp.MustAuthenticate, ExpiresAt: resp.ExpiresAt}, nil
}

// apiError is the constructor wire.PostJSON reports SSKS errors with.
func apiError(status int, code, message string) error {
	return &twoman.APIError{Status: status, Code: code, Message: message}
}
