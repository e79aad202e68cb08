package session

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/veilchat/veil/internal/attach"
	"github.com/veilchat/veil/internal/redact"
)

// ErrAttachment is the one error for an attachment that does not
// decrypt: wrong key, tampered, truncated, reordered, extended, or spliced
// from another file. It never says which.
var ErrAttachment = errors.New("session: attachment cannot be decrypted")

// AttachmentChunkSize is the plaintext size of an attachment's chunks.
const AttachmentChunkSize = attach.ChunkSize

// FileKey is the random 32-byte key of one attachment. It travels inside
// the encrypted message that carries the attachment's name, type and size,
// never with the file. It redacts itself under fmt and slog; Bytes is the
// only way out. Like [EpochKey], its bytes sit in a redact.Value (fmt shows
// an address where it cannot call Format). The zero value is not a valid
// key.
type FileKey struct {
	k redact.Value[[attach.KeySize]byte]
}

// NewFileKey returns a random key read from rand (nil means crypto/rand).
func NewFileKey(rnd io.Reader) (FileKey, error) {
	k := new([attach.KeySize]byte)
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, k[:]); err != nil {
		return FileKey{}, fmt.Errorf("session: reading randomness: %w", err)
	}
	return FileKey{redact.Hold(k)}, nil
}

// ParseFileKey returns the key whose bytes are b (exactly 32).
func ParseFileKey(b []byte) (FileKey, error) {
	if len(b) != attach.KeySize {
		return FileKey{}, errors.New("session: a file key is 32 bytes")
	}
	k := new([attach.KeySize]byte)
	copy(k[:], b)
	return FileKey{redact.Hold(k)}, nil
}

// Bytes returns a copy of the key bytes, to put in the message that
// announces the attachment.
func (k FileKey) Bytes() []byte { return bytes.Clone(keyBytes(k.k.Get())) }

// Equal reports in constant time whether two keys are the same.
func (k FileKey) Equal(o FileKey) bool {
	return subtle.ConstantTimeCompare(keyBytes(k.k.Get()), keyBytes(o.k.Get())) == 1
}

var errZeroFileKey = errors.New("session: the zero FileKey is not a key")

const fileKeyName = redact.Name("session.FileKey")

// String returns a redacted placeholder.
func (k FileKey) String() string { return fileKeyName.String() }

// GoString returns a redacted placeholder.
func (k FileKey) GoString() string { return fileKeyName.GoString() }

// Format prints a redacted placeholder under every verb.
func (k FileKey) Format(f fmt.State, verb rune) { fileKeyName.Format(f, verb) }

// LogValue implements [slog.LogValuer] with a redacted placeholder.
func (k FileKey) LogValue() slog.Value { return fileKeyName.LogValue() }

// MarshalJSON refuses: a key reaches JSON only through Bytes.
func (k FileKey) MarshalJSON() ([]byte, error) { return fileKeyName.MarshalJSON() }

// EncryptStream returns a writer that encrypts what is written to it into
// dst, in 64 KiB chunks under key (and a random per-file nonce from
// crypto/rand, so a key reused by mistake still gives unrelated
// ciphertexts). Close must be called to write the last chunk; it does not
// close dst. Memory use is constant (one chunk buffer) whatever the size.
// The writer is not safe for concurrent use.
func EncryptStream(dst io.Writer, key FileKey) (io.WriteCloser, error) {
	if key.k.IsZero() {
		return nil, errZeroFileKey
	}
	var nonce [attach.NonceSize]byte
	if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
		return nil, fmt.Errorf("session: reading randomness: %w", err)
	}
	return attach.NewWriter(dst, key.k.Get(), &nonce)
}

// DecryptStream returns a reader of the plaintext of an attachment read from
// src. It checks the key commitment before returning, and releases each
// chunk only after it authenticated; truncation, reordering, extension and
// chunks from another file are detected. Authentication failures are
// [ErrAttachment]; errors of src are returned as they are. Memory use is
// constant. The reader is not safe for concurrent use.
func DecryptStream(src io.Reader, key FileKey) (io.Reader, error) {
	if key.k.IsZero() {
		return nil, errZeroFileKey
	}
	r, err := attach.NewReader(src, key.k.Get())
	if errors.Is(err, attach.ErrAuth) {
		return nil, ErrAttachment
	}
	if err != nil {
		return nil, err
	}
	return authReader{r}, nil
}

// authReader maps the format's authentication error to [ErrAttachment].
type authReader struct{ r *attach.Reader }

func (a authReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	return n, mapAuth(err)
}

// WriteTo lets [io.Copy] stream chunks without an extra copy.
func (a authReader) WriteTo(w io.Writer) (int64, error) {
	n, err := a.r.WriteTo(w)
	return n, mapAuth(err)
}

func mapAuth(err error) error {
	if errors.Is(err, attach.ErrAuth) {
		return ErrAttachment
	}
	return err
}

// EncryptedSize returns the size of the ciphertext of an n-byte attachment.
func EncryptedSize(n int64) int64 { return attach.EncryptedSize(n) }
