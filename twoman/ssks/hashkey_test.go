package ssks

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestCheckHashKey: the first check records the key's check value; the
// same key passes again, after a restart too; another key is refused with
// ErrHashKeyMismatch, on SQLite and PostgreSQL.
func TestCheckHashKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, open := range storeOpeners(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			key, other := NewSecret(bytes.Repeat([]byte("h"), 32)), NewSecret(bytes.Repeat([]byte("i"), 32))
			if err := CheckHashKey(ctx, st, key); err != nil {
				t.Fatalf("the first check: %v", err)
			}
			if err := CheckHashKey(ctx, st, key); err != nil {
				t.Fatalf("the same key again: %v", err)
			}
			if err := CheckHashKey(ctx, st, other); !errors.Is(err, ErrHashKeyMismatch) {
				t.Fatalf("another key: %v, want ErrHashKeyMismatch", err)
			}
			if err := CheckHashKey(ctx, st, key); err != nil {
				t.Fatalf("a refused key changed the check value: %v", err)
			}
		})
	}
	// Across a restart of a SQLite file.
	path := "sqlite://" + filepath.Join(t.TempDir(), "ssks.db")
	st, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHashKey(ctx, st, NewSecret(bytes.Repeat([]byte("h"), 32))); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = OpenExistingStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := CheckHashKey(ctx, st, NewSecret(bytes.Repeat([]byte("j"), 32))); !errors.Is(err, ErrHashKeyMismatch) {
		t.Fatalf("another key after a restart: %v, want ErrHashKeyMismatch", err)
	}
}
