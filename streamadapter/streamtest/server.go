package streamtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
	"github.com/golang-jwt/jwt/v5"
	"github.com/veilchat/veil/internal/redact"
)

// Config configures a Server. The zero value is ready: random credentials,
// the real clock, random IDs, no webhook.
type Config struct {
	// APIKey and APISecret are the app's credentials; empty means random.
	APIKey    string
	APISecret Secret
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewID generates message IDs when the client sends none; nil means
	// random UUID-like IDs.
	NewID func() string
	// WebhookURL is the app setting webhook_url the server starts with
	// (UpdateAppSettings changes it): if set, it receives events
	// (message.new, message.updated, message.deleted, member.added,
	// member.removed, channel.updated, channel.truncated, channel.deleted),
	// in order, signed with X-Signature.
	WebhookURL string
	// HTTPClient delivers webhooks and calls the before-message-send hook
	// URL; nil means a client with a 10 s timeout. The hook's own timeout
	// (before_message_send_hook_attempt_timeout_ms) applies on top.
	HTTPClient *http.Client
	// MaxMessageLength is the longest message text in characters; 0 means
	// Stream's default of 5,000.
	MaxMessageLength int
	// Logger receives a line per request; nil discards.
	Logger *slog.Logger
	// BeforeMessageSend, if set, sees every new message (its JSON object)
	// before it is stored, a test convenience standing in for Stream's
	// before-message-send hook: it may return a rewritten message, or
	// reject it with a non-nil error (the client gets a Stream input
	// error, code 4, with that text). It runs before the HTTP hook that
	// the app setting before_message_send_hook_url configures, which
	// answers as Stream documents (see the package documentation).
	BeforeMessageSend func(message map[string]any) (map[string]any, error)
}

// Server is an in-process Stream Chat API for the real stream-chat-go/v6
// client. It is safe for concurrent use.
type Server struct {
	// URL is the base URL to give the client (Client.BaseURL or
	// STREAM_CHAT_URL).
	URL string

	cfg  Config
	http *httptest.Server
	log  *slog.Logger

	mu       sync.Mutex
	app      map[string]any // app settings (GET and PATCH /app)
	users    map[string]map[string]any
	channels map[string]*channel // by CID
	deleted  []*channel          // soft-deleted, kept for Snapshot
	messages map[string]*message // by ID
	files    map[string][]byte
	tasks    map[string]map[string]any
	sent     [][]byte // every webhook and hook body sent, in order, for Snapshot
	seq      int      // creation order of channels and messages

	events chan outgoing
	done   chan struct{}
}

type channel struct {
	typ, id     string
	data        map[string]any // custom data
	createdBy   string
	created     time.Time
	updated     time.Time
	members     []*member
	msgs        []*message // every stored message, in creation order: replies, pending and truncated ones too
	seq         int
	truncatedAt *time.Time
	truncatedBy string
}

type member struct {
	userID             string
	role               string // member, moderator, or an assigned channel role without "channel_"
	created            time.Time
	invited            bool
	accepted, rejected *time.Time
	hideHistory        bool // added with hide_history
}

type message struct {
	fields      map[string]any // the message's JSON, custom data flattened
	cid         string
	seq         int
	pending     bool              // sent with pending: stored, not shown in the channel
	pendingMeta map[string]string // pending_message_metadata sent with it
	truncated   bool              // hidden by a soft truncation: stored, never returned
	history     []map[string]any  // the versions edits replaced, oldest first
}

