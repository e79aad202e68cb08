package twoman

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/veilchat/veil/internal/httpjson"
)

// RuleKey is a user's twoManRuleKey: 32 random bytes the app backend keeps
// and hands to the user's authenticated devices. With the SSKS's encrypted
// identity (released only after the user's one-time code) it recovers the
// identity; alone it recovers nothing. It redacts itself under fmt and slog.
type RuleKey struct{ k [KeySize]byte }

// NewRuleKey returns a random key (rand nil means crypto/rand).
func NewRuleKey(rnd io.Reader) (RuleKey, error) {
	var k RuleKey
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, k.k[:]); err != nil {
		return RuleKey{}, err
	}
	return k, nil
}

// ParseRuleKey returns the key whose bytes are b (KeySize bytes).
func ParseRuleKey(b []byte) (RuleKey, error) {
	var k RuleKey
	if len(b) != KeySize {
		return RuleKey{}, fmt.Errorf("twoman: a twoManRuleKey is %d bytes", KeySize)
	}
	copy(k.k[:], b)
	return k, nil
}

// Bytes returns a copy of the key, to send to the user's device over the
// app's authenticated API.
func (k RuleKey) Bytes() []byte { return bytes.Clone(k.k[:]) }

// Equal reports in constant time whether two keys are equal.
func (k RuleKey) Equal(o RuleKey) bool { return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1 }

// String returns a redacted placeholder.
func (k RuleKey) String() string { return "twoman.RuleKey(REDACTED)" }

// GoString returns a redacted placeholder.
func (k RuleKey) GoString() string { return k.String() }

// Format prints a redacted placeholder under every verb.
func (k RuleKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer with a redacted placeholder.
func (k RuleKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON refuses: a key reaches JSON only through an explicit Bytes.
func (k RuleKey) MarshalJSON() ([]byte, error) {
	return nil, errors.New("twoman: RuleKey is not serialized implicitly; use Bytes")
}

// KeyStore keeps the backend's twoManRuleKeys. Implementations must be safe
// for concurrent use.
type KeyStore interface {
	// RuleKey returns a user's key, or ErrNotFound.
	RuleKey(ctx context.Context, userID string) (RuleKey, error)
	// PutRuleKey stores a user's key; ErrConflict if the user has one.
	PutRuleKey(ctx context.Context, userID string, k RuleKey) error
}

// MemoryKeyStore is an in-memory KeyStore for tests and examples. The zero
// value is ready.
type MemoryKeyStore struct {
	mu sync.Mutex
	m  map[string]RuleKey
}

// RuleKey implements KeyStore.
func (m *MemoryKeyStore) RuleKey(_ context.Context, userID string) (RuleKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.m[userID]
	if !ok {
		return RuleKey{}, ErrNotFound
	}
	return k, nil
}

// PutRuleKey implements KeyStore.
func (m *MemoryKeyStore) PutRuleKey(_ context.Context, userID string, k RuleKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]RuleKey{}
	}
	if _, ok := m.m[userID]; ok {
		return ErrConflict
	}
	m.m[userID] = k
	return nil
}

// BackendConfig configures a Backend. Keys, SSKSURL and AppKey are required.
type BackendConfig struct {
	// Keys is the backend's own store of twoManRuleKeys.
	Keys KeyStore
	// SSKSURL is the SSKS's base URL; AppKey the app's SSKS API key.
	SSKSURL string
	AppKey  []byte
	// HTTPClient reaches the SSKS; nil means a client with a 15 s timeout.
	HTTPClient *http.Client
	// Rand generates keys; nil means crypto/rand.
	Rand io.Reader
}

// Backend is what the app's backend embeds: it holds each user's
// twoManRuleKey and asks the SSKS to challenge the user. The app calls it
// for an already authenticated user and returns the Session to that user's
// device. The backend never sees the one-time code. Safe for concurrent use.
type Backend struct {
	cfg  BackendConfig
	http *http.Client
}

// NewBackend checks cfg and returns a Backend.
func NewBackend(cfg BackendConfig) (*Backend, error) {
	if cfg.Keys == nil || cfg.SSKSURL == "" || !validAppKey(cfg.AppKey) {
		return nil, errors.New("twoman: BackendConfig needs Keys, SSKSURL and an AppKey of at least 32 printable ASCII characters")
	}
	b := &Backend{cfg: cfg, http: cfg.HTTPClient}
	if b.http == nil {
		b.http = &http.Client{Timeout: 15 * time.Second}
	}
	return b, nil
}

// Session is what the user's device needs to save or retrieve its identity:
// the SSKS challenge session, the user's twoManRuleKey, and whether the
// one-time code is required (it is whenever the user already has an
// identity stored).
type Session struct {
	UserID           string
	Factor           Factor
	SessionID        string
	RuleKey          RuleKey
	MustAuthenticate bool
	ExpiresAt        time.Time
}

// StartChallenge makes sure userID has a twoManRuleKey (creating one on
// first use), asks the SSKS to challenge factor (sending the user a code if
// they must authenticate), and returns the Session for the user's device.
// forceAuth requires the code even for a new user.
func (b *Backend) StartChallenge(ctx context.Context, userID string, factor Factor, forceAuth bool) (*Session, error) {
	f, err := factor.Normalize()
	if err != nil {
		return nil, err
	}
	key, err := b.cfg.Keys.RuleKey(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		if key, err = NewRuleKey(b.cfg.Rand); err != nil {
			return nil, err
		}
		if err = b.cfg.Keys.PutRuleKey(ctx, userID, key); errors.Is(err, ErrConflict) {
			key, err = b.cfg.Keys.RuleKey(ctx, userID) // a concurrent request created it
		}
	}
	if err != nil {
		return nil, err
	}
	var resp challengeResponse
	if err := postJSON(ctx, b.http, strings.TrimRight(b.cfg.SSKSURL, "/")+"/v1/challenges", "Bearer "+string(b.cfg.AppKey),
		challengeRequest{UserID: userID, Factor: f, ForceAuth: forceAuth}, &resp); err != nil {
		return nil, err
	}
	return &Session{UserID: userID, Factor: f, SessionID: resp.SessionID, RuleKey: key, MustAuthenticate: resp.MustAuthenticate, ExpiresAt: resp.ExpiresAt}, nil
}

// APIError is an error answer of the SSKS.
type APIError struct {
	Status  int
	Code    string
	Message string
}

// Error returns "twoman: <code> (<status>): <message>".
func (e *APIError) Error() string {
	return fmt.Sprintf("twoman: %s (%d): %s", e.Code, e.Status, e.Message)
}

func postJSON(ctx context.Context, hc *http.Client, url, auth string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	defer clear(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("twoman: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("twoman: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var eb httpjson.ErrorBody
		ae := &APIError{Status: resp.StatusCode, Code: CodeInternal, Message: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("twoman: malformed answer: %w", err)
		}
	}
	return nil
}
