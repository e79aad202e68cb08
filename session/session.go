package session

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/veilchat/veil/internal/redact"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sentinel errors. Callers branch on them with [errors.Is].
var (
	// ErrDecrypt is the one opaque error for an envelope or grant that does
	// not authenticate: tampered, truncated, moved to another binding,
	// session or epoch, forged, or sealed with a key the caller lacks. It
	// never says which check failed, with one exception: ErrSignature.
	ErrDecrypt = errors.New("session: message cannot be decrypted or authenticated")
	// ErrSignature is returned (wrapping ErrDecrypt, so errors.Is matches
	// both) for an envelope that decrypts under its epoch's key but whose
	// signature does not verify under the sender's card: a forgery by
	// someone who holds the epoch key — a member of the session, since
	// nobody else can make the decryption succeed. Telling it from other
	// failures reveals nothing to anyone without the key.
	ErrSignature = fmt.Errorf("%w (the signature does not verify: forged by a holder of the epoch key)", ErrDecrypt)
	// ErrUnknownSession is returned when a session ID or channel has no
	// session (or the caller may not know of it).
	ErrUnknownSession = errors.New("session: unknown session")
	// ErrUnknownEpoch is returned when the caller holds no key for an epoch:
	// it was never granted one, or it was removed before that epoch began.
	ErrUnknownEpoch = errors.New("session: no key for this epoch")
	// ErrMalformed is returned by [ParseHeader] and [DecodeText] for input that
	// is not an envelope at all.
	ErrMalformed = errors.New("session: malformed envelope")
	// ErrUnknownVersion is returned by [ParseHeader] for an envelope of a
	// version this package does not implement. Versions are never guessed.
	ErrUnknownVersion = errors.New("session: unknown envelope version")
)

// IDSize is the size of a session [ID] in bytes.
const IDSize = 16

// ID is a session's random 128-bit identifier. Its text form (String) is 32
// lower-case hex digits, as stored in a Stream channel's session_id field.
type ID [IDSize]byte

// NewID returns a random [ID] read from rand (nil means crypto/rand).
func NewID(rnd io.Reader) (ID, error) {
	var id ID
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		return ID{}, fmt.Errorf("session: reading randomness: %w", err)
	}
	return id, nil
}

// ParseID parses the 32-hex-digit text form of an [ID].
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return ID{}, fmt.Errorf("session: session ID must be %d hex digits", 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || hex.EncodeToString(id[:]) != s {
		return ID{}, errors.New("session: session ID must be lower-case hex")
	}
	return id, nil
}

// String returns the 32 lower-case hex digits of the [ID].
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero [ID], which no session has.
func (id ID) IsZero() bool { return id == ID{} }

// KeySize is the size of an epoch key in bytes.
const KeySize = 32

// EpochKey is the 32-byte secret of one session epoch. It redacts itself
// under fmt and slog, refuses encoding/json, and Bytes is the only way
// out. Its bytes sit two pointers away (a redact.Value), so that fmt,
// printing a struct that holds an EpochKey in an unexported field (where
// it cannot call Format), shows an address under every verb, not the key.
// Keys are immutable; copies share the bytes. The zero value is not a
// valid key.
type EpochKey struct{ k redact.Value[[KeySize]byte] }

// keyBytes returns the bytes of a key, or nil for a zero key.
func keyBytes(k *[KeySize]byte) []byte {
	if k == nil {
		return nil
	}
	return k[:]
}

// NewEpochKey returns a random key read from rand (nil means crypto/rand).
func NewEpochKey(rnd io.Reader) (EpochKey, error) {
	k := new([KeySize]byte)
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, k[:]); err != nil {
		return EpochKey{}, fmt.Errorf("session: reading randomness: %w", err)
	}
	return EpochKey{redact.Hold(k)}, nil
}

// ParseEpochKey returns the key whose bytes are b (exactly [KeySize]).
func ParseEpochKey(b []byte) (EpochKey, error) {
	if len(b) != KeySize {
		return EpochKey{}, errors.New("session: an epoch key is 32 bytes")
	}
	k := new([KeySize]byte)
	copy(k[:], b)
	return EpochKey{redact.Hold(k)}, nil
}

