package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
)

// logSink collects a handler's JSON log lines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines whose msg is msg.
func (l *logSink) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// debugLogged configures a handler that logs JSON at debug into sink.
func debugLogged(sink *logSink) func(*Config) {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// send makes a request with a raw body and headers (pairs), and returns
// the status, the error code and the headers of the answer.
func send(t *testing.T, srv *testServer, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb wire.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error.Code, resp.Header
}

func getMetrics(t *testing.T, srv *testServer) string {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHTTPSemantics: methods, media types and JSON bodies the API does
// not take are refused with their status and stable code, over HTTP.
func TestHTTPSemantics(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t))
	srv.member(t, "alice")
	auth := "Bearer " + userToken(t, "alice")
	sid := strings.Repeat("ab", 16)
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code, allow              string
		reason                   string
	}{
		{"405 on a card path", "DELETE", "/v1/users/alice/cards", "", nil, 405, keyservice.CodeMethodNotAllowed, "GET, HEAD, PUT", "cards are published and read, never deleted"},
		{"405 on a log path", "PUT", "/v1/sessions/" + sid + "/log", "", nil, 405, keyservice.CodeMethodNotAllowed, "GET, HEAD, POST", "records are appended with POST"},
		{"405 on lookup", "GET", "/v1/cards/lookup", "", nil, 405, keyservice.CodeMethodNotAllowed, "POST", "the lookup takes a body"},
		{"405 before auth", "PATCH", "/v1/sessions", "", nil, 405, keyservice.CodeMethodNotAllowed, "GET, HEAD, POST", "the route's methods are no secret"},
		{"404", "GET", "/v1/nothing", "", []string{"Authorization", auth}, 404, keyservice.CodeNotFound, "", "no such route"},
		{"415 text", "POST", "/v1/cards/lookup", `{"user_ids":["alice"]}`, []string{"Authorization", auth, "Content-Type", "text/plain"}, 415, keyservice.CodeUnsupportedMediaType, "", "bodies are JSON"},
		{"415 none", "POST", "/v1/cards/lookup", `{"user_ids":["alice"]}`, []string{"Authorization", auth}, 415, keyservice.CodeUnsupportedMediaType, "", "a body says what it is"},
		{"JSON with charset", "POST", "/v1/cards/lookup", `{"user_ids":["alice"]}`, []string{"Authorization", auth, "Content-Type", "application/json; charset=utf-8"}, 200, "", "", "parameters allowed"},
		{"duplicate key", "POST", "/v1/cards/lookup", `{"user_ids":["alice"],"user_ids":["bob"]}`, []string{"Authorization", auth, "Content-Type", "application/json"}, 400, keyservice.CodeDuplicateKey, "", "two parsers could read two different lookups"},
		{"duplicate key by case", "POST", "/v1/cards/lookup", `{"user_ids":["alice"],"USER_IDS":["bob"]}`, []string{"Authorization", auth, "Content-Type", "application/json"}, 400, keyservice.CodeDuplicateKey, "", "encoding/json fills one field from both"},
		{"duplicate in a nested object", "POST", "/v1/sessions", `{"genesis":"AA==","grants":[{"grantee":"a","grantee":"b","epoch":0,"grant":"AA=="}]}`, []string{"Authorization", auth, "Content-Type", "application/json"}, 400, keyservice.CodeDuplicateKey, "", "at any depth"},
	}
	for _, tc := range tests {
		status, code, h := send(t, srv, tc.method, tc.path, tc.body, tc.header...)
		if status != tc.status || code != tc.code || h.Get("Allow") != tc.allow {
			t.Errorf("%s: %d %q Allow %q, want %d %q Allow %q (%s)", tc.name, status, code, h.Get("Allow"), tc.status, tc.code, tc.allow, tc.reason)
		}
	}
	m := getMetrics(t, srv)
	for _, want := range []string{
		`veil_keyservice_requests_total{code="405",route="unmatched"} 4`,
		`veil_keyservice_requests_total{code="404",route="unmatched"} 1`,
		`veil_keyservice_requests_total{code="415",route="POST /v1/cards/lookup"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestTimeClaimsAreNumbers: RFC 7519 makes exp, nbf and iat JSON numbers;
// golang-jwt also takes a string holding one, which the service refuses,
// as it refuses a claim named twice.
func TestTimeClaimsAreNumbers(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t))
	srv.member(t, "alice")
	exp := time.Now().Add(time.Hour).Unix()
	sign := func(payload string) string {
		// Signed over the exact payload, which jwt.MapClaims would
		// re-encode.
		head := jwtSegment(`{"alg":"HS256","typ":"JWT"}`)
		body := jwtSegment(payload)
		sig, err := jwt.SigningMethodHS256.Sign(head+"."+body, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return head + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	tests := []struct {
		name, payload string
		status        int
		reason        string
	}{
		{"numbers", `{"user_id":"alice","exp":` + itoa(exp) + `}`, 200, "the control: a valid token"},
		{"fractional exp", `{"user_id":"alice","exp":` + itoa(exp) + `.5}`, 200, "a NumericDate may have a fraction"},
		{"string exp", `{"user_id":"alice","exp":"` + itoa(exp) + `"}`, 401, "a string is no NumericDate"},
		{"string exp, other case", `{"user_id":"alice","Exp":"` + itoa(exp) + `"}`, 401, "encoding/json reads Exp as exp"},
		{"string nbf", `{"user_id":"alice","exp":` + itoa(exp) + `,"nbf":"0"}`, 401, "nbf too"},
		{"string iat", `{"user_id":"alice","exp":` + itoa(exp) + `,"iat":"0"}`, 401, "iat too"},
		{"null exp", `{"user_id":"alice","exp":null}`, 401, "null is no number, and tokens must expire"},
		{"boolean exp", `{"user_id":"alice","exp":true}`, 401, "nor is a boolean"},
		{"repeated user", `{"user_id":"mallory","user_id":"alice","exp":` + itoa(exp) + `}`, 401, "the issuer's parser may have read the first"},
		{"repeated exp", `{"user_id":"alice","exp":1,"exp":` + itoa(exp) + `}`, 401, "an expired token made current by a second exp"},
	}
	for _, tc := range tests {
		status, code, _ := send(t, srv, "GET", "/v1/users/alice/cards", "", "Authorization", "Bearer "+sign(tc.payload))
		if status != tc.status || (status == 401 && code != keyservice.CodeUnauthenticated) {
			t.Errorf("%s: %d %s, want %d (%s)", tc.name, status, code, tc.status, tc.reason)
		}
	}
}

func jwtSegment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestAccessLog: one line per request at info with its request ID, client
// address, route, status and latency; the reason of a 401 or 403 at debug;
// never a token.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	srv := newTestServer(t, openTestStore(t), debugLogged(sink), func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	})
	srv.member(t, "alice")
	tok := userToken(t, "alice")
	expired, _ := UserToken(testSecret, "", "alice", -time.Hour)
	wrongKey, _ := UserToken(bytes.Repeat([]byte("w"), 32), "", "alice", time.Hour)
	send(t, srv, "GET", "/v1/users/alice/cards", "", "Authorization", "Bearer "+tok, "X-Request-ID", "req-1", "X-Forwarded-For", "198.51.100.23")
	send(t, srv, "GET", "/v1/users/alice/cards", "", "Authorization", "Bearer "+expired, "X-Request-ID", "req-2")
	send(t, srv, "GET", "/v1/users/alice/cards", "", "Authorization", "Bearer "+wrongKey, "X-Request-ID", "req-3")
	send(t, srv, "GET", "/v1/users/alice/cards", "", "Authorization", tok+"x", "X-Request-ID", "req-4")

	byID := map[string]map[string]any{}
	for _, l := range sink.lines(t, "request") {
		if id, _ := l["request_id"].(string); id != "" {
			byID[id] = l
		}
	}
	first := byID["req-1"]
	if first == nil || first["level"] != "INFO" || first["client"] != "198.51.100.23" || first["user"] != "alice" ||
		first["status"] != 200.0 || first["route"] != "GET /v1/users/{user}/cards" || first["method"] != "GET" || first["duration"] == nil {
		t.Errorf("access line: %v", first)
	}
	reasons := map[string]string{}
	for _, l := range sink.lines(t, "refused") {
		reasons[l["request_id"].(string)] = l["reason"].(string)
		if l["level"] != "DEBUG" {
			t.Errorf("a refusal logged at %v, want DEBUG", l["level"])
		}
	}
	for id, want := range map[string]string{"req-2": "expired", "req-3": "signature", "req-4": "signature"} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("reason of %s: %q, want it to mention %q", id, reasons[id], want)
		}
	}
	all := sink.String()
	for _, secret := range []string{tok, expired, wrongKey, strings.Split(tok, ".")[2], string(testSecret)} {
		if strings.Contains(all, secret) {
			t.Fatalf("the log holds a token or secret:\n%s", all)
		}
	}
}

// TestRefusalReasons: each refusal of the access matrix has its reason at
// debug (a 403 for a member of no session, a Stream token writing).
func TestRefusalReasons(t *testing.T) {
	t.Parallel()
	sink := &logSink{}
	srv := newTestServer(t, openTestStore(t), debugLogged(sink))
	srv.member(t, "alice")
	mallory := srv.member(t, "mallory")
	c := newChain(t, "messaging:reasons", srv.member(t, "owner").id, mallory.id)
	srv.post(t, "owner", "/v1/sessions", c.create())
	srv.member(t, "outsider")
	status, _, _ := send(t, srv, "GET", logPath(c.id), "", "Authorization", "Bearer "+userToken(t, "outsider"), "X-Request-ID", "r403")
	if status != 403 {
		t.Fatalf("an outsider reading the log: %d, want 403", status)
	}
	found := false
	for _, l := range sink.lines(t, "refused") {
		if l["request_id"] == "r403" && l["reason"] != "" && l["status"] == 403.0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no reason logged for the 403:\n%s", sink.String())
	}
}

// TestProbesAndRuntimeMetrics: /healthz answers while the store is down
// (the process lives), /readyz does not; /metrics has the Go and process
// collectors and every route's series before any traffic.
func TestProbesAndRuntimeMetrics(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	srv := newTestServer(t, st)
	m := getMetrics(t, srv)
	wants := []string{
		"go_goroutines ", "go_memstats_heap_inuse_bytes ",
		`veil_keyservice_request_duration_seconds_count{route="POST /v1/sessions"} 0`,
		`veil_keyservice_request_duration_seconds_count{route="GET /v1/sessions/{id}/grants"} 0`,
		`veil_keyservice_refused_total{reason="slow_body"} 0`,
		`veil_keyservice_log_replays_total{kind="full"} 0`,
	}
	if runtime.GOOS == "linux" {
		wants = append(wants, "process_resident_memory_bytes ", "process_open_fds ")
	}
	for _, want := range wants {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics before traffic lacks %q", want)
		}
	}
	if status, _, _ := send(t, srv, "GET", "/readyz", ""); status != 200 {
		t.Errorf("/readyz with the store up: %d", status)
	}
	st.Close()
	if status, _, _ := send(t, srv, "GET", "/healthz", ""); status != 200 {
		t.Errorf("/healthz with the store down: %d, want 200 (liveness is the process's)", status)
	}
	if status, code, _ := send(t, srv, "GET", "/readyz", ""); status != 503 || code != keyservice.CodeUnavailable {
		t.Errorf("/readyz with the store down: %d %s, want 503 unavailable", status, code)
	}
}

// TestMetricsRouteOmitted: with OmitMetricsRoute, /metrics is served only
// by MetricsHandler, for a listener of its own.
func TestMetricsRouteOmitted(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.OmitMetricsRoute = true })
	if status, _, _ := send(t, srv, "GET", "/metrics", ""); status != 404 {
		t.Errorf("/metrics on the API listener: %d, want 404", status)
	}
	rec := httptest.NewRecorder()
	srv.h.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "veil_keyservice_requests_total") {
		t.Errorf("MetricsHandler serves no key service metrics")
	}
}

// TestOneClientCannotHoldAllBodyMemory: MaxBodyMemory bounds the bodies
// held at once, and a body past it is answered 503. One client — a user
// with a token, from one address — that sends most of several large
// bodies and then stalls holds what it sent until the server's read
// timeout: it must not hold all of it, or every other client's writes
// are refused for as long, again and again. Its share is an eighth of
// MaxBodyMemory, or one body of MaxBodyBytes if that is more.
func TestOneClientCannotHoldAllBodyMemory(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t), func(c *Config) {
		c.MaxBodyBytes, c.MaxBodyMemory = 1<<10, 8<<10
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	addr := strings.TrimPrefix(srv.URL, "http://")
	tok := userToken(t, "mallory")
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /v1/cards/lookup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Forwarded-For: 198.51.100.1\r\n"+
			"Content-Type: application/json\r\nContent-Length: 1024\r\n\r\n%s", tok, strings.Repeat(" ", 1023))
	}
	// Until each of the eight is in the handler (as is the scrape) or
	// answered.
	settled := func() bool {
		m := getMetrics(t, srv)
		var inFlight, refused int
		fmt.Sscan(metricValue(m, "veil_keyservice_requests_in_flight"), &inFlight)
		fmt.Sscan(metricValue(m, `veil_keyservice_requests_total{code="503",route="POST /v1/cards/lookup"}`), &refused)
		return inFlight-1+refused == 8
	}
	for deadline := time.Now().Add(5 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // until those in the handler have read what was sent
	status, code, _ := send(t, srv, "POST", "/v1/cards/lookup", `{"user_ids":["x"]}`,
		"Authorization", "Bearer "+userToken(t, "alice"), "Content-Type", "application/json", "X-Forwarded-For", "198.51.100.2")
	if status != http.StatusOK {
		t.Errorf("another client's lookup while one stalls 8 bodies: %d %s, want 200", status, code)
	}
	status, code, _ = send(t, srv, "POST", "/v1/cards/lookup", `{"user_ids":["x"]}`,
		"Authorization", "Bearer "+tok, "Content-Type", "application/json", "X-Forwarded-For", "198.51.100.1")
	if status != http.StatusServiceUnavailable || code != keyservice.CodeUnavailable {
		t.Errorf("the stalling client's next body: %d %s, want 503 unavailable (its share is held)", status, code)
	}
}

// metricValue returns the value of the series named by name and its
// labels in the Prometheus text m, or "".
func metricValue(m, name string) string {
	for _, line := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
