package session

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/veilchat/veil/internal/attach"
	"github.com/veilchat/veil/internal/testrand"
)

func attachPlain(n int) []byte {
	b := make([]byte, n)
	testrand.New(fmt.Sprint("plain", n)).Read(b)
	return b
}

func encryptWith(t testing.TB, key FileKey, plain []byte, writeSize int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := EncryptStream(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	for p := plain; len(p) > 0; {
		n := min(writeSize, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != EncryptedSize(int64(len(plain))) {
		t.Fatalf("%d bytes: ciphertext is %d, EncryptedSize says %d", len(plain), buf.Len(), EncryptedSize(int64(len(plain))))
	}
	return buf.Bytes()
}

func decryptAll(key FileKey, ct []byte, wrap func(io.Reader) io.Reader) ([]byte, error) {
	r, err := DecryptStream(wrap(bytes.NewReader(ct)), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// decryptBoth decrypts ct through Read (io.ReadAll) and through WriteTo
// (io.Copy, which decrypts an in-memory source where it lies), and fails
// t unless both release the same bytes and fail the same way.
func decryptBoth(t *testing.T, key FileKey, ct []byte, wrap func(io.Reader) io.Reader) ([]byte, error) {
	t.Helper()
	got, err := decryptAll(key, ct, wrap)
	var out bytes.Buffer
	r, err2 := DecryptStream(wrap(bytes.NewReader(ct)), key)
	if err2 == nil {
		_, err2 = io.Copy(&out, r)
	}
	if !bytes.Equal(got, out.Bytes()) || !errors.Is(err2, err) {
		t.Fatalf("Read released %d bytes (%v), WriteTo %d (%v)", len(got), err, out.Len(), err2)
	}
	return got, err
}

func passThrough(r io.Reader) io.Reader { return r }

func TestAttachmentRoundTrip(t *testing.T) {
	t.Parallel()
	key, _ := NewFileKey(testrand.New("k"))
	const C = AttachmentChunkSize
	sizes := []int{0, 1, 100, C - 1, C, C + 1, 2 * C, 2*C + 1, 3*C + 12345}
	readers := map[string]func(io.Reader) io.Reader{
		"plain": passThrough, "one byte": iotest.OneByteReader, "half": iotest.HalfReader, "data+err": iotest.DataErrReader,
	}
	for _, n := range sizes {
		plain := attachPlain(n)
		for _, ws := range []int{1, 1000, n + 1} {
			if ws == 1 && n > 3*C {
				continue // byte-at-a-time writes of a large file add nothing
			}
			ct := encryptWith(t, key, plain, max(ws, 1))
			for name, wrap := range readers {
				if name == "one byte" && n > C+1 {
					continue
				}
				got, err := decryptBoth(t, key, ct, wrap)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("size %d, writes of %d, %s reader: %d bytes, %v", n, ws, name, len(got), err)
				}
			}
		}
	}
}

func TestAttachmentTamper(t *testing.T) {
	t.Parallel()
	key, _ := NewFileKey(testrand.New("k"))
	other, _ := NewFileKey(testrand.New("other"))
	small := encryptWith(t, key, attachPlain(300), 300)
	for i := range small {
		b := bytes.Clone(small)
		b[i] ^= 0x01
		if got, err := decryptBoth(t, key, b, passThrough); !errors.Is(err, ErrAttachment) || len(got) != 0 {
			t.Fatalf("byte %d of %d flipped: %d bytes released, %v", i, len(small), len(got), err)
		}
	}
	const C = AttachmentChunkSize
	enc := int(C + 16)
	plain := attachPlain(3*C + 100)
	ct := encryptWith(t, key, plain, 7777)
	ct2 := encryptWith(t, key, plain, 7777) // same key and plaintext, another nonce
	ctOther := encryptWith(t, other, plain, 7777)
	hdr := attach.HeaderSize
	chunk := func(b []byte, i int) []byte { return b[hdr+i*enc : min(hdr+(i+1)*enc, len(b))] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	h := ct[:hdr]
	tests := []struct {
		name, reason string
		ct           []byte
		key          FileKey
		released     int // plaintext bytes that may be released before the error
	}{
		{"wrong key", "the commitment binds the key", ct, other, 0},
		{"truncated header", "the header is checked first", ct[:hdr-1], key, 0},
		{"truncated at a chunk boundary", "the last chunk carries a flag", ct[:hdr+2*enc], key, 1 * C},
		{"truncated mid-chunk", "a short chunk is the last one", ct[:hdr+enc+100], key, 1 * C},
		{"last chunk dropped", "the flag is missing", join(h, chunk(ct, 0), chunk(ct, 1), chunk(ct, 2)), key, 2 * C},
		{"reordered", "the counter is in the nonce", join(h, chunk(ct, 1), chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)), key, 0},
		{"chunk dropped", "the counter is in the nonce", join(h, chunk(ct, 0), chunk(ct, 2), chunk(ct, 3)), key, C},
		{"extended by a byte", "nothing follows the last chunk", join(ct, []byte{0}), key, 3 * C},
		{"extended by a chunk", "nothing follows the last chunk", join(ct, chunk(ct, 1)), key, 3 * C},
		{"chunk from another file, same key", "the nonce separates files", join(h, chunk(ct, 0), chunk(ct2, 1), chunk(ct, 2), chunk(ct, 3)), key, C},
		{"header from another file", "the payload key depends on the nonce", join(ct2[:hdr], ct[hdr:]), key, 0},
		{"chunk from another key", "keys differ", join(h, chunk(ct, 0), chunk(ctOther, 1), chunk(ct, 2), chunk(ct, 3)), key, C},
		{"empty", "no header", nil, key, 0},
	}
	for _, tc := range tests {
		got, err := decryptBoth(t, tc.key, tc.ct, passThrough)
		if !errors.Is(err, ErrAttachment) {
			t.Errorf("%s: err = %v, want ErrAttachment; %s", tc.name, err, tc.reason)
		}
		if len(got) > tc.released || !bytes.Equal(got, plain[:len(got)]) {
			t.Errorf("%s: released %d bytes (at most %d authenticated ones allowed)", tc.name, len(got), tc.released)
		}
	}
	// An empty file has one empty last chunk; an empty last chunk after
	// data is refused.
	empty := encryptWith(t, key, nil, 1)
	if got, err := decryptBoth(t, key, empty, passThrough); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %v", err)
	}
}

// TestAttachmentWriteToErrors: when the destination of WriteTo fails, the
// error comes back, and a later WriteTo or Read resumes exactly where the
// destination stopped: no plaintext lost or repeated, for an in-memory
// source (decrypted where it lies) as for a streaming one.
func TestAttachmentWriteToErrors(t *testing.T) {
	t.Parallel()
	key, _ := NewFileKey(testrand.New("k"))
	const C = AttachmentChunkSize
	plain := attachPlain(3*C + 10)
	ct := encryptWith(t, key, plain, 1<<20)
	full := errors.New("destination full")
	for name, src := range attachSources(ct) {
		for _, limit := range []int{0, 10, C, C + 1, 3 * C, 3*C + 9} {
			r, err := DecryptStream(src(), key)
			if err != nil {
				t.Fatal(err)
			}
			w := &limitedWriter{limit: limit, err: full}
			n, err := io.Copy(w, r)
			if !errors.Is(err, full) || n != int64(limit) || !bytes.Equal(w.buf.Bytes(), plain[:limit]) {
				t.Fatalf("%s, destination of %d bytes: wrote %d, %v", name, limit, n, err)
			}
			rest := bytes.NewBuffer(w.buf.Bytes())
			if limit%2 == 0 {
				_, err = io.Copy(rest, r)
			} else {
				var b []byte
				b, err = io.ReadAll(r)
				rest.Write(b)
			}
			if err != nil || !bytes.Equal(rest.Bytes(), plain) {
				t.Fatalf("%s, destination of %d bytes: resumed to %d bytes, %v", name, limit, rest.Len(), err)
			}
		}
	}
}

// TestAttachmentWriteToBadDestinations: a destination that breaks the
// io.Writer contract (a short write without an error, a count larger than
// what it was given) gets an error, never a panic, and a later read
// resumes exactly where it stopped.
func TestAttachmentWriteToBadDestinations(t *testing.T) {
	t.Parallel()
	key, _ := NewFileKey(testrand.New("k"))
	const C = AttachmentChunkSize
	plain := attachPlain(2*C + 10)
	ct := encryptWith(t, key, plain, 1<<20)
	for name, src := range attachSources(ct) {
		r, err := DecryptStream(src(), key)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 3)
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatal(err)
		}
		short := &halfWriter{}
		if _, err := io.Copy(short, r); !errors.Is(err, io.ErrShortWrite) {
			t.Fatalf("%s: a short write without an error: %v", name, err)
		}
		rest, err := io.ReadAll(r)
		if got := append(append(head, short.buf.Bytes()...), rest...); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: after a short write, %d bytes, %v", name, len(got), err)
		}

		r, err = DecryptStream(src(), key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(overWriter{}, r); err == nil {
			t.Fatalf("%s: a destination that claims more than it was given: no error", name)
		}
	}
}

// halfWriter takes half of its first write without an error, breaking the
// io.Writer contract, then everything.
type halfWriter struct {
	buf  bytes.Buffer
	once bool
}

func (w *halfWriter) Write(p []byte) (int, error) {
	if !w.once {
		w.once = true
		return w.buf.Write(p[:len(p)/2])
	}
	return w.buf.Write(p)
}

// overWriter claims to write more than it was given.
type overWriter struct{}

func (overWriter) Write(p []byte) (int, error) { return len(p) + 1, nil }

// attachSources returns ways to read ct: the in-memory sources that
// WriteTo decrypts where they lie, and a streaming one.
func attachSources(ct []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"bytes.Reader": func() io.Reader { return bytes.NewReader(ct) },
		"bytes.Buffer": func() io.Reader { return bytes.NewBuffer(bytes.Clone(ct)) },
		"streaming":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(ct)) },
	}
}

