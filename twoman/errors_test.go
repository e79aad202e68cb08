package twoman

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// TestAPIErrorIs: an SSKS answer matches the sentinel of the same meaning,
// and only that one, also when wrapped.
func TestAPIErrorIs(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrNotFound, ErrConflict, ErrRateLimited, ErrFactorMismatch, ErrInvalidFactor, ErrWrongPassphrase, ErrDecrypt}
	tests := []struct {
		name   string
		status int
		code   string
		want   error // nil: no sentinel matches
		reason string
	}{
		{"unknown session", http.StatusNotFound, CodeUnknownSession, ErrNotFound, "a session the SSKS does not know is not found"},
		{"no identity", http.StatusNotFound, CodeNoIdentity, ErrNotFound, "nothing stored for the user is not found"},
		{"rate limited", http.StatusTooManyRequests, CodeRateLimited, ErrRateLimited, "the challenge quota is the store's ErrRateLimited"},
		{"factor mismatch", http.StatusForbidden, CodeFactorMismatch, ErrFactorMismatch, "another registered factor is the store's ErrFactorMismatch"},
		{"invalid factor", http.StatusBadRequest, CodeInvalidFactor, ErrInvalidFactor, "the SSKS refuses the factors Factor.Normalize refuses"},
		{"wrong passphrase", http.StatusForbidden, CodeWrongPassphrase, ErrWrongPassphrase, "a wrong lookup secret is a wrong passphrase"},
		{"locked", http.StatusTooManyRequests, CodeLocked, nil, "a locked backup is no challenge quota: callers read Code to tell it"},
		{"wrong code", http.StatusForbidden, CodeWrongCode, nil, "a wrong code has no sentinel"},
		{"internal", http.StatusInternalServerError, CodeInternal, nil, "a server failure matches nothing"},
	}
	for _, tt := range tests {
		err := fmt.Errorf("saving: %w", &APIError{Status: tt.status, Code: tt.code, Message: "m"})
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("%s: errors.Is(%v, %v) = %v (%s)", tt.name, err, s, got, tt.reason)
			}
		}
	}
}
