package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
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
	CodeInvalidRequest       = "invalid_request"        // 400: Decode's errors, bad values
	CodeDuplicateKey         = "duplicate_key"          // 400: a JSON object names a key twice (Decode)
	CodeForbidden            = "forbidden"              // 403: the caller may not do this
	CodeNotFound             = "not_found"              // 404: no such route
	CodeUnknownSession       = "unknown_session"        // 404: no such (encryption or challenge) session
	CodeMethodNotAllowed     = "method_not_allowed"     // 405: the route exists for other methods (listed in Allow)
	CodeRequestTimeout       = "request_timeout"        // 408: the body came too slowly (ReadBody)
	CodeBodyTooLarge         = "body_too_large"         // 413: ReadBody's limit
	CodeUnsupportedMediaType = "unsupported_media_type" // 415: a body that is not application/json (RequireJSON)
	CodeRateLimited          = "rate_limited"           // 429
	CodeInternal             = "internal"               // 500
	CodeUnavailable          = "unavailable"            // 503: the store does not answer
)

// Decode parses body as exactly one JSON value into v, refusing unknown
// fields, trailing data and objects that name a key twice. Its errors are
// *Error with status 400 and messages that do not echo the input: code
// CodeDuplicateKey for a repeated key, CodeInvalidRequest otherwise.
//
// encoding/json keeps the last of repeated keys, where another parser may
// keep the first: a body that two parsers read differently could pass a
// check in one and act in the other, so it is refused. Keys that differ
// only in letter case are repeats too, since encoding/json matches struct
// fields without regard to case.
func Decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed JSON: %s", problem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed JSON: trailing data")
	}
	// The body is valid JSON by now: only repeated keys remain to find.
	if err := CheckDuplicateKeys(body); err != nil {
		return err
	}
	return nil
}

// CheckDuplicateKeys reports, as an *Error with status 400 and code
// CodeDuplicateKey, an object in the JSON value data that names a key
// twice, comparing keys after unescaping and without regard to letter case
// (Unicode simple folding, as encoding/json matches fields). Invalid JSON
// is reported with code CodeInvalidRequest. Its memory is linear in
// len(data) and its recursion bounded by encoding/json's nesting limit.
func CheckDuplicateKeys(data []byte) error {
	// Validity first: the walk below would find a repeat in a truncated
	// object before the truncation.
	if !json.Valid(data) {
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed JSON")
	}
	var dup *Error
	if err := walkKeys(json.NewDecoder(bytes.NewReader(data)), &dup); err != nil {
		if dup != nil {
			return dup
		}
		return Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed JSON: %s", problem(err))
	}
	return nil
}

// walkKeys reads one JSON value from dec, failing at the first object that
// repeats a key (and setting *dup).
func walkKeys(dec *json.Decoder, dup **Error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]struct{}{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string) // Token returns object keys as strings
			f := foldKey(k)
			if _, ok := seen[f]; ok {
				*dup = Errorf(http.StatusBadRequest, CodeDuplicateKey, "malformed JSON: an object names the key %q twice", truncate(k, 64))
				return *dup
			}
			seen[f] = struct{}{}
			if err := walkKeys(dec, dup); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkKeys(dec, dup); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil // a scalar
}

// foldKey maps k to one representative of the keys strings.EqualFold
// finds equal to it: each rune becomes the least rune of its simple-fold
// orbit (k, K and the Kelvin sign K all become K).
func foldKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range k {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// truncate returns s cut to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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

// ErrBodyMemory is what a request body's reader returns when the server
// holds as many bytes of bodies as it may (internal/httpserve's
// BodyMemory): ReadBody answers it with 503 unavailable.
var ErrBodyMemory = errors.New("httpjson: the server holds as many request bodies as it may")

// ReadBody reads at most limit bytes of r's body. Over the limit it returns
// an *Error with status 413 and code CodeBodyTooLarge; a body cut short by
// a read deadline (the server's ReadTimeout, or a minimum upload rate
// enforced by the caller) is status 408 with code CodeRequestTimeout; one
// refused for want of memory ([ErrBodyMemory]) is status 503 with code
// CodeUnavailable.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return nil, Errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body over %d bytes", limit)
		case errors.Is(err, ErrBodyMemory):
			w.Header().Set("Retry-After", "1")
			return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is receiving too many request bodies; retry")
		case errors.As(err, &ne) && ne.Timeout():
			return nil, Errorf(http.StatusRequestTimeout, CodeRequestTimeout, "the request body came too slowly")
		}
		return nil, Errorf(http.StatusBadRequest, CodeInvalidRequest, "cannot read request body")
	}
	return body, nil
}

// RequireJSON returns an *Error with status 415 and code
// CodeUnsupportedMediaType if r may have a body (its Content-Length is
// not zero) and its Content-Type is not application/json, with or without
// parameters (charset, if given, must be utf-8). A request without a body
// needs no Content-Type.
func RequireJSON(r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && mt == "application/json" {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return Errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "request bodies must be application/json")
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

// Unwrap returns the wrapped ResponseWriter, so that an
// [http.ResponseController] reaches the connection through the recorder.
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// StripURL returns the scheme and host of u, and nothing of the parts
// that carry credentials: user information (user:password@), path (a bot
// token, a hook's secret segment: /bot123:ABC/send), query (an SMS
// gateway's ?api_key=), fragment, and the opaque part of a URL without
// "//" (where the user information of "gateway:password@host" ends up).
// Only what it returns may go into an error or a log line.
func StripURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
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
