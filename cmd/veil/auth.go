package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/veilchat/veil/keyservice/server"
)

// parseAuth builds the Auth from the flag values; no secret is echoed in
// its errors. Each HS256 entry is `[kid=]secret`, its bytes used as given
// (a hex or base64 string is not decoded); each Ed25519 entry is
// `[kid=]key`, the key in one of the forms server.ParseEd25519PublicKey
// reads. Two keys with one key ID are refused.
func parseAuth(secrets, edKeys, streamSecret string) (server.Auth, error) {
	var a server.Auth
	ids := map[string]bool{}
	addKey := func(flag string, i int, k server.Key) error {
		if k.ID != "" && ids[k.ID] {
			return fmt.Errorf("%s entry %d: the key ID is used twice; each key needs its own", flag, i+1)
		}
		ids[k.ID] = k.ID != ""
		a.Keys = append(a.Keys, k)
		return nil
	}
	for i, item := range splitList(secrets) {
		kid, secret := splitKID(item)
		if len(secret) < 32 {
			if kid != "" {
				return a, fmt.Errorf("--jwt-secret entry %d: read as kid=secret, the secret is under 32 bytes; "+
					"a secret that contains '=' needs a key ID in front (kid=secret) or a leading '=' (=secret)", i+1)
			}
			return a, fmt.Errorf("--jwt-secret entry %d: secrets must be at least 32 bytes", i+1)
		}
		if err := addKey("--jwt-secret", i, server.Key{ID: kid, HS256: server.NewSecret([]byte(secret))}); err != nil {
			return a, err
		}
	}
	for i, item := range splitList(edKeys) {
		// A key alone first: base64 may end in '=' and PEM holds some.
		kid := ""
		pub, err := server.ParseEd25519PublicKey(item)
		if err != nil {
			var rest string
			if kid, rest = splitKID(item); kid != "" {
				pub, err = server.ParseEd25519PublicKey(rest)
			}
		}
		if err != nil {
			return a, fmt.Errorf("--jwt-ed25519 entry %d: not an Ed25519 public key (PEM, base64 SubjectPublicKeyInfo, or 32 raw bytes in base64): %w", i+1, err)
		}
		if err := addKey("--jwt-ed25519", i, server.Key{ID: kid, Ed25519: pub}); err != nil {
			return a, err
		}
	}
	if streamSecret != "" {
		a.StreamSecret = server.NewSecret([]byte(streamSecret))
	}
	if len(a.Keys) == 0 && a.StreamSecret.IsZero() {
		return a, errors.New("no authentication configured: set VEIL_JWT_SECRETS, VEIL_JWT_ED25519_KEYS or VEIL_STREAM_SECRET (see --help)")
	}
	return a, nil
}

// splitKID splits an entry "kid=value", where kid is 1 to 64 letters,
// digits, '.', '_' or '-'. An entry "=value" is a value without a key ID,
// written so because the value holds '='; an entry whose text after its
// first '=' is only '=' (base64 padding) is a value without a key ID too;
// anything else that does not start with a key ID and '=' is a value
// without a key ID.
func splitKID(s string) (kid, value string) {
	if rest, ok := strings.CutPrefix(s, "="); ok {
		return "", rest
	}
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || len(k) > 64 || strings.Trim(v, "=") == "" {
		return "", s
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", s
		}
	}
	return k, v
}

// logAuth says at start-up how the keys were read — their kinds, and
// their key IDs' lengths, never an ID (in a secret misread as kid=secret
// it would be part of the secret) nor a secret — so that an operator sees
// a key that was split where it should not have been.
func logAuth(log *slog.Logger, a server.Auth) {
	for i, k := range a.Keys {
		kind := "HS256"
		if k.Ed25519 != nil {
			kind = "Ed25519"
		}
		log.Info("token key", "n", i+1, "kind", kind, "kid_length", len(k.ID))
	}
	if !a.StreamSecret.IsZero() {
		log.Info("token key", "kind", "Stream secret (reads only)")
	}
}
