package ssks

import (
	"context"
	"errors"
)

// ErrHashKeyMismatch is returned by [CheckHashKey] when the HashKey is not
// the one the store's hashes were made with.
var ErrHashKeyMismatch = errors.New("twoman: the SSKS hash key is not the one this database was set up with: " +
	"under another key no stored factor or password backup matches, and every recovery would fail with factor_mismatch; " +
	"start with the key the database was set up with (restore it from where it is backed up)")

// KeyChecker is implemented by a [Store] that keeps a check value of the
// HashKey; the Store of [OpenStore] does.
type KeyChecker interface {
	// CheckKey stores check if the store holds none, and returns
	// [ErrHashKeyMismatch] if it holds another. Atomic.
	CheckKey(ctx context.Context, check []byte) error
}

// labelKeyCheck keys the HashKey's check value.
const labelKeyCheck = "veil/v1/ssks/hash-key-check"

// CheckHashKey compares key with the check value the store keeps — an HMAC
// under the key of a fixed label, which tells nothing of the key — and
// records it if the store holds none yet (a new database, or one set up
// before check values were kept, which then takes the key it is first
// checked with). Call it at start-up, before serving: a mistyped or lost
// key otherwise shows only as every recovery failing with
// factor_mismatch, which looks like an attack. `veil serve --ssks` calls
// it. A store that is not a [KeyChecker] is not checked (nil).
//
// The HashKey cannot be rotated: the stored hashes of factor values and
// password lookup secrets can only be recomputed from the values
// themselves, which the SSKS never keeps. A new key means a new database,
// in which every user registers again.
func CheckHashKey(ctx context.Context, store Store, key Secret) error {
	if j, ok := store.(judgedStore); ok {
		store = j.s
	}
	kc, ok := store.(KeyChecker)
	if !ok {
		return nil
	}
	if key.Len() != 32 {
		return errors.New("twoman: the hash key must be 32 bytes")
	}
	return kc.CheckKey(ctx, keyedHash(key.Reveal(), labelKeyCheck))
}
