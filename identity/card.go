package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"filippo.io/age"

	"github.com/veilchat/veil/internal/bech32"
	"github.com/veilchat/veil/internal/zip215"
)

// Domain separation strings of the card signatures (see docs/PROTOCOL.md).
const (
	purposeCard      = "veil/v1/card"
	purposeSuccessor = "veil/v1/card-successor"
	labelFingerprint = "veil/v1/fingerprint"
)

const (
	cardVersion = 1
	// x25519RecipientLen and hybridRecipientLen are the sizes of the raw
	// public keys inside "age1…" and "age1pq1…" recipients.
	x25519RecipientLen = 32
	hybridRecipientLen = 1216
	// MaxCardSize is the largest encoded card: header, the longest user ID,
	// a hybrid recipient and two signatures.
	MaxCardSize = 1 + 1 + 4 + 8 + 1 + MaxUserIDLen + ed25519.PublicKeySize + 2 + hybridRecipientLen + 2*ed25519.SignatureSize
)

// ErrInvalidCard is returned by [ParseCard] for bytes that are not a
// well-formed, correctly self-signed card, and by the chain checks for a card
// whose signatures do not verify.
var ErrInvalidCard = errors.New("identity: invalid card")

// Card is the public half of one identity generation: who (user ID and
// generation), the keys (age encryption recipient and Ed25519 signing key),
// and when it was made, self-signed and, from generation 1 on, also signed by
// the previous generation. A *Card always holds a valid self-signature; it is
// immutable and safe for concurrent use.
type Card struct {
	userID     string
	generation uint32
	kind       Kind
	created    time.Time
	signingKey ed25519.PublicKey
	recipRaw   []byte
	recipient  age.Recipient
	body       []byte // the signed part of raw
	selfSig    []byte
	prevSig    []byte // nil for generation 0
	raw        []byte
}

// newCard builds and signs the card of generation g.
func newCard(userID string, gen uint32, kind Kind, created time.Time, g *generation, prev *generation) (*Card, error) {
	recip := g.recipient()
	raw, err := recipientBytes(kind, recip)
	if err != nil {
		return nil, err
	}
	signingKey := g.sign.Public().(ed25519.PublicKey)
	body := encodeCardBody(userID, gen, kind, created, signingKey, raw)
	selfSig := ed25519.Sign(g.sign, signedMessage(purposeCard, body))
	var prevSig []byte
	if gen > 0 {
		prevSig = ed25519.Sign(prev.sign, signedMessage(purposeSuccessor, body))
	}
	out := make([]byte, 0, len(body)+2*ed25519.SignatureSize)
	out = append(append(append(out, body...), selfSig...), prevSig...)
	return ParseCard(out)
}

func recipientBytes(kind Kind, r age.Recipient) ([]byte, error) {
	s, ok := r.(fmt.Stringer)
	if !ok {
		return nil, errors.New("identity: recipient has no string form")
	}
	hrp, data, err := bech32.Decode(s.String())
	if err != nil {
		return nil, err
	}
	if (kind == KindHybrid && hrp != "age1pq") || (kind == KindX25519 && hrp != "age") {
		return nil, errors.New("identity: recipient of the wrong kind")
	}
	return data, nil
}

func encodeCardBody(userID string, gen uint32, kind Kind, created time.Time, signingKey ed25519.PublicKey, recip []byte) []byte {
	b := make([]byte, 0, 17+len(userID)+ed25519.PublicKeySize+2+len(recip))
	b = append(b, cardVersion, byte(kind))
	b = binary.BigEndian.AppendUint32(b, gen)
	b = binary.BigEndian.AppendUint64(b, uint64(created.Unix()))
	b = append(b, byte(len(userID)))
	b = append(b, userID...)
	b = append(b, signingKey...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(recip)))
	return append(b, recip...)
}

// ParseCard decodes and checks an encoded card: canonical layout, known
// version and kind, valid user ID, a signing key that is the canonical
// encoding of a point not of small order, a recipient that age accepts, and
// a valid self-signature. It does not check the signature by the previous generation
// (that needs the previous card: see [VerifyChain] and [Pins]). Any failure
// returns [ErrInvalidCard]. The input is not retained.
func ParseCard(b []byte) (*Card, error) {
	if len(b) > MaxCardSize || len(b) < 15 {
		return nil, ErrInvalidCard
	}
	c := &Card{raw: bytes.Clone(b)}
	r := reader{b: c.raw}
	if r.byte() != cardVersion {
		return nil, ErrInvalidCard
	}
	c.kind = Kind(r.byte())
	c.generation = r.uint32()
	created := int64(r.uint64())
	c.userID = string(r.bytes(int(r.byte())))
	c.signingKey = ed25519.PublicKey(r.bytes(ed25519.PublicKeySize))
	c.recipRaw = r.bytes(int(r.uint16()))
	c.body = c.raw[:r.off]
	c.selfSig = r.bytes(ed25519.SignatureSize)
	if c.generation > 0 {
		c.prevSig = r.bytes(ed25519.SignatureSize)
	}
	if r.err || r.off != len(r.b) {
		return nil, ErrInvalidCard
	}
	if created < 0 || created > 253402300799 { // year 9999
		return nil, ErrInvalidCard
	}
	c.created = time.Unix(created, 0).UTC()
	if CheckUserID(c.userID) != nil || int(c.generation) >= MaxGenerations {
		return nil, ErrInvalidCard
	}
	// A small-order key verifies one signature of every message under the
	// cofactored rule; a non-canonical one is a second name of a key.
	if !zip215.ValidPublicKey(c.signingKey) {
		return nil, ErrInvalidCard
	}
	var err error
	switch c.kind {
	case KindHybrid:
		if len(c.recipRaw) != hybridRecipientLen {
			return nil, ErrInvalidCard
		}
		s, _ := bech32.Encode("age1pq", c.recipRaw)
		c.recipient, err = age.ParseHybridRecipient(s)
	case KindX25519:
		if len(c.recipRaw) != x25519RecipientLen {
			return nil, ErrInvalidCard
		}
		s, _ := bech32.Encode("age", c.recipRaw)
		c.recipient, err = age.ParseX25519Recipient(s)
	default:
		return nil, ErrInvalidCard
	}
	if err != nil {
		return nil, ErrInvalidCard
	}
	if !zip215.Verify(c.signingKey, signedMessage(purposeCard, c.body), c.selfSig) {
		return nil, ErrInvalidCard
	}
	return c, nil
}

