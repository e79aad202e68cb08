package ssks

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/twoman"
)

// postFrom posts body to path as if from client (through a trusted proxy
// naming it in X-Forwarded-For), with the app key if auth.
func (f *fixture) postFrom(t *testing.T, client, path, body string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", client)
	if auth {
		req.Header.Set("Authorization", "Bearer "+string(appKey))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb httpjson.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error.Code
}

// limited is a fixture whose buckets hold 3 requests and never refill
// (the fixture's clock stands still), behind a trusted proxy on loopback.
func limited(t *testing.T) *fixture {
	return newFixture(t, func(c *Config) {
		c.RateLimit, c.RateBurst = 1, 3
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
}

// TestRateLimits: the device endpoints are limited per client address and
// per user (or challenge session), the backend's endpoint only for calls
// without the right key.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	params := func(user string) string { return fmt.Sprintf(`{"user_id":%q}`, user) }
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		f := limited(t)
		var got []int
		for i := range 5 {
			s, code := f.postFrom(t, "198.51.100.1", "/v1/password/params", params(fmt.Sprintf("u%d", i)), false)
			if s == 429 && code != twoman.CodeRateLimited {
				t.Fatalf("429 with code %q", code)
			}
			got = append(got, s)
		}
		if fmt.Sprint(got) != "[200 200 200 429 429]" {
			t.Errorf("one address, five users: %v, want 3 answered then 429", got)
		}
		if s, _ := f.postFrom(t, "198.51.100.2", "/v1/password/params", params("u9"), false); s != 200 {
			t.Errorf("another address: %d, want 200", s)
		}
	})
	t.Run("per IPv6 /64", func(t *testing.T) {
		t.Parallel()
		f := limited(t)
		var got []int
		for i := range 5 {
			s, _ := f.postFrom(t, fmt.Sprintf("2001:db8:1:2::%x", i+1), "/v1/password/params", params(fmt.Sprintf("u%d", i)), false)
			got = append(got, s)
		}
		if fmt.Sprint(got) != "[200 200 200 429 429]" {
			t.Errorf("five addresses of one /64: %v, want 3 answered then 429", got)
		}
	})
	t.Run("per user", func(t *testing.T) {
		t.Parallel()
		f := limited(t)
		var got []int
		for i := range 5 {
			// A new address each time: only the user's bucket can stop it.
			s, _ := f.postFrom(t, fmt.Sprintf("198.51.100.%d", i+1), "/v1/password/retrieve",
				`{"user_id":"carol","lookup":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`, false)
			got = append(got, s)
		}
		if fmt.Sprint(got) != "[403 403 403 429 429]" {
			t.Errorf("one user from five addresses: %v, want 3 wrong passphrases then 429", got)
		}
	})
	t.Run("per session", func(t *testing.T) {
		t.Parallel()
		f := limited(t)
		sid := strings.Repeat("ab", 16)
		var got []int
		for i := range 5 {
			s, _ := f.postFrom(t, fmt.Sprintf("198.51.100.%d", i+1), "/v1/identity/retrieve", fmt.Sprintf(`{"session_id":%q,"code":"12345678"}`, sid), false)
			got = append(got, s)
		}
		if fmt.Sprint(got) != "[404 404 404 429 429]" {
			t.Errorf("one challenge session from five addresses: %v, want 3 answers then 429", got)
		}
	})
	t.Run("per session, in any letter case", func(t *testing.T) {
		t.Parallel()
		f := limited(t)
		// One session ID, written five ways: hex decodes either case.
		ids := []string{strings.Repeat("ab", 16), strings.Repeat("AB", 16), strings.Repeat("Ab", 16), strings.Repeat("aB", 16), "AB" + strings.Repeat("ab", 15)}
		var got []int
		for i, sid := range ids {
			s, _ := f.postFrom(t, fmt.Sprintf("198.51.100.%d", i+1), "/v1/identity/retrieve", fmt.Sprintf(`{"session_id":%q,"code":"12345678"}`, sid), false)
			got = append(got, s)
		}
		if fmt.Sprint(got) != "[404 404 404 429 429]" {
			t.Errorf("one challenge session in five spellings from five addresses: %v, want 3 answers then 429 (a spelling is not a new bucket)", got)
		}
	})
	t.Run("backend", func(t *testing.T) {
		t.Parallel()
		f := limited(t)
		for i := range 6 {
			body := fmt.Sprintf(`{"user_id":"b%d","factor":{"type":"email","value":"b%d@example.com"}}`, i, i)
			if s, code := f.postFrom(t, "198.51.100.1", "/v1/challenges", body, true); s != 201 {
				t.Fatalf("challenge %d with the app key: %d %s; the backend's calls are not limited per address", i, s, code)
			}
		}
		var got []int
		for range 5 {
			s, _ := f.postFrom(t, "198.51.100.7", "/v1/challenges", `{}`, false)
			got = append(got, s)
		}
		if fmt.Sprint(got) != "[401 401 401 429 429]" {
			t.Errorf("guessing the app key from one address: %v, want 3 refusals then 429", got)
		}
	})
}

// TestSSKSServing: the SSKS has the key service's HTTP semantics, probes
// and metrics.
func TestSSKSServing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wants := []string{
		"go_goroutines ",
		`veil_ssks_request_duration_seconds_count{route="POST /v1/password/params"} 0`,
		`veil_ssks_request_duration_seconds_count{route="POST /v1/challenges"} 0`,
		`veil_ssks_refused_total{reason="slow_body"} 0`,
		`veil_ssks_requests_total{code="404",route="unmatched"} 0`,
	}
	if runtime.GOOS == "linux" {
		wants = append(wants, "process_resident_memory_bytes ")
	}
	for _, want := range wants {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics before traffic lacks %q", want)
		}
	}
	for _, tc := range []struct {
		method, path, ctype, body string
		status                    int
		code, allow, reason       string
	}{
		{"GET", "/healthz", "", "", 200, "", "", "live"},
		{"GET", "/readyz", "", "", 200, "", "", "the store answers, its schema is current"},
		{"GET", "/v1/password/params", "", "", 405, twoman.CodeMethodNotAllowed, "POST", "the route takes POST"},
		{"GET", "/v1/nothing", "", "", 404, twoman.CodeNotFound, "", "no such route"},
		{"POST", "/v1/password/params", "text/plain", `{"user_id":"a"}`, 415, twoman.CodeUnsupportedMediaType, "", "bodies are JSON"},
		{"POST", "/v1/password/params", "application/json", `{"user_id":"a","user_id":"b"}`, 400, twoman.CodeDuplicateKey, "", "one key, once"},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb httpjson.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tc.status || eb.Error.Code != tc.code || resp.Header.Get("Allow") != tc.allow || resp.Header.Get("X-Request-ID") == "" {
			t.Errorf("%s %s: %d %q Allow %q, want %d %q Allow %q, and a request ID (%s)", tc.method, tc.path, resp.StatusCode, eb.Error.Code,
				resp.Header.Get("Allow"), tc.status, tc.code, tc.allow, tc.reason)
		}
	}
	f.store.Close()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s with the store closed: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