// NewServer starts a Server on a loopback port. Close it when done.
func NewServer(cfg Config) *Server {
	if cfg.APIKey == "" {
		cfg.APIKey = randomHex(8)
	}
	if cfg.APISecret.IsZero() {
		cfg.APISecret = NewSecret([]byte(randomHex(32)))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = func() string { return randomHex(16) }
	}
	if cfg.MaxMessageLength == 0 {
		cfg.MaxMessageLength = 5000
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, app: map[string]any{},
		users: map[string]map[string]any{}, channels: map[string]*channel{}, messages: map[string]*message{}, files: map[string][]byte{}, tasks: map[string]map[string]any{},
		events: make(chan outgoing, 1024), done: make(chan struct{})}
	if cfg.WebhookURL != "" {
		s.app["webhook_url"] = cfg.WebhookURL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.http = httptest.NewServer(s.routes())
	s.URL = s.http.URL
	go s.deliver()
	return s
}

// TB is the part of testing.TB that NewTestServer needs.
type TB interface {
	Helper()
	Cleanup(func())
}

// NewTestServer starts a Server that closes when the test ends.
func NewTestServer(t TB, cfg Config) *Server {
	t.Helper()
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

// APIKey returns the app's API key.
func (s *Server) APIKey() string { return s.cfg.APIKey }

// APISecret returns the app's API secret. It is a secret: Server's String
// and Format never print it.
func (s *Server) APISecret() string { return string(s.cfg.APISecret.Reveal()) }

// String describes the server without its secret.
func (s *Server) String() string {
	return fmt.Sprintf("streamtest.Server(%s, key %s)", s.URL, s.cfg.APIKey)
}

// GoString is String.
func (s *Server) GoString() string { return s.String() }

// Format prints String under every verb, so the secret never shows.
func (s *Server) Format(f fmt.State, verb rune) { redact.Format(f, verb, s.String()) }

// Client returns a stream-chat-go client pointed at the server, with a
// one-minute HTTP timeout.
func (s *Server) Client() *stream.Client {
	c, err := stream.NewClient(s.cfg.APIKey, s.APISecret())
	if err != nil {
		panic("streamtest: " + err.Error()) // the credentials are never empty
	}
	c.BaseURL = s.URL
	// stream-chat-go's default timeout (6 s) is short for a large upload
	// to a server on a loaded test machine.
	c.SetClient(&http.Client{Timeout: time.Minute})
	return c
}

// Handler returns the server's HTTP handler, to serve it on an address of
// one's choice (see SetURL).
func (s *Server) Handler() http.Handler { return s.http.Config.Handler }

// SetURL records the address the handler is served on when it is served
// elsewhere than the built-in loopback listener, so that file URLs point
// there.
func (s *Server) SetURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.URL = u
}

// Close stops the server and the webhook delivery.
func (s *Server) Close() {
	s.http.Close()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- errors ----

// apiError is Stream's error body.
type apiError struct {
	Code            int               `json:"code"`
	Message         string            `json:"message"`
	ExceptionFields map[string]string `json:"exception_fields,omitempty"`
	StatusCode      int               `json:"StatusCode"`
	Duration        string            `json:"duration"`
	MoreInfo        string            `json:"more_info"`
}

func (e *apiError) Error() string { return e.Message }

// Stream error codes used here.
const (
	codeInputError       = 4
	codeNotAllowed       = 5
	codeDoesNotExist     = 16
	codeForbidden        = 17
	codeMessageTooLong   = 20
	codeCustomDataTooBig = 22
	codeTokenExpired     = 40
	codeTokenNotValidYet = 41
	codeTokenDateWrong   = 42
	codeTokenSignature   = 43
)

func fail(status, code int, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...), StatusCode: status, MoreInfo: "https://getstream.io/chat/docs/api_errors_response"}
}

func notFound(what, id string) *apiError {
	return fail(http.StatusNotFound, codeDoesNotExist, "%s %q does not exist", what, id)
}

// ---- routing ----

