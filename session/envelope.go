package session

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/protosign"
)

// Envelope layout, version 1 (docs/PROTOCOL.md has the byte-level table).
const (
	// Version is the envelope version this package writes.
	Version byte = 1

	commitSize = 32
	nonceSize  = chacha20poly1305.NonceSizeX
	// HeaderSize is the size of the cleartext envelope header.
	HeaderSize = 1 + IDSize + 4 + 4 + commitSize + nonceSize
	sigSize    = ed25519.SignatureSize
	tagSize    = chacha20poly1305.Overhead
	// minPadded is the smallest padded plaintext: short messages all look
	// the same size.
	minPadded = 32
	// Overhead is the envelope size minus the padded plaintext size.
	Overhead = HeaderSize + sigSize + tagSize
	// MaxPlaintextSize bounds the plaintext of one envelope, whatever the
	// transport.
	MaxPlaintextSize = 1 << 20
	// MaxBindingFieldLen bounds each [Binding] field.
	MaxBindingFieldLen = 1024

	purposeEnvelope = "veil/v1/envelope"
	// TextPrefix starts the text form of a version-1 envelope.
	TextPrefix = "veil1:"
)

// Binding is what an envelope is bound to: where the message lives. It is
// part of the associated data, so an envelope opens only with the exact
// Binding it was sealed with and cannot be moved to another channel,
// message ID, sender or thread.
type Binding struct {
	ChannelCID string // Stream channel CID ("messaging:general"); required
	MessageID  string // Stream message ID, chosen by the sender; required
	SenderID   string // Stream user ID of the sender; required
	ParentID   string // thread parent message ID; empty outside threads
	QuotedID   string // ID of the message this one quotes; empty if none
	// Revision is 0 for a message as first sent and counts its edits: an
	// edit is sealed with the highest revision known plus one, so that a
	// reader that saw a newer revision refuses an older one replayed as
	// current (Manager.Open returns ErrStaleRevision).
	Revision uint32
}

func (c Binding) check() error {
	for _, f := range []string{c.ChannelCID, c.MessageID, c.SenderID} {
		if f == "" {
			return errors.New("session: a binding needs a channel CID, a message ID and a sender ID")
		}
	}
	for _, f := range []string{c.ChannelCID, c.MessageID, c.SenderID, c.ParentID, c.QuotedID} {
		if len(f) > MaxBindingFieldLen {
			return errors.New("session: a binding field is too long")
		}
	}
	return nil
}

// appendTo encodes the five string fields, each as a 2-byte big-endian
// length and the bytes, then the revision as a 4-byte big-endian number.
func (c Binding) appendTo(b []byte) []byte {
	for _, f := range []string{c.ChannelCID, c.MessageID, c.SenderID, c.ParentID, c.QuotedID} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint32(b, c.Revision)
}

// size is the length of the encoding appendTo writes.
func (c Binding) size() int {
	return 5*2 + len(c.ChannelCID) + len(c.MessageID) + len(c.SenderID) + len(c.ParentID) + len(c.QuotedID) + 4
}

// Header is the cleartext part of an envelope: what a receiver needs to find
// the key before it can open the envelope. It is not authenticated until Open
// succeeds.
type Header struct {
	Version          byte
	SessionID        ID
	Epoch            uint32
	SenderGeneration uint32
}

// ParseHeader reads an envelope's header without any key. It returns
// [ErrUnknownVersion] for another version and [ErrMalformed] for input too short
// to be an envelope.
func ParseHeader(envelope []byte) (Header, error) {
	if len(envelope) < 1 {
		return Header{}, ErrMalformed
	}
	if envelope[0] != Version {
		return Header{}, ErrUnknownVersion
	}
	if len(envelope) < Overhead+minPadded {
		return Header{}, ErrMalformed
	}
	var h Header
	h.Version = envelope[0]
	copy(h.SessionID[:], envelope[1:1+IDSize])
	h.Epoch = binary.BigEndian.Uint32(envelope[1+IDSize:])
	h.SenderGeneration = binary.BigEndian.Uint32(envelope[5+IDSize:])
	return h, nil
}

// paddedLen returns the padded size of an n-byte plaintext: n plus the 0x80
// marker, rounded up with Padmé (at most 12% larger, leaking O(log log n)
// bits of length), and at least minPadded.
func paddedLen(n int) int {
	l := n + 1
	if l <= minPadded {
		return minPadded
	}
	e := bits.Len(uint(l)) - 1   // floor(log2 l)
	s := bits.Len(uint(e))       // floor(log2 e) + 1
	mask := (1 << uint(e-s)) - 1 // low bits that must be zero
	return (l + mask) &^ mask
}

// SealedSize returns the size of the envelope of an n-byte plaintext.
func SealedSize(n int) int { return paddedLen(n) + Overhead }

