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

// Is makes errors.Is(err, ErrNotFound) and the like work on API errors: a
// code matches the sentinel of its meaning, and a specific 403 also the
// general ErrForbidden. The SSKS's own handler maps its store's sentinels
// onto these codes, so a caller branches on the same sentinels whether it
// holds a store or a client.
func (e *APIError) Is(target error) bool {
	switch e.Code {
	case CodeInvalidRequest, CodeDuplicateKey, CodeBodyTooLarge, CodeMethodNotAllowed, CodeUnsupportedMediaType:
		return target == ErrInvalid
	case CodeInvalidFactor:
		return target == ErrInvalid || target == ErrInvalidFactor
	case CodeUnauthorized:
		return target == ErrUnauthorized
	case CodeForbidden, CodeAuthRequired:
		return target == ErrForbidden
	case CodeWrongCode:
		return target == ErrForbidden || target == ErrWrongCode
	case CodeFactorMismatch:
		return target == ErrForbidden || target == ErrFactorMismatch
	case CodeWrongPassphrase:
		return target == ErrForbidden || target == ErrWrongPassphrase
	case CodeNotFound, CodeUnknownSession, CodeNoIdentity:
		return target == ErrNotFound
	case CodeSessionDead:
		return target == ErrSessionDead
	case CodeRateLimited, CodeLocked:
		return target == ErrRateLimited
	case CodeUnavailable, CodeSendFailed, CodeRequestTimeout:
		return target == ErrUnavailable
	}
	return false
}

// Stable error codes of the SSKS API. Clients branch on Code (or on the
// sentinel it matches, see APIError.Is), never on Message.
const (
	CodeInvalidRequest       = httpjson.CodeInvalidRequest       // 400
	CodeDuplicateKey         = httpjson.CodeDuplicateKey         // 400: a JSON object of the body names a key twice
	CodeInvalidFactor        = "invalid_factor"                  // 400: unknown type or implausible value
	CodeUnauthorized         = "unauthorized"                    // 401: missing or wrong app API key
	CodeForbidden            = httpjson.CodeForbidden            // 403: the session is another user's, or no proof was given
	CodeFactorMismatch       = "factor_mismatch"                 // 403: not the factor registered for the user
	CodeWrongCode            = "wrong_code"                      // 403: the code does not match; attempts remain
	CodeAuthRequired         = "code_required"                   // 403: this session needs the code
	CodeWrongPassphrase      = "wrong_passphrase"                // 403: the passphrase does not open the password backup
	CodeNotFound             = httpjson.CodeNotFound             // 404: no such route
	CodeUnknownSession       = httpjson.CodeUnknownSession       // 404: no such challenge session
	CodeMethodNotAllowed     = httpjson.CodeMethodNotAllowed     // 405: the route takes other methods, listed in Allow
	CodeRequestTimeout       = httpjson.CodeRequestTimeout       // 408: the body came too slowly
	CodeNoIdentity           = "no_identity"                     // 404: nothing stored for the user
	CodeSessionDead          = "session_dead"                    // 410: used, expired, or too many wrong codes
	CodeBodyTooLarge         = httpjson.CodeBodyTooLarge         // 413
	CodeUnsupportedMediaType = httpjson.CodeUnsupportedMediaType // 415: a body that is not application/json
	CodeRateLimited          = httpjson.CodeRateLimited          // 429
	CodeLocked               = "locked"                          // 429: too many wrong passphrases; retry later
	CodeInternal             = httpjson.CodeInternal             // 500
	CodeSendFailed           = "send_failed"                     // 502: the code could not be sent to the user
	CodeUnavailable          = httpjson.CodeUnavailable          // 503: the store does not answer
)

// Errors the stores report and that API errors match (see APIError.Is).
var (
	// ErrNotFound: no such challenge session, identity or password backup.
	ErrNotFound = errors.New("twoman: not found")
	// ErrConflict: a uniqueness rule does not hold.
	ErrConflict = errors.New("twoman: conflict")
	// ErrRateLimited: too many requests; retry later. A store reports it
	// when the user or the factor already has its quota of challenge
	// sessions in the window; the SSKS also answers it for a password
	// backup locked after wrong passphrases.
	ErrRateLimited = errors.New("twoman: too many challenges")
	// ErrFactorMismatch: the stored identity or password backup is bound
	// to another factor than the one proved.
	ErrFactorMismatch = errors.New("twoman: factor mismatch")
)

// Errors only the SSKS's answers match (see APIError.Is).
var (
	// ErrInvalid: the request was malformed or a value out of bounds.
	ErrInvalid = errors.New("twoman: invalid request")
	// ErrUnauthorized: the app backend's API key is missing or wrong.
	ErrUnauthorized = errors.New("twoman: unauthorized")
	// ErrForbidden: the request proves too little: a wrong code, no code
	// where one is required, another factor, a wrong passphrase, or a
	// session of another user.
	ErrForbidden = errors.New("twoman: forbidden")
	// ErrWrongCode: the one-time code does not match; the session allows
	// a few more attempts.
	ErrWrongCode = errors.New("twoman: wrong code")
	// ErrSessionDead: the challenge session was used, expired, or had too
	// many wrong codes; start a new challenge.
	ErrSessionDead = errors.New("twoman: challenge session used or expired")
	// ErrUnavailable: the SSKS's store does not answer, or the code could
	// not be sent; retry later.
	ErrUnavailable = errors.New("twoman: unavailable")
)

// newAPIError is the constructor wire.PostJSON reports SSKS errors with.
func newAPIError(status int, code, message string) error {
	return &APIError{Status: status, Code: code, Message: message}
}

// postJSON is wire.PostJSON with this package's error type.
func postJSON(ctx context.Context, hc *http.Client, url, auth string, in, out any) error {
	return wire.PostJSON(ctx, hc, url, auth, in, out, CodeInternal, newAPIError)
}
