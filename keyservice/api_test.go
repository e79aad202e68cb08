package keyservice

import (
	"errors"
	"fmt"
	"testing"

	"github.com/veilchat/veil/session"
)

// TestAPIErrorIs checks each code against every sentinel a caller branches
// on: it matches exactly those of its meaning, so a session.Manager over
// HTTP sees what it sees over session.MemoryService.
func TestAPIErrorIs(t *testing.T) {
	t.Parallel()
	sentinels := []error{
		ErrNotFound, ErrConflict, ErrForbidden, ErrUnauthenticated, ErrInvalid, ErrRateLimited, ErrUnavailable, ErrQuotaExceeded,
		session.ErrUnknownSession, session.ErrUnknownUser, session.ErrForbidden, session.ErrConflict,
		session.ErrSessionExists, session.ErrInvalidGrants, session.ErrInvalidLog,
	}
	tests := []struct {
		code   string
		want   []error
		reason string
	}{
		{CodeConflict, []error{ErrConflict, session.ErrConflict}, "a record that does not follow the head: the Manager reloads and retries"},
		{CodeSessionExists, []error{ErrConflict, session.ErrSessionExists}, "another session of the channel: not a conflict the Manager retries"},
		{CodeInvalidLog, []error{ErrInvalid, session.ErrInvalidLog}, "memberlog.ErrInvalid, as MemoryService maps it"},
		{CodeInvalidGrants, []error{ErrInvalid, session.ErrInvalidGrants}, "memberlog.ErrGrantsMismatch, as MemoryService maps it"},
		{CodeForbidden, []error{ErrForbidden, session.ErrForbidden}, "not in the roster, not the signer, not an admin"},
		{CodeUnknownSession, []error{ErrNotFound, session.ErrUnknownSession}, "no such session"},
		{CodeUnknownUser, []error{ErrNotFound, session.ErrUnknownUser}, "no card"},
		{CodeNotFound, []error{ErrNotFound}, "no such route: not a session the caller may assume gone"},
		{CodeInvalidRequest, []error{ErrInvalid}, "the caller's mistake"},
		{CodeDuplicateKey, []error{ErrInvalid}, "a body two parsers would read differently"},
		{CodeMethodNotAllowed, []error{ErrInvalid}, "a client bug: the route takes another method"},
		{CodeUnsupportedMediaType, []error{ErrInvalid}, "a client bug: bodies are JSON"},
		{CodeBodyTooLarge, []error{ErrInvalid}, "a request over the limit"},
		{CodeRequestTimeout, []error{ErrUnavailable}, "a slow link: retry later"},
		{CodeTooManyMembers, []error{ErrInvalid}, "a limit of the service"},
		{CodeUnauthenticated, []error{ErrUnauthenticated}, "the token"},
		{CodeRateLimited, []error{ErrRateLimited}, "the limiter"},
		{CodeUnavailable, []error{ErrUnavailable}, "the store"},
		{CodeQuotaExceeded, []error{ErrQuotaExceeded}, "a quota no retry frees: not forbidden by the roster, not a limiter to wait out"},
		{CodeInternal, nil, "nothing to branch on"},
	}
	for _, tt := range tests {
		err := fmt.Errorf("wrapped: %w", &APIError{Status: 400, Code: tt.code})
		for _, s := range sentinels {
			want := false
			for _, w := range tt.want {
				want = want || w == s
			}
			if got := errors.Is(err, s); got != want {
				t.Errorf("errors.Is(%s, %v) = %v, want %v (%s)", tt.code, s, got, want, tt.reason)
			}
		}
	}
}
