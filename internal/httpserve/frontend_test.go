package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veilchat/veil/internal/httpjson"
)

// logBuffer is a slog destination safe for the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the JSON log lines whose msg is msg.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
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

type testFront struct {
	*httptest.Server
	f    *Frontend
	logs *logBuffer
	reg  *prometheus.Registry
}

// newTestFront serves a Frontend with a route that reads its body, one
// that refuses (403 with a reason), one that fails (500) and a probe.
func newTestFront(t *testing.T, mutate func(*Config)) *testFront {
	t.Helper()
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	cfg := Config{Namespace: "test", Metrics: reg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mutate != nil {
		mutate(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Handle("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetUser(r.Context(), "alice")
		body, err := httpjson.ReadBody(w, r, 1<<20)
		if err != nil {
			he := err.(*httpjson.Error)
			httpjson.WriteError(w, he.Status, he.Code, he.Message)
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]int{"bytes": len(body)})
	}))
	f.Handle("GET /items/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	}))
	f.Handle("DELETE /items/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetRefusal(r.Context(), "not the owner of the item")
		httpjson.WriteError(w, http.StatusForbidden, httpjson.CodeForbidden, "not allowed")
	}))
	f.Handle("GET /fail", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetError(r.Context(), fmt.Errorf("the database said no"))
		httpjson.WriteError(w, http.StatusInternalServerError, httpjson.CodeInternal, "internal error")
	}))
	f.HandleProbe("GET /healthz", http.HandlerFunc(Live))
	f.HandleProbe("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &testFront{Server: srv, f: f, logs: logs, reg: reg}
}

type answer struct {
	status int
	header http.Header
	code   string
	body   string
}

func (s *testFront) do(t *testing.T, method, path, contentType, body string, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb httpjson.ErrorBody
	json.Unmarshal(raw, &eb)
	return answer{status: resp.StatusCode, header: resp.Header, code: eb.Error.Code, body: string(raw)}
}

func (s *testFront) metrics(t *testing.T) string {
	t.Helper()
	return s.do(t, "GET", "/metrics", "", "").body
}

func TestFrontendRouting(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, nil)
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code, allow                     string
		reason                          string
	}{
		{"match", "GET", "/items/7", "", "", 200, "", "", "a registered route"},
		{"head of a GET", "HEAD", "/items/7", "", "", 200, "", "", "GET patterns serve HEAD"},
		{"wrong method", "PUT", "/items/7", "", "", 405, httpjson.CodeMethodNotAllowed, "DELETE, GET, HEAD", "the path exists for other methods, which Allow lists"},
		{"wrong method, body route", "GET", "/echo", "", "", 405, httpjson.CodeMethodNotAllowed, "POST", "as the docs promise: 405, not 404"},
		{"no route", "GET", "/nothing/here", "", "", 404, httpjson.CodeNotFound, "", "a JSON 404"},
		{"JSON body", "POST", "/echo", "application/json", `{}`, 200, "", "", "the media type bodies have"},
		{"JSON with charset", "POST", "/echo", "application/json; charset=utf-8", `{}`, 200, "", "", "parameters are allowed"},
		{"JSON with upper-case charset", "POST", "/echo", "Application/JSON; charset=UTF-8", `{}`, 200, "", "", "media types and charsets are case-insensitive"},
		{"text body", "POST", "/echo", "text/plain", `{}`, 415, httpjson.CodeUnsupportedMediaType, "", "only JSON bodies"},
		{"form body", "POST", "/echo", "application/x-www-form-urlencoded", `a=1`, 415, httpjson.CodeUnsupportedMediaType, "", "a browser form cannot post to the API"},
		{"no type", "POST", "/echo", "", `{}`, 415, httpjson.CodeUnsupportedMediaType, "", "a body must say what it is"},
		{"other charset", "POST", "/echo", "application/json; charset=latin1", `{}`, 415, httpjson.CodeUnsupportedMediaType, "", "JSON is UTF-8"},
		{"malformed type", "POST", "/echo", "application/json; ;", `{}`, 415, httpjson.CodeUnsupportedMediaType, "", "unparsable media type"},
		{"no body, no type", "GET", "/items/1", "", "", 200, "", "", "requests without a body need no type"},
	}
	for _, tc := range tests {
		a := s.do(t, tc.method, tc.path, tc.ctype, tc.body)
		if a.status != tc.status || (tc.method != "HEAD" && a.code != tc.code) || a.header.Get("Allow") != tc.allow {
			t.Errorf("%s: %d %q Allow %q, want %d %q Allow %q (%s)", tc.name, a.status, a.code, a.header.Get("Allow"), tc.status, tc.code, tc.allow, tc.reason)
		}
		if a.status >= 400 && a.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: error answer of type %q", tc.name, a.header.Get("Content-Type"))
		}
	}
	m := s.metrics(t)
	for _, want := range []string{
		`test_requests_total{code="404",route="unmatched"} 1`,
		`test_requests_total{code="405",route="unmatched"} 2`,
		`test_requests_total{code="415",route="POST /echo"} 5`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var unmatched []map[string]any
	for _, l := range s.logs.lines(t, "request") {
		if l["route"] == unmatchedRoute {
			unmatched = append(unmatched, l)
		}
	}
	if len(unmatched) != 3 || unmatched[0]["path"] != "/items/7" || unmatched[2]["path"] != "/nothing/here" {
		t.Errorf("access lines of unmatched requests: %v, want 3 with their paths", unmatched)
	}
}

