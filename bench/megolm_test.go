package bench

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
)

func newMegolm(t *testing.T, n int) *megolmScheme {
	t.Helper()
	s, err := NewMegolm(n)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*megolmScheme)
}

// TestMegolmTamper flips every bit of every byte of a Megolm message (its
// binary form, under the base64 Matrix sends) and checks that none opens,
// and that a change to the ciphertext, its MAC or the signature is caught
// by the signature, so that the test times an authenticated scheme, not a
// parser.
func TestMegolmTamper(t *testing.T) {
	m := newMegolm(t, 2)
	msg := bytes.Repeat([]byte("m"), 100)
	sealed, err := m.Seal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Open(sealed); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	raw, err := base64.RawStdEncoding.DecodeString(string(sealed))
	if err != nil {
		t.Fatal(err)
	}
	// The tail: the last block of ciphertext, the 8-byte MAC and the
	// 64-byte signature.
	tail := len(raw) - 16 - 8 - 64
	for i := range raw {
		for bit := range 8 {
			bad := bytes.Clone(raw)
			bad[i] ^= 1 << bit
			got, err := m.Open([]byte(base64.RawStdEncoding.EncodeToString(bad)))
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: opened as %q", i, bit, got)
			}
			if i >= tail && !errors.Is(err, olm.ErrBadSignature) {
				t.Fatalf("byte %d bit %d flipped: %v, want %v", i, bit, err, olm.ErrBadSignature)
			}
		}
	}
	if _, err := m.Open(sealed); err != nil {
		t.Fatalf("the untouched message no longer opens: %v", err)
	}
}

// TestMegolmOrder states the semantics the page benchmark relies on: the
// reader opens messages in any order after a Rewind to the index its room
// key gave it, but never a message older than that index (a member given
// the key later cannot read what came before).
func TestMegolmOrder(t *testing.T) {
	m := newMegolm(t, 2)
	var sealed [][]byte
	for _, text := range []string{"zero", "one", "two", "three"} {
		s, err := m.Seal([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, s)
	}
	for _, i := range []int{3, 1, 2, 0, 3} {
		if _, err := m.Open(sealed[i]); err != nil {
			t.Fatalf("message %d after a later one: %v", i, err)
		}
	}
	export, err := m.in.Export(2)
	if err != nil {
		t.Fatal(err)
	}
	late, err := session.NewMegolmInboundSessionFromExport(export)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := late.Decrypt(sealed[2]); err != nil || string(got) != "two" {
		t.Fatalf("key from index 2, message 2: %q, %v", got, err)
	}
	if _, _, err := late.Decrypt(sealed[1]); !errors.Is(err, olm.ErrUnknownMessageIndex) {
		t.Fatalf("key from index 2, message 1: %v, want %v", err, olm.ErrUnknownMessageIndex)
	}
}
