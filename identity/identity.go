package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/veilchat/veil/internal/bech32"
	"github.com/veilchat/veil/internal/protosign"
	"github.com/veilchat/veil/internal/redact"
)

// Kind names the age encryption key type of one identity generation.
type Kind uint8

const (
	// KindHybrid is the default: an age ML-KEM-768 + X25519 hybrid key
	// (recipients start with "age1pq1"), safe against a future quantum
	// computer recording today's traffic.
	KindHybrid Kind = 1
	// KindX25519 is a classic age X25519 key ("age1…"). Its recipients are
	// 62 characters instead of about 1,960, but it is not post-quantum.
	KindX25519 Kind = 2
)

// String returns "hybrid", "x25519" or "unknown(N)".
func (k Kind) String() string {
	switch k {
	case KindHybrid:
		return "hybrid"
	case KindX25519:
		return "x25519"
	}
	return fmt.Sprintf("unknown(%d)", uint8(k))
}

func (k Kind) valid() bool { return k == KindHybrid || k == KindX25519 }

// MaxUserIDLen is the longest user ID, in bytes, that a card accepts. Stream
// user IDs are at most 255 characters long.
const MaxUserIDLen = 255

// MaxGenerations bounds the number of key generations an identity or a card
// history may hold, so that parsers never allocate without limit.
const MaxGenerations = 1024

// ErrInvalidUserID is returned for an empty, over-long, non-UTF-8 user ID, or
// one that contains control characters.
var ErrInvalidUserID = errors.New("identity: invalid user ID")

// CheckUserID returns [ErrInvalidUserID] unless userID is a user ID a card
// can carry: 1 to [MaxUserIDLen] bytes of valid UTF-8 without a control
// character (U+0000–U+001F, U+007F). Services use it to refuse bad IDs at
// their boundary.
func CheckUserID(userID string) error {
	if userID == "" || len(userID) > MaxUserIDLen || !utf8.ValidString(userID) {
		return ErrInvalidUserID
	}
	for _, r := range userID {
		if r < 0x20 || r == 0x7f {
			return ErrInvalidUserID
		}
	}
	return nil
}

// Options are the choices made when a generation is created. The zero value
// is the safe default.
type Options struct {
	// Kind is the encryption key type. Zero means [KindHybrid].
	Kind Kind
	// Created is the creation time written into the card, at second
	// precision. The zero value means time.Now().
	Created time.Time
}

