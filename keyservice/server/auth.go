package server

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Key is one JWT verification key. Several keys may be configured at once so
// that the service's signing keys can be rotated without downtime: tokens
// that name a key ID ("kid" header) are checked with that key only, others
// with every key of their algorithm.
type Key struct {
	// ID is matched against the token's "kid" header. Optional.
	ID string
	// HS256 is an HMAC-SHA256 secret (at least 32 bytes).
	HS256 Secret
	// Ed25519 is an Ed25519 public key (tokens signed with "EdDSA").
	Ed25519 ed25519.PublicKey
}

// Auth configures authentication. Tokens travel as "Authorization: Bearer
// <jwt>" or, as Stream clients send them, "Authorization: <jwt>".
type Auth struct {
	// Keys verify Veil tokens. A user token carries the user ID in
	// "user_id" (as Stream tokens do) or "sub"; a service token carries
	// "role": "service" and may act for the app backend.
	Keys []Key
	// StreamSecret, if set, also accepts Stream user tokens (HS256 with the
	// Stream API secret and a "user_id" claim) for reading only: Stream
	// knows its secret and can sign a token for any user, so such a token
	// never writes and never carries the service role.
	StreamSecret Secret
	// Issuer and Audience, if set, must match the "iss" and "aud" claims.
	Issuer, Audience string
	// Leeway tolerates clock skew on "exp", "nbf" and "iat". Zero means 30s.
	Leeway time.Duration
	// InsecureAllowNoExpiry accepts tokens without "exp". Tokens that never
	// expire cannot be revoked; leave it false in production.
	InsecureAllowNoExpiry bool
}

// Principal is who a request acts as.
type Principal struct {
	UserID  string // empty for the service
	Service bool
	// ViaStream: the token was signed with the Stream secret. Stream knows
	// that secret and can sign such a token for any user, so these tokens
	// may only read.
	ViaStream bool
}

type claims struct {
	jwt.RegisteredClaims
	UserID string `json:"user_id,omitempty"`
	Role   string `json:"role,omitempty"`
}

var (
	errNoToken  = errors.New("missing token")
	errBadToken = errors.New("invalid token")
	errNoExpiry = errors.New("invalid token: it has no exp claim, and tokens must expire")
)

// authenticate verifies a raw Authorization header value.
func (a *Auth) authenticate(header string, now func() time.Time) (Principal, error) {
	raw := strings.TrimSpace(header)
	if after, ok := strings.CutPrefix(raw, "Bearer "); ok {
		raw = strings.TrimSpace(after)
	}
	if raw == "" {
		return Principal{}, errNoToken
	}
	if len(raw) > 8192 {
		return Principal{}, errBadToken
	}
	leeway := a.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256", "EdDSA"}),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithIssuedAt(),
	}
	if !a.InsecureAllowNoExpiry {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if a.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.Issuer))
	}
	if a.Audience != "" {
		opts = append(opts, jwt.WithAudience(a.Audience))
	}
	parser := jwt.NewParser(opts...)

	// Veil keys first (one parse, whatever their number), then the Stream
	// secret: a Stream-signed token must never carry the service role.
	var c claims
	_, err := parser.ParseWithClaims(raw, &c, a.veilKeys)
	if err == nil {
		return principalOf(c, true)
	}
	noExpiry := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	if !a.StreamSecret.IsZero() {
		var c claims
		if _, err := parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
			if t.Method.Alg() != "HS256" {
				return nil, errBadToken
			}
			return a.StreamSecret.Reveal(), nil
		}); err == nil {
			if c.UserID == "" {
				return Principal{}, errBadToken
			}
			p, err := principalOf(c, false)
			if err != nil {
				return Principal{}, err
			}
			p.ViaStream = true
			return p, nil
		} else if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
			noExpiry = true
		}
	}
	if noExpiry {
		return Principal{}, errNoExpiry
	}
	return Principal{}, errBadToken
}

// veilKeys is the jwt.Keyfunc of Veil tokens: the key the "kid" header
// names, or every key of the token's algorithm.
func (a *Auth) veilKeys(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range a.Keys {
		if kid != "" && k.ID != kid {
			continue
		}
		switch {
		case t.Method.Alg() == "HS256" && !k.HS256.IsZero():
			set.Keys = append(set.Keys, k.HS256.Reveal())
		case t.Method.Alg() == "EdDSA" && len(k.Ed25519) == ed25519.PublicKeySize:
			set.Keys = append(set.Keys, k.Ed25519)
		}
	}
	switch len(set.Keys) {
	case 0:
		return nil, errBadToken
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

func principalOf(c claims, mayBeService bool) (Principal, error) {
	if c.Role == "service" {
		if !mayBeService {
			return Principal{}, errBadToken
		}
		return Principal{Service: true}, nil
	}
	user := c.UserID
	if user == "" {
		user = c.Subject
	}
	if !validUserID(user) { // the ID reaches the store as the caller's
		return Principal{}, errBadToken
	}
	return Principal{UserID: user}, nil
}

// UserToken returns an HS256 token for userID that expires after ttl,
// signed with secret and naming keyID in its "kid" header if not empty. The
// app backend issues these (or Stream tokens, see [Auth.StreamSecret]).
func UserToken(secret []byte, keyID, userID string, ttl time.Duration) (string, error) {
	if userID == "" {
		return "", errors.New("keyservice: empty user ID")
	}
	return sign(secret, keyID, claims{UserID: userID, RegisteredClaims: expiring(ttl)})
}

// ServiceToken returns an HS256 service token (role "service") for the app
// backend's administrative calls, expiring after ttl.
func ServiceToken(secret []byte, keyID string, ttl time.Duration) (string, error) {
	return sign(secret, keyID, claims{Role: "service", RegisteredClaims: expiring(ttl)})
}

func expiring(ttl time.Duration) jwt.RegisteredClaims {
	now := time.Now()
	return jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}
}

func sign(secret []byte, keyID string, c claims) (string, error) {
	if len(secret) < 32 {
		return "", fmt.Errorf("keyservice: HS256 secrets must be at least 32 bytes")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	if keyID != "" {
		t.Header["kid"] = keyID
	}
	return t.SignedString(secret)
}
