package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // "" means nothing written to stdout
		stderr string // "" means nothing written to stderr
		reason string
	}{
		{"no command", nil, 2, "", "Commands:", "a missing command is an error: usage goes to stderr"},
		{"help", []string{"help"}, 0, "Commands:", "", "asked-for help is output"},
		{"--help", []string{"--help"}, 0, "Commands:", "", "asked-for help is output"},
		{"unknown", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`, "an unknown command is an error"},
		{"serve help", []string{"serve", "--help"}, 0, "", "VEIL_JWT_SECRETS", "flag's help goes where package flag writes it"},
		{"serve without auth", []string{"serve", "--db", filepath.Join(t.TempDir(), "k.db")}, 1, "", "no authentication configured", "serving without auth is refused"},
		{"ssks without keys", []string{"serve", "--ssks", "--db", filepath.Join(t.TempDir(), "s.db")}, 1, "", "VEIL_SSKS_APP_KEYS", "the SSKS needs its keys"},
		{"ssks webhook without secret", []string{"serve", "--ssks", "--db", filepath.Join(t.TempDir(), "w.db"), "--ssks-app-keys", strings.Repeat("k", 32),
			"--ssks-hash-key", strings.Repeat("ab", 32), "--webhook-url", "https://sms.example/hook"}, 1, "", "--webhook-secret", "codes could never be sent"},
	}
	contains := func(got, want string) bool {
		if want == "" {
			return got == ""
		}
		return strings.Contains(got, want)
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !contains(out.String(), tc.stdout) || !contains(errOut.String(), tc.stderr) {
			t.Errorf("%s (%s): exit %d, stdout %q, stderr %q; want %d, %q, %q",
				tc.name, tc.reason, code, out.String(), errOut.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestServeSSKS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	cmd, url, stderr := startVeil(t, bin, []string{"VEIL_SSKS_APP_KEYS=" + strings.Repeat("k", 32), "VEIL_SSKS_HASH_KEY=" + strings.Repeat("ab", 32)},
		"serve", "--ssks", "--create", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "ssks.db"), "--insecure-log-codes")
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(stderr.String(), "INSECURE") {
		t.Fatalf("the insecure sender was not announced loudly:\n%s", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStreamtestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	cmd, url, _ := startVeil(t, bin, nil, "streamtest", "--addr", "127.0.0.1:0", "--key", "k123", "--secret", "s456")
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// A server token signed with the given secret, as stream-chat-go sends.
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"server": true}).SignedString([]byte("s456"))
	req, _ := http.NewRequest("GET", url+"/users?api_key=k123", nil)
	req.Header.Set("Authorization", tok)
	req.Header.Set("Stream-Auth-Type", "jwt")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /users on `veil streamtest`: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestUsageNeverPrintsSecrets: values from the environment are not flag
// defaults, so the usage text (shown for --help and for any bad flag, on
// stderr where the logs go) never carries them.
func TestUsageNeverPrintsSecrets(t *testing.T) {
	secrets := map[string]string{
		"VEIL_JWT_SECRETS":         "TOPSECRET-jwt-" + strings.Repeat("x", 32),
		"VEIL_STREAM_SECRET":       "TOPSECRET-stream",
		"VEIL_SMTP_PASSWORD":       "TOPSECRET-smtp",
		"VEIL_SSKS_HASH_KEY":       strings.Repeat("ab", 32),
		"VEIL_SSKS_APP_KEYS":       "TOPSECRET-app-" + strings.Repeat("k", 32),
		"VEIL_SSKS_WEBHOOK_SECRET": "TOPSECRET-webhook-" + strings.Repeat("w", 32),
		"VEIL_DB":                  "postgres://veil:TOPSECRET-db@127.0.0.1:1/veil",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	for _, tc := range []struct {
		args []string
		want string // proves something was printed
	}{
		{[]string{"serve", "--help"}, "VEIL_JWT_SECRETS"},
		{[]string{"help", "serve"}, "VEIL_JWT_SECRETS"},
		{[]string{"serve", "--adr", "127.0.0.1:0"}, "--addr"},
		{[]string{"serve", "--rate=" + secrets["VEIL_STREAM_SECRET"]}, "--rate"},
	} {
		args := tc.args
		if tc.want == "--rate" {
			// The SSKS's variables would be refused first, as not applying
			// to the key service, before --rate is read.
			for _, k := range []string{"VEIL_SMTP_PASSWORD", "VEIL_SSKS_HASH_KEY", "VEIL_SSKS_APP_KEYS", "VEIL_SSKS_WEBHOOK_SECRET"} {
				os.Unsetenv(k)
			}
		}
		var out, errOut bytes.Buffer
		run(context.Background(), args, &out, &errOut)
		all := out.String() + errOut.String()
		if !strings.Contains(all, tc.want) {
			t.Fatalf("veil %v printed no %s (the check would prove nothing):\n%s", args, tc.want, all)
		}
		for k, v := range secrets {
			if strings.Contains(all, v) {
				t.Errorf("veil %v printed the value of %s", args, k)
			}
		}
	}
}

// TestServeRejectsBadSettings: settings that would silently weaken the
// service are refused before it listens.
func TestServeRejectsBadSettings(t *testing.T) {
	t.Setenv("VEIL_JWT_SECRETS", strings.Repeat("s", 32))
	dir := t.TempDir()
	t.Chdir(dir) // where a DSN taken for a file name would create it
	for _, tc := range []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"--rate", "NaN"}, "--rate", "NaN passes a <= 0 check and disables rate limiting"},
		{[]string{"--rate", "+Inf"}, "--rate", "an infinite rate is no limit"},
		{[]string{"--rate", "100abc"}, "--rate", "trailing junk is not a number"},
		{[]string{"--max-body", "8MB"}, "--max-body", "trailing junk is not a number"},
		{[]string{"--max-sessions-per-user", "0"}, "--max-sessions-per-user", "zero would silently mean the default; no limit is -1"},
		{[]string{"--max-bytes-per-user", "-2"}, "--max-bytes-per-user", "only -1 turns the quota off"},
		{[]string{"--db", "host=db user=veil password=pw dbname=veil"}, "key=value", "a PostgreSQL key=value string must not become a SQLite file"},
		{[]string{"--db", "postgresql:/db/veil"}, "scheme", "a mistyped URL must not become a SQLite file"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code := run(ctx, args, &out, &errOut)
		cancel()
		if code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("veil %v: exit %d, stderr %q; want exit 1 mentioning %q (%s)", args, code, errOut.String(), tc.want, tc.reason)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*")); len(entries) != 0 {
		t.Errorf("files created: %v", entries)
	}
}