// limitedWriter accepts limit bytes, then fails with err.
type limitedWriter struct {
	buf   bytes.Buffer
	limit int
	err   error
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.limit-w.buf.Len())
	w.buf.Write(p[:n])
	if n < len(p) {
		return n, w.err
	}
	return n, nil
}

func TestAttachmentSourceErrors(t *testing.T) {
	t.Parallel()
	key, _ := NewFileKey(testrand.New("k"))
	ct := encryptWith(t, key, attachPlain(1000), 1000)
	boom := errors.New("disk on fire")
	r, err := DecryptStream(io.MultiReader(bytes.NewReader(ct[:attach.HeaderSize+10]), iotest.ErrReader(boom)), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Fatalf("a source error must come through unchanged: %v", err)
	}
}

func TestFileKeyRedacted(t *testing.T) {
	t.Parallel()
	k, _ := NewFileKey(testrand.New("k"))
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", &k)
		fmt.Fprintf(&out, verb+"\n", []FileKey{k})
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "key", k)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "key", k)
	b := k.Bytes()
	for _, enc := range []string{hex.EncodeToString(b), fmt.Sprintf("%X", b), b64.EncodeToString(b), strings.Trim(fmt.Sprint(b[:4]), "[]")} {
		if strings.Contains(out.String(), enc) {
			t.Fatalf("the file key appears in:\n%s", out.String())
		}
	}
	if k2, _ := ParseFileKey(b); !k2.Equal(k) {
		t.Fatal("ParseFileKey(Bytes) differs")
	}
	if _, err := ParseFileKey(b[:31]); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
}

