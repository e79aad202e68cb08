package bench

import (
	"errors"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"

	"github.com/veilchat/veil/identity"
	veilsession "github.com/veilchat/veil/session"
)

// veilGrants is a Veil session whose epoch 0 the sender grants to every
// other member (X25519 cards, as in [NewVeil]).
type veilGrants struct {
	s       *veilsession.Session
	members []*identity.Identity
	lookup  veilsession.CardLookup
}

func newVeilGrants(tb testing.TB, c channel) *veilGrants {
	tb.Helper()
	g := &veilGrants{}
	for _, name := range c.members {
		id, err := identity.Generate(nil, name, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			tb.Fatal(err)
		}
		g.members = append(g.members, id)
	}
	s, err := veilsession.New(nil, c.cid)
	if err != nil {
		tb.Fatal(err)
	}
	g.s = s
	sender := g.members[0].Card()
	g.lookup = func(string, uint32) (*identity.Card, error) { return sender, nil }
	return g
}

func (g *veilGrants) grant(tb testing.TB, to int) []byte {
	grant, err := veilsession.NewGrant(g.members[0], g.members[to].Card(), g.s, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return grant
}

// megolmShare is a sender with an outbound group session and the devices of
// the other members; with established, every device already has an Olm
// session with the sender and has sent one message back over it, so that
// the room key goes as a normal Olm message.
type megolmShare struct {
	sender  *megolmSender
	devices []*megolmDevice
	// out and in are the Olm sessions of the sender with each device, and
	// of each device with the sender (established only).
	out, in []olm.Session
}

func newMegolmShare(tb testing.TB, c channel, established bool) *megolmShare {
	tb.Helper()
	m := &megolmShare{}
	for _, name := range c.members {
		d, err := newMegolmDevice("@" + name + ":example.org")
		if err != nil {
			tb.Fatal(err)
		}
		m.devices = append(m.devices, d)
	}
	out, err := session.NewMegolmOutboundSession()
	if err != nil {
		tb.Fatal(err)
	}
	m.sender = &megolmSender{dev: m.devices[0], out: out}
	if err := m.sender.exportKey(); err != nil {
		tb.Fatal(err)
	}
	if !established {
		return m
	}
	m.out = make([]olm.Session, len(m.devices))
	m.in = make([]olm.Session, len(m.devices))
	for i, d := range m.devices[1:] {
		i++
		sent, msg, err := m.sender.shareNew(d)
		if err != nil {
			tb.Fatal(err)
		}
		recv, _, err := d.receiveNew(m.devices[0], msg)
		if err != nil {
			tb.Fatal(err)
		}
		typ, reply, err := recv.Encrypt([]byte(`{"type":"m.dummy"}`))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := sent.Decrypt(string(reply), typ); err != nil {
			tb.Fatal(err)
		}
		m.out[i], m.in[i] = sent, recv
	}
	return m
}

// send shares the room key with device i, over a new Olm session or the
// established one.
func (m *megolmShare) send(i int) (id.OlmMsgType, string, error) {
	if m.out == nil {
		_, msg, err := m.sender.shareNew(m.devices[i])
		return id.OlmMsgTypePreKey, msg, err
	}
	return m.sender.shareOver(m.out[i], m.devices[i])
}

// receive is device i accepting what send returned.
func (m *megolmShare) receive(i int, typ id.OlmMsgType, msg string) (*session.MegolmInboundSession, error) {
	if m.in == nil {
		_, in, err := m.devices[i].receiveNew(m.devices[0], msg)
		return in, err
	}
	return m.devices[i].receiveOver(m.in[i], m.devices[0], typ, msg)
}

// TestShare checks the room key's way to a member over Olm, over a new and
// an established Olm session: the member's inbound session opens the
// sender's messages; a room key meant for another member is refused.
func TestShare(t *testing.T) {
	for _, established := range []bool{false, true} {
		t.Run(fmt.Sprintf("established=%v", established), func(t *testing.T) {
			m := newMegolmShare(t, newChannel(3), established)
			before, err := m.sender.out.Encrypt([]byte("before"))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.sender.exportKey(); err != nil {
				t.Fatal(err)
			}
			var received []*session.MegolmInboundSession
			for i := 1; i < 3; i++ {
				typ, msg, err := m.send(i)
				if err != nil {
					t.Fatal(err)
				}
				in, err := m.receive(i, typ, msg)
				if err != nil {
					t.Fatalf("member %d: %v", i, err)
				}
				received = append(received, in)
			}
			sealed, err := m.sender.out.Encrypt([]byte("hello"))
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range received {
				got, _, err := in.Decrypt(sealed)
				if err != nil || string(got) != "hello" {
					t.Fatalf("member %d opened %q, %v", i+1, got, err)
				}
				// The key is shared from the ratchet's index at the time:
				// what was sent before stays closed.
				if _, _, err := in.Decrypt(before); !errors.Is(err, olm.ErrUnknownMessageIndex) {
					t.Fatalf("member %d, message sent before the share: %v", i+1, err)
				}
			}
			// The sender's room key for member 1, decrypted by member 1's
			// Olm session, offered to member 2 as its own.
			typ, msg, err := m.send(1)
			if err != nil {
				t.Fatal(err)
			}
			plaintext, err := func() ([]byte, error) {
				if !established {
					s, err := m.devices[1].acct.NewInboundSessionFrom(&m.devices[0].identityKey, msg)
					if err != nil {
						return nil, err
					}
					return s.Decrypt(msg, typ)
				}
				return m.in[1].Decrypt(msg, typ)
			}()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.devices[2].acceptRoomKey(m.devices[0], plaintext); err != errRoomKey {
				t.Fatalf("member 2 accepted member 1's room key: %v", err)
			}
			if _, err := m.devices[1].acceptRoomKey(m.devices[2], plaintext); err != errRoomKey {
				t.Fatalf("a room key was accepted as from another sender: %v", err)
			}
		})
	}
}

// BenchmarkShare times what a new key costs, per member: once per Veil
// epoch, once per Megolm session (setup, not per message; Matrix clients
// start a new Megolm session every 100 messages or every week by default,
// and when a member leaves). Veil wraps a signed grant (age, X25519 card)
// for every other member; Megolm sends the session key to every other
// member's device over Olm. olm=new: the sender has no Olm session with the
// device yet and verifies the signature of the one-time key it claimed,
// starts one (triple Diffie-Hellman) and sends a pre-key message; the device
// creates the Olm session from it, decrypts and makes its inbound group
// session (one Ed25519 verification). olm=established: the Olm sessions
// exist and the ratchet only moves along its chain (no Diffie-Hellman step:
// the cheapest case). send is the sender's work for the n-1 other members
// (for Megolm: the session key signed once, then one Olm message per
// device), receive is one member's work. Veil and Megolm run in the same loop:
// x-peer = Veil's time / Megolm's.
func BenchmarkShare(b *testing.B) {
	for _, n := range channelSizes {
		c := newChannel(n)
		for _, established := range []bool{false, true} {
			olmCase := "new"
			if established {
				olmCase = "established"
			}
			b.Run(fmt.Sprintf("members=%d/send/olm=%s", n, olmCase), func(b *testing.B) {
				v := newVeilGrants(b, c)
				m := newMegolmShare(b, c, established)
				ours := func() {
					for i := 1; i < n; i++ {
						v.grant(b, i)
					}
				}
				theirs := func() {
					if err := m.sender.exportKey(); err != nil {
						b.Fatal(err)
					}
					for i := 1; i < n; i++ {
						if _, _, err := m.send(i); err != nil {
							b.Fatal(err)
						}
					}
				}
				alternate(b, nil, ours, theirs)
			})
			b.Run(fmt.Sprintf("members=%d/receive/olm=%s", n, olmCase), func(b *testing.B) {
				v := newVeilGrants(b, c)
				m := newMegolmShare(b, c, established)
				r := c.reader()
				if r == 0 {
					b.Skip("the reader is the sender")
				}
				grant := v.grant(b, r)
				typ, msg, err := m.send(r)
				if err != nil {
					b.Fatal(err)
				}
				var prep func()
				if established {
					// Every established receipt needs a message the Olm
					// session has not decrypted yet; sending it is not timed.
					prep = func() {
						if typ, msg, err = m.send(r); err != nil {
							b.Fatal(err)
						}
					}
				}
				ours := func() {
					if _, err := veilsession.OpenGrant(grant, v.members[r], v.lookup); err != nil {
						b.Fatal(err)
					}
				}
				theirs := func() {
					if _, err := m.receive(r, typ, msg); err != nil {
						b.Fatal(err)
					}
				}
				alternate(b, prep, ours, theirs)
			})
		}
	}
}