func (o Options) resolve() (Kind, time.Time, error) {
	kind := o.Kind
	if kind == 0 {
		kind = KindHybrid
	}
	if !kind.valid() {
		return 0, time.Time{}, fmt.Errorf("identity: unknown key kind %d", uint8(kind))
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	return kind, created.UTC().Truncate(time.Second), nil
}

// generation is one key generation: its card, and its private keys one
// pointer further. An Identity holds *generation pointers; fmt, printing
// an Identity it reaches without its methods (in an unexported field)
// under a verb that does not fit a pointer (%s, %q), dereferences such a
// pointer once and prints the generation with %v, where the keys' pointer
// shows as an address (see package internal/redact).
type generation struct {
	*privateKeys
	card *Card
}

// privateKeys are the secrets of a generation.
type privateKeys struct {
	signSeed [ed25519.SeedSize]byte
	encKey   [32]byte // X25519 scalar or ML-KEM-768+X25519 seed, per card.kind
	sign     ed25519.PrivateKey
	age      age.Identity
}

func newGeneration(kind Kind, signSeed, encKey *[32]byte) (*generation, error) {
	g := &generation{privateKeys: &privateKeys{signSeed: *signSeed, encKey: *encKey}}
	g.sign = ed25519.NewKeyFromSeed(g.signSeed[:])
	var err error
	switch kind {
	case KindHybrid:
		s, _ := bech32.Encode("AGE-SECRET-KEY-PQ-", g.encKey[:])
		g.age, err = age.ParseHybridIdentity(s)
	case KindX25519:
		s, _ := bech32.Encode("AGE-SECRET-KEY-", g.encKey[:])
		g.age, err = age.ParseX25519Identity(s)
	default:
		err = errors.New("unknown key kind")
	}
	if err != nil {
		// Not wrapped: the cause may quote the encoded secret key.
		return nil, errors.New("identity: invalid encryption key")
	}
	return g, nil
}

// ageSecret returns the age secret key string of the generation. It is a
// secret and only export uses it.
func (g *generation) ageSecret() string {
	hrp := "AGE-SECRET-KEY-"
	if g.card.kind == KindHybrid {
		hrp = "AGE-SECRET-KEY-PQ-"
	}
	s, _ := bech32.Encode(hrp, g.encKey[:])
	return s
}

func (g *generation) recipient() age.Recipient {
	switch id := g.age.(type) {
	case *age.HybridIdentity:
		return id.Recipient()
	case *age.X25519Identity:
		return id.Recipient()
	}
	panic("identity: unreachable key kind")
}

// Identity is a user's private identity: every key generation it ever had,
// newest last. Old generations are kept so that grants made for them still
// open. An Identity is immutable and safe for concurrent use; Rotate returns
// a new value.
//
// An Identity is a secret. Its String, GoString, Format and LogValue methods
// print only the user ID and the current fingerprint, MarshalJSON refuses,
// and its generations sit behind pointers, which fmt prints as addresses
// where it cannot call a method (an Identity in an unexported field); the
// keys leave it only through Export and ExportWithPassphrase.
//
// Identity implements [age.Identity], so age.Decrypt(grant, id) opens an age
// file made for any of its generations.
type Identity struct {
	userID string
	gens   []*generation
}

var _ age.Identity = (*Identity)(nil)

// Generate creates the generation-0 identity of userID, reading 64 bytes of
// key material from rand (nil means crypto/rand). Its card is self-signed.
func Generate(rnd io.Reader, userID string, opts Options) (*Identity, error) {
	if err := CheckUserID(userID); err != nil {
		return nil, err
	}
	g, err := generateGeneration(rnd, userID, 0, opts, nil)
	if err != nil {
		return nil, err
	}
	return &Identity{userID: userID, gens: []*generation{g}}, nil
}

func generateGeneration(rnd io.Reader, userID string, gen uint32, opts Options, prev *generation) (*generation, error) {
	kind, created, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var material [64]byte
	defer clear(material[:])
	if _, err := io.ReadFull(rnd, material[:]); err != nil {
		return nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	signSeed, encKey := (*[32]byte)(material[:32]), (*[32]byte)(material[32:])
	g, err := newGeneration(kind, signSeed, encKey)
	if err != nil {
		return nil, err
	}
	g.card, err = newCard(userID, gen, kind, created, g, prev)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Rotate returns a new [Identity] whose current generation is n+1, with fresh
// keys, and whose card is signed both by itself and by generation n, so that
// contacts who pinned generation n accept it. The receiver is unchanged. rand
// nil means crypto/rand; a zero opts.Kind keeps the current kind.
func (id *Identity) Rotate(rnd io.Reader, opts Options) (*Identity, error) {
	if len(id.gens) >= MaxGenerations {
		return nil, errors.New("identity: too many generations")
	}
	prev := id.current()
	if opts.Kind == 0 {
		opts.Kind = prev.card.kind
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	if opts.Created.UTC().Truncate(time.Second).Before(prev.card.created) {
		return nil, errors.New("identity: new generation would predate the current one")
	}
	g, err := generateGeneration(rnd, id.userID, uint32(len(id.gens)), opts, prev)
	if err != nil {
		return nil, err
	}
	gens := make([]*generation, len(id.gens), len(id.gens)+1)
	copy(gens, id.gens)
	return &Identity{userID: id.userID, gens: append(gens, g)}, nil
}

func (id *Identity) current() *generation { return id.gens[len(id.gens)-1] }

// UserID returns the user the identity belongs to.
func (id *Identity) UserID() string { return id.userID }

// Generation returns the number of the current generation (0 for a new
// identity).
func (id *Identity) Generation() uint32 { return uint32(len(id.gens) - 1) }

// Card returns the public card of the current generation.
func (id *Identity) Card() *Card { return id.gens[len(id.gens)-1].card }

// Cards returns the card history, generation 0 first. The slice is a copy.
func (id *Identity) Cards() []*Card {
	cards := make([]*Card, len(id.gens))
	for i, g := range id.gens {
		cards[i] = g.card
	}
	return cards
}

// ReservedPurposePrefix starts the signature purposes of the Veil protocol
// itself (cards, grants, envelopes, membership-log records):
// [Identity.Sign] refuses them.
const ReservedPurposePrefix = protosign.Prefix

// Sign signs msg with the current generation's Ed25519 key under the domain
// separation string purpose: the signed bytes are purpose ‖ 0x00 ‖ msg. Verify
// the result with [Card.Verify].
//
// Purposes starting with [ReservedPurposePrefix] belong to the protocol: an
// application that signed data an attacker chose under one of them would
// mint a grant, an envelope or a log record. Sign panics for such a purpose,
// for an empty one and for one containing a NUL byte: each is a programming
// error.
func (id *Identity) Sign(purpose string, msg []byte) []byte {
	if protosign.Reserved(purpose) {
		panic("identity: signature purpose " + purpose + " is reserved to the Veil protocol")
	}
	return id.sign(purpose, msg)
}

// sign signs under any purpose; the protocol's own packages reach it through
// package internal/protosign.
func (id *Identity) sign(purpose string, msg []byte) []byte {
	return ed25519.Sign(id.current().sign, signedMessage(purpose, msg))
}

func init() {
	protosign.Register(func(signer any, purpose string, msg []byte) []byte {
		return signer.(*Identity).sign(purpose, msg)
	})
}

// Unwrap implements [age.Identity]: it tries every generation, newest first,
// and returns [age.ErrIncorrectIdentity] if none matches.
func (id *Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for i := len(id.gens) - 1; i >= 0; i-- {
		fileKey, err := id.gens[i].age.Unwrap(stanzas)
		if err == nil {
			return fileKey, nil
		}
		if !errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, err
		}
	}
	return nil, age.ErrIncorrectIdentity
}

// Equal reports, in constant time over the key bytes, whether id and other
// hold the same user ID and the same keys for every generation.
func (id *Identity) Equal(other *Identity) bool {
	if id == nil || other == nil {
		return id == other
	}
	if id.userID != other.userID || len(id.gens) != len(other.gens) {
		return false
	}
	eq := 1
	for i := range id.gens {
		eq &= subtle.ConstantTimeCompare(id.gens[i].signSeed[:], other.gens[i].signSeed[:])
		eq &= subtle.ConstantTimeCompare(id.gens[i].encKey[:], other.gens[i].encKey[:])
		eq &= boolInt(id.gens[i].card.Equal(other.gens[i].card))
	}
	return eq == 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// String returns a redacted description: the user ID, generation and
// fingerprint, never key material.
func (id Identity) String() string {
	if len(id.gens) == 0 {
		return "identity.Identity(empty)"
	}
	return fmt.Sprintf("identity.Identity(%q gen %d %s, keys REDACTED)", id.userID, id.Generation(), id.Card().Fingerprint())
}

// GoString implements [fmt.GoStringer] with the same redacted text as String.
func (id Identity) GoString() string { return id.String() }

// Format implements [fmt.Formatter] so that every verb (%v, %+v, %#v, %s, %q,
// %x, ...) prints the redacted String. It has a value receiver so that a
// dereferenced [*Identity] redacts itself too.
func (id Identity) Format(f fmt.State, verb rune) { redact.Format(f, verb, id.String()) }

// LogValue implements [slog.LogValuer]: logs see the user ID, generation and
// fingerprint only.
func (id Identity) LogValue() slog.Value {
	if len(id.gens) == 0 {
		return slog.StringValue("identity.Identity(empty)")
	}
	return slog.GroupValue(
		slog.String("user_id", id.userID),
		slog.Uint64("generation", uint64(id.Generation())),
		slog.String("fingerprint", id.Card().Fingerprint()),
	)
}

// MarshalJSON refuses: an identity leaves only through Export and
// ExportWithPassphrase, never as a side effect of marshalling a struct that
// holds one.
func (id Identity) MarshalJSON() ([]byte, error) {
	return redact.Name("identity.Identity").MarshalJSON()
}

// Format keeps a generation's keys out of fmt output even when reached
// through a bad verb or a container.
func (g *generation) Format(f fmt.State, verb rune) {
	redact.Name("identity.generation").Format(f, verb)
}

// signedMessage builds purpose ‖ 0x00 ‖ msg.
func signedMessage(purpose string, msg []byte) []byte {
	if purpose == "" || strings.IndexByte(purpose, 0) >= 0 {
		panic("identity: invalid signature purpose")
	}
	b := make([]byte, 0, len(purpose)+1+len(msg))
	b = append(b, purpose...)
	b = append(b, 0)
	return append(b, msg...)
}
