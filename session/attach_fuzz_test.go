package session

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/veilchat/veil/internal/testrand"
)

// FuzzDecryptStream feeds arbitrary bytes to the attachment reader: it
// must never panic, fail only with ErrAttachment, and release only
// plaintext that a real ciphertext of the seeds holds.
func FuzzDecryptStream(f *testing.F) {
	key, _ := NewFileKey(testrand.New("fuzz-key"))
	plain := attachPlain(AttachmentChunkSize + 500)
	for _, n := range []int{0, 1, 100, AttachmentChunkSize + 500} {
		ct := encryptWith(f, key, plain[:n], 4096)
		f.Add(ct)
		f.Add(ct[:len(ct)/2])
	}
	f.Add([]byte("VEILATT1"))
	f.Fuzz(func(t *testing.T, ct []byte) {
		r, err := DecryptStream(bytes.NewReader(ct), key)
		if err != nil {
			if !errors.Is(err, ErrAttachment) {
				t.Fatalf("NewReader: unexpected error %v", err)
			}
			return
		}
		got, err := io.ReadAll(r)
		if err != nil && !errors.Is(err, ErrAttachment) {
			t.Fatalf("Read: unexpected error %v", err)
		}
		if !bytes.Equal(got, plain[:min(len(got), len(plain))]) || len(got) > len(plain) {
			t.Fatalf("released %d bytes that no seed encrypts", len(got))
		}
	})
}