type handlerFunc func(r *http.Request, body []byte) (any, error)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn handlerFunc) { mux.HandleFunc(pattern, s.api(fn)) }
	h("GET /app", s.getApp)
	h("PATCH /app", s.updateApp)
	h("POST /users", s.upsertUsers)
	h("GET /users", s.queryUsers)
	h("PATCH /users", s.partialUpdateUsers)
	h("POST /users/delete", s.deleteUsers)
	h("GET /tasks/{id}", s.getTask)
	h("POST /channels", s.queryChannels)
	h("POST /channels/delete", s.deleteChannels)
	h("POST /channels/{type}/query", s.queryChannel)
	h("POST /channels/{type}/{id}/query", s.queryChannel)
	h("POST /channels/{type}/{id}", s.updateChannel)
	h("PATCH /channels/{type}/{id}", s.partialUpdateChannel)
	h("DELETE /channels/{type}/{id}", s.deleteChannel)
	h("POST /channels/{type}/{id}/message", s.sendMessage)
	h("POST /channels/{type}/{id}/file", s.uploadFile)
	h("POST /channels/{type}/{id}/image", s.uploadFile)
	h("GET /messages/{id}", s.getMessage)
	h("PUT /messages/{id}", s.partialUpdateMessage)
	h("GET /messages/{id}/replies", s.replies)
	h("GET /channels/{type}/{id}/messages", s.getMessages)
	h("POST /channels/{type}/{id}/truncate", s.truncate)
	h("GET /members", s.queryMembers)
	h("DELETE /channels/{type}/{id}/file", s.deleteFile)
	h("DELETE /channels/{type}/{id}/image", s.deleteFile)
	h("POST /messages/{id}", s.updateMessage)
	h("DELETE /messages/{id}", s.deleteMessage)
	mux.HandleFunc("GET /files/{name}", s.serveFile)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, fail(http.StatusNotFound, codeDoesNotExist, "%s %s is not emulated", r.Method, r.URL.Path))
	})
	return mux
}

// api wraps a handler with authentication, bounded bodies, rate-limit
// headers and Stream's error shape.
func (s *Server) api(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("X-Ratelimit-Limit", "10000")
		w.Header().Set("X-Ratelimit-Remaining", "9999")
		w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(s.cfg.Now().Add(time.Minute).Unix(), 10))
		out, err := func() (any, error) {
			if err := s.authenticate(r); err != nil {
				return nil, err
			}
			limit := int64(1 << 20)
			if strings.HasSuffix(r.URL.Path, "/file") || strings.HasSuffix(r.URL.Path, "/image") {
				limit = 10 << 20
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
			if err != nil {
				return nil, fail(http.StatusRequestEntityTooLarge, codeInputError, "request body too large")
			}
			return fn(r, body)
		}()
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = fail(http.StatusInternalServerError, -1, "internal error")
			}
			ae.Duration = time.Since(start).String()
			writeJSON(w, ae.StatusCode, ae)
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", ae.StatusCode)
			return
		}
		// Responses share maps with the stored state, which handlers change
		// under s.mu: encode under it too, and add the duration to a copy.
		s.mu.Lock()
		if m, ok := out.(map[string]any); ok {
			m = maps.Clone(m)
			m["duration"] = time.Since(start).String()
			out = m
		}
		b, err := json.Marshal(out)
		s.mu.Unlock()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, fail(http.StatusInternalServerError, -1, "internal error"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(append(b, '\n'))
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", 200)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// callerKey is the request-context key of the authenticated user ID (empty
// for server tokens).
type callerKey struct{}

// caller returns the user a request's token names, or "" for a server token.
func caller(r *http.Request) string {
	u, _ := r.Context().Value(callerKey{}).(string)
	return u
}

// authenticate checks the api_key parameter and the JWT as Stream does.
func (s *Server) authenticate(r *http.Request) error {
	if r.URL.Query().Get("api_key") != s.cfg.APIKey {
		return fail(http.StatusUnauthorized, codeNotAllowed, "api_key not valid")
	}
	if r.Header.Get("Stream-Auth-Type") != "jwt" {
		return fail(http.StatusUnauthorized, codeNotAllowed, "Stream-Auth-Type must be jwt")
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		return fail(http.StatusUnauthorized, codeNotAllowed, "missing Authorization token")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(s.cfg.Now), jwt.WithIssuedAt()).
		ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.cfg.APISecret.Reveal(), nil })
	switch {
	case err == nil:
		// A user token names a user (a non-empty string); a server token
		// says "server": true. Anything else is refused, as Stream does.
		switch u := claims["user_id"].(type) {
		case string:
			if u != "" {
				*r = *r.WithContext(context.WithValue(r.Context(), callerKey{}, u))
				return nil
			}
		case nil:
			if srv, _ := claims["server"].(bool); srv {
				return nil
			}
		}
		return fail(http.StatusUnauthorized, codeNotAllowed, "JWTAuth error: the token names no user and is not a server token")
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(http.StatusUnauthorized, codeTokenExpired, "JWTAuth error: token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail(http.StatusUnauthorized, codeTokenNotValidYet, "JWTAuth error: token not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(http.StatusUnauthorized, codeTokenDateWrong, "JWTAuth error: token used before issue at (iat)")
	}
	return fail(http.StatusUnauthorized, codeTokenSignature, "JWTAuth error: signature is not valid")
}

