package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/veilchat/veil/internal/httpjson"
)

// Factor is an authentication factor on the wire; package twoman's Factor
// checks and normalizes it.
type Factor struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ChallengeRequest is the body of POST /v1/challenges (app backend to SSKS).
type ChallengeRequest struct {
	UserID    string `json:"user_id"`
	Factor    Factor `json:"factor"`
	ForceAuth bool   `json:"force_auth"`
}

// ChallengeResponse is the SSKS's answer to a challenge request.
type ChallengeResponse struct {
	SessionID        string    `json:"session_id"`
	MustAuthenticate bool      `json:"must_authenticate"`
	ExpiresAt        time.Time `json:"expires_at"`
}

// SessionAnswer is a challenge session and the code the user typed.
type SessionAnswer struct {
	SessionID string `json:"session_id"`
	Code      string `json:"code"`
}

// PushRequest is the body of an identity upload.
type PushRequest struct {
	SessionID string `json:"session_id"`
	Code      string `json:"code"`
	Blob      []byte `json:"blob"`
}

// RetrieveResponse is the encrypted identity released to a device.
type RetrieveResponse struct {
	Blob []byte `json:"blob"`
}

// FactorRequest is the body of a factor change.
type FactorRequest struct {
	SessionID string `json:"session_id"`
	Code      string `json:"code"`
	Factor    Factor `json:"factor"`
	Blob      []byte `json:"blob"`
}

// PasswordParamsRequest asks for the Argon2id parameters of a user's
// password backup.
type PasswordParamsRequest struct {
	UserID string `json:"user_id"`
}

// PasswordSaltSize is the size of a password backup's salt: random bytes
// the client draws at every save, stored and served with the parameters.
const PasswordSaltSize = 32

// PasswordParamsResponse is the parameters and salt of a password backup.
// For a user without one the SSKS answers the same shape (default
// parameters, a salt derived from its hash key and the user ID), so the
// answer does not tell whether a backup exists.
type PasswordParamsResponse struct {
	Params []byte `json:"params"`
	Salt   []byte `json:"salt"`
}

// PasswordStoreRequest is the body of a password-backup upload.
type PasswordStoreRequest struct {
	UserID string `json:"user_id"`
	// Authorization: a challenge session for the user, or the lookup
	// secret of the current backup (to change the passphrase).
	SessionID string `json:"session_id,omitempty"`
	Code      string `json:"code,omitempty"`
	OldLookup []byte `json:"old_lookup,omitempty"`
	Lookup    []byte `json:"lookup"`
	Params    []byte `json:"params"`
	Salt      []byte `json:"salt"` // PasswordSaltSize random bytes
	Blob      []byte `json:"blob"`
}

// PasswordRetrieveRequest is the body of a password-backup retrieval.
type PasswordRetrieveRequest struct {
	UserID string `json:"user_id"`
	Lookup []byte `json:"lookup"`
}

// PasswordRetrieveResponse is a password backup released to a device.
type PasswordRetrieveResponse struct {
	Params []byte `json:"params"`
	Blob   []byte `json:"blob"`
}

// PostJSON posts in as JSON to url with the Authorization header auth (none
// if empty) and decodes a 2xx answer into out (unless nil). A non-2xx answer
// becomes apiError(status, code, message), with the code and message of the
// SSKS's error body when it has one and codeInternal otherwise. The request
// body is cleared after sending: it may hold an encrypted identity or a
// lookup secret.
func PostJSON(ctx context.Context, hc *http.Client, url, auth string, in, out any, codeInternal string, apiError func(status int, code, message string) error) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	defer clear(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("twoman: %w", httpjson.RedactURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("twoman: %w", httpjson.RedactURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("twoman: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var eb httpjson.ErrorBody
		code, msg := codeInternal, http.StatusText(resp.StatusCode)
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			code, msg = eb.Error.Code, eb.Error.Message
		}
		return apiError(resp.StatusCode, code, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("twoman: malformed answer: %w", err)
		}
	}
	return nil
}

// ValidAppKey reports whether k can be an SSKS API key: at least 32
// printable ASCII characters.
func ValidAppKey(k []byte) bool {
	if len(k) < 32 {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
