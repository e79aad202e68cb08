package attach

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/veilchat/veil/internal/redact"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 64 << 10
	// Magic starts every attachment.
	Magic = "VEILATT1"
	// NonceSize is the size of the per-file random nonce.
	NonceSize = 16
	// KeySize is the size of a file key.
	KeySize = 32
	// HeaderSize is magic ‖ nonce ‖ commitment.
	HeaderSize = len(Magic) + NonceSize + 32

	tagSize  = chacha20poly1305.Overhead
	encChunk = ChunkSize + tagSize

	labelPayload = "veil/v1/attachment/payload-key"
	labelCommit  = "veil/v1/attachment/commitment"
)

// ErrAuth is the one error for an attachment that does not authenticate:
// wrong key, tampered, truncated, reordered, extended or spliced.
var ErrAuth = errors.New("attach: attachment cannot be decrypted")

// EncryptedSize returns the ciphertext size of an n-byte plaintext.
func EncryptedSize(n int64) int64 {
	chunks := n / ChunkSize
	if n%ChunkSize != 0 || n == 0 {
		chunks++
	}
	return int64(HeaderSize) + n + chunks*tagSize
}

// keys derives the payload AEAD and the commitment from the file key and
// nonce.
func keys(key *[KeySize]byte, nonce []byte) (cipher.AEAD, []byte) {
	pk, err := hkdf.Key(sha256.New, key[:], nonce, labelPayload, chacha20poly1305.KeySize)
	if err != nil {
		panic("attach: " + err.Error())
	}
	aead, err := chacha20poly1305.New(pk)
	clear(pk)
	if err != nil {
		panic("attach: " + err.Error())
	}
	commit, err := hkdf.Key(sha256.New, key[:], nonce, labelCommit, 32)
	if err != nil {
		panic("attach: " + err.Error())
	}
	return aead, commit
}

// chunkNonce is the 11-byte big-endian counter and the last-chunk flag.
func chunkNonce(n *[chacha20poly1305.NonceSize]byte, counter uint64, last bool) {
	clear(n[:3])
	binary.BigEndian.PutUint64(n[3:11], counter)
	n[11] = 0
	if last {
		n[11] = 1
	}
}

// Writer encrypts a stream. It is not safe for concurrent use.
//
// Its state sits behind a pointer of its own, so that fmt, which
// dereferences a *Writer once when it meets one without its methods (in an
// unexported field) under a verb that does not fit a pointer (%s, %q),
// finds a pointer again and not the pending plaintext.
type Writer struct{ *writer }

type writer struct {
	dst     io.Writer
	aead    cipher.AEAD
	buf     []byte // plaintext of the pending chunk, then its ciphertext
	n       int    // plaintext bytes pending
	counter uint64
	nonce   [chacha20poly1305.NonceSize]byte
	err     error
}

// NewWriter writes the header to dst and returns a Writer whose Close
// writes the final chunk (it does not close dst). Memory use is one chunk
// buffer, whatever the size of the stream.
func NewWriter(dst io.Writer, key *[KeySize]byte, nonce *[NonceSize]byte) (*Writer, error) {
	aead, commit := keys(key, nonce[:])
	hdr := make([]byte, 0, HeaderSize)
	hdr = append(append(append(hdr, Magic...), nonce[:]...), commit...)
	if _, err := dst.Write(hdr); err != nil {
		return nil, err
	}
	return &Writer{&writer{dst: dst, aead: aead, buf: make([]byte, encChunk)}}, nil
}

// Write encrypts p. A full chunk is only sealed once more data arrives (or
// Close is called), because only then is it known not to be the last.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := 0
	for len(p) > 0 {
		// A whole chunk with more data after it is sealed straight from
		// p, without the copy into the buffer.
		if w.n == 0 && len(p) > ChunkSize {
			if err := w.seal(p[:ChunkSize], false); err != nil {
				return total, err
			}
			p = p[ChunkSize:]
			total += ChunkSize
			continue
		}
		if w.n == ChunkSize {
			// More data follows the buffered chunk: it is not the last.
			if err := w.flush(false); err != nil {
				return total, err
			}
			continue
		}
		c := copy(w.buf[w.n:ChunkSize], p)
		w.n += c
		p = p[c:]
		total += c
	}
	return total, nil
}