// decode parses a JSON object; malformed input is Stream's input error.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fail(http.StatusBadRequest, codeInputError, "request body is empty")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fail(http.StatusBadRequest, codeInputError, "invalid JSON: %s", jsonProblem(err))
	}
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	return "cannot parse"
}

// ---- helpers over flattened objects ----

// checkCustomSize enforces Stream's 5 KB of custom data per object.
func checkCustomSize(custom map[string]any, reserved []string) error {
	c := make(map[string]any, len(custom))
	for k, v := range custom {
		if !slices.Contains(reserved, k) {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	if len(b) > 5*1024 {
		return fail(http.StatusBadRequest, codeCustomDataTooBig, "custom data is %d bytes, more than 5KB", len(b))
	}
	return nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// maxPathDepth bounds the dotted keys of partial updates (Stream's are
// shallow); deeper ones would nest maps without limit.
const maxPathDepth = 8

// checkPaths refuses partial-update keys that are empty, have an empty
// segment, nest deeper than maxPathDepth, or start with a reserved field
// (which only Stream sets).
func checkPaths(set map[string]any, unset []string, reserved ...string) error {
	check := func(k string) error {
		parts := strings.Split(k, ".")
		if len(parts) > maxPathDepth || slices.Contains(parts, "") {
			return fail(http.StatusBadRequest, codeInputError, "invalid field path %.40q", k)
		}
		if slices.Contains(reserved, parts[0]) {
			return fail(http.StatusBadRequest, codeInputError, "field %q cannot be updated", parts[0])
		}
		return nil
	}
	for k := range set {
		if err := check(k); err != nil {
			return err
		}
	}
	for _, k := range unset {
		if err := check(k); err != nil {
			return err
		}
	}
	return nil
}

// patched returns a copy of data with set applied, then unset (dotted
// keys address nested objects). data and the objects nested in it are
// left untouched: each object on a written path is copied first, so a
// caller that refuses the result has changed nothing.
func patched(data map[string]any, set map[string]any, unset []string) map[string]any {
	out := maps.Clone(data)
	if out == nil {
		out = map[string]any{}
	}
	// descend returns the object holding the last segment of parts,
	// copying every object on the way; with create, missing or non-object
	// values on the way become empty objects, otherwise it returns nil.
	descend := func(parts []string, create bool) map[string]any {
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok && !create {
				return nil
			}
			next = maps.Clone(next)
			if next == nil {
				next = map[string]any{}
			}
			m[p] = next
			m = next
		}
		return m
	}
	for _, k := range sortedKeys(set) {
		parts := strings.Split(k, ".")
		descend(parts, true)[parts[len(parts)-1]] = set[k]
	}
	for _, k := range unset {
		parts := strings.Split(k, ".")
		if m := descend(parts, false); m != nil {
			delete(m, parts[len(parts)-1])
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