// Bytes returns a copy of the key bytes (nil for the zero value). Handle
// them as a secret.
func (k EpochKey) Bytes() []byte { return bytes.Clone(keyBytes(k.k.Get())) }

// Equal reports in constant time whether two keys are the same.
func (k EpochKey) Equal(o EpochKey) bool {
	return subtle.ConstantTimeCompare(keyBytes(k.k.Get()), keyBytes(o.k.Get())) == 1
}

const epochKeyName = redact.Name("session.EpochKey")

// String returns a redacted placeholder.
func (k EpochKey) String() string { return epochKeyName.String() }

// GoString returns a redacted placeholder.
func (k EpochKey) GoString() string { return epochKeyName.GoString() }

// Format prints a redacted placeholder under every verb.
func (k EpochKey) Format(f fmt.State, verb rune) { epochKeyName.Format(f, verb) }

// LogValue implements [slog.LogValuer] with a redacted placeholder.
func (k EpochKey) LogValue() slog.Value { return epochKeyName.LogValue() }

// MarshalJSON refuses: a key reaches JSON only through Bytes.
func (k EpochKey) MarshalJSON() ([]byte, error) { return epochKeyName.MarshalJSON() }

// epoch is an epoch key with what is derived from it once.
type epoch struct {
	key    EpochKey
	aead   cipher.AEAD
	commit [32]byte
}

const (
	labelEnvelopeKey    = "veil/v1/envelope/key"
	labelEnvelopeCommit = "veil/v1/envelope/commitment"
)

func newEpoch(k EpochKey) *epoch {
	msgKey, err := hkdf.Key(sha256.New, k.k.Get()[:], nil, labelEnvelopeKey, chacha20poly1305.KeySize)
	if err != nil {
		panic("session: hkdf: " + err.Error())
	}
	aead, err := chacha20poly1305.NewX(msgKey)
	clear(msgKey)
	if err != nil {
		panic("session: " + err.Error())
	}
	return &epoch{key: k, aead: aead, commit: commitmentOf(k)}
}

// MaxChannelCIDLen bounds channel CIDs (Stream's "type:id").
const MaxChannelCIDLen = 1024

// commitmentOf returns the key commitment of an epoch key (PROTOCOL.md §5),
// as the membership log signs it.
func commitmentOf(k EpochKey) [32]byte {
	var out [32]byte
	c, err := hkdf.Key(sha256.New, keyBytes(k.k.Get()), nil, labelEnvelopeCommit, 32)
	if err != nil {
		panic("session: hkdf: " + err.Error())
	}
	copy(out[:], c)
	return out
}

// MaxEpochs bounds the number of epochs of a session: epoch numbers run
// from 0 to MaxEpochs-1.
const MaxEpochs = 1 << 20

func checkCID(cid string) error {
	if cid == "" || len(cid) > MaxChannelCIDLen || !utf8.ValidString(cid) {
		return errors.New("session: invalid channel CID")
	}
	return nil
}

// Session is an encryption session bound to one Stream channel: an [ID], the
// channel CID, and the keys of the epochs its holder was granted. Messages
// are sealed under the newest epoch. A Session is immutable and safe for
// concurrent use: Rotate and WithEpoch return new values.
//
// A Session holds secrets; it prints only its ID, channel and epochs.
type Session struct {
	id      ID
	cid     string
	epochs  map[uint32]*epoch
	current uint32
	rand    io.Reader
}

// New creates a session for channelCID with a random [ID] and a random epoch-0
// key, reading from rand (nil means crypto/rand; the session keeps it for
// the keys of later epochs, see [Session.Rotate]). Message nonces always come
// from crypto/rand.
func New(rnd io.Reader, channelCID string) (*Session, error) {
	if err := checkCID(channelCID); err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	id, err := NewID(rnd)
	if err != nil {
		return nil, err
	}
	k, err := NewEpochKey(rnd)
	if err != nil {
		return nil, err
	}
	return FromKeys(rnd, id, channelCID, map[uint32]EpochKey{0: k})
}

