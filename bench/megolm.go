package bench

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/goolm/crypto"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"
)

// Megolm as Matrix clients run it, with mautrix-go's pure-Go implementation
// (goolm). Every sender has an outbound group session per room. A message is
// encrypted once under the session's ratchet (AES-256-CBC and HMAC-SHA-256
// with keys derived by HKDF from the ratchet's state, which then moves one
// step forward) and signed with the session's Ed25519 key, so, as with
// Veil, the number of members does not enter the per-message cost. Each
// member holds an inbound group session made from the session key, which the
// sender sends to every member's device once per session, over Olm (the
// 1:1 double ratchet between devices): that share is Megolm's grant.

const (
	megolmAlgorithm = "m.megolm.v1.aes-sha2"
	roomKeyType     = "m.room_key"
	megolmRoomID    = "!bench:example.org"
)

// errRoomKey is returned for an m.room_key event a device refuses: not for
// it, not from the device whose Olm session carried it, or with a session
// key that does not match its session ID.
var errRoomKey = errors.New("megolm: room key refused")

// megolmDevice is a member's device: its Olm account, with one one-time key
// published and signed, as a Matrix server hands it to a sender that claims
// it (/keys/claim).
type megolmDevice struct {
	userID      string
	acct        *account.Account
	signingKey  id.Ed25519    // the device's Ed25519 identity key
	identityKey id.Curve25519 // the device's Curve25519 identity key
	otk         id.Curve25519
	otkObject   []byte // the signed object {"key":otk}
	otkSig      []byte // the device's signature of otkObject, base64
}

func newMegolmDevice(userID string) (*megolmDevice, error) {
	acct, err := account.NewAccount()
	if err != nil {
		return nil, err
	}
	signingKey, identityKey, err := acct.IdentityKeys()
	if err != nil {
		return nil, err
	}
	if err := acct.GenOneTimeKeys(1); err != nil {
		return nil, err
	}
	otks, err := acct.OneTimeKeys()
	if err != nil {
		return nil, err
	}
	if len(otks) != 1 {
		return nil, fmt.Errorf("megolm: %d one-time keys, want 1", len(otks))
	}
	d := &megolmDevice{userID: userID, acct: acct, signingKey: signingKey, identityKey: identityKey}
	for _, k := range otks {
		d.otk = k
	}
	acct.MarkKeysAsPublished()
	obj, err := json.Marshal(struct {
		Key id.Curve25519 `json:"key"`
	}{d.otk})
	if err != nil {
		return nil, err
	}
	d.otkObject = obj
	if d.otkSig, err = acct.Sign(obj); err != nil {
		return nil, err
	}
	return d, nil
}

// olmKeys is the keys object of an Olm-encrypted event.
type olmKeys struct {
	Ed25519 id.Ed25519 `json:"ed25519"`
}

// roomKeyEvent is the m.room_key event a sender encrypts over Olm for each
// member's device: the session key of its outbound group session, with the
// sender and recipient named so that a device cannot be handed a key meant
// for another.
type roomKeyEvent struct {
	Type          string  `json:"type"`
	Sender        string  `json:"sender"`
	Keys          olmKeys `json:"keys"`
	Recipient     string  `json:"recipient"`
	RecipientKeys olmKeys `json:"recipient_keys"`
	Content       struct {
		Algorithm  string       `json:"algorithm"`
		RoomID     string       `json:"room_id"`
		SessionID  id.SessionID `json:"session_id"`
		SessionKey string       `json:"session_key"`
	} `json:"content"`
}

// megolmSender is a device that sends with an outbound group session.
type megolmSender struct {
	dev *megolmDevice
	out *session.MegolmOutboundSession
	// key is the session key being shared (see exportKey).
	key []byte
}

// exportKey exports the session key, at the ratchet's current index, for
// the room keys that follow: the key is signed (Ed25519) once per session
// and sent to every device, as mautrix computes a session's share content
// once.
func (s *megolmSender) exportKey() error {
	key, err := s.out.SessionSharingMessage()
	if err != nil {
		return err
	}
	s.key = key
	return nil
}

// roomKeyFor returns the m.room_key event for one member's device, with the
// session key exportKey exported.
func (s *megolmSender) roomKeyFor(to *megolmDevice) ([]byte, error) {
	if s.key == nil {
		return nil, errors.New("megolm: no session key exported")
	}
	ev := roomKeyEvent{
		Type:          roomKeyType,
		Sender:        s.dev.userID,
		Keys:          olmKeys{s.dev.signingKey},
		Recipient:     to.userID,
		RecipientKeys: olmKeys{to.signingKey},
	}
	ev.Content.Algorithm = megolmAlgorithm
	ev.Content.RoomID = megolmRoomID
	ev.Content.SessionID = s.out.ID()
	ev.Content.SessionKey = string(s.key)
	return json.Marshal(ev)
}

// shareNew is what a sender does for a device it has no Olm session with:
// verify the signature of the one-time key it claimed, start an Olm session
// with the device's identity key and that one-time key (triple
// Diffie-Hellman), and encrypt the room key in the session's first (pre-key)
// message.
func (s *megolmSender) shareNew(to *megolmDevice) (olm.Session, string, error) {
	pub, err := base64.RawStdEncoding.DecodeString(string(to.signingKey))
	if err != nil {
		return nil, "", err
	}
	sig, err := base64.RawStdEncoding.DecodeString(string(to.otkSig))
	if err != nil {
		return nil, "", err
	}
	if !crypto.Ed25519PublicKey(pub).Verify(to.otkObject, sig) {
		return nil, "", errors.New("megolm: one-time key signature does not verify")
	}
	olmSess, err := s.dev.acct.NewOutboundSession(to.identityKey, to.otk)
	if err != nil {
		return nil, "", err
	}
	typ, msg, err := s.shareOver(olmSess, to)
	if err != nil {
		return nil, "", err
	}
	if typ != id.OlmMsgTypePreKey {
		return nil, "", errors.New("megolm: a new Olm session sent a normal message")
	}
	return olmSess, msg, nil
}

