package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/protosign"
	"github.com/veilchat/veil/internal/redact"
)

const (
	grantVersion = 1
	purposeGrant = "veil/v1/grant"
	maxGrantBody = 1 + IDSize + 4 + KeySize + 2 + MaxChannelCIDLen + 1 + identity.MaxUserIDLen + 4 + 1 + identity.MaxUserIDLen + 4 + sigSize
	// MaxGrantSize bounds an encoded grant, inclusive: readers refuse a
	// larger one, and the key service does not store it. A grant is an
	// age file whose size follows from its stanza type and payload: with
	// a hybrid stanza about 1,810 bytes for short IDs, and 3,322 bytes at
	// most (a 1,024-byte channel CID and 255-byte user IDs), so 4 KiB
	// leaves 774 bytes to spare (TestGrantSizeBound).
	MaxGrantSize = 4 << 10
)

// Grant is an opened grant: the key of one epoch of one session, given by
// the granter to the grantee. Its Key is a secret (it redacts itself).
type Grant struct {
	SessionID         ID
	Epoch             uint32
	ChannelCID        string
	Grantee           string
	GranteeGeneration uint32 // the grantee card generation it was wrapped for
	Granter           string
	GranterGeneration uint32 // the granter card generation that signed it
	Key               EpochKey
}

// CardLookup returns the card of userID at generation, after whatever trust
// checks the caller applies (directory lookup, [identity.Check]). Its errors
// are returned unchanged by [OpenGrant].
type CardLookup func(userID string, generation uint32) (*identity.Card, error)

// NewGrant wraps the key of epoch n of s for the grantee's card, as a
// standard age file (binary format) whose payload is signed by granter. The
// grantee's age identity, or [identity.Identity.Export] fed to the age command
// line, opens it. age draws its randomness from crypto/rand.
func NewGrant(granter *identity.Identity, grantee *identity.Card, s *Session, n uint32) ([]byte, error) {
	ep, ok := s.epochs[n]
	if !ok {
		return nil, ErrUnknownEpoch
	}
	body := make([]byte, 0, maxGrantBody)
	body = append(body, grantVersion)
	body = append(body, s.id[:]...)
	body = binary.BigEndian.AppendUint32(body, n)
	body = append(body, ep.key.k.Get()[:]...)
	body = binary.BigEndian.AppendUint16(body, uint16(len(s.cid)))
	body = append(body, s.cid...)
	body = append(body, byte(len(grantee.UserID())))
	body = append(body, grantee.UserID()...)
	body = binary.BigEndian.AppendUint32(body, grantee.Generation())
	body = append(body, byte(len(granter.UserID())))
	body = append(body, granter.UserID()...)
	body = binary.BigEndian.AppendUint32(body, granter.Generation())
	body = append(body, protosign.Sign(granter, purposeGrant, body)...)
	defer clear(body)

	var out bytes.Buffer
	out.Grow(1800)
	w, err := age.Encrypt(&out, grantee.Recipient())
	if err != nil {
		return nil, fmt.Errorf("session: wrapping grant: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("session: wrapping grant: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("session: wrapping grant: %w", err)
	}
	return out.Bytes(), nil
}

// OpenGrant decrypts a grant with me, the grantee's identity, and verifies
// the granter's signature with the card lookup returns. A grant that does not
// decrypt, is malformed, names another grantee, or whose signature does not
// verify returns [ErrDecrypt]; errors of lookup are returned as they are (for
// example an [*identity.KeyChangeError]).
func OpenGrant(grant []byte, me *identity.Identity, lookup CardLookup) (*Grant, error) {
	if len(grant) > MaxGrantSize {
		return nil, ErrDecrypt
	}
	r, err := age.Decrypt(bytes.NewReader(grant), oneStanza{me})
	if err != nil {
		return nil, ErrDecrypt
	}
	body, err := io.ReadAll(io.LimitReader(r, maxGrantBody+1))
	defer clear(body)
	if err != nil || len(body) > maxGrantBody {
		return nil, ErrDecrypt
	}
	g, signed, sig, ok := parseGrantBody(body)
	if !ok || g.Grantee != me.UserID() || g.GranteeGeneration > me.Generation() {
		return nil, ErrDecrypt
	}
	card, err := lookup(g.Granter, g.GranterGeneration)
	if err != nil {
		return nil, err
	}
	if card == nil || card.UserID() != g.Granter || card.Generation() != g.GranterGeneration ||
		!card.Verify(purposeGrant, signed, sig) {
		return nil, ErrDecrypt
	}
	return g, nil
}

// oneStanza unwraps only files with exactly one recipient stanza: a grant
// is for one member, and a file with many stanzas would make the grantee try
// each of them.
type oneStanza struct{ id age.Identity }

func (o oneStanza) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) != 1 {
		return nil, ErrDecrypt
	}
	return o.id.Unwrap(stanzas)
}

func parseGrantBody(b []byte) (g *Grant, signed, sig []byte, ok bool) {
	g = new(Grant)
	r := cursor{b: b}
	if r.byte() != grantVersion {
		return nil, nil, nil, false
	}
	copy(g.SessionID[:], r.bytes(IDSize))
	g.Epoch = r.uint32()
	key := new([KeySize]byte)
	copy(key[:], r.bytes(KeySize))
	g.Key = EpochKey{redact.Hold(key)}
	g.ChannelCID = string(r.bytes(int(r.uint16())))
	g.Grantee = string(r.bytes(int(r.byte())))
	g.GranteeGeneration = r.uint32()
	g.Granter = string(r.bytes(int(r.byte())))
	g.GranterGeneration = r.uint32()
	n := r.off
	sig = r.bytes(sigSize)
	if r.bad || r.off != len(b) || checkCID(g.ChannelCID) != nil || g.Grantee == "" || g.Granter == "" || g.SessionID.IsZero() {
		return nil, nil, nil, false
	}
	return g, b[:n], sig, true
}

// cursor is a bounds-checked reader over a byte slice: after an overrun,
// bad is set and reads return zero values.
type cursor struct {
	b   []byte
	off int
	bad bool
}

func (c *cursor) bytes(n int) []byte {
	if c.bad || n < 0 || len(c.b)-c.off < n {
		c.bad = true
		return nil
	}
	s := c.b[c.off : c.off+n]
	c.off += n
	return s
}

func (c *cursor) byte() byte {
	if s := c.bytes(1); s != nil {
		return s[0]
	}
	return 0
}

func (c *cursor) uint16() uint16 {
	if s := c.bytes(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (c *cursor) uint32() uint32 {
	if s := c.bytes(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

// ErrInvalidGrants is returned by a [Service] for a grant set that does not
// match the change it accompanies: empty, for another epoch, two grants for
// one user, or a member left without a grant.
var ErrInvalidGrants = errors.New("session: grants do not match the members")
