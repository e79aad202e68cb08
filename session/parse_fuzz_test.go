package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/veilchat/veil/identity"
)

type fuzzFixture struct {
	s      *Session
	sender *identity.Identity
	ctx    Binding
	plain  [][]byte
	envs   [][]byte
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	fx := &fuzzFixture{
		s:      newSession(tb, "fuzz", cid),
		sender: newIdentity(tb, "alice", identity.KindX25519),
		ctx:    Binding{ChannelCID: cid, MessageID: "m", SenderID: "alice", ParentID: "p"},
	}
	for _, p := range []string{"", "hi", "a longer message that pads to sixty-four bytes or so........"} {
		env, err := fx.s.Seal(fx.sender, fx.ctx, []byte(p))
		if err != nil {
			tb.Fatal(err)
		}
		fx.plain = append(fx.plain, []byte(p))
		fx.envs = append(fx.envs, env)
	}
	return fx
}

// FuzzOpen: arbitrary envelope bytes never panic, fail only with
// ErrDecrypt, and open only to a plaintext that was sealed.
func FuzzOpen(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, env := range fx.envs {
		f.Add(env)
		f.Add(env[:len(env)-1])
		f.Add(env[:HeaderSize])
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		got, err := fx.s.Open(env, fx.ctx, fx.sender.Card())
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Nonces come from crypto/rand, so each fuzzing process seals the
		// fixture's plaintexts into other envelopes: any of them may come
		// back from the corpus, and opens to a plaintext that was sealed.
		for _, p := range fx.plain {
			if bytes.Equal(got, p) {
				return
			}
		}
		t.Fatalf("an envelope that was never sealed opened to %q", got)
	})
}

// FuzzDecodeText: no panic; a decoded text re-encodes to itself.
func FuzzDecodeText(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, env := range fx.envs {
		f.Add(EncodeText(env))
	}
	f.Add("veil2:AAAA")
	f.Add("veil1:")
	f.Add("hello")
	f.Fuzz(func(t *testing.T, s string) {
		env, err := DecodeText(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if EncodeText(env) != s {
			t.Fatal("DecodeText accepted a non-canonical text")
		}
	})
}

// FuzzParseHeader: no panic; fields are the bytes at their offsets.
func FuzzParseHeader(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, env := range fx.envs {
		f.Add(env)
	}
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if len(b) < Overhead+minPadded || h.Version != b[0] || !bytes.Equal(h.SessionID[:], b[1:17]) ||
			h.Epoch != binary.BigEndian.Uint32(b[17:]) || h.SenderGeneration != binary.BigEndian.Uint32(b[21:]) {
			t.Fatalf("header %+v does not match its bytes", h)
		}
	})
}

// FuzzOpenGrant: arbitrary grant bytes never panic, fail only with
// ErrDecrypt, and open only to the grant that was made.
func FuzzOpenGrant(f *testing.F) {
	alice := newIdentity(f, "alice", identity.KindX25519)
	bob := newIdentity(f, "bob", identity.KindX25519)
	s := newSession(f, "fuzz-grant", cid)
	grant, err := NewGrant(alice, bob.Card(), s, 0)
	if err != nil {
		f.Fatal(err)
	}
	key, _ := s.Key(0)
	f.Add(grant)
	f.Add(grant[:len(grant)-5])
	f.Add([]byte("age-encryption.org/v1\n"))
	lookup := fixedLookup(alice.Card())
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := OpenGrant(b, bob, lookup)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if g.SessionID != s.ID() || !g.Key.Equal(key) || g.Granter != "alice" || g.Grantee != "bob" {
			t.Fatalf("a mutated grant opened to %+v", g)
		}
	})
}

// FuzzParseID: the session ID travels in Stream's channel custom data
// (session_id), which any channel member can set. No panic; an accepted
// text is the canonical form of the ID it parses to.
func FuzzParseID(f *testing.F) {
	f.Add("00112233445566778899aabbccddeeff")
	f.Add("00112233445566778899AABBCCDDEEFF")
	f.Add("0011223344556677 899aabbccddeeff")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %s", s, id)
		}
	})
}
