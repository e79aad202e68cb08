package session

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/veilchat/veil/internal/testrand"
)

// FuzzDecryptStreamPaths: the WriteTo path (what io.Copy uses) over an
// in-memory source (decrypted where it lies) and over a streaming source,
// the Read path (over a source that returns one byte at a time), and a
// Read of a few bytes followed by WriteTo all release the same plaintext
// and fail the same way, for any input.
func FuzzDecryptStreamPaths(f *testing.F) {
	key, _ := NewFileKey(testrand.New("fuzz-key"))
	plain := attachPlain(2*AttachmentChunkSize + 7)
	for _, n := range []int{0, 1, AttachmentChunkSize, AttachmentChunkSize + 1, 2*AttachmentChunkSize + 7} {
		ct := encryptWith(f, key, plain[:n], 4096)
		f.Add(ct)
		f.Add(ct[:len(ct)-1])
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		var viaCopy bytes.Buffer
		r1, err1 := DecryptStream(bytes.NewReader(ct), key)
		if err1 == nil {
			_, err1 = io.Copy(&viaCopy, r1)
		}
		r2, err2 := DecryptStream(iotest.OneByteReader(bytes.NewReader(ct)), key)
		var viaRead []byte
		if err2 == nil {
			viaRead, err2 = io.ReadAll(r2)
		}
		if (err1 == nil) != (err2 == nil) || (err1 != nil && !errors.Is(err1, ErrAttachment)) || (err2 != nil && !errors.Is(err2, ErrAttachment)) {
			t.Fatalf("WriteTo: %v; Read: %v", err1, err2)
		}
		if !bytes.Equal(viaCopy.Bytes(), viaRead) {
			t.Fatalf("WriteTo released %d bytes, Read %d", viaCopy.Len(), len(viaRead))
		}
		for name, src := range map[string]io.Reader{
			"streaming source": iotest.HalfReader(bytes.NewReader(ct)),
			"bytes.Buffer":     bytes.NewBuffer(bytes.Clone(ct)),
		} {
			var out bytes.Buffer
			r, err := DecryptStream(src, key)
			if err == nil {
				_, err = io.Copy(&out, r)
			}
			if (err == nil) != (err1 == nil) || !bytes.Equal(out.Bytes(), viaRead) {
				t.Fatalf("WriteTo over a %s: %d bytes, %v; Read: %d bytes, %v", name, out.Len(), err, len(viaRead), err2)
			}
		}
		// A few bytes through Read, then the rest through WriteTo.
		if r, err := DecryptStream(bytes.NewReader(ct), key); err == nil {
			head := make([]byte, 3)
			n, err := io.ReadFull(r, head)
			out := bytes.NewBuffer(head[:n])
			if err == nil {
				_, err = io.Copy(out, r)
			} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = nil
			}
			if (err == nil) != (err1 == nil) || !bytes.Equal(out.Bytes(), viaRead) {
				t.Fatalf("Read then WriteTo: %d bytes, %v; Read: %d bytes, %v", out.Len(), err, len(viaRead), err2)
			}
		}
		if got := viaCopy.Bytes(); len(got) > len(plain) || !bytes.Equal(got, plain[:len(got)]) {
			t.Fatalf("released %d bytes that no seed encrypts", len(got))
		}
	})
}
