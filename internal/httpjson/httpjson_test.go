package httpjson

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
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
		{"query", "https://sms.example/send?api_key=SECRET", `Post "https://sms.example/send": connection refused`, "an API key in the query"},
		{"userinfo", "https://user:SECRET@sms.example/send", `Post "https://sms.example/send": connection refused`, "a password in the user information"},
		{"fragment", "https://sms.example/send#SECRET", `Post "https://sms.example/send": connection refused`, "a fragment is never needed to name the endpoint"},
		{"force query", "https://sms.example/send?", `Post "https://sms.example/send": connection refused`, "an empty query leaves no trailing ?"},
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