// Seal encrypts and signs plaintext from sender under the session's current
// epoch, bound to msg. sender must be the user msg.SenderID names, and
// msg.ChannelCID the session's channel. The result is binary; [EncodeText]
// turns it into the text Stream stores.
//
// The nonce is 24 bytes from crypto/rand, never from the session's reader:
// many processes seal under one epoch key, and a deterministic reader (a
// test's, or a replayed one) would make two of them use one nonce. Tests
// that need reproducible envelopes fix crypto/rand with
// [testing/cryptotest.SetGlobalRandom].
func (s *Session) Seal(sender *identity.Identity, msg Binding, plaintext []byte) ([]byte, error) {
	var nonce [nonceSize]byte
	rand.Read(nonce[:]) // never fails: it crashes the program instead
	return s.seal(sender, msg, plaintext, &nonce)
}

func (s *Session) seal(sender *identity.Identity, msg Binding, plaintext []byte, nonce *[nonceSize]byte) ([]byte, error) {
	if err := msg.check(); err != nil {
		return nil, err
	}
	if msg.ChannelCID != s.cid {
		return nil, fmt.Errorf("session: session %s belongs to channel %q, not %q", s.id, s.cid, msg.ChannelCID)
	}
	if sender.UserID() != msg.SenderID {
		return nil, errors.New("session: the binding's sender is not the sealing identity")
	}
	if len(plaintext) > MaxPlaintextSize {
		return nil, &TooLongError{Len: len(plaintext), Max: MaxPlaintextSize}
	}
	ep := s.epochs[s.current]
	padded := paddedLen(len(plaintext))
	out := make([]byte, HeaderSize, HeaderSize+padded+sigSize+tagSize)
	out[0] = Version
	copy(out[1:], s.id[:])
	binary.BigEndian.PutUint32(out[1+IDSize:], s.current)
	binary.BigEndian.PutUint32(out[5+IDSize:], sender.Generation())
	copy(out[9+IDSize:], ep.commit[:])
	copy(out[9+IDSize+commitSize:], nonce[:])

	// signed = header ‖ binding ‖ padded plaintext; the AEAD's additional
	// data is its prefix header ‖ binding (the "context" of docs/PROTOCOL.md).
	signed := make([]byte, 0, HeaderSize+msg.size()+padded+sigSize)
	signed = msg.appendTo(append(signed, out...))
	ad := signed
	signed = append(signed, plaintext...)
	signed = append(signed, 0x80)
	signed = append(signed, make([]byte, padded-len(plaintext)-1)...)
	sig := protosign.Sign(sender, purposeEnvelope, signed)

	body := append(signed[len(ad):], sig...)
	out = ep.aead.Seal(out, nonce[:], body, ad[:len(ad):len(ad)])
	clear(body)
	return out, nil
}

// Open authenticates and decrypts an envelope sealed with msg by the user
// whose card is sender (the card of msg.SenderID at the generation the header
// names; the caller is responsible for trusting it, see [identity.Check]).
// Every failure returns [ErrDecrypt].
func (s *Session) Open(envelope []byte, msg Binding, sender *identity.Card) ([]byte, error) {
	o, err := s.decrypt(envelope, msg, sender)
	if err != nil {
		return nil, err
	}
	if !sender.Verify(purposeEnvelope, o.signed, o.sig) {
		o.wipe()
		return nil, ErrSignature
	}
	return o.unpad()
}

// opened is an envelope decrypted but not yet verified: the signed bytes
// (associated data ‖ padded plaintext) and the signature, in one buffer
// that wipe clears.
type opened struct {
	signed, sig []byte
	padded      []byte // the tail of signed
	buf         []byte
}

// decrypt checks an envelope's header against the session, msg and sender
// and decrypts it, leaving the signature to be verified (one by one, or in a
// batch) before unpad.
func (s *Session) decrypt(envelope []byte, msg Binding, sender *identity.Card) (opened, error) {
	h, err := ParseHeader(envelope)
	if err != nil || msg.check() != nil || sender == nil || h.SessionID != s.id || msg.ChannelCID != s.cid ||
		sender.UserID() != msg.SenderID || sender.Generation() != h.SenderGeneration {
		return opened{}, ErrDecrypt
	}
	ep, ok := s.epochs[h.Epoch]
	if !ok || subtle.ConstantTimeCompare(ep.commit[:], envelope[9+IDSize:9+IDSize+commitSize]) != 1 {
		return opened{}, ErrDecrypt
	}
	ad := msg.appendTo(append(make([]byte, 0, HeaderSize+msg.size()), envelope[:HeaderSize]...))
	nonce := envelope[9+IDSize+commitSize : HeaderSize]
	// Decrypt into the tail of a buffer that already holds ad, so the
	// signed bytes ad ‖ padded are contiguous without a copy.
	buf := make([]byte, len(ad), len(ad)+len(envelope)-HeaderSize)
	copy(buf, ad)
	body, err := ep.aead.Open(buf[len(ad):], nonce, envelope[HeaderSize:], ad)
	if err != nil || len(body) < sigSize+minPadded {
		clear(body)
		return opened{}, ErrDecrypt
	}
	padded, sig := body[:len(body)-sigSize], body[len(body)-sigSize:]
	return opened{signed: buf[:len(ad)+len(padded)], sig: sig, padded: padded, buf: buf[:len(ad)+len(body)]}, nil
}

