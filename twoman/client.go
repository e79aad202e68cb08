package twoman

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// ClientConfig configures a [Client]. BaseURL is required.
type ClientConfig struct {
	// BaseURL is where the SSKS is mounted, e.g. "https://ssks.example.com".
	BaseURL string
	// HTTPClient sends the requests. Nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// MinPasswordParams is the weakest Argon2id cost this client derives a
	// password backup's lookup secret with: parameters the SSKS serves
	// below it (fewer passes or less memory) are refused with
	// [ErrWeakPasswordParams] before the passphrase is touched, so a
	// malicious SSKS cannot make the lookup secret it receives cheaper to
	// attack offline. Nil means [DefaultPasswordParams]; set it lower only
	// if backups were saved with weaker parameters.
	MinPasswordParams *PasswordParams
}

// Client is the device side of recovery: it encrypts the identity before it
// leaves the device and decrypts it after retrieval. The SSKS only ever sees
// ciphertext. A Client is safe for concurrent use.
type Client struct {
	base      string
	http      *http.Client
	minParams PasswordParams
}

// NewClient checks cfg and returns a [Client].
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("twoman: ClientConfig.BaseURL must be an http(s) URL")
	}
	c := &Client{base: u.String(), http: cfg.HTTPClient, minParams: DefaultPasswordParams}
	if cfg.MinPasswordParams != nil {
		c.minParams = *cfg.MinPasswordParams
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	return c, nil
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	return postJSON(ctx, c.http, c.base+path, "", in, out)
}

// encryptIdentity encrypts an exported identity under the twoManRuleKey,
// bound to the user and the factor.
func encryptIdentity(s *Session, id *identity.Identity) ([]byte, error) {
	if id.UserID() != s.UserID {
		return nil, errors.New("twoman: the identity belongs to another user")
	}
	key, err := identityKey(s.RuleKey.raw())
	if err != nil {
		return nil, err
	}
	defer clear(key)
	plain := id.Export()
	defer clear(plain)
	return sealBlob(key, plain, identityAD(labelIdentityAD, s.UserID, s.Factor))
}

// SaveIdentity encrypts id under the session's twoManRuleKey and stores it
// on the SSKS. code is the one-time code the user received (it may be empty
// only when s.MustAuthenticate is false, which an SSKS allows solely in its
// InsecureUnverifiedSignup mode). Call it again after every identity
// rotation.
func (c *Client) SaveIdentity(ctx context.Context, s *Session, code string, id *identity.Identity) error {
	blob, err := encryptIdentity(s, id)
	if err != nil {
		return err
	}
	return c.post(ctx, "/v1/identity/push", wire.PushRequest{SessionID: s.SessionID, Code: code, Blob: blob}, nil)
}

// RetrieveIdentity fetches the user's encrypted identity with the one-time
// code and decrypts it with the session's twoManRuleKey. A blob that does
// not decrypt (wrong key, another user or factor, tampering) returns
// [ErrDecrypt].
func (c *Client) RetrieveIdentity(ctx context.Context, s *Session, code string) (*identity.Identity, error) {
	var resp wire.RetrieveResponse
	if err := c.post(ctx, "/v1/identity/retrieve", wire.SessionAnswer{SessionID: s.SessionID, Code: code}, &resp); err != nil {
		return nil, err
	}
	key, err := identityKey(s.RuleKey.raw())
	if err != nil {
		return nil, err
	}
	defer clear(key)
	plain, err := openBlob(key, resp.Blob, identityAD(labelIdentityAD, s.UserID, s.Factor))
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	id, err := identity.Import(plain)
	if err != nil || id.UserID() != s.UserID {
		return nil, ErrDecrypt
	}
	return id, nil
}

// ChangeFactor moves the user's recovery to a new factor. s must be a
// session challenged on the current factor (answered with code); the
// identity is re-encrypted for the new factor.
func (c *Client) ChangeFactor(ctx context.Context, s *Session, code string, newFactor Factor, id *identity.Identity) error {
	f, err := newFactor.Normalize()
	if err != nil {
		return err
	}
	next := *s
	next.Factor = f
	blob, err := encryptIdentity(&next, id)
	if err != nil {
		return err
	}
	return c.post(ctx, "/v1/identity/factor", wire.FactorRequest{SessionID: s.SessionID, Code: code, Factor: f.wire(), Blob: blob}, nil)
}

// DeleteIdentity removes the user's stored identity (and so the factor).
func (c *Client) DeleteIdentity(ctx context.Context, s *Session, code string) error {
	return c.post(ctx, "/v1/identity/delete", wire.SessionAnswer{SessionID: s.SessionID, Code: code}, nil)
}

