package testrand

import (
	"crypto/sha256"
	"encoding/binary"
)

// Reader is an io.Reader of deterministic pseudo-random bytes: SHA-256 of a
// seed label and a block counter. It is not safe for concurrent use.
type Reader struct {
	seed    string
	counter uint64
	buf     []byte
}

// New returns a Reader whose output depends only on seed.
func New(seed string) *Reader { return &Reader{seed: seed} }

// Read fills p and never fails.
func (r *Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var ctr [8]byte
			binary.BigEndian.PutUint64(ctr[:], r.counter)
			r.counter++
			h := sha256.New()
			h.Write([]byte(r.seed))
			h.Write(ctr[:])
			r.buf = h.Sum(nil)
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}