// FromKeys rebuilds a session from epoch keys, typically those of opened
// grants. keys must not be empty; the newest epoch becomes current. rand is
// kept for the keys of later epochs (nil means crypto/rand); it must be safe
// for concurrent use if the session is. Message nonces always come from
// crypto/rand.
func FromKeys(rnd io.Reader, id ID, channelCID string, keys map[uint32]EpochKey) (*Session, error) {
	if err := checkCID(channelCID); err != nil {
		return nil, err
	}
	if id.IsZero() || len(keys) == 0 || len(keys) > MaxEpochs {
		return nil, errors.New("session: a session needs an ID and at least one epoch key")
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	s := &Session{id: id, cid: channelCID, epochs: make(map[uint32]*epoch, len(keys)), rand: rnd}
	for n, k := range keys {
		if k.k.IsZero() {
			return nil, errors.New("session: a zero epoch key")
		}
		if n >= MaxEpochs {
			return nil, fmt.Errorf("session: epoch %d is beyond the last one (%d)", n, MaxEpochs-1)
		}
		s.epochs[n] = newEpoch(k)
		s.current = max(s.current, n)
	}
	return s, nil
}

// WithEpoch returns a copy of s that also holds key for epoch n (which
// becomes current if it is the newest). An existing key for n must be equal.
func (s *Session) WithEpoch(n uint32, key EpochKey) (*Session, error) {
	if key.k.IsZero() {
		return nil, errors.New("session: a zero epoch key")
	}
	if e, ok := s.epochs[n]; ok {
		if !e.key.Equal(key) {
			return nil, errors.New("session: conflicting keys for one epoch")
		}
		return s, nil
	}
	if n >= MaxEpochs || len(s.epochs) >= MaxEpochs {
		return nil, errors.New("session: too many epochs")
	}
	c := s.clone()
	c.epochs[n] = newEpoch(key)
	c.current = max(c.current, n)
	return c, nil
}

// Rotate returns a copy of s with a new random epoch current+1, as done when
// a member is removed. Grant its key to the remaining members only.
func (s *Session) Rotate() (*Session, error) {
	if s.current >= MaxEpochs-1 {
		return nil, errors.New("session: too many epochs")
	}
	k, err := NewEpochKey(s.rand)
	if err != nil {
		return nil, err
	}
	return s.WithEpoch(s.current+1, k)
}

func (s *Session) clone() *Session {
	c := *s
	c.epochs = maps.Clone(s.epochs)
	return &c
}

// ID returns the session ID.
func (s *Session) ID() ID { return s.id }

// ChannelCID returns the Stream channel CID the session is bound to.
func (s *Session) ChannelCID() string { return s.cid }

// Epoch returns the current (newest) epoch number.
func (s *Session) Epoch() uint32 { return s.current }

// Epochs returns the epoch numbers whose keys the session holds, ascending.
func (s *Session) Epochs() []uint32 { return slices.Sorted(maps.Keys(s.epochs)) }

// Key returns the key of epoch n, or [ErrUnknownEpoch].
func (s *Session) Key(n uint32) (EpochKey, error) {
	e, ok := s.epochs[n]
	if !ok {
		return EpochKey{}, ErrUnknownEpoch
	}
	return e.key, nil
}

// HasEpoch reports whether s holds the key of epoch n.
func (s *Session) HasEpoch(n uint32) bool { _, ok := s.epochs[n]; return ok }

// String describes the session without its keys.
func (s Session) String() string {
	return fmt.Sprintf("session.Session(%s %q epoch %d, %d key(s) REDACTED)", s.id, s.cid, s.current, len(s.epochs))
}

// GoString returns the same redacted text as String.
func (s Session) GoString() string { return s.String() }

// Format prints the redacted String under every verb. It has a value
// receiver so that a dereferenced [*Session] redacts itself too.
func (s Session) Format(f fmt.State, verb rune) { redact.Format(f, verb, s.String()) }

// LogValue implements [slog.LogValuer] without keys.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("session_id", s.id.String()), slog.String("channel_cid", s.cid), slog.Uint64("epoch", uint64(s.current)))
}

// Format keeps an epoch's keys out of fmt output even when reached through
// a bad verb or a container.
func (e *epoch) Format(f fmt.State, verb rune) { redact.Name("session.epoch").Format(f, verb) }