// PasswordParams are the Argon2id parameters of a password backup. They are
// stored with the backup; readers refuse values outside the bounds.
type PasswordParams struct {
	Alg     string `json:"alg"`   // "argon2id"
	Time    uint32 `json:"t"`     // passes
	Memory  uint32 `json:"m_kib"` // memory in KiB
	Threads uint8  `json:"p"`     // parallelism
	Version int    `json:"v"`     // format version, 1
}

// DefaultPasswordParams are Argon2id, 3 passes over 64 MiB with 4 lanes.
var DefaultPasswordParams = PasswordParams{Alg: "argon2id", Time: 3, Memory: 64 << 10, Threads: 4, Version: 1}

// Bounds on [PasswordParams]: below them a backup is too weak, above them a
// hostile server could make clients spin or exhaust memory.
const (
	MinPasswordMemory = 19 << 10 // 19 MiB (OWASP's minimum for Argon2id)
	MaxPasswordMemory = 1 << 20  // 1 GiB
	MaxPasswordTime   = 10
	MaxPasswordLanes  = 16
)

func (p PasswordParams) check() error {
	if p.Alg != "argon2id" || p.Version != 1 || p.Time < 1 || p.Time > MaxPasswordTime ||
		p.Memory < MinPasswordMemory || p.Memory > MaxPasswordMemory || p.Threads < 1 || p.Threads > MaxPasswordLanes {
		return errors.New("twoman: password parameters out of bounds")
	}
	return nil
}

// derive returns the lookup secret and the encryption key for a passphrase
// under a backup's salt. Argon2id's salt is label ‖ 0x00 ‖ salt ‖ user ID:
// the random salt makes every save (and every deployment) need its own
// guesses, and the user ID keeps an SSKS that serves one salt to every
// user from testing the lookup secrets of all of them against one table.
func (p PasswordParams) derive(userID string, salt []byte, passphrase string) (lookup, key []byte) {
	s := make([]byte, 0, len(labelPassword)+1+len(salt)+len(userID))
	s = append(append(append(append(s, labelPassword...), 0), salt...), userID...)
	out := argon2.IDKey([]byte(passphrase), s, p.Time, p.Memory, p.Threads, 64)
	return out[:32], out[32:]
}

// newPasswordSalt returns a fresh salt for a password backup, from
// crypto/rand.
func newPasswordSalt() []byte {
	salt := make([]byte, wire.PasswordSaltSize)
	rand.Read(salt) // never fails (Go 1.24)
	return salt
}

// ErrWeakPasswordParams is returned when password-backup parameters (served
// by the SSKS, or given to SavePassword) cost less than the client's
// [ClientConfig.MinPasswordParams].
var ErrWeakPasswordParams = errors.New("twoman: password parameters weaker than this client accepts")

// atLeast reports whether p costs at least min: as many passes and as much
// memory.
func (p PasswordParams) atLeast(min PasswordParams) bool {
	return p.Time >= min.Time && p.Memory >= min.Memory
}

// ErrWrongPassphrase is returned when a passphrase does not match the
// backup (the SSKS's CodeWrongPassphrase answers match it).
var ErrWrongPassphrase = errors.New("twoman: wrong passphrase")

// passwordBlob encrypts an identity for a password backup.
func passwordBlob(userID string, key []byte, id *identity.Identity) ([]byte, error) {
	plain := id.Export()
	defer clear(plain)
	return sealBlob(key, plain, identityAD(labelPasswordAD, userID, Factor{}))
}

// SavePassword stores a password-protected backup of id: the passphrase
// derives (Argon2id, params, and a salt drawn from crypto/rand at every
// save) a lookup secret the SSKS checks and a key it never sees. Creating a backup needs a challenge session for the user (s,
// answered with code when it must authenticate); params nil means
// [DefaultPasswordParams].
func (c *Client) SavePassword(ctx context.Context, s *Session, code, passphrase string, id *identity.Identity, params *PasswordParams) error {
	return c.storePassword(ctx, wire.PasswordStoreRequest{SessionID: s.SessionID, Code: code}, id, passphrase, params)
}

// ChangePassword replaces the passphrase of a backup, proving knowledge of
// the old one instead of answering a challenge, and stores id under the new
// one, under a fresh salt. A wrong old passphrase, or a user without a
// backup, returns an *APIError that matches ErrWrongPassphrase.
func (c *Client) ChangePassword(ctx context.Context, oldPassphrase, newPassphrase string, id *identity.Identity, params *PasswordParams) error {
	old, salt, err := c.passwordParams(ctx, id.UserID())
	if err != nil {
		return err
	}
	oldLookup, oldKey := old.derive(id.UserID(), salt, oldPassphrase)
	clear(oldKey)
	return c.storePassword(ctx, wire.PasswordStoreRequest{OldLookup: oldLookup}, id, newPassphrase, params)
}