// shareOver encrypts the room key for a device over an Olm session already
// established with it.
func (s *megolmSender) shareOver(olmSess olm.Session, to *megolmDevice) (id.OlmMsgType, string, error) {
	ev, err := s.roomKeyFor(to)
	if err != nil {
		return 0, "", err
	}
	typ, msg, err := olmSess.Encrypt(ev)
	if err != nil {
		return 0, "", err
	}
	return typ, string(msg), nil
}

// receiveNew is what a device does with a room key that starts an Olm
// session: create the inbound Olm session from the pre-key message (triple
// Diffie-Hellman with the one-time key it names), decrypt, and accept the
// room key. A client would then remove the one-time key from its account;
// receiveNew leaves it, so that a benchmark can receive the same message
// again.
func (d *megolmDevice) receiveNew(from *megolmDevice, msg string) (olm.Session, *session.MegolmInboundSession, error) {
	olmSess, err := d.acct.NewInboundSessionFrom(&from.identityKey, msg)
	if err != nil {
		return nil, nil, err
	}
	in, err := d.receiveOver(olmSess, from, id.OlmMsgTypePreKey, msg)
	if err != nil {
		return nil, nil, err
	}
	return olmSess, in, nil
}

// receiveOver decrypts a room key that came over an established Olm session
// and accepts it.
func (d *megolmDevice) receiveOver(olmSess olm.Session, from *megolmDevice, typ id.OlmMsgType, msg string) (*session.MegolmInboundSession, error) {
	plaintext, err := olmSess.Decrypt(msg, typ)
	if err != nil {
		return nil, err
	}
	return d.acceptRoomKey(from, plaintext)
}

// acceptRoomKey checks that a decrypted m.room_key event is for this device
// and from the device whose Olm session carried it, and creates the inbound
// group session from its session key (which verifies the session key's
// Ed25519 signature).
func (d *megolmDevice) acceptRoomKey(from *megolmDevice, plaintext []byte) (*session.MegolmInboundSession, error) {
	var ev roomKeyEvent
	if err := json.Unmarshal(plaintext, &ev); err != nil {
		return nil, errRoomKey
	}
	if ev.Type != roomKeyType || ev.Content.Algorithm != megolmAlgorithm ||
		ev.Sender != from.userID || ev.Keys.Ed25519 != from.signingKey ||
		ev.Recipient != d.userID || ev.RecipientKeys.Ed25519 != d.signingKey {
		return nil, errRoomKey
	}
	in, err := session.NewMegolmInboundSession([]byte(ev.Content.SessionKey))
	if err != nil {
		return nil, errRoomKey
	}
	if in.ID() != ev.Content.SessionID {
		return nil, errRoomKey
	}
	return in, nil
}

// megolmScheme seals as the sender's outbound group session and opens as
// the reader's inbound group session.
type megolmScheme struct {
	out *session.MegolmOutboundSession
	// received is the reader's inbound session as the room key created it
	// (at the first index it can open); in is the one Open moves forward.
	received session.MegolmInboundSession
	in       *session.MegolmInboundSession
}

// NewMegolm returns Megolm's scheme for a channel of n members: the sender
// creates an outbound group session and sends its key to every other
// member's device over a new Olm session; the reader keeps the inbound group
// session its room key creates.
func NewMegolm(n int) (Scheme, error) {
	c := newChannel(n)
	devices := make([]*megolmDevice, len(c.members))
	for i, name := range c.members {
		d, err := newMegolmDevice("@" + name + ":example.org")
		if err != nil {
			return nil, err
		}
		devices[i] = d
	}
	out, err := session.NewMegolmOutboundSession()
	if err != nil {
		return nil, err
	}
	sender := &megolmSender{dev: devices[0], out: out}
	if err := sender.exportKey(); err != nil {
		return nil, err
	}
	m := &megolmScheme{out: out}
	if c.reader() == 0 {
		// A sender reads its own messages with an inbound session it
		// creates from its own session key.
		in, err := session.NewMegolmInboundSession(sender.key)
		if err != nil {
			return nil, err
		}
		m.received = *in
	}
	for i, d := range devices[1:] {
		_, msg, err := sender.shareNew(d)
		if err != nil {
			return nil, err
		}
		_, in, err := d.receiveNew(devices[0], msg)
		if err != nil {
			return nil, err
		}
		if i+1 == c.reader() {
			m.received = *in
		}
	}
	m.Rewind()
	return m, nil
}

func (m *megolmScheme) Name() string { return "megolm" }

func (m *megolmScheme) Seal(msg []byte) ([]byte, error) { return m.out.Encrypt(msg) }

func (m *megolmScheme) Open(sealed []byte) ([]byte, error) {
	plaintext, _, err := m.in.Decrypt(sealed)
	if err != nil {
		return nil, err
	}
	return plaintext, nil
}

// Rewind puts the reader's inbound session back where the room key left
// it.
func (m *megolmScheme) Rewind() {
	in := m.received
	m.in = &in
}
