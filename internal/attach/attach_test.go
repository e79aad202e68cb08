package attach

import (
	"bytes"
	"io"
	"testing"
)

// TestWritePatterns: the ciphertext depends on the plaintext, key and
// nonce only, not on how the plaintext is split into Writes (whole chunks
// are sealed straight from the caller's slice, the rest goes through the
// buffer), and every pattern decrypts back through Read and WriteTo.
func TestWritePatterns(t *testing.T) {
	key := &[KeySize]byte{1, 2, 3}
	nonce := &[NonceSize]byte{4, 5, 6}
	const C = ChunkSize
	for _, size := range []int{0, 1, C - 1, C, C + 1, 2 * C, 3*C + 5, 5 * C} {
		plain := make([]byte, size)
		for i := range plain {
			plain[i] = byte(i * 7)
		}
		var want []byte
		for _, pattern := range [][]int{
			{size + 1},         // one Write
			{1000},             // small Writes
			{C},                // exactly a chunk each
			{C + 1},            // a chunk and a byte each
			{2*C + 3},          // several chunks each
			{C, 2*C + 3, 1, 7}, // mixed, so that a full buffered chunk meets a large Write
			{C - 1, C + 2},
		} {
			var ct bytes.Buffer
			w, err := NewWriter(&ct, key, nonce)
			if err != nil {
				t.Fatal(err)
			}
			for p, i := plain, 0; len(p) > 0; i++ {
				n := min(pattern[i%len(pattern)], len(p))
				if m, err := w.Write(p[:n]); err != nil || m != n {
					t.Fatalf("size %d, pattern %v: Write = %d, %v", size, pattern, m, err)
				}
				p = p[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if int64(ct.Len()) != EncryptedSize(int64(size)) {
				t.Fatalf("size %d, pattern %v: %d bytes of ciphertext, EncryptedSize says %d", size, pattern, ct.Len(), EncryptedSize(int64(size)))
			}
			if want == nil {
				want = bytes.Clone(ct.Bytes())
			} else if !bytes.Equal(ct.Bytes(), want) {
				t.Fatalf("size %d, pattern %v: the ciphertext depends on the write pattern", size, pattern)
			}
		}
		r, err := NewReader(bytes.NewReader(want), key)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := io.Copy(&out, r); err != nil || !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("size %d: WriteTo gave %d bytes, %v", size, out.Len(), err)
		}
		r, err = NewReader(bytes.NewReader(want), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: Read gave %d bytes, %v", size, len(got), err)
		}
		// A few bytes through Read (which leaves a byte of look-ahead in
		// the buffer), then the rest through WriteTo.
		r, err = NewReader(bytes.NewReader(want), key)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, min(3, size))
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		out.Write(head)
		if _, err := io.Copy(&out, r); err != nil || !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("size %d: Read then WriteTo gave %d bytes, %v", size, out.Len(), err)
		}
	}
}
