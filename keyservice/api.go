package keyservice

import (
	"errors"
	"fmt"

	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/session"
)

// Stable error codes of the API. Clients branch on Code, never on Message.
const (
	CodeInvalidRequest       = httpjson.CodeInvalidRequest       // 400: malformed JSON, unknown fields, bad values
	CodeDuplicateKey         = httpjson.CodeDuplicateKey         // 400: a JSON object of the body names a key twice
	CodeInvalidCard          = "invalid_card"                    // 400: card does not parse, is not the caller's, or does not chain
	CodeInvalidGrants        = "invalid_grants"                  // 400: grants are not exactly those the record needs, or are malformed
	CodeInvalidLog           = "invalid_log"                     // 400: a record does not parse, verify or follow the log's rules
	CodeTooManyMembers       = "too_many_members"                // 400: more members in one call than allowed
	CodeUnauthenticated      = "unauthenticated"                 // 401: missing or invalid token
	CodeForbidden            = httpjson.CodeForbidden            // 403: not a member, not an admin, not that user
	CodeStreamToken          = "stream_token_read_only"          // 403: a token signed with the Stream secret tried to write
	CodeQuotaExceeded        = "quota_exceeded"                  // 403: the write would take the caller past its sessions or bytes quota
	CodeUnknownUser          = "unknown_user"                    // 404: no card for the user
	CodeUnknownSession       = httpjson.CodeUnknownSession       // 404: no such session
	CodeNotFound             = httpjson.CodeNotFound             // 404: no such route
	CodeMethodNotAllowed     = httpjson.CodeMethodNotAllowed     // 405: the route takes other methods, listed in Allow
	CodeRequestTimeout       = httpjson.CodeRequestTimeout       // 408: the body came too slowly
	CodeConflict             = "conflict"                        // 409: the record does not follow the log's head, generation taken
	CodeSessionExists        = "session_exists"                  // 409: the channel has another session (named in the answer)
	CodeBodyTooLarge         = httpjson.CodeBodyTooLarge         // 413
	CodeUnsupportedMediaType = httpjson.CodeUnsupportedMediaType // 415: a body that is not application/json
	CodeRateLimited          = httpjson.CodeRateLimited          // 429
	CodeInternal             = httpjson.CodeInternal             // 500
	CodeUnavailable          = httpjson.CodeUnavailable          // 503: store unreachable
)

// Errors that both the key service's stores and its client report;
// [errors.Is] matches an [APIError] with the code of the same meaning.
var (
	// ErrNotFound: no such user card or session.
	ErrNotFound = errors.New("keyservice: not found")
	// ErrConflict: a uniqueness rule or an expected state does not hold
	// (card generation already published, a record that does not follow
	// the log's head, a channel that has another session).
	ErrConflict = errors.New("keyservice: conflict")
	// ErrForbidden: the caller is not a member, or not an admin where the
	// operation needs one.
	ErrForbidden = errors.New("keyservice: forbidden")
	// ErrQuotaExceeded: the write would take its user past the sessions it
	// may create or the bytes it may store; nothing was stored.
	ErrQuotaExceeded = errors.New("keyservice: quota exceeded")
)

// Typed errors the [Client] returns; [errors.Is] matches both these and the
// session package's sentinels where they mean the same thing.
var (
	ErrUnauthenticated = errors.New("keyservice: unauthenticated")
	ErrInvalid         = errors.New("keyservice: invalid request")
	ErrRateLimited     = errors.New("keyservice: rate limited")
	ErrUnavailable     = errors.New("keyservice: unavailable")
)

// APIError is an error response of the key service.
type APIError struct {
	Status  int    // HTTP status
	Code    string // stable code, one of the Code constants
	Message string // human-readable detail; never contains secrets

	// sessionID is the channel's existing session a session_exists answer
	// names, as sent.
	sessionID string
}

// Error returns "keyservice: <code> (<status>): <message>".
func (e *APIError) Error() string {
	return fmt.Sprintf("keyservice: %s (%d): %s", e.Code, e.Status, e.Message)
}

// Is makes errors.Is(err, [ErrNotFound]) and the like work on API errors, and
// matches the session package's sentinels ([session.ErrForbidden],
// [session.ErrUnknownSession], ...) so a [session.Manager] behaves the same over
// HTTP as in memory.
func (e *APIError) Is(target error) bool {
	switch e.Code {
	case CodeUnknownUser:
		return target == ErrNotFound || target == session.ErrUnknownUser
	case CodeUnknownSession:
		return target == ErrNotFound || target == session.ErrUnknownSession
	case CodeNotFound:
		return target == ErrNotFound
	case CodeForbidden, CodeStreamToken:
		return target == ErrForbidden || target == session.ErrForbidden
	case CodeConflict:
		return target == ErrConflict || target == session.ErrConflict
	case CodeSessionExists:
		return target == ErrConflict || target == session.ErrSessionExists
	case CodeInvalidGrants:
		return target == ErrInvalid || target == session.ErrInvalidGrants
	case CodeInvalidLog:
		return target == ErrInvalid || target == session.ErrInvalidLog
	case CodeInvalidRequest, CodeDuplicateKey, CodeInvalidCard, CodeTooManyMembers, CodeBodyTooLarge, CodeMethodNotAllowed, CodeUnsupportedMediaType:
		return target == ErrInvalid
	case CodeUnauthenticated:
		return target == ErrUnauthenticated
	case CodeRateLimited:
		return target == ErrRateLimited
	case CodeQuotaExceeded:
		return target == ErrQuotaExceeded
	case CodeUnavailable, CodeRequestTimeout:
		return target == ErrUnavailable
	}
	return false
}
