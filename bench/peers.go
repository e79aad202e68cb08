package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	pgp "github.com/ProtonMail/gopenpgp/v3/crypto"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// Scheme encrypts the messages of one sender to the members of one channel
// and opens them as one reader.
type Scheme interface {
	// Name names the scheme in benchmark output.
	Name() string
	// Seal encrypts (and, where the scheme does, signs) one message.
	Seal(msg []byte) ([]byte, error)
	// Open decrypts (and verifies) what Seal returned, as the reader.
	Open(sealed []byte) ([]byte, error)
}

// Rewinder is implemented by schemes whose reader carries state from one
// message to the next. Megolm's inbound ratchet moves forward cheaply (one
// hash per message) but reaches an earlier message only by starting again
// from the first index it was given; Rewind puts the reader back there, as
// it stood when it received the channel's key, so that every page a
// benchmark opens starts from the same state.
type Rewinder interface {
	Rewind()
}

// channel is what every scheme is given: members[0] sends, and the reader
// is members[len(members)/2], so that schemes that try each recipient in
// turn pay an average, not a best or worst, case.
type channel struct {
	cid     string
	members []string
}

func newChannel(n int) channel {
	c := channel{cid: "messaging:bench"}
	for i := range n {
		c.members = append(c.members, fmt.Sprintf("user%03d", i))
	}
	return c
}

func (c channel) reader() int { return len(c.members) / 2 }

// Veil seals every message once under the session's epoch key, signed by
// the sender; the number of members does not enter the per-message cost.
type veilScheme struct {
	s      *session.Session
	sender *identity.Identity
	card   *identity.Card
	ctx    session.Binding
}

// NewVeil returns Veil's scheme for a channel of n members.
func NewVeil(n int) (Scheme, error) {
	c := newChannel(n)
	sender, err := identity.Generate(nil, c.members[0], identity.Options{Kind: identity.KindX25519})
	if err != nil {
		return nil, err
	}
	s, err := session.New(nil, c.cid)
	if err != nil {
		return nil, err
	}
	ctx := session.Binding{ChannelCID: c.cid, MessageID: "3b1f6c1e-6a0b-4c1e-9d5e-1c0a7a1e2f3d", SenderID: c.members[0]}
	return &veilScheme{s: s, sender: sender, card: sender.Card(), ctx: ctx}, nil
}

func (v *veilScheme) Name() string { return "veil" }

func (v *veilScheme) Seal(msg []byte) ([]byte, error) { return v.s.Seal(v.sender, v.ctx, msg) }

func (v *veilScheme) Open(sealed []byte) ([]byte, error) { return v.s.Open(sealed, v.ctx, v.card) }

// ageScheme encrypts every message as an age file to every member.
type ageScheme struct {
	recipients []age.Recipient
	reader     age.Identity
}

// NewAge returns the age-per-message scheme for a channel of n members.
func NewAge(n int) (Scheme, error) {
	c := newChannel(n)
	a := &ageScheme{}
	for i := range c.members {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		a.recipients = append(a.recipients, id.Recipient())
		if i == c.reader() {
			a.reader = id
		}
	}
	return a, nil
}

func (a *ageScheme) Name() string { return "age" }

func (a *ageScheme) Seal(msg []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, a.recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (a *ageScheme) Open(sealed []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), a.reader)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// openpgpScheme signs every message with the sender's key and encrypts it
// to every member's key.
type openpgpScheme struct {
	enc pgp.PGPEncryption
	dec pgp.PGPDecryption
}

// NewOpenPGP returns the OpenPGP-per-message scheme for a channel of n
// members.
func NewOpenPGP(n int) (Scheme, error) {
	c := newChannel(n)
	h := pgp.PGP()
	var (
		recipients     *pgp.KeyRing
		sender, reader *pgp.Key
	)
	for i, name := range c.members {
		key, err := h.KeyGeneration().AddUserId(name, name+"@example.com").New().GenerateKey()
		if err != nil {
			return nil, err
		}
		pub, err := key.ToPublic()
		if err != nil {
			return nil, err
		}
		if recipients == nil {
			recipients, err = pgp.NewKeyRing(pub)
		} else {
			err = recipients.AddKey(pub)
		}
		if err != nil {
			return nil, err
		}
		switch i {
		case 0:
			sender = key
		case c.reader():
			reader = key
		}
	}
	senderPub, err := sender.ToPublic()
	if err != nil {
		return nil, err
	}
	enc, err := h.Encryption().Recipients(recipients).SigningKey(sender).New()
	if err != nil {
		return nil, err
	}
	dec, err := h.Decryption().DecryptionKey(reader).VerificationKey(senderPub).New()
	if err != nil {
		return nil, err
	}
	return &openpgpScheme{enc: enc, dec: dec}, nil
}

func (o *openpgpScheme) Name() string { return "openpgp" }

func (o *openpgpScheme) Seal(msg []byte) ([]byte, error) {
	m, err := o.enc.Encrypt(msg)
	if err != nil {
		return nil, err
	}
	return m.Bytes(), nil
}

func (o *openpgpScheme) Open(sealed []byte) ([]byte, error) {
	res, err := o.dec.Decrypt(sealed, pgp.Bytes)
	if err != nil {
		return nil, err
	}
	if err := res.SignatureError(); err != nil {
		return nil, errors.New("openpgp: signature does not verify")
	}
	return res.Bytes(), nil
}

// Peers returns the peers of Veil for a channel of n members.
func Peers(n int) ([]Scheme, error) {
	a, err := NewAge(n)
	if err != nil {
		return nil, err
	}
	o, err := NewOpenPGP(n)
	if err != nil {
		return nil, err
	}
	m, err := NewMegolm(n)
	if err != nil {
		return nil, err
	}
	return []Scheme{a, o, m}, nil
}
