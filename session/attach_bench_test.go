package session

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/internal/testrand"
)

// BenchmarkAttachment encrypts and decrypts attachments of 1 MiB and
// 64 MiB next to raw ChaCha20-Poly1305 sealing and opening the same bytes in
// 64 KiB chunks, timed in the same benchmark. Metrics: MB/s (ours),
// raw-MB/s, x-raw (ours/raw throughput, target ≥ 0.85), and alloc-KiB/op
// (heap allocated by one run; it must not grow with the file size).
func BenchmarkAttachment(b *testing.B) {
	key, _ := NewFileKey(testrand.New("bench"))
	aead, _ := chacha20poly1305.New(key.Bytes())
	for _, size := range []int{1 << 20, 64 << 20} {
		plain := make([]byte, size)
		testrand.New("bench-plain").Read(plain)
		ct := encryptWith(b, key, plain, 1<<20)
		nonce := make([]byte, chacha20poly1305.NonceSize)
		chunk := make([]byte, AttachmentChunkSize+16)
		rawSeal := func() {
			for off := 0; off < size; off += AttachmentChunkSize {
				aead.Seal(chunk[:0], nonce, plain[off:min(off+AttachmentChunkSize, size)], nil)
			}
		}
		sealed := make([][]byte, 0, size/AttachmentChunkSize+1)
		for off := 0; off < size; off += AttachmentChunkSize {
			sealed = append(sealed, aead.Seal(nil, nonce, plain[off:min(off+AttachmentChunkSize, size)], nil))
		}
		rawOpen := func() {
			for _, c := range sealed {
				if _, err := aead.Open(chunk[:0], nonce, c, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
		encrypt := func() {
			w, _ := EncryptStream(io.Discard, key)
			for off := 0; off < size; off += 1 << 20 {
				w.Write(plain[off:min(off+1<<20, size)])
			}
			w.Close()
		}
		decrypt := func() {
			r, err := DecryptStream(bytes.NewReader(ct), key)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != int64(size) {
				b.Fatal(n, err)
			}
		}
		for _, c := range []struct {
			name      string
			ours, raw func()
		}{{"encrypt", encrypt, rawSeal}, {"decrypt", decrypt, rawOpen}} {
			b.Run(fmt.Sprintf("%s/%dMiB", c.name, size>>20), func(b *testing.B) {
				b.SetBytes(int64(size))
				var ours, raw time.Duration
				for b.Loop() {
					t := time.Now()
					c.raw()
					raw += time.Since(t)
					t = time.Now()
					c.ours()
					ours += time.Since(t)
				}
				// Memory is measured in a pass of its own.
				b.StopTimer()
				alloc := allocated(c.ours)
				b.StartTimer()
				mb := float64(size) * float64(b.N) / 1e6
				b.ReportMetric(mb/ours.Seconds(), "MB/s")
				b.ReportMetric(mb/raw.Seconds(), "raw-MB/s")
				b.ReportMetric(raw.Seconds()/ours.Seconds(), "x-raw")
				b.ReportMetric(float64(alloc)/(1<<10), "alloc-KiB/op")
			})
		}
	}
}

// allocated runs f once and returns the bytes it allocated on the heap.
// Streaming in constant memory shows as the same figure for every size.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
