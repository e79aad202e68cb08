package streamtest

import "github.com/veilchat/veil/internal/redact"

// Secret holds the emulated app's API secret (Config.APISecret). Make one
// with NewSecret. It prints as REDACTED ("unset" when empty) under every
// fmt verb, in slog and wherever fmt meets it, even through an unexported
// struct field (its bytes sit behind pointers), and marshals to the JSON
// string "REDACTED". Its methods: Reveal returns a copy of the bytes, Len
// their length, IsZero whether it is empty. The zero value is empty; a
// Secret is immutable and safe for concurrent use.
type Secret = redact.Secret

// NewSecret returns a Secret holding a copy of b (the zero Secret for an
// empty b).
func NewSecret(b []byte) Secret { return redact.New(b) }
