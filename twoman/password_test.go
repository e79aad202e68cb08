package twoman

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestServedParamsNotDowngraded: an SSKS that serves parameters cheaper
// than the client's floor gets no lookup secret derived under them: the
// client refuses before it sends anything but the parameters request.
func TestServedParamsNotDowngraded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
		served       PasswordParams
		min          *PasswordParams
		want         error
	}{
		{"minimum served", "the bounds' minimum is 5x cheaper than the defaults", PasswordParams{Alg: "argon2id", Time: 1, Memory: MinPasswordMemory, Threads: 1, Version: 1}, nil, ErrWeakPasswordParams},
		{"fewer passes", "passes are half the cost", PasswordParams{Alg: "argon2id", Time: 2, Memory: 64 << 10, Threads: 4, Version: 1}, nil, ErrWeakPasswordParams},
		{"less memory", "memory is the other half", PasswordParams{Alg: "argon2id", Time: 3, Memory: 32 << 10, Threads: 4, Version: 1}, nil, ErrWeakPasswordParams},
		{"lowered floor", "an application that saved cheaper backups says so", PasswordParams{Alg: "argon2id", Time: 1, Memory: MinPasswordMemory, Threads: 1, Version: 1}, &PasswordParams{Time: 1, Memory: MinPasswordMemory}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var retrieves atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch r.URL.Path {
				case "/v1/password/params":
					p, _ := json.Marshal(tc.served)
					json.NewEncoder(w).Encode(map[string][]byte{"params": p})
				default:
					retrieves.Add(1)
					w.WriteHeader(http.StatusForbidden)
					w.Write([]byte(`{"error":{"code":"wrong_passphrase","message":"no"}}`))
				}
			}))
			defer srv.Close()
			c, err := NewClient(ClientConfig{BaseURL: srv.URL, MinPasswordParams: tc.min})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.RetrievePassword(context.Background(), "alice", "correct horse")
			if tc.want != nil {
				if !errors.Is(err, tc.want) || retrieves.Load() != 0 {
					t.Fatalf("err = %v after %d retrieve requests, want %v and none (%s)", err, retrieves.Load(), tc.want, tc.reason)
				}
				return
			}
			if !errors.Is(err, ErrWrongPassphrase) || retrieves.Load() != 1 {
				t.Fatalf("err = %v after %d retrieve requests, want the SSKS's answer (%s)", err, retrieves.Load(), tc.reason)
			}
		})
	}
}