func (w *Writer) flush(last bool) error {
	if err := w.seal(w.buf[:w.n], last); err != nil {
		return err
	}
	w.n = 0
	return nil
}

// seal encrypts one chunk of plaintext into w.buf and writes it out. plain
// may alias w.buf.
func (w *Writer) seal(plain []byte, last bool) error {
	if w.counter == math.MaxUint64 {
		w.err = errors.New("attach: too many chunks")
		return w.err
	}
	chunkNonce(&w.nonce, w.counter, last)
	out := w.aead.Seal(w.buf[:0], w.nonce[:], plain, nil)
	if _, err := w.dst.Write(out); err != nil {
		w.err = err
		return err
	}
	w.counter++
	return nil
}

// Close seals the last chunk. It must be called; after it, Write fails.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flush(true); err != nil {
		return err
	}
	w.err = errors.New("attach: write after Close")
	return nil
}

// Reader decrypts a stream. It releases a chunk's plaintext only after the
// chunk authenticated, and detects a missing last chunk before releasing
// the one before it. It is not safe for concurrent use. Like a Writer's,
// its state sits behind a pointer of its own.
type Reader struct{ *reader }

type reader struct {
	src     io.Reader
	aead    cipher.AEAD
	buf     []byte // ciphertext: r.carry bytes of the next chunk (a chunk and a byte of look-ahead at most)
	carry   int    // bytes of the next chunk already in buf
	out     []byte // plaintext buffer, one chunk
	plain   []byte // authenticated plaintext not yet returned (in out)
	counter uint64
	nonce   [chacha20poly1305.NonceSize]byte
	done    bool
	err     error
}

// NewReader reads and checks the header (magic and key commitment) and
// returns a Reader. A wrong key or a malformed header returns ErrAuth.
func NewReader(src io.Reader, key *[KeySize]byte) (*Reader, error) {
	hdr := make([]byte, HeaderSize)
	if _, err := io.ReadFull(src, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrAuth
		}
		return nil, err
	}
	if string(hdr[:len(Magic)]) != Magic {
		return nil, ErrAuth
	}
	nonce := hdr[len(Magic) : len(Magic)+NonceSize]
	aead, commit := keys(key, nonce)
	if subtle.ConstantTimeCompare(commit, hdr[len(Magic)+NonceSize:]) != 1 {
		return nil, ErrAuth
	}
	return &Reader{&reader{src: src, aead: aead, buf: make([]byte, encChunk+1), out: make([]byte, 0, ChunkSize)}}, nil
}

// Read returns authenticated plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// WriteTo writes the rest of the plaintext to w chunk by chunk, without the
// intermediate buffer io.Copy would use. When the source is in memory (a
// *bytes.Reader or a *bytes.Buffer), whole chunks are decrypted straight
// from its bytes instead of being copied into the read buffer first.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.plain) > 0 {
			n, err := writePlain(w, r.plain)
			total += int64(n)
			r.plain = r.plain[n:]
			if err != nil {
				return total, err
			}
		}
		if r.err != nil {
			return total, r.err
		}
		if r.done {
			return total, nil
		}
		switch r.src.(type) {
		case *bytes.Reader, *bytes.Buffer:
			n, err := r.writeFrom(r.src.(io.WriterTo), w)
			return total + n, err
		}
		r.err = r.next()
	}
}

// writeFrom decrypts the rest of the stream, which src writes out, into w.
// r.plain is empty. An authentication or source error is kept in r.err,
// since the ciphertext src has written is consumed. An error of w is not:
// the plaintext w did not take stays in r.plain, so a later Read or
// WriteTo resumes exactly where w stopped, as with any other source.
func (r *Reader) writeFrom(src io.WriterTo, w io.Writer) (int64, error) {
	o := openWriter{r: r, w: w}
	_, err := src.WriteTo(&o)
	switch {
	case o.werr != nil:
		return o.n, o.werr
	case r.err != nil: // a chunk did not authenticate
	case err != nil:
		r.err = err
	default:
		// End of the stream: what is buffered is the last chunk.
		plain, err := r.openChunk(r.buf[:r.carry], true)
		r.carry = 0
		if err != nil {
			r.err = err
			break
		}
		r.done = true
		if err := o.write(plain); err != nil {
			return o.n, err
		}
	}
	return o.n, r.err
}

