package main

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
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veilchat/veil/keyservice/server"
)

// TestServeRefusesInapplicableSettings: a flag, or the variable of a flag,
// that the chosen service would ignore is an error naming it, as is a bad
// value of the serving settings.
func TestServeRefusesInapplicableSettings(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // where a database would be created
	ssksEnv := []string{"VEIL_SSKS_APP_KEYS=" + strings.Repeat("k", 32), "VEIL_SSKS_HASH_KEY=" + strings.Repeat("ab", 32)}
	for _, tc := range []struct {
		env    []string
		args   []string
		want   string
		reason string
	}{
		{nil, []string{"--smtp-addr", "smtp.example:587"}, "--smtp-addr does not apply without --ssks", "an SSKS flag given to the key service"},
		{nil, []string{"--insecure-log-codes"}, "--insecure-log-codes does not apply without --ssks", "a boolean SSKS flag"},
		{[]string{"VEIL_SSKS_WEBHOOK_URL=https://sms.example/hook"}, nil, "VEIL_SSKS_WEBHOOK_URL (--webhook-url) is set but does not apply without --ssks", "an SSKS variable set for the key service"},
		{ssksEnv, []string{"--ssks", "--insecure-log-codes", "--jwt-secret", strings.Repeat("s", 32)}, "--jwt-secret does not apply with --ssks", "a key service flag given to the SSKS"},
		{ssksEnv, []string{"--ssks", "--insecure-log-codes", "--max-sessions-per-user", "5"}, "--max-sessions-per-user does not apply with --ssks", "a quota the SSKS does not have"},
		{append([]string{"VEIL_STREAM_SECRET=x"}, ssksEnv...), []string{"--ssks", "--insecure-log-codes"}, "VEIL_STREAM_SECRET (--stream-secret) is set but does not apply with --ssks", "a key service variable set for the SSKS"},
		{nil, []string{"--log-level", "verbose"}, "--log-level", "an unknown level"},
		{nil, []string{"--read-timeout", "0"}, "--read-timeout", "zero is no timeout to net/http"},
		{nil, []string{"--idle-timeout", "2"}, "--idle-timeout", "a duration needs its unit"},
		{nil, []string{"--max-conns", "0"}, "--max-conns", "no connection could be served"},
		{nil, []string{"--max-header-bytes", "-1"}, "--max-header-bytes", "negative"},
		{nil, []string{"--min-body-rate", "fast"}, "--min-body-rate", "not a number"},
		{nil, []string{"--trusted-proxy", "10.0.0.1/8"}, "--trusted-proxy", "host bits set: a typo"},
		{nil, []string{"--trusted-proxy", "proxy.internal"}, "--trusted-proxy", "names are not resolved"},
		{nil, []string{"--max-body", "16777216", "--max-body-memory", "8388608"}, "--max-body-memory", "a bound below one body would refuse every large one"},
	} {
		for _, k := range []string{"VEIL_JWT_SECRETS", "VEIL_SSKS_APP_KEYS", "VEIL_SSKS_HASH_KEY", "VEIL_SSKS_WEBHOOK_URL", "VEIL_STREAM_SECRET"} {
			t.Setenv(k, "")
		}
		if !slices.Contains(tc.args, "--ssks") {
			t.Setenv("VEIL_JWT_SECRETS", strings.Repeat("s", 32))
		}
		for _, e := range tc.env {
			k, v, _ := strings.Cut(e, "=")
			t.Setenv(k, v)
		}
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...), &out, &errOut)
		cancel()
		if code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("veil serve %v with %v: exit %d, stderr %q; want exit 1 naming %q (%s)", tc.args, tc.env, code, errOut.String(), tc.want, tc.reason)
		}
	}
}

// serveInProcess runs `veil serve args…` in this process (so that the
// test can measure its memory) and returns its URL, its standard error
// and a function that stops it and returns its exit code.
func serveInProcess(t *testing.T, args ...string) (string, *syncBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), pw, stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		cancel()
		t.Fatalf("veil serve printed nothing; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, pr)
	line := lines.Text()
	i := strings.Index(line, "http://")
	if i < 0 {
		cancel()
		t.Fatalf("unexpected first line %q", line)
	}
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Fatal("veil serve did not stop")
			return -1
		}
	}
	return strings.Fields(line[i:])[0], stderr, stop
}

// metric returns the value of the series named exactly series in the
// Prometheus text at url, or -1.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// liveMemory is the memory the process holds for its connections: live
// heap objects and goroutine stacks, after a collection.
func liveMemory() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// trickle opens n connections that each announce a JSON body of size
// bytes to path, with the given headers, and send its first byte.
func trickle(t *testing.T, addr, path string, n, size int, header string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: veil\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n[", path, size, header)
		conns = append(conns, c)
	}
	return conns
}

