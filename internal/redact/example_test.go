package redact_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/veilchat/veil/internal/redact"
)

// apiKey is a secret type: its bytes sit in a redact.Value, and its
// methods delegate to a redact.Name.
type apiKey struct{ b redact.Value[[16]byte] }

const apiKeyName = redact.Name("example.apiKey")

func (k apiKey) String() string                { return apiKeyName.String() }
func (k apiKey) GoString() string              { return apiKeyName.GoString() }
func (k apiKey) Format(f fmt.State, verb rune) { apiKeyName.Format(f, verb) }
func (k apiKey) LogValue() slog.Value          { return apiKeyName.LogValue() }
func (k apiKey) MarshalJSON() ([]byte, error)  { return apiKeyName.MarshalJSON() }

// config holds a secret of any length in a Secret field: it needs no
// methods of its own.
type config struct {
	URL      string
	Password redact.Secret
	Token    redact.Secret
}

// holder keeps its values in unexported fields, where fmt calls no method.
type holder struct {
	key apiKey
	cfg config
}

func Example() {
	key := apiKey{redact.Hold(&[16]byte{'s', 'e', 'c', 'r', 'e', 't'})}
	cfg := config{URL: "https://example.com", Password: redact.New([]byte("hunter2"))}

	fmt.Printf("%v %x %q\n", key, key, key)
	fmt.Printf("%+v\n", cfg)
	_, err := json.Marshal(key)
	fmt.Println(err)
	b, _ := json.Marshal(cfg)
	fmt.Println(string(b))

	// Through an unexported field the pointers print as addresses, which
	// vary from run to run, even under %s, which dereferences one.
	for _, verb := range []string{"%+v", "%s", "%d"} {
		out := fmt.Sprintf(verb, holder{key, cfg})
		fmt.Println(verb, !strings.Contains(out, "hunter2") && !strings.Contains(out, "secret") && !strings.Contains(out, "115 101 99"))
	}

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Info("configured", "key", key, "password", cfg.Password, "token", cfg.Token)

	// The bytes leave only through Reveal.
	fmt.Println(string(cfg.Password.Reveal()))
	// Output:
	// example.apiKey(REDACTED) example.apiKey(REDACTED) "example.apiKey(REDACTED)"
	// {URL:https://example.com Password:REDACTED Token:unset}
	// json: error calling MarshalJSON for type redact_test.apiKey: example.apiKey is a secret and is not marshalled implicitly
	// {"URL":"https://example.com","Password":"REDACTED","Token":null}
	// %+v true
	// %s true
	// %d true
	// level=INFO msg=configured key=example.apiKey(REDACTED) password=REDACTED token=unset
	// hunter2
}
