package twoman

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAPIErrorIs: every code of the SSKS API matches exactly the sentinels
// of its meaning, also when wrapped.
func TestAPIErrorIs(t *testing.T) {
	t.Parallel()
	sentinels := map[string]error{
		"ErrInvalid": ErrInvalid, "ErrInvalidFactor": ErrInvalidFactor, "ErrUnauthorized": ErrUnauthorized,
		"ErrForbidden": ErrForbidden, "ErrWrongCode": ErrWrongCode, "ErrFactorMismatch": ErrFactorMismatch,
		"ErrWrongPassphrase": ErrWrongPassphrase, "ErrNotFound": ErrNotFound, "ErrSessionDead": ErrSessionDead,
		"ErrRateLimited": ErrRateLimited, "ErrUnavailable": ErrUnavailable, "ErrConflict": ErrConflict, "ErrDecrypt": ErrDecrypt,
	}
	tests := []struct {
		name   string // the constant's name
		code   string
		want   []string // the sentinels it matches
		reason string
	}{
		{"CodeInvalidRequest", CodeInvalidRequest, []string{"ErrInvalid"}, "a malformed request"},
		{"CodeInvalidFactor", CodeInvalidFactor, []string{"ErrInvalid", "ErrInvalidFactor"}, "the same error the client's own check returns"},
		{"CodeUnauthorized", CodeUnauthorized, []string{"ErrUnauthorized"}, "the backend's API key"},
		{"CodeForbidden", CodeForbidden, []string{"ErrForbidden"}, "no proof, or another user's session"},
		{"CodeFactorMismatch", CodeFactorMismatch, []string{"ErrForbidden", "ErrFactorMismatch"}, "the store's sentinel for the same refusal"},
		{"CodeWrongCode", CodeWrongCode, []string{"ErrForbidden", "ErrWrongCode"}, "the user may retype the code"},
		{"CodeAuthRequired", CodeAuthRequired, []string{"ErrForbidden"}, "the session needs the code"},
		{"CodeWrongPassphrase", CodeWrongPassphrase, []string{"ErrForbidden", "ErrWrongPassphrase"}, "the user may retype the passphrase"},
		{"CodeNotFound", CodeNotFound, []string{"ErrNotFound"}, "no such route"},
		{"CodeUnknownSession", CodeUnknownSession, []string{"ErrNotFound"}, "the store's not-found, through HTTP"},
		{"CodeNoIdentity", CodeNoIdentity, []string{"ErrNotFound"}, "the store's not-found, through HTTP"},
		{"CodeSessionDead", CodeSessionDead, []string{"ErrSessionDead"}, "start a new challenge"},
		{"CodeBodyTooLarge", CodeBodyTooLarge, []string{"ErrInvalid"}, "a request over the limit"},
		{"CodeDuplicateKey", CodeDuplicateKey, []string{"ErrInvalid"}, "a body two parsers would read differently"},
		{"CodeMethodNotAllowed", CodeMethodNotAllowed, []string{"ErrInvalid"}, "a client bug: the route takes another method"},
		{"CodeUnsupportedMediaType", CodeUnsupportedMediaType, []string{"ErrInvalid"}, "a client bug: bodies are JSON"},
		{"CodeRequestTimeout", CodeRequestTimeout, []string{"ErrUnavailable"}, "a slow link: retry later"},
		{"CodeRateLimited", CodeRateLimited, []string{"ErrRateLimited"}, "the store's quota sentinel, through HTTP"},
		{"CodeLocked", CodeLocked, []string{"ErrRateLimited"}, "retry later, as for a quota"},
		{"CodeInternal", CodeInternal, nil, "nothing a caller can act on"},
		{"CodeSendFailed", CodeSendFailed, []string{"ErrUnavailable"}, "retry later"},
		{"CodeUnavailable", CodeUnavailable, []string{"ErrUnavailable"}, "retry later"},
		{"unknown", "no_such_code", nil, "a code from a newer SSKS matches nothing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, err := range []error{
				&APIError{Status: 400, Code: tc.code, Message: "m"},
				fmt.Errorf("context: %w", &APIError{Status: 400, Code: tc.code, Message: "m"}),
			} {
				var got []string
				for name, s := range sentinels {
					if errors.Is(err, s) {
						got = append(got, name)
					}
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(tc.want))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("errors.Is(%v, ...) matches (-want +got) (%s):\n%s", err, tc.reason, diff)
				}
			}
		})
	}

	// Every Code constant of the package is in the table, so that a new
	// code cannot go without its mapping.
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for _, id := range vs.Names {
				if strings.HasPrefix(id.Name, "Code") {
					declared = append(declared, id.Name)
				}
			}
		}
		return true
	})
	inTable := map[string]bool{}
	for _, tc := range tests {
		inTable[tc.name] = true
	}
	for _, name := range declared {
		if !inTable[name] {
			t.Errorf("%s is not in the table", name)
		}
	}
	if len(declared) < 10 {
		t.Fatalf("found only %v in errors.go: the check would prove nothing", declared)
	}
}
