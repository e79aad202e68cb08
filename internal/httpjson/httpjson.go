package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorJSON `json:"error"`
}

// ErrorJSON is the error object: a stable code and a human-readable message
// that never contains secrets.
type ErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is an error with its HTTP status and stable code.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error returns "<code> (<status>): <message>".
func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes both services answer with. Each service names them again
// among its own Code constants, so that its clients need only its package;
// the strings are written here once.
const (
	CodeInvalidRequest = "invalid_request" // 400: Decode's errors, bad values
	CodeForbidden      = "forbidden"       // 403: the caller may not do this
	CodeNotFound       = "not_found"       // 404: no such route
	CodeUnknownSession = "unknown_session" // 404: no such (encryption or challenge) session
	CodeBodyTooLarge   = "body_too_large"  // 413: ReadBody's limit
	CodeRateLimited    = "rate_limited"    // 429
	CodeInternal       = "internal"        // 500
	CodeUnavailable    = "unavailable"     // 503: the store does not answer
)

// Decode parses body as exactly one JSON value into v, refusing unknown
// fields and trailing data. Its errors are *Error with status 400 and
// messages that do not echo the input.
func Decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed JSON: %s", problem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed JSON: trailing data")
	}
	return nil
}

func problem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// ReadBody reads at most limit bytes of r's body. Over the limit it returns
// an *Error with status 413 and code CodeBodyTooLarge.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, Errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body over %d bytes", limit)
		}
		return nil, Errorf(http.StatusBadRequest, CodeInvalidRequest, "cannot read request body")
	}
	return body, nil
}

// Write writes v as JSON with status, and headers that keep it out of
// caches. A v that does not marshal (a bug) answers 500 with code
// CodeInternal rather than status with a truncated body. An error writing
// the body means the client is gone: there is no one left to tell.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: ErrorJSON{Code: CodeInternal, Message: "internal error"}}) // cannot fail
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError writes an error body.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	Write(w, status, ErrorBody{Error: ErrorJSON{Code: code, Message: msg}})
}

// StatusRecorder remembers the status written through it.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
}

// WriteHeader records the first status.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records 200 if no status was written yet.
func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// StripURL returns u without the parts that carry credentials: user
// information (user:password@), query (an SMS gateway's ?api_key=) and
// fragment. Only what it returns may go into an error or a log line.
func StripURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery, c.ForceQuery = "", false
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// RedactURLError returns err with the URL of a *url.Error stripped as
// StripURL does. http.Client.Do and url.Parse return *url.Error, whose text
// quotes the whole URL, credentials included; pass their errors through
// RedactURLError before wrapping, returning or logging them. The cause
// stays reachable with errors.Is and errors.As. A URL that does not parse
// is replaced by a placeholder; any other error is returned unchanged.
func RedactURLError(err error) error {
	ue, ok := err.(*url.Error)
	if !ok {
		return err
	}
	stripped := "[unparseable URL]"
	if u, perr := url.Parse(ue.URL); perr == nil {
		stripped = StripURL(u)
	}
	return &url.Error{Op: ue.Op, URL: stripped, Err: ue.Err}
}