// openWriter receives the ciphertext of a Reader's source. A chunk is
// opened as one that is not the last once data is known to follow it;
// whole chunks followed by more data within one Write are opened where
// they lie, the rest goes through the Reader's buffer.
type openWriter struct {
	r    *Reader
	w    io.Writer
	n    int64 // plaintext bytes written to w
	werr error // the error of w, which ends the Write
}

// errInvalidWrite is the error for a destination that reports writing more
// than it was given, or a negative count.
var errInvalidWrite = errors.New("attach: invalid write result")

// writePlain writes plaintext to w. A count outside [0, len(p)] is
// errInvalidWrite, a short write without an error io.ErrShortWrite, so
// that the caller always keeps exactly what w did not take.
func writePlain(w io.Writer, p []byte) (int, error) {
	n, err := w.Write(p)
	switch {
	case n < 0 || n > len(p):
		return 0, errInvalidWrite
	case err == nil && n < len(p):
		err = io.ErrShortWrite
	}
	return n, err
}

// write passes an authenticated chunk's plaintext to w; what w does not
// take is kept in r.plain.
func (o *openWriter) write(plain []byte) error {
	if len(plain) == 0 {
		return nil
	}
	n, err := writePlain(o.w, plain)
	o.n += int64(n)
	if err != nil {
		o.r.plain = plain[n:]
		o.werr = err
	}
	return err
}

func (o *openWriter) Write(p []byte) (int, error) {
	r := o.r
	consumed := 0
	for len(p) > 0 {
		var ct []byte
		switch {
		case r.carry == encChunk:
			ct = r.buf[:encChunk]
			r.carry = 0
		case r.carry == 0 && len(p) > encChunk:
			ct, p = p[:encChunk], p[encChunk:]
			consumed += encChunk
		default:
			c := copy(r.buf[r.carry:encChunk], p)
			r.carry += c
			p = p[c:]
			consumed += c
			continue
		}
		plain, err := r.openChunk(ct, false)
		if err != nil {
			r.err = err
			return consumed, err
		}
		if err := o.write(plain); err != nil {
			return consumed, err
		}
	}
	return consumed, nil
}

// next reads, authenticates and decrypts one chunk into r.plain.
func (r *Reader) next() error {
	n, err := io.ReadFull(r.src, r.buf[r.carry:])
	n += r.carry
	switch {
	case err == nil: // a full chunk and one byte of the next: not the last
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = nil
	default:
		return err
	}
	last := n <= encChunk
	plain, err := r.openChunk(r.buf[:min(n, encChunk)], last)
	if err != nil {
		return err
	}
	r.plain = plain
	if last {
		r.done = true
		r.carry = 0
		return nil
	}
	// The look-ahead byte starts the next chunk.
	r.buf[0] = r.buf[encChunk]
	r.carry = 1
	return nil
}

// openChunk authenticates and decrypts the chunk ct into r.out. A chunk
// shorter than a tag, an empty last chunk after others (only an empty
// file has an empty chunk) and a chunk past the counter's range (which
// the Writer never makes) are refused.
func (r *Reader) openChunk(ct []byte, last bool) ([]byte, error) {
	if len(ct) < tagSize || (last && len(ct) == tagSize && r.counter != 0) || r.counter == math.MaxUint64 {
		return nil, ErrAuth
	}
	chunkNonce(&r.nonce, r.counter, last)
	plain, err := r.aead.Open(r.out[:0], r.nonce[:], ct, nil)
	if err != nil {
		return nil, ErrAuth
	}
	r.counter++
	return plain, nil
}

// Format prints a placeholder under every verb: a Writer holds the pending
// plaintext and its cipher's key, which fmt would otherwise print field by
// field. Value receiver, so that a dereferenced Writer redacts itself too.
func (w Writer) Format(f fmt.State, verb rune) { redact.Name("attach.Writer").Format(f, verb) }

// Format prints a placeholder under every verb (see Writer.Format).
func (r Reader) Format(f fmt.State, verb rune) { redact.Name("attach.Reader").Format(f, verb) }