// TestFrontendMetricsBeforeTraffic: every route's series, and the refusal
// counters, exist before the first request.
func TestFrontendMetricsBeforeTraffic(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, nil)
	m := s.metrics(t)
	for _, want := range []string{
		`test_request_duration_seconds_count{route="POST /echo"} 0`,
		`test_request_duration_seconds_count{route="DELETE /items/{id}"} 0`,
		`test_refused_total{reason="slow_body"} 0`,
		`test_refused_total{reason="client_in_flight"} 0`,
		`test_requests_total{code="404",route="unmatched"} 0`,
		`test_requests_in_flight 1`, // the scrape itself
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics before traffic lacks %s", want)
		}
	}
}

func TestFrontendAccessLog(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	given := s.do(t, "POST", "/echo", "application/json", `{"a":1}`, "X-Request-ID", "trace-42", "X-Forwarded-For", "203.0.113.9")
	forged := s.do(t, "GET", "/items/1", "", "", "X-Request-ID", `x" msg="forged`)
	s.do(t, "DELETE", "/items/1", "", "")
	s.do(t, "GET", "/fail", "", "")
	s.do(t, "GET", "/healthz", "", "")

	if got := given.header.Get("X-Request-ID"); got != "trace-42" {
		t.Errorf("a sane X-Request-ID is echoed: got %q", got)
	}
	newID := forged.header.Get("X-Request-ID")
	if newID == "" || strings.Contains(newID, `"`) {
		t.Errorf("an unsafe X-Request-ID is replaced: got %q", newID)
	}
	lines := s.logs.lines(t, "request")
	byID := map[string]map[string]any{}
	for _, l := range lines {
		byID[fmt.Sprint(l["request_id"])] = l
	}
	l := byID["trace-42"]
	if l == nil || l["client"] != "203.0.113.9" || l["user"] != "alice" || l["status"] != 200.0 || l["route"] != "POST /echo" || l["level"] != "INFO" || l["duration"] == nil {
		t.Errorf("access line of the first request: %v", l)
	}
	if byID[newID] == nil {
		t.Errorf("no access line under the generated ID %s", newID)
	}
	refused := s.logs.lines(t, "refused")
	if len(refused) != 1 || refused[0]["reason"] != "not the owner of the item" || refused[0]["level"] != "DEBUG" || refused[0]["status"] != 403.0 {
		t.Errorf("refusal lines: %v, want one at debug with the reason", refused)
	}
	failed := s.logs.lines(t, "request failed")
	if len(failed) != 1 || failed[0]["error"] != "the database said no" || failed[0]["level"] != "ERROR" {
		t.Errorf("failure lines: %v, want one at error with the cause", failed)
	}
	var probes int
	for _, l := range lines {
		if l["route"] == "GET /healthz" {
			probes++
			if l["level"] != "DEBUG" {
				t.Errorf("a probe's access line at %v, want DEBUG", l["level"])
			}
		}
	}
	if probes != 1 {
		t.Errorf("%d access lines for /healthz, want 1", probes)
	}
}

// TestFrontendAccessLogBounded: what a client writes reaches the access
// line cut short, so that one request cannot write a log line as large as
// its headers may be: the path of an unmatched request, its method (any
// token net/http accepts, to the header limit), the client address a
// trusted proxy passes on.
func TestFrontendAccessLogBounded(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s /%s HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: [fe80::1%%%s]:1\r\nConnection: close\r\n\r\n",
		strings.Repeat("M", 20000), strings.Repeat("p", 20000), strings.Repeat("z", 20000))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lines := s.logs.lines(t, "request")
	if len(lines) != 1 || lines[0]["status"] != 404.0 {
		t.Fatalf("%d access lines, want one of a 404", len(lines))
	}
	if n := len(s.logs.String()); n > 1024 {
		t.Errorf("a request of 60 KB of method, path and forwarded address wrote %d bytes of log, want at most 1 KiB", n)
	}
}

