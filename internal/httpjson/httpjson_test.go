package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	var v struct{ A int }
	for _, body := range []string{``, `{`, `{"A":1} {}`, `{"A":"x"}`, `{"B":1}`, `[1]`} {
		var he *Error
		if err := Decode([]byte(body), &v); !errors.As(err, &he) || he.Status != 400 || he.Code != CodeInvalidRequest {
			t.Errorf("Decode(%q) = %v, want a 400 invalid_request", body, err)
		}
	}
}

func TestReadBodyLimit(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 11)))
	var he *Error
	if _, err := ReadBody(httptest.NewRecorder(), r, 10); !errors.As(err, &he) || he.Status != 413 {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestRedactURLError(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	for _, tc := range []struct {
		name, url, want, reason string
	}{
		{"query", "https://sms.example/send?api_key=SECRET", `Post "https://sms.example": connection refused`, "an API key in the query"},
		{"userinfo", "https://user:SECRET@sms.example/send", `Post "https://sms.example": connection refused`, "a password in the user information"},
		{"fragment", "https://sms.example/send#SECRET", `Post "https://sms.example": connection refused`, "a fragment is never needed to name the endpoint"},
		{"path", "https://api.sms.example/bot123:SECRET/send", `Post "https://api.sms.example": connection refused`, "a bot token or a hook's secret segment in the path"},
		{"opaque", "sms:gateway:SECRET@sms.example/send", `Post "sms:": connection refused`, "a URL without // keeps everything after the scheme in its opaque part, credentials included"},
		{"force query", "https://sms.example/send?", `Post "https://sms.example": connection refused`, "an empty query leaves no trailing ?"},
		{"unparseable", "https://user:SECRET@sms.example/%zz?k=SECRET", `Post "[unparseable URL]": connection refused`, "what cannot be parsed cannot be stripped: it is dropped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := RedactURLError(&url.Error{Op: "Post", URL: tc.url, Err: cause})
			if got.Error() != tc.want {
				t.Errorf("RedactURLError = %q, want %q (%s)", got.Error(), tc.want, tc.reason)
			}
			if !errors.Is(got, cause) {
				t.Errorf("the cause is lost (%s)", tc.reason)
			}
		})
	}
	if got := RedactURLError(cause); got != cause {
		t.Errorf("RedactURLError changed an error that is not a *url.Error: %v", got)
	}
}

// TestWriteUnmarshalable: a value that does not marshal answers 500
// internal, not the intended status with a truncated body.
func TestWriteUnmarshalable(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Write(rec, http.StatusOK, map[string]any{"f": func() {}})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":"`+CodeInternal+`"`) {
		t.Fatalf("Write of an unmarshalable value: %d %s, want 500 %s", rec.Code, rec.Body, CodeInternal)
	}
	rec = httptest.NewRecorder()
	Write(rec, http.StatusCreated, map[string]int{"n": 1})
	if rec.Code != http.StatusCreated || rec.Body.String() != "{\"n\":1}\n" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("Write: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
}

func TestDecodeDuplicateKeys(t *testing.T) {
	t.Parallel()
	type inner struct {
		K string `json:"k"`
	}
	var v struct {
		Name  string  `json:"name"`
		Items []inner `json:"items"`
		Inner *inner  `json:"inner"`
	}
	tests := []struct {
		name, body string
		code       string // "" for accepted
		reason     string
	}{
		{"plain", `{"name":"a","items":[{"k":"1"},{"k":"2"}]}`, "", "the same key in sibling objects is no repeat"},
		{"top level", `{"name":"a","name":"b"}`, CodeDuplicateKey, "encoding/json keeps the last, another parser the first"},
		{"nested", `{"inner":{"k":"1","k":"2"}}`, CodeDuplicateKey, "at any depth"},
		{"in an array", `{"items":[{"k":"1"},{"k":"2","k":"3"}]}`, CodeDuplicateKey, "in objects inside arrays"},
		{"escaped", `{"name":"a","n\u0061me":"b"}`, CodeDuplicateKey, "keys are compared unescaped"},
		{"letter case", `{"name":"a","NAME":"b"}`, CodeDuplicateKey, "encoding/json fills one field from both"},
		{"kelvin sign", `{"inner":{"k":"1","\u212a":"2"}}`, CodeDuplicateKey, "U+212A folds to k in encoding/json's matching"},
		{"null value repeated", `{"inner":null,"inner":{"k":"1"}}`, CodeDuplicateKey, "whatever the values"},
	}
	for _, tc := range tests {
		err := Decode([]byte(tc.body), &v)
		var he *Error
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: %v, want accepted (%s)", tc.name, err, tc.reason)
		case tc.code != "" && (!errors.As(err, &he) || he.Status != 400 || he.Code != tc.code):
			t.Errorf("%s: %v, want 400 %s (%s)", tc.name, err, tc.code, tc.reason)
		}
	}
}

// FuzzCheckDuplicateKeys: no input panics it; what is not JSON is refused
// as invalid; and an object is refused exactly when its keys, unmarshaled
// into a map, are fewer than its members (a test of the exact-match case
// against encoding/json's own reading).
func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"c":2}]}}`, `[{"x":1},{"x":1}]`, `{"a":1,"A":2}`, `"s"`, `{`, `{"a"}`, `[1,`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckDuplicateKeys(data)
		var he *Error
		if err != nil && !errors.As(err, &he) {
			t.Fatalf("error of another type: %v", err)
		}
		if !json.Valid(data) {
			if err == nil || he.Code != CodeInvalidRequest {
				t.Fatalf("invalid JSON %q: %v, want invalid_request", data, err)
			}
			return
		}
		var members []json.RawMessage
		var asMap map[string]json.RawMessage
		if json.Unmarshal(data, &asMap) != nil {
			return // not an object
		}
		// Count the top-level members with a decoder.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.Token()
		for dec.More() {
			var k string
			var v json.RawMessage
			tok, _ := dec.Token()
			k, _ = tok.(string)
			dec.Decode(&v)
			members = append(members, v)
			_ = k
		}
		if len(asMap) < len(members) && (err == nil || he.Code != CodeDuplicateKey) {
			t.Fatalf("%q repeats a top-level key, but CheckDuplicateKeys = %v", data, err)
		}
	})
}

func TestRequireJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ctype  string
		body   string
		ok     bool
		reason string
	}{
		{"application/json", "{}", true, "the type"},
		{"application/json;charset=utf-8", "{}", true, "with its one charset"},
		{"text/json", "{}", false, "not the registered type"},
		{"", "{}", false, "a body with no type"},
		{"", "", true, "no body, no type needed"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
		}
		err := RequireJSON(r)
		var he *Error
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &he) || he.Status != 415 || he.Code != CodeUnsupportedMediaType)) {
			t.Errorf("%q with %q: %v (%s)", tc.ctype, tc.body, err, tc.reason)
		}
	}
}

// timeoutReader fails as a connection past its read deadline does.
type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

func TestReadBodyTimeout(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(timeoutReader{}))
	var he *Error
	if _, err := ReadBody(httptest.NewRecorder(), r, 10); !errors.As(err, &he) || he.Status != 408 || he.Code != CodeRequestTimeout {
		t.Fatalf("a body cut by a deadline: %v, want 408 %s", err, CodeRequestTimeout)
	}
}