func (c *Client) storePassword(ctx context.Context, req wire.PasswordStoreRequest, id *identity.Identity, passphrase string, params *PasswordParams) error {
	if passphrase == "" {
		return errors.New("twoman: empty passphrase")
	}
	p := DefaultPasswordParams
	if params != nil {
		p = *params
	}
	if err := p.check(); err != nil {
		return err
	}
	if !p.atLeast(c.minParams) {
		return fmt.Errorf("%w: %d passes over %d KiB; this client retrieves backups of at least %d passes over %d KiB", ErrWeakPasswordParams, p.Time, p.Memory, c.minParams.Time, c.minParams.Memory)
	}
	salt := newPasswordSalt()
	lookup, key := p.derive(id.UserID(), salt, passphrase)
	defer clear(key)
	blob, err := passwordBlob(id.UserID(), key, id)
	if err != nil {
		return err
	}
	pj, _ := json.Marshal(p)
	req.UserID, req.Lookup, req.Params, req.Salt, req.Blob = id.UserID(), lookup, pj, salt, blob
	return c.post(ctx, "/v1/password/store", req, nil)
}

// passwordParams returns the parameters and the salt the SSKS serves for a
// user's password backup. It answers for a user without one too (default
// parameters and a salt of its own), so that the answer does not tell
// whether a backup exists: the lookup secret derived from it is refused
// like a wrong passphrase.
func (c *Client) passwordParams(ctx context.Context, userID string) (PasswordParams, []byte, error) {
	var resp wire.PasswordParamsResponse
	if err := c.post(ctx, "/v1/password/params", wire.PasswordParamsRequest{UserID: userID}, &resp); err != nil {
		return PasswordParams{}, nil, err
	}
	var p PasswordParams
	if err := json.Unmarshal(resp.Params, &p); err != nil {
		return PasswordParams{}, nil, fmt.Errorf("twoman: malformed password parameters: %w", err)
	}
	if err := p.check(); err != nil {
		return PasswordParams{}, nil, err
	}
	if !p.atLeast(c.minParams) {
		// Deriving under these would hand the SSKS a lookup secret
		// cheaper to attack than the client's floor.
		return PasswordParams{}, nil, fmt.Errorf("%w: the SSKS serves %d passes over %d KiB", ErrWeakPasswordParams, p.Time, p.Memory)
	}
	if len(resp.Salt) != wire.PasswordSaltSize {
		// Without its random salt a lookup secret is the same in every
		// deployment: one precomputed table would serve them all.
		return PasswordParams{}, nil, fmt.Errorf("twoman: malformed password parameters: a %d-byte salt, want %d", len(resp.Salt), wire.PasswordSaltSize)
	}
	return p, resp.Salt, nil
}

// RetrievePassword recovers an identity from its password backup. A wrong
// passphrase returns an *APIError that matches ErrWrongPassphrase; the SSKS
// counts it and locks the backup after repeated failures (CodeLocked,
// matching ErrRateLimited). A user without a backup gets the same
// ErrWrongPassphrase, after the same derivation: the SSKS does not tell
// who has a backup.
func (c *Client) RetrievePassword(ctx context.Context, userID, passphrase string) (*identity.Identity, error) {
	p, salt, err := c.passwordParams(ctx, userID)
	if err != nil {
		return nil, err
	}
	lookup, key := p.derive(userID, salt, passphrase)
	defer clear(key)
	var resp wire.PasswordRetrieveResponse
	if err := c.post(ctx, "/v1/password/retrieve", wire.PasswordRetrieveRequest{UserID: userID, Lookup: lookup}, &resp); err != nil {
		return nil, err
	}
	plain, err := openBlob(key, resp.Blob, identityAD(labelPasswordAD, userID, Factor{}))
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	id, err := identity.Import(plain)
	if err != nil || id.UserID() != userID {
		return nil, ErrDecrypt
	}
	return id, nil
}

// Session is what the user's device needs to save or retrieve its identity:
// the SSKS challenge session, the user's twoManRuleKey, and whether the
// one-time code is required (it is whenever the user already has an
// identity stored). fmt prints it with the RuleKey redacted, in every
// position (the key's bytes sit behind pointers); encoding/json refuses
// it, as the RuleKey reaches JSON only through Bytes; slog sees LogValue.
type Session struct {
	UserID           string
	Factor           Factor
	SessionID        string
	RuleKey          RuleKey
	MustAuthenticate bool
	ExpiresAt        time.Time
}

// LogValue implements slog.LogValuer: logs see the user, the factor's type
// and the session's state, never the RuleKey, the session ID or the
// factor's value (an address or a phone number).
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user_id", s.UserID),
		slog.String("factor", string(s.Factor.Type)),
		slog.Bool("must_authenticate", s.MustAuthenticate),
		slog.Time("expires_at", s.ExpiresAt),
	)
}