// slowUpload opens a connection and sends a POST's headers announcing a
// body of size bytes, and the first byte of it.
func slowUpload(t *testing.T, addr, path string, size int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n[", path, size)
	return c
}

func TestFrontendInFlightCap(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) { c.MaxInFlightPerClient = 2 })
	addr := strings.TrimPrefix(s.URL, "http://")
	var held []net.Conn
	for range 2 {
		held = append(held, slowUpload(t, addr, "/echo", 100))
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.metrics(t), "test_requests_in_flight 3") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // until both are in the handler
	}
	a := s.do(t, "POST", "/echo", "application/json", `{}`)
	if a.status != 429 || a.code != httpjson.CodeRateLimited || a.header.Get("Retry-After") == "" {
		t.Errorf("a third request in flight: %d %q, want 429 rate_limited with Retry-After", a.status, a.code)
	}
	if a := s.do(t, "GET", "/healthz", "", ""); a.status != 200 {
		t.Errorf("a probe while the cap is reached: %d, want 200 (probes are exempt)", a.status)
	}
	// Finishing one upload frees its slot.
	fmt.Fprint(held[0], strings.Repeat(" ", 98)+"]")
	resp, err := http.ReadResponse(bufio.NewReader(held[0]), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the held request: %v %v", resp, err)
	}
	if a := s.do(t, "POST", "/echo", "application/json", `{}`); a.status != 200 {
		t.Errorf("after a slot was freed: %d, want 200", a.status)
	}
	for _, c := range held {
		c.Close()
	}
	if m := s.metrics(t); !strings.Contains(m, `test_refused_total{reason="client_in_flight"} 1`) {
		t.Errorf("the refusal is not counted")
	}
}

// TestFrontendSlowBody: a body sent below the minimum rate is dropped
// with 408 once the grace has passed, while one sent at the rate passes.
func TestFrontendSlowBody(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) { c.MinBodyRate, c.BodyRateGrace = 1000, 300*time.Millisecond })
	addr := strings.TrimPrefix(s.URL, "http://")

	slow := slowUpload(t, addr, "/echo", 1000)
	defer slow.Close()
	start := time.Now()
	// One byte every 50 ms: 20 bytes per second, far below 1,000.
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := slow.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	close(stop)
	if err != nil {
		t.Fatalf("no answer to the slow upload: %v", err)
	}
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("slow upload: %d after %v, want 408 after the 300ms grace", resp.StatusCode, took)
	}
	if !resp.Close {
		t.Errorf("the connection of a dropped upload stays open")
	}

	// A body at 3,000 bytes per second (by the clock, however late the
	// test's goroutine wakes), over 1.5 s, five times the grace, keeps to
	// the rate and is served.
	const size = 4500
	steady := slowUpload(t, addr, "/echo", size)
	defer steady.Close()
	began, sent := time.Now(), 1
	for sent < size-1 {
		time.Sleep(20 * time.Millisecond)
		due := min(int(time.Since(began).Seconds()*3000), size-1)
		if due > sent {
			steady.Write([]byte(strings.Repeat(" ", due-sent)))
			sent = due
		}
	}
	steady.Write([]byte("]"))
	steady.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(steady), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("steady upload: %v %v, want 200", resp, err)
	}
	if m := s.metrics(t); !strings.Contains(m, `test_refused_total{reason="slow_body"} 1`) {
		t.Errorf("the drop is not counted")
	}
	var dropped int
	for _, l := range s.logs.lines(t, "request") {
		if l["refused"] == refusedSlowBody && l["status"] == 408.0 {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("%d access lines of a dropped upload, want 1 naming slow_body", dropped)
	}
}

// TestBodyWatchStopsWithTheRequest: a watch that outlives its request
// must not touch the connection's next request.
func TestBodyWatchStopsWithTheRequest(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) { c.MinBodyRate, c.BodyRateGrace = 1<<30, 100*time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// A body read to its end (the watch stops at EOF), and one the handler
	// never reads (the watch stops when the handler returns); each time,
	// on the same connection after the grace (when a watch left running
	// would fire), a request without a body.
	for _, first := range []string{
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"DELETE /items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	} {
		fmt.Fprint(c, first)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.Close {
			t.Fatalf("first request: %v %v", resp, err)
		} else {
			io.Copy(io.Discard, resp.Body)
		}
		time.Sleep(300 * time.Millisecond)
		fmt.Fprint(c, "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("next request on the connection: %v %v", resp, err)
		} else {
			io.Copy(io.Discard, resp.Body)
		}
	}
}