// TestSlowUploads is the acceptance test of the minimum body rate: many
// connections uploading at one byte per second are dropped once the
// window has passed, the memory they hold meanwhile stays within a
// generous per-connection bound, and a normal client's requests are
// served as fast as before.
func TestSlowUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("takes several seconds")
	}
	const (
		n      = 256
		window = 2 * time.Second
		// A generous bound: the measured cost is a few KiB (see
		// TestConnectionMemory and docs/DEPLOY.md).
		perConnBound = 64 << 10
	)
	secret := strings.Repeat("s", 32)
	url, _, stop := serveInProcess(t, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "keys.db"), "--create", "--jwt-secret", secret,
		"--rate", "1000000", "--max-inflight-per-client", "0", "--body-rate-window", window.String(), "--log-level", "error")
	defer stop()
	tok, _ := server.UserToken([]byte(secret), "", "alice", time.Hour)
	addr := strings.TrimPrefix(url, "http://")

	client := &http.Client{Timeout: 10 * time.Second}
	lookup := func() (time.Duration, int) {
		req, _ := http.NewRequest("POST", url+"/v1/cards/lookup", strings.NewReader(`{"user_ids":["bob"]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return time.Since(start), 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start), resp.StatusCode
	}
	p99 := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)*99/100]
	}
	var before []time.Duration
	for range 200 {
		d, status := lookup()
		if status != 200 {
			t.Fatalf("lookup before the slow uploads: %d", status)
		}
		before = append(before, d)
	}

	goroutines := runtime.NumGoroutine()
	base := liveMemory()
	start := time.Now()
	conns := trickle(t, addr, "/v1/cards/lookup", n, 1<<20, "Authorization: Bearer "+tok+"\r\n")
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	inFlight := "veil_keyservice_requests_in_flight"
	for metric(t, url, inFlight) < n+1 && time.Since(start) < window/2 {
		time.Sleep(20 * time.Millisecond)
	}
	if got := metric(t, url, inFlight); got < n+1 {
		t.Fatalf("%v requests in flight, want the %d uploads (and the scrape)", got, n)
	}
	// One byte a second on each, from one goroutine (a reader per
	// connection would add its stack to what is measured).
	stopTrickle := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopTrickle:
				return
			case <-tick.C:
				for _, c := range conns {
					c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					c.Write([]byte(" "))
				}
			}
		}
	}()
	held := liveMemory() - base
	t.Logf("%d uploads at 1 byte/s hold %d KiB: %.1f KiB per connection (both ends of the connection)", n, held>>10, float64(held)/n/1024)
	if held > n*perConnBound {
		t.Errorf("%d slow uploads hold %d bytes, over %d per connection", n, held, perConnBound)
	}
	var during []time.Duration
	for time.Since(start) < window-300*time.Millisecond {
		d, status := lookup()
		if status != 200 {
			t.Fatalf("a normal lookup during the slow uploads: %d", status)
		}
		during = append(during, d)
	}
	slow := "veil_keyservice_refused_total{reason=\"slow_body\"}"
	if got := metric(t, url, slow); got != 0 {
		t.Errorf("%v uploads dropped before the %v window", got, window)
	}
	for metric(t, url, slow) < n && time.Since(start) < window+10*time.Second {
		d, status := lookup()
		if status != 200 {
			t.Fatalf("a normal lookup while the uploads are dropped: %d", status)
		}
		during = append(during, d)
	}
	dropped := time.Since(start)
	close(stopTrickle)
	<-trickled
	if got := metric(t, url, slow); got != n {
		t.Fatalf("%v of %d slow uploads dropped after %v", got, n, dropped)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("upload %d: %v %v, want 408", i, resp, err)
		}
	}
	t.Logf("all %d dropped within %v of the first (window %v); normal lookups: p99 %v before, %v during (%d requests)",
		n, dropped.Round(time.Millisecond), window, p99(before), p99(during), len(during))
	if p99(during) > max(10*p99(before), 250*time.Millisecond) {
		t.Errorf("normal lookups slowed by the uploads: p99 %v, before %v", p99(during), p99(before))
	}
	for _, c := range conns {
		c.Close()
	}
	// The server's goroutines of the dropped connections are gone. (Their
	// memory is not all handed back at once: the runtime keeps freed
	// stacks and connection descriptors for reuse.)
	// (The clients' idle connections, opened since, go too.)
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines+5 {
		t.Errorf("%d goroutines after the drop, %d before the uploads", g, goroutines)
	}
	t.Logf("after the drop: %d KiB over the start", (int64(liveMemory())-int64(base))>>10)
}

// TestConnectionMemory measures what a connection costs `veil serve`
// (with both ends in this process, so an upper bound): idle between
// requests, sending its headers, and in a handler waiting for its body.
// docs/DEPLOY.md quotes its figures:
//
//	go test ./cmd/veil -run TestConnectionMemory -v
func TestConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	const n = 500
	secret := strings.Repeat("s", 32)
	url, _, stop := serveInProcess(t, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "keys.db"), "--create", "--jwt-secret", secret,
		"--rate", "1000000", "--max-inflight-per-client", "0", "--log-level", "error")
	defer stop()
	tok, _ := server.UserToken([]byte(secret), "", "alice", time.Hour)
	addr := strings.TrimPrefix(url, "http://")
	measure := func(name string, open func() []net.Conn) uint64 {
		base := liveMemory()
		conns := open()
		time.Sleep(300 * time.Millisecond) // until the server has read what was sent
		held := liveMemory() - base
		for _, c := range conns {
			c.Close()
		}
		per := held / n
		t.Logf("%-34s %6.1f KiB per connection (%d connections, %d KiB)", name, float64(held)/n/1024, n, held>>10)
		if per > 64<<10 {
			t.Errorf("%s: %d bytes per connection", name, per)
		}
		time.Sleep(300 * time.Millisecond)
		return per
	}
	measure("idle, kept alive after a request", func() []net.Conn {
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: veil\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("healthz: %v %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			conns = append(conns, c)
		}
		return conns
	})
	measure("sending its headers", func() []net.Conn {
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(c, "POST /v1/cards/lookup HTTP/1.1\r\nHost: veil\r\n")
			conns = append(conns, c)
		}
		return conns
	})
	measure("in a handler, waiting for its body", func() []net.Conn {
		return trickle(t, addr, "/v1/cards/lookup", n, 1<<20, "Authorization: Bearer "+tok+"\r\n")
	})
}

// TestServeLogsJSON: with --log-format json, every line veil serve writes
// to standard error is JSON — its own, the access lines, net/http's
// complaints and a failure to start.
func TestServeLogsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("s", 32)
	cmd, url, stderr := startVeil(t, bin, []string{"VEIL_JWT_SECRETS=" + secret},
		"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "keys.db"), "--create", "--log-format", "json", "--log-level", "debug")
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	tok, _ := server.UserToken([]byte(secret), "", "alice", time.Hour)
	for _, r := range []struct{ method, path, auth string }{
		{"GET", "/v1/users/alice/cards", "Bearer " + tok},
		{"GET", "/v1/users/alice/cards", "Bearer x.y.z"},
		{"DELETE", "/v1/cards/lookup", ""},
		{"GET", "/healthz", ""},
	} {
		req, _ := http.NewRequest(r.method, url+r.path, nil)
		if r.auth != "" {
			req.Header.Set("Authorization", r.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("veil serve after SIGTERM: %v", err)
	}
	// A start that fails, after the logger exists: its error is JSON too.
	var failed bytes.Buffer
	fail := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "no", "such", "dir", "keys.db"), "--log-format", "json")
	fail.Env = append(fail.Environ(), "VEIL_JWT_SECRETS="+secret)
	fail.Stderr = &failed
	if err := fail.Run(); err == nil {
		t.Fatal("veil serve started on a database in a missing directory")
	}
	all := stderr.String() + failed.String()
	msgs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(all), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		msg, _ := m["msg"].(string)
		msgs[regexp.MustCompile(`^(veil serve|http): .*`).ReplaceAllString(msg, "$1: …")]++
	}
	for _, want := range []string{"listening", "request", "refused", "shutting down", "stopped", "veil serve: …"} {
		if msgs[want] == 0 {
			t.Errorf("no %q line among %v", want, msgs)
		}
	}
	if strings.Contains(all, tok) {
		t.Error("the log holds a token")
	}
}

// TestServerErrorLog: what net/http itself logs (here a handler's panic,
// with its multi-line stack) goes through the service's logger, as one
// JSON line under --log-format json.
func TestServerErrorLog(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	logger, err := newLogger("json", slog.LevelInfo, &buf)
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseOps(func(name string) string {
		for _, f := range opsFlagList() {
			if f.name == name {
				return f.def
			}
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := o.httpServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("a bug") }), logger)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	if resp, err := http.Get("http://" + ln.Addr().String()); err == nil {
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "panic") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var m map[string]any
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil || !strings.HasPrefix(m["msg"].(string), "http: panic serving") || m["level"] != "WARN" {
		t.Fatalf("net/http's log: %q, want one JSON line at WARN", buf.String())
	}
}

// TestServeDrainsOnSIGTERM: after SIGTERM, new connections are refused, a
// request in flight finishes within the grace, and the process exits 0;
// one that does not finish is cut when the grace ends.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("s", 32)
	tok, _ := server.UserToken([]byte(secret), "", "alice", time.Hour)
	body := `{"user_ids":["bob"]}`
	for _, finish := range []bool{true, false} {
		cmd, url, stderr := startVeil(t, bin, []string{"VEIL_JWT_SECRETS=" + secret},
			"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "keys.db"), "--create", "--shutdown-grace", "3s")
		addr := strings.TrimPrefix(url, "http://")
		// A request in flight: its headers and half its body sent.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/cards/lookup HTTP/1.1\r\nHost: veil\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			tok, len(body), body[:10])
		for metric(t, url, "veil_keyservice_requests_in_flight") < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		signalled := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(2 * time.Second)
		for {
			nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err != nil {
				break // refused: the listener is closed
			}
			nc.Close()
			if time.Now().After(deadline) {
				t.Fatal("new connections still accepted 2s after SIGTERM")
			}
			time.Sleep(20 * time.Millisecond)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if finish {
			fmt.Fprint(c, body[10:])
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("the request in flight during shutdown: %v %v, want 200", resp, err)
			}
			if err := <-exited; err != nil {
				t.Fatalf("exit after draining: %v\n%s", err, stderr.String())
			}
			if took := time.Since(signalled); took > 3*time.Second {
				t.Errorf("exit %v after SIGTERM with nothing left to drain, want before the 3s grace", took)
			}
		} else {
			err := <-exited
			took := time.Since(signalled)
			if err != nil || took < 3*time.Second || took > 8*time.Second {
				t.Errorf("exit with a request that never finishes: %v after %v, want 0 after the 3s grace", err, took)
			}
			if !strings.Contains(stderr.String(), "shutdown grace expired") {
				t.Errorf("the cut connections are not logged:\n%s", stderr.String())
			}
		}
		c.Close()
	}
}

// TestMetricsListener: with --metrics-addr, /metrics moves to its own
// listener, with the Go, process and connection series.
func TestMetricsListener(t *testing.T) {
	if testing.Short() {
		t.Skip("serves")
	}
	url, stderr, stop := serveInProcess(t, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "keys.db"), "--create",
		"--jwt-secret", strings.Repeat("s", 32), "--metrics-addr", "127.0.0.1:0")
	defer stop()
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindStringSubmatch(stderr.String())
	}
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", stderr.String())
	}
	if resp, err := http.Get(url + "/metrics"); err != nil || resp.StatusCode != 404 {
		t.Errorf("/metrics on the API listener: %v %v, want 404", resp, err)
	}
	murl := "http://" + m[1]
	for _, series := range []string{"veil_keyservice_open_connections", "go_goroutines", "veil_keyservice_refused_total{reason=\"slow_body\"}"} {
		if v := metric(t, murl, series); v < 0 {
			t.Errorf("%s missing on the metrics listener", series)
		}
	}
	if runtime.GOOS == "linux" && metric(t, murl, "process_open_fds") <= 0 {
		t.Error("no process collector")
	}
}

// TestOneClientCannotHoldAllConnections: --max-conns caps the connections
// open at once, and further clients wait. One client must not take every
// slot: neither with keep-alive connections it leaves idle after a
// request each (which would hold them until --idle-timeout), nor with
// connections that send their headers slowly (until
// --read-header-timeout, again and again). A new connection, when every
// slot is taken, closes the one idle longest; a client address past
// --max-inflight-per-client connections has a new one refused, unless it
// closes that client's own longest idle one.
func TestOneClientCannotHoldAllConnections(t *testing.T) {
	t.Parallel()
	other := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	for _, tc := range []struct {
		name, start string // what the client writes on each of its connections
		read        bool   // whether it reads an answer
		reason      string
	}{
		{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", true, "one request each, then idle until --idle-timeout"},
		{"slow headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n", false, "headers never finished, until --read-header-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, _, stop := serveInProcess(t, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "keys.db"), "--create",
				"--jwt-secret", strings.Repeat("s", 32), "--max-conns", "20", "--max-inflight-per-client", "4", "--log-level", "error")
			defer stop()
			addr := strings.TrimPrefix(url, "http://")
			for range 20 {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				fmt.Fprint(c, tc.start)
				if tc.read {
					c.SetReadDeadline(time.Now().Add(time.Second))
					if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						resp.Body.Close()
					}
				}
			}
			resp, err := other.Get(url + "/healthz")
			if err != nil {
				t.Fatalf("another client, while one holds 20 connections (%s): %v", tc.reason, err)
			}
			resp.Body.Close()
		})
	}
}
