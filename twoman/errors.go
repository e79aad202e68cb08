package twoman

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// APIError is an error response of the SSKS.
type APIError struct {
	Status  int    // HTTP status
	Code    string // stable code, one of the Code constants
	Message string // human-readable detail; never contains a code, factor or secret
}

// Error returns "twoman: <code> (<status>): <message>".
func (e *APIError) Error() string {
	return fmt.Sprintf("twoman: %s (%d): %s", e.Code, e.Status, e.Message)
}

// Stable error codes of the SSKS API. Clients branch on Code, never on
// Message.
const (
	CodeInvalidRequest  = httpjson.CodeInvalidRequest // 400
	CodeInvalidFactor   = "invalid_factor"            // 400: unknown type or implausible value
	CodeFactorMismatch  = "factor_mismatch"           // 403: not the factor registered for the user
	CodeForbidden       = "forbidden"                 // 403: the session is for another user, or the write needs a session or the passphrase
	CodeUnauthorized    = "unauthorized"              // 401: missing or wrong app API key
	CodeUnknownSession  = "unknown_session"           // 404
	CodeNotFound        = "not_found"                 // 404: no such route
	CodeWrongCode       = "wrong_code"                // 403: the code does not match; attempts remain
	CodeSessionDead     = "session_dead"              // 410: used, expired, or too many wrong codes
	CodeNoIdentity      = "no_identity"               // 404: nothing stored for the user
	CodeAuthRequired    = "code_required"             // 403: this session needs the code
	CodeRateLimited     = "rate_limited"              // 429
	CodeWrongPassphrase = "wrong_passphrase"          // 403: the lookup secret does not match the password backup
	CodeLocked          = "locked"                    // 429: too many wrong passphrases; retry later
	CodeBodyTooLarge    = "body_too_large"            // 413
	CodeInternal        = "internal"                  // 500
	CodeSendFailed      = "send_failed"               // 502: the code could not be sent
	CodeUnavailable     = "unavailable"               // 503: store unreachable
)

// Errors that the stores of the SSKS and of the app backend return. A
// [Client] reports the same conditions as [APIError] values, which
// [errors.Is] matches with these sentinels (all but [ErrConflict], which never
// leaves a store).
var (
	// ErrNotFound: no such challenge session, identity or password backup.
	ErrNotFound = errors.New("twoman: not found")
	// ErrConflict: a uniqueness rule does not hold.
	ErrConflict = errors.New("twoman: conflict")
	// ErrRateLimited: the user or the factor already has its quota of
	// challenge sessions in the window.
	ErrRateLimited = errors.New("twoman: too many challenges")
	// ErrFactorMismatch: the stored identity or password backup is bound
	// to another factor than the one proved.
	ErrFactorMismatch = errors.New("twoman: factor mismatch")
)

// Is makes errors.Is(err, [ErrNotFound]) and the like work on API errors,
// as [github.com/veilchat/veil/keyservice.APIError.Is] does for the key
// service: callers branch on this package's sentinels whether an error
// comes from the SSKS or from a local check.
func (e *APIError) Is(target error) bool {
	switch e.Code {
	case CodeUnknownSession, CodeNoIdentity:
		return target == ErrNotFound
	case CodeRateLimited:
		return target == ErrRateLimited
	case CodeFactorMismatch:
		return target == ErrFactorMismatch
	case CodeInvalidFactor:
		return target == ErrInvalidFactor
	case CodeWrongPassphrase:
		return target == ErrWrongPassphrase
	}
	return false
}

// newAPIError is the constructor wire.PostJSON reports SSKS errors with.
func newAPIError(status int, code, message string) error {
	return &APIError{Status: status, Code: code, Message: message}
}

// postJSON is wire.PostJSON with this package's error type.
func postJSON(ctx context.Context, hc *http.Client, url, auth string, in, out any) error {
	return wire.PostJSON(ctx, hc, url, auth, in, out, CodeInternal, newAPIError)
}