func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(inner, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String()) // the kernel queues the third
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with a limit of 2")
	case <-time.After(200 * time.Millisecond):
	}
	if l.Open() != 2 {
		t.Errorf("Open() = %d, want 2", l.Open())
	}
	first.Close()
	first.Close() // twice frees one slot, not two
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	second.Close()
	// A waiting Accept ends with the listener.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.Close()
	select {
	case _, ok := <-accepted:
		if ok {
			t.Error("a connection accepted after Close")
		}
	case <-ctx.Done():
		t.Fatal("Accept did not return after Close")
	}
	for _, c := range clients {
		c.Close()
	}
}

// TestFrontendBodyMemory: the bytes of bodies held at once are counted as
// they arrive, whatever the Content-Length promises, and a body that would
// pass the bound is answered 503.
func TestFrontendBodyMemory(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) { c.BodyMemory = 1100 })
	addr := strings.TrimPrefix(s.URL, "http://")
	// A trickled upload promising a megabyte holds the one byte it sent.
	promise := slowUpload(t, addr, "/echo", 1<<20)
	defer promise.Close()
	// One that sent 600 bytes holds them.
	held := slowUpload(t, addr, "/echo", 1000)
	defer held.Close()
	fmt.Fprint(held, strings.Repeat(" ", 599))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.metrics(t), "test_requests_in_flight 3") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // until the handler has read the 600 bytes
	if a := s.do(t, "POST", "/echo", "application/json", "["+strings.Repeat(" ", 298)+"]"); a.status != 200 {
		t.Errorf("a body of 300 with 499 free: %d, want 200 (the trickled upload holds one byte, not its promise)", a.status)
	}
	if a := s.do(t, "POST", "/echo", "application/json", "["+strings.Repeat(" ", 498)+"]"); a.status != 503 || a.code != httpjson.CodeUnavailable || a.header.Get("Retry-After") == "" {
		t.Errorf("a body of 500 with 499 free: %d %q, want 503 unavailable with Retry-After", a.status, a.code)
	}
	if a := s.do(t, "GET", "/items/1", "", ""); a.status != 200 {
		t.Errorf("a request without a body: %d, want 200", a.status)
	}
	// Finishing the 600-byte upload frees what it held.
	fmt.Fprint(held, strings.Repeat(" ", 399)+"]")
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the held upload: %v %v", resp, err)
	}
	if a := s.do(t, "POST", "/echo", "application/json", "["+strings.Repeat(" ", 898)+"]"); a.status != 200 {
		t.Errorf("a body of 900 once the held one is answered: %d, want 200", a.status)
	}
	m := s.metrics(t)
	if !strings.Contains(m, `test_refused_total{reason="body_memory"} 1`) {
		t.Errorf("the refusal is not counted")
	}
}

// TestFrontendBodyMemoryPerClient: a client's bodies count against its
// share as well as the bound of all bodies, each client its own; what a
// request held is given back when it is answered, and no entry is kept
// for a client that holds nothing.
func TestFrontendBodyMemoryPerClient(t *testing.T) {
	t.Parallel()
	s := newTestFront(t, func(c *Config) {
		c.BodyMemory, c.BodyMemoryPerClient = 2000, 700
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	addr := strings.TrimPrefix(s.URL, "http://")
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fmt.Fprintf(held, "POST /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\nContent-Type: application/json\r\nContent-Length: 650\r\n\r\n[%s", strings.Repeat(" ", 599))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.metrics(t), "test_requests_in_flight 2") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // until the handler has read the 600 bytes
	body := "[" + strings.Repeat(" ", 198) + "]"
	if a := s.do(t, "POST", "/echo", "application/json", body, "X-Forwarded-For", "198.51.100.1"); a.status != 503 || a.code != httpjson.CodeUnavailable {
		t.Errorf("200 more bytes from the client holding 600 of its 700: %d %q, want 503 unavailable", a.status, a.code)
	}
	if a := s.do(t, "POST", "/echo", "application/json", body, "X-Forwarded-For", "198.51.100.2"); a.status != 200 {
		t.Errorf("the same body from another client: %d, want 200", a.status)
	}
	fmt.Fprint(held, strings.Repeat(" ", 49)+"]")
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the held upload: %v %v", resp, err)
	}
	if a := s.do(t, "POST", "/echo", "application/json", body, "X-Forwarded-For", "198.51.100.1"); a.status != 200 {
		t.Errorf("the first client once its upload is answered: %d, want 200", a.status)
	}
	s.f.clientMu.Lock()
	defer s.f.clientMu.Unlock()
	if len(s.f.held) != 0 || s.f.bodies.Load() != 0 {
		t.Errorf("after every request was answered: %v held by clients, %d in all; want none", s.f.held, s.f.bodies.Load())
	}
}