func (o opened) wipe() { clear(o.buf) }

// unpad returns a copy of the plaintext once the signature verified, and
// wipes the buffer. The padding was signed and authenticated; a malformed
// one is still refused so that exactly one plaintext corresponds to an
// envelope.
func (o opened) unpad() ([]byte, error) {
	defer o.wipe()
	padded := o.padded
	end := len(padded) - 1
	for end >= 0 && padded[end] == 0 {
		end--
	}
	if end < 0 || padded[end] != 0x80 || paddedLen(end) != len(padded) {
		return nil, ErrDecrypt
	}
	out := make([]byte, end)
	copy(out, padded[:end])
	return out, nil
}

// TooLongError reports a plaintext longer than what fits.
type TooLongError struct {
	Len int // plaintext length in bytes
	Max int // the largest length that fits
}

// Error says how long the plaintext is and what fits.
func (e *TooLongError) Error() string {
	return fmt.Sprintf("session: plaintext of %d bytes is too long: at most %d bytes fit", e.Len, e.Max)
}

var b64 = base64.RawURLEncoding

// EncodeText returns the text form of an envelope: [TextPrefix] and the
// unpadded base64url encoding. It is ASCII, so its length in bytes is its
// length in Stream characters.
func EncodeText(envelope []byte) string {
	var b strings.Builder
	b.Grow(len(TextPrefix) + b64.EncodedLen(len(envelope)))
	b.WriteString(TextPrefix)
	b.WriteString(b64.EncodeToString(envelope))
	return b.String()
}

// IsText reports whether s looks like the text form of an envelope (of any
// version Veil has defined). Use it to tell encrypted messages from plain
// ones; only [DecodeText] and Open tell valid from invalid.
func IsText(s string) bool {
	return strings.HasPrefix(s, "veil") && strings.Contains(s[:min(len(s), 12)], ":")
}

// DecodeText parses the text form. It returns [ErrUnknownVersion] for a text
// with another version prefix, [ErrMalformed] for anything else that is not
// canonical base64url of a plausible envelope.
func DecodeText(s string) ([]byte, error) {
	if !strings.HasPrefix(s, TextPrefix) {
		if IsText(s) {
			return nil, ErrUnknownVersion
		}
		return nil, ErrMalformed
	}
	enc := s[len(TextPrefix):]
	// encoding/base64 skips CR and LF even in strict mode; a canonical
	// text has neither.
	if len(enc) > b64.EncodedLen(MaxPlaintextSize+Overhead+MaxPlaintextSize/8) || strings.ContainsAny(enc, "\r\n") {
		return nil, ErrMalformed
	}
	env, err := b64.Strict().DecodeString(enc)
	if err != nil || len(env) < Overhead+minPadded || env[0] != Version {
		return nil, ErrMalformed
	}
	return env, nil
}

// MaxPlaintext returns the longest plaintext, in bytes, whose envelope's
// text form fits in textLimit characters (Stream's default message limit is
// 5,000). It returns -1 if not even an empty message fits.
func MaxPlaintext(textLimit int) int {
	fits := func(n int) bool {
		return len(TextPrefix)+b64.EncodedLen(SealedSize(n)) <= textLimit
	}
	if !fits(0) {
		return -1
	}
	lo, hi := 0, min(MaxPlaintextSize, max(textLimit, 0))
	for lo < hi { // largest n in [lo, hi] with fits(n)
		mid := (lo + hi + 1) / 2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// SealText checks that plaintext fits in textLimit characters once sealed
// (returning a [*TooLongError] before doing any cryptography if not), then
// seals it and returns the text form.
func (s *Session) SealText(sender *identity.Identity, msg Binding, plaintext []byte, textLimit int) (string, error) {
	if m := MaxPlaintext(textLimit); len(plaintext) > m {
		return "", &TooLongError{Len: len(plaintext), Max: m}
	}
	env, err := s.Seal(sender, msg, plaintext)
	if err != nil {
		return "", err
	}
	return EncodeText(env), nil
}

// OpenText decodes the text form and opens it like Open. Every failure,
// malformed text included, returns [ErrDecrypt].
func (s *Session) OpenText(text string, msg Binding, sender *identity.Card) ([]byte, error) {
	env, err := DecodeText(text)
	if err != nil {
		return nil, ErrDecrypt
	}
	return s.Open(env, msg, sender)
}
