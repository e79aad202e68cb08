package httpjson

import (
	"errors"
	"net/http"
	"net/http/httptest"
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