// reader is a bounds-checked cursor; once a read runs past the end, err is
// set and every later read returns zero values.
type reader struct {
	b   []byte
	off int
	err bool
}

func (r *reader) bytes(n int) []byte {
	if r.err || n < 0 || len(r.b)-r.off < n {
		r.err = true
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *reader) byte() byte {
	if s := r.bytes(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) uint16() uint16 {
	if s := r.bytes(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if s := r.bytes(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if s := r.bytes(8); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

// Marshal returns the encoding of the card (a copy).
func (c *Card) Marshal() []byte { return bytes.Clone(c.raw) }

// UserID returns the user the card belongs to.
func (c *Card) UserID() string { return c.userID }

// Generation returns the key generation, 0 for a user's first card.
func (c *Card) Generation() uint32 { return c.generation }

// Kind returns the age key type of the card's recipient.
func (c *Card) Kind() Kind { return c.kind }

// Created returns the creation time the card states, in UTC.
func (c *Card) Created() time.Time { return c.created }

// SigningKey returns a copy of the Ed25519 public key.
func (c *Card) SigningKey() ed25519.PublicKey { return bytes.Clone(c.signingKey) }

// Recipient returns the age recipient that grants for this card are
// encrypted to.
func (c *Card) Recipient() age.Recipient { return c.recipient }

// RecipientString returns the recipient in age's text form ("age1…" or
// "age1pq1…"), as the age command line takes it with -r.
func (c *Card) RecipientString() string {
	return c.recipient.(fmt.Stringer).String()
}

// Verify reports whether sig is this card's signature of msg under purpose,
// as made by [Identity.Sign], by the ZIP 215 rules (docs/PROTOCOL.md §2):
// exactly the signatures a [BatchVerifier] accepts.
func (c *Card) Verify(purpose string, msg, sig []byte) bool {
	return zip215.Verify(c.signingKey, signedMessage(purpose, msg), sig)
}

// Equal reports whether two cards have the same encoding. Two encodings of
// one card can differ in their signatures (a signer can sign again): use
// [Card.SameKeys] to ask whether they state the same thing.
func (c *Card) Equal(other *Card) bool {
	if c == nil || other == nil {
		return c == other
	}
	return bytes.Equal(c.raw, other.raw)
}

// SameKeys reports whether two cards name the same user and generation and
// hold the same keys (kind, signing key, recipient), whatever their
// signatures and creation times: what trust pins compare. An Ed25519 signer
// can make many valid signatures of one body, so the bytes of a card are not
// what identifies it.
func (c *Card) SameKeys(other *Card) bool {
	if c == nil || other == nil {
		return c == other
	}
	return c.userID == other.userID && c.generation == other.generation && c.kind == other.kind &&
		bytes.Equal(c.signingKey, other.signingKey) && bytes.Equal(c.recipRaw, other.recipRaw)
}

// Fingerprint returns the hex SHA-256 of the card's key material (the
// signing key and the recipient), domain-separated. It changes when the keys
// change and is safe to log.
func (c *Card) Fingerprint() string {
	h := sha256.New()
	h.Write([]byte(labelFingerprint))
	h.Write([]byte{0})
	h.Write(c.signingKey)
	h.Write(c.recipRaw)
	return hex.EncodeToString(h.Sum(nil))
}

// String returns a short description: user ID, generation, kind and the
// first 16 hex digits of the fingerprint.
func (c *Card) String() string {
	if c == nil {
		return "identity.Card(nil)"
	}
	return fmt.Sprintf("identity.Card(%q gen %d %s %s)", c.userID, c.generation, c.kind, c.Fingerprint()[:16])
}

// IsSuccessorOf reports whether c is the generation after prev of the same
// user and carries prev's valid signature.
func (c *Card) IsSuccessorOf(prev *Card) bool {
	return prev != nil && c.userID == prev.userID && c.generation == prev.generation+1 &&
		c.prevSig != nil && zip215.Verify(prev.signingKey, signedMessage(purposeSuccessor, c.body), c.prevSig) &&
		!c.created.Before(prev.created)
}

// VerifyChain checks a card history: every card is the successor of the one
// before it (same user, consecutive generations, signed by the previous
// generation), and a history that starts at generation 0 starts there
// legitimately. It returns [ErrInvalidCard] on any break, and an error for an
// empty or over-long history.
func VerifyChain(cards []*Card) error {
	if len(cards) == 0 {
		return errors.New("identity: empty card history")
	}
	if len(cards) > MaxGenerations {
		return errors.New("identity: card history too long")
	}
	for i := 1; i < len(cards); i++ {
		if !cards[i].IsSuccessorOf(cards[i-1]) {
			return fmt.Errorf("%w: generation %d does not follow generation %d", ErrInvalidCard, cards[i].generation, cards[i-1].generation)
		}
	}
	return nil
}