// TestKeysRedactedInUnexportedFields: fmt cannot call Format on a value in
// an unexported struct field and prints it through reflection; the key
// types keep their bytes behind a pointer, so only an address shows, and
// the attachment streams redact their buffers.
func TestKeysRedactedInUnexportedFields(t *testing.T) {
	t.Parallel()
	raw := []byte("0123456789abcdef0123456789ABCDEF")
	fk, _ := ParseFileKey(raw)
	ek, _ := ParseEpochKey(raw)
	type upload struct {
		Name  string
		key   FileKey
		epoch EpochKey
	}
	u := upload{Name: "photo.jpg", key: fk, epoch: ek}
	var dst bytes.Buffer
	w, err := EncryptStream(&dst, fk)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("SECRET-PLAINTEXT"))
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %+v %#v %v %v %+v\n", u, u, u, &u, w, w)
	slog.New(slog.NewTextHandler(&out, nil)).Info("upload", "u", u, "w", w)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("upload", "w", w)
	s := out.String()
	for name, leak := range map[string]string{
		"key bytes (fmt's decimal list)": strings.Trim(fmt.Sprint(raw[:8]), "[]"),
		"key bytes (text)":               string(raw[:16]),
		"plaintext":                      "SECRET-PLAINTEXT",
		"plaintext (decimal list)":       strings.Trim(fmt.Sprint([]byte("SECRET")), "[]"),
	} {
		if strings.Contains(s, leak) {
			t.Errorf("%s printed:\n%s", name, s)
		}
	}
	if !strings.Contains(s, "photo.jpg") {
		t.Fatalf("nothing was printed (the check would prove nothing):\n%s", s)
	}
	if _, err := EncryptStream(&dst, FileKey{}); err == nil {
		t.Error("the zero FileKey encrypted")
	}
	if _, err := FromKeys(nil, ID{1}, cid, map[uint32]EpochKey{0: {}}); err == nil {
		t.Error("a session from the zero EpochKey")
	}
}
