package server

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/veilchat/veil/internal/httpjson"
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

// UnmarshalJSON refuses two things golang-jwt lets through: a time claim
// (exp, nbf, iat) that is not a JSON number — RFC 7519 makes a
// NumericDate a number, and golang-jwt also takes a string that holds one
// — and a claim named twice, which encoding/json resolves to the last where
// the issuer's parser may have read the first. Claim names are compared
// without regard to letter case, as encoding/json matches them.
func (c *claims) UnmarshalJSON(b []byte) error {
	if err := httpjson.CheckDuplicateKeys(b); err != nil {
		return errors.New("a claim is named twice")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return errors.New("the claims are not a JSON object")
	}
	for name, v := range raw {
		for _, tc := range []string{"exp", "nbf", "iat"} {
			if strings.EqualFold(name, tc) && (len(v) == 0 || !strings.ContainsRune("-0123456789", rune(v[0]))) {
				return fmt.Errorf("the %s claim is not a number", tc)
			}
		}
	}
	type plain claims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

var (
	errNoToken  = errors.New("missing token")
	errBadToken = errors.New("invalid token")
	errNoExpiry = errors.New("invalid token: it has no exp claim, and tokens must expire")
)

// authError is a refused token: what the client is told (one of the
// errors above, on purpose uninformative) and, for the log at debug, why.
type authError struct {
	pub error
	why string
}

func (e *authError) Error() string { return e.pub.Error() }
func (e *authError) Unwrap() error { return e.pub }

// refused returns pub with the reason of cause, cut to a bounded length.
// golang-jwt's errors name the check that failed (signature, expiry, a
// claim), never the token.
func refused(pub, cause error) error {
	why := pub.Error()
	if cause != nil {
		why = cause.Error()
	}
	if len(why) > 200 {
		why = why[:200]
	}
	return &authError{pub: pub, why: why}
}

// authReason is the reason of a refused token, for the log at debug.
func authReason(err error) string {
	var ae *authError
	if errors.As(err, &ae) {
		return ae.why
	}
	return err.Error()
}

// authenticate verifies a raw Authorization header value.
func (a *Auth) authenticate(header string, now func() time.Time) (Principal, error) {
	raw := strings.TrimSpace(header)
	if after, ok := strings.CutPrefix(raw, "Bearer "); ok {
		raw = strings.TrimSpace(after)
	}
	if raw == "" {
		return Principal{}, refused(errNoToken, nil)
	}
	if len(raw) > 8192 {
		return Principal{}, refused(errBadToken, errors.New("a token over 8,192 bytes"))
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
	cause := err
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
				return Principal{}, refused(errBadToken, errors.New("a Stream token without user_id"))
			}
			p, err := principalOf(c, false)
			if err != nil {
				return Principal{}, err
			}
			p.ViaStream = true
			return p, nil
		} else if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
			noExpiry = true
		} else if errors.Is(cause, jwt.ErrTokenUnverifiable) {
			// No Veil key could check it: the Stream secret's verdict
			// is the telling one.
			cause = fmt.Errorf("not a Veil token (%v), nor a Stream token: %w", cause, err)
		}
	}
	if noExpiry {
		return Principal{}, refused(errNoExpiry, nil)
	}
	return Principal{}, refused(errBadToken, cause)
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
			return Principal{}, refused(errBadToken, errors.New("a Stream token with the service role"))
		}
		return Principal{Service: true}, nil
	}
	user := c.UserID
	if user == "" {
		user = c.Subject
	}
	if !validUserID(user) { // the ID reaches the store as the caller's
		return Principal{}, refused(errBadToken, errors.New("no valid user ID in user_id or sub"))
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
