package backend

import (
	"strings"
	"testing"
)

// TestNewChecksConfig: a Config that could never reach the SSKS, or would
// authenticate with a guessable key, is refused at construction.
func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	key := []byte(strings.Repeat("k", 32))
	tests := []struct {
		name   string
		cfg    Config
		ok     bool
		reason string
	}{
		{"complete", Config{Keys: &MemoryKeyStore{}, SSKSURL: "https://ssks.example.com", AppKey: NewSecret(key)}, true, "every required field is set"},
		{"no keys", Config{SSKSURL: "https://ssks.example.com", AppKey: NewSecret(key)}, false, "the backend needs somewhere to keep twoManRuleKeys"},
		{"short app key", Config{Keys: &MemoryKeyStore{}, SSKSURL: "https://ssks.example.com", AppKey: NewSecret([]byte("short"))}, false, "an API key under 32 characters is guessable"},
		{"no URL", Config{Keys: &MemoryKeyStore{}, AppKey: NewSecret(key)}, false, "the SSKS must be reachable"},
		{"no scheme", Config{Keys: &MemoryKeyStore{}, SSKSURL: "ssks.example.com", AppKey: NewSecret(key)}, false, "a bare host is not a base URL, as for twoman.NewClient"},
		{"other scheme", Config{Keys: &MemoryKeyStore{}, SSKSURL: "ftp://ssks.example.com", AppKey: NewSecret(key)}, false, "only http(s) reaches the SSKS"},
	}
	for _, tt := range tests {
		b, err := New(tt.cfg)
		if (err == nil) != tt.ok || (b == nil) == tt.ok {
			t.Errorf("%s: New = %v, %v; want ok %v (%s)", tt.name, b, err, tt.ok, tt.reason)
		}
	}
}
