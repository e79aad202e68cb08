package streamadapter

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/session"
)

// Attachment describes an encrypted file: where Stream keeps its
// ciphertext, the key that decrypts it, and what the sender said it is. It
// travels inside the sealed message (docs/PROTOCOL.md §9.1); Stream sees
// only the URL and the ciphertext. The key never prints.
type Attachment struct {
	// URL is where Stream serves the encrypted file.
	URL string
	// Name and MIMEType are the file's name and type as the sender gave
	// them.
	Name     string
	MIMEType string
	// Size is the plaintext size in bytes.
	Size int64
	// Digest is the SHA-256 of the ciphertext as uploaded: a file Stream
	// swaps for another does not open, even one encrypted under the same
	// key.
	Digest [sha256.Size]byte

	key session.FileKey
}

// wireAttachment is an Attachment in a sealed payload.
type wireAttachment struct {
	URL      string `json:"url"`
	Key      string `json:"key"`
	Name     string `json:"name"`
	MIMEType string `json:"mime_type"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

func (a Attachment) wire() wireAttachment {
	return wireAttachment{URL: a.URL, Key: base64.RawURLEncoding.EncodeToString(a.key.Bytes()), Name: a.Name,
		MIMEType: a.MIMEType, Size: a.Size, SHA256: hex.EncodeToString(a.Digest[:])}
}

func (w wireAttachment) attachment() (Attachment, error) {
	kb, err := base64.RawURLEncoding.Strict().DecodeString(w.Key)
	if err != nil {
		return Attachment{}, ErrMalformed
	}
	key, err := session.ParseFileKey(kb)
	clear(kb)
	if err != nil {
		return Attachment{}, ErrMalformed
	}
	d, err := hex.DecodeString(w.SHA256)
	if err != nil || len(d) != sha256.Size {
		return Attachment{}, ErrMalformed
	}
	a := Attachment{URL: w.URL, Name: w.Name, MIMEType: w.MIMEType, Size: w.Size, key: key}
	copy(a.Digest[:], d)
	return a, nil
}

// httpURL reports whether s is an absolute http(s) URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// sameOrigin reports whether u is an http(s) URL with the scheme and host
// of sealed.
func sameOrigin(u, sealed string) bool {
	a, err1 := url.Parse(u)
	b, err2 := url.Parse(sealed)
	return err1 == nil && err2 == nil && httpURL(u) && a.Scheme == b.Scheme && a.Host == b.Host
}

// maxNameLen bounds an attachment's name and MIME type, in bytes.
const maxNameLen = 255

// check validates a descriptor.
func (a Attachment) check(maxFile int64) error {
	switch {
	case !httpURL(a.URL):
		return errors.New("streamadapter: an attachment's URL must be an http(s) URL")
	case a.key.Bytes() == nil:
		return errors.New("streamadapter: an attachment has no key: make it with Channel.UploadFile")
	case a.Size < 0 || a.Size > maxFile:
		return fmt.Errorf("streamadapter: an attachment's size must be 0 to %d bytes", maxFile)
	}
	return checkNames(a.Name, a.MIMEType)
}

// checkNames checks an attachment's name and MIME type.
func checkNames(name, mimeType string) error {
	if len(name) > maxNameLen || !utf8.ValidString(name) || len(mimeType) > maxNameLen || !utf8.ValidString(mimeType) {
		return fmt.Errorf("streamadapter: an attachment's name and MIME type must be UTF-8 of at most %d bytes", maxNameLen)
	}
	return nil
}

// uploadName is the file name Stream is given for every encrypted file:
// the real one is sealed.
const uploadName = "encrypted.bin"

// UploadFile encrypts what r yields (in constant memory, whatever the size)
// and uploads it to the channel as an opaque file, and returns the
// attachment to pass to SendMessage with Attach. name and mimeType are
// sealed with the message, never sent in the clear; mimeType empty means
// the type name's extension gives, or application/octet-stream.
func (ch *Channel) UploadFile(ctx context.Context, r io.Reader, name, mimeType string) (Attachment, error) {
	if mimeType == "" {
		if mimeType = mime.TypeByExtension(extension(name)); mimeType == "" {
			mimeType = "application/octet-stream"
		}
	}
	key, err := session.NewFileKey(nil)
	if err != nil {
		return Attachment{}, err
	}
	if err := checkNames(name, mimeType); err != nil {
		return Attachment{}, err
	}
	a := Attachment{Name: name, MIMEType: mimeType, key: key}
	pr, pw := io.Pipe()
	h := sha256.New()
	var size int64
	go func() {
		w, err := session.EncryptStream(io.MultiWriter(pw, h), key)
		if err == nil {
			size, err = io.Copy(w, io.LimitReader(r, ch.c.maxFile+1))
			if err == nil && size > ch.c.maxFile {
				err = fmt.Errorf("streamadapter: the file is larger than %d bytes", ch.c.maxFile)
			}
			if err == nil {
				err = w.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	resp, err := ch.sc.SendFile(ctx, stream.SendFileRequest{Reader: pr, FileName: uploadName, User: &stream.User{ID: ch.c.user}})
	pr.CloseWithError(errors.New("streamadapter: upload ended"))
	if err != nil {
		return Attachment{}, fmt.Errorf("streamadapter: uploading to %s: %w", ch.cid, err)
	}
	a.URL, a.Size = resp.File, size
	copy(a.Digest[:], h.Sum(nil))
	if err := a.check(ch.c.maxFile); err != nil {
		return Attachment{}, fmt.Errorf("streamadapter: Stream answered the upload with %q: %w", resp.File, err)
	}
	return a, nil
}

func extension(name string) string {
	for i := len(name) - 1; i >= 0 && name[i] != '/'; i-- {
		if name[i] == '.' {
			return name[i:]
		}
	}
	return ""
}

// OpenAttachment downloads an attachment and returns a reader of its
// plaintext, decrypted as it streams in constant memory. Every chunk is
// authenticated under the file's key before it is released, and at the end
// the digest of the whole ciphertext is checked: a file that was swapped,
// cut short or extended fails with session.ErrAttachment, and Read returns
// io.EOF only for the exact file the sender sealed. The key alone cannot
// tell files apart, and every member who read the message holds it: such a
// member, with Stream serving another file encrypted under the key, makes
// the chunks Read releases before the end (all but the last 64 KiB) come
// from that file, which the digest then fails. So use the plaintext only
// once Read returned io.EOF (write it to a temporary file, then move it),
// and discard what was read on any error. Close the reader.
func (c *Client) OpenAttachment(ctx context.Context, a Attachment) (io.ReadCloser, error) {
	if err := a.check(c.maxFile); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: attachment URL: %w", err)
	}
	if c.allowURL != nil && !c.allowURL(req.URL) {
		return nil, fmt.Errorf("%w: %s", ErrAttachmentURL, req.URL.Redacted())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("streamadapter: downloading an attachment: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("streamadapter: downloading an attachment: HTTP %d", resp.StatusCode)
	}
	h := sha256.New()
	limit := session.EncryptedSize(a.Size)
	src := &digestReader{r: io.LimitReader(resp.Body, limit+1), h: h, want: a.Digest, max: limit}
	plain, err := session.DecryptStream(src, a.key)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	return &attachmentReader{r: plain, src: src, body: resp.Body, size: a.Size}, nil
}

// stayPut returns the CheckRedirect of attachment downloads: a redirect is
// followed only to the scheme and host of the URL first requested, and, if
// allow is set, to a URL it allows; then next (nil: net/http's default)
// decides.
func stayPut(allow func(*url.URL) bool, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host || (allow != nil && !allow(req.URL)) {
			return fmt.Errorf("%w: a redirect from %s to %s", ErrAttachmentURL, first.Host, req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("streamadapter: stopped after 10 redirects")
		}
		return nil
	}
}

// digestReader hashes what it reads and, at EOF, fails unless the hash and
// the length are the descriptor's.
type digestReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	max  int64
	want [sha256.Size]byte
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	if d.n > d.max {
		return n, session.ErrAttachment
	}
	if err == io.EOF && subtle.ConstantTimeCompare(d.h.Sum(nil), d.want[:]) != 1 {
		return n, session.ErrAttachment
	}
	return n, err
}

// attachmentReader releases the plaintext and checks its size at EOF.
type attachmentReader struct {
	r    io.Reader
	src  io.Reader // the ciphertext, drained at EOF so its digest is checked
	body io.Closer
	n    int64
	size int64
}

func (a *attachmentReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.n += int64(n)
	if a.n > a.size || (err == io.EOF && a.n != a.size) {
		return n, session.ErrAttachment
	}
	if err == io.EOF {
		if _, derr := io.Copy(io.Discard, a.src); derr != nil {
			return n, session.ErrAttachment
		}
	}
	return n, err
}

func (a *attachmentReader) Close() error { return a.body.Close() }
