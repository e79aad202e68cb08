package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
)

// KeyServicePath is where the backend mounts the key service: devices use
// the backend's URL followed by it as keyservice.ClientConfig.BaseURL.
const KeyServicePath = "/keyservice"

// app is the backend's HTTP API, the routes an app calls:
//
//	POST /v1/signup      {user_id, name, email, password}: the account, the
//	                     Stream user, and the user's first tokens (201)
//	POST /v1/tokens      fresh Stream and key-service tokens (Basic auth)
//	POST /v1/challenge   start a two-man-rule challenge: the SSKS emails a
//	                     code, the device gets the session and the user's
//	                     twoManRuleKey (Basic auth)
//	GET  /healthz        ok
//	     /keyservice/v1/ the key service
//
// Answers are JSON; errors are {"error": {"code", "message"}}.
type app struct {
	stream   *stream.Client
	signer   *signer
	recovery *backend.Backend
	logins   *logins
	keys     http.Handler
	log      *slog.Logger
	now      func() time.Time
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/signup", a.signUp)
	mux.HandleFunc("POST /v1/tokens", a.authenticated(a.tokens))
	mux.HandleFunc("POST /v1/challenge", a.authenticated(a.challenge))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	// The key service's API only: its /metrics stay off the public
	// address.
	mux.Handle(KeyServicePath+"/v1/", http.StripPrefix(KeyServicePath, a.keys))
	return mux
}

// tokensResponse is the answer of /v1/signup and /v1/tokens.
type tokensResponse struct {
	UserID string `json:"user_id"`
	// StreamToken connects Stream's client SDKs as the user.
	StreamToken string `json:"stream_token"`
	// KeyServiceToken is the bearer token of the key service
	// (keyservice.ClientConfig.Token), an EdDSA JWT.
	KeyServiceToken string    `json:"keyservice_token"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// challengeResponse is the answer of /v1/challenge: what the device passes,
// as a twoman.Session, to twoman.Client.SaveIdentity or RetrieveIdentity
// with the code the user received.
type challengeResponse struct {
	UserID           string        `json:"user_id"`
	Factor           twoman.Factor `json:"factor"`
	SessionID        string        `json:"session_id"`
	RuleKey          string        `json:"rule_key"` // base64 of the twoManRuleKey's 32 bytes
	MustAuthenticate bool          `json:"must_authenticate"`
	ExpiresAt        time.Time     `json:"expires_at"`
}

// signUpRequest is the body of /v1/signup.
type signUpRequest struct {
	UserID   string `json:"user_id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// userIDPattern is the user IDs Stream accepts (letters, digits, @, _ and
// -), which are also IDs a Veil card can carry.
var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9@_-]{1,64}$`)

func (a *app) signUp(w http.ResponseWriter, r *http.Request) {
	var req signUpRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	email, err := twoman.Factor{Type: twoman.Email, Value: req.Email}.Normalize()
	switch {
	case !userIDPattern.MatchString(req.UserID):
		writeError(w, http.StatusBadRequest, "bad_request", "user_id must be 1 to 64 letters, digits, @, _ or -")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_request", "email is not an email address")
		return
	case len(req.Password) < 8 || len(req.Password) > 256:
		writeError(w, http.StatusBadRequest, "bad_request", "password must be 8 to 256 bytes")
		return
	case utf8.RuneCountInString(req.Name) > 100 || !utf8.ValidString(req.Name):
		writeError(w, http.StatusBadRequest, "bad_request", "name must be at most 100 characters of UTF-8")
		return
	}
	if req.Name == "" {
		req.Name = req.UserID
	}
	if err := a.logins.create(req.UserID, req.Password, email); err != nil {
		if errors.Is(err, errUserExists) {
			writeError(w, http.StatusConflict, "user_exists", "this user ID is taken")
			return
		}
		a.fail(w, "saving the account", err)
		return
	}
	if _, err := a.stream.UpsertUser(r.Context(), &stream.User{ID: req.UserID, Name: req.Name}); err != nil {
		a.logins.remove(req.UserID)
		a.fail(w, "making the Stream user", err)
		return
	}
	a.log.Info("signed up", "user", req.UserID)
	a.writeTokens(w, http.StatusCreated, req.UserID)
}

func (a *app) tokens(w http.ResponseWriter, _ *http.Request, userID string, _ twoman.Factor) {
	a.writeTokens(w, http.StatusOK, userID)
}

func (a *app) writeTokens(w http.ResponseWriter, status int, userID string) {
	now := a.now()
	exp := now.Add(tokenTTL)
	st, err := a.stream.CreateToken(userID, exp, now)
	if err != nil {
		a.fail(w, "signing a Stream token", err)
		return
	}
	kt, err := a.signer.userToken(userID, now, exp)
	if err != nil {
		a.fail(w, "signing a key-service token", err)
		return
	}
	writeJSON(w, status, tokensResponse{UserID: userID, StreamToken: st, KeyServiceToken: kt, ExpiresAt: exp.UTC().Truncate(time.Second)})
}

// challenge has the SSKS send a code to the account's email address, the
// one the app verified, never an address the caller names: the code must
// reach the user, not whoever holds the login.
func (a *app) challenge(w http.ResponseWriter, r *http.Request, userID string, email twoman.Factor) {
	s, err := a.recovery.StartChallenge(r.Context(), userID, email, false)
	if err != nil {
		if errors.Is(err, twoman.ErrRateLimited) {
			writeError(w, http.StatusTooManyRequests, "rate_limited", "too many challenges: wait before asking for another code")
			return
		}
		a.fail(w, "starting a challenge", err)
		return
	}
	key := s.RuleKey.Bytes()
	defer clear(key)
	a.log.Info("challenge started", "user", userID, "must_authenticate", s.MustAuthenticate)
	writeJSON(w, http.StatusOK, challengeResponse{
		UserID: s.UserID, Factor: s.Factor, SessionID: s.SessionID,
		RuleKey:          base64.StdEncoding.EncodeToString(key),
		MustAuthenticate: s.MustAuthenticate, ExpiresAt: s.ExpiresAt,
	})
}

// authenticated wraps a route for the app's logged-in users: the place
// where the app's own authentication goes (here, the logins stub).
func (a *app) authenticated(h func(w http.ResponseWriter, r *http.Request, userID string, email twoman.Factor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		userID, email, err := a.logins.check(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="veil example backend"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", errBadLogin.Error())
			return
		}
		h(w, r, userID, email)
	}
}

// fail answers 503 for a failure of the backend or of a service behind it,
// and logs it; the caller learns nothing of the cause.
func (a *app) fail(w http.ResponseWriter, what string, err error) {
	a.log.Warn(what+" failed", "error", err.Error())
	writeError(w, http.StatusServiceUnavailable, "unavailable", what+" failed: try again later")
}

// maxBody bounds request bodies.
const maxBody = 4 << 10

// readJSON decodes one JSON object of at most maxBody bytes, refusing
// unknown fields.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("the body is over %d bytes", maxBody)
		}
		return errors.New("the body is not the JSON object this route takes")
	}
	if dec.More() {
		return errors.New("the body holds more than one JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // tokens and keys
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, map[string]body{"error": {Code: code, Message: msg}})
}
