package session

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/protosign"
	"github.com/veilchat/veil/internal/testrand"
)

const cid = "messaging:general"

var created = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func newIdentity(t testing.TB, user string, kind identity.Kind) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(testrand.New("id-"+user), user, identity.Options{Kind: kind, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newSession(t testing.TB, seed, channel string) *Session {
	t.Helper()
	s, err := New(testrand.New(seed), channel)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func msgCtx(sender string) Binding {
	return Binding{ChannelCID: cid, MessageID: "msg-1", SenderID: sender, ParentID: "parent-1"}
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	s := newSession(t, "s", cid)
	for _, n := range []int{0, 1, 30, 31, 32, 100, 1000, 3583, 65536} {
		pt := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		env, err := s.Seal(alice, msgCtx("alice"), pt)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(env) != SealedSize(n) {
			t.Errorf("n=%d: envelope is %d bytes, SealedSize says %d", n, len(env), SealedSize(n))
		}
		got, err := s.Open(env, msgCtx("alice"), alice.Card())
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: Open = %d bytes, %v", n, len(got), err)
		}
		h, err := ParseHeader(env)
		want := Header{Version: Version, SessionID: s.ID(), Epoch: 0, SenderGeneration: 0}
		if diff := cmp.Diff(want, h); diff != "" || err != nil {
			t.Errorf("n=%d: ParseHeader (-want +got):\n%s %v", n, diff, err)
		}
	}
}

func TestPaddingHidesLength(t *testing.T) {
	t.Parallel()
	for n := 0; n < minPadded; n++ {
		if paddedLen(n) != minPadded {
			t.Fatalf("paddedLen(%d) = %d, want %d: short messages must look alike", n, paddedLen(n), minPadded)
		}
	}
	prev := 0
	for n := 0; n < 1<<17; n++ {
		p := paddedLen(n)
		if p <= n || p < prev || float64(p) > 1.125*float64(n+1)+minPadded {
			t.Fatalf("paddedLen(%d) = %d (previous %d): must exceed n, be monotonic, and add at most 12.5%%", n, p, prev)
		}
		prev = p
	}
	// Distinct lengths collapse into far fewer envelope sizes.
	sizes := map[int]bool{}
	for n := 1000; n < 2000; n++ {
		sizes[SealedSize(n)] = true
	}
	if len(sizes) > 20 {
		t.Errorf("1,000 plaintext lengths gave %d envelope sizes; padding leaks too much", len(sizes))
	}
}

func TestTamperEveryByte(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	s := newSession(t, "s", cid)
	env, err := s.Seal(alice, msgCtx("alice"), []byte("attack at dawn"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range env {
		for _, mask := range []byte{0x01, 0x80} {
			b := bytes.Clone(env)
			b[i] ^= mask
			if got, err := s.Open(b, msgCtx("alice"), alice.Card()); !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("byte %d ^ %#x: Open = %q, %v; want ErrDecrypt", i, mask, got, err)
			}
		}
	}
	for n := 0; n < len(env); n++ {
		if _, err := s.Open(env[:n], msgCtx("alice"), alice.Card()); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("truncated to %d bytes: err = %v", n, err)
		}
	}
	if _, err := s.Open(append(bytes.Clone(env), 0), msgCtx("alice"), alice.Card()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("extended envelope: err = %v", err)
	}
}

func TestBindingSwaps(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	bob := newIdentity(t, "bob", identity.KindX25519)
	s := newSession(t, "s", cid)
	base := msgCtx("alice")
	env, err := s.Seal(alice, base, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	other := newSession(t, "other", "messaging:other")
	sameCID := newSession(t, "same-cid", cid)
	rotated, _ := s.Rotate()
	tests := []struct {
		name, reason string
		s            *Session
		ctx          Binding
		card         *identity.Card
	}{
		{"channel", "an envelope is bound to its channel", s, Binding{ChannelCID: "messaging:other", MessageID: base.MessageID, SenderID: base.SenderID, ParentID: base.ParentID, QuotedID: base.QuotedID, Revision: base.Revision}, alice.Card()},
		{"message ID", "replay under another message ID", s, Binding{ChannelCID: base.ChannelCID, MessageID: "msg-2", SenderID: base.SenderID, ParentID: base.ParentID, QuotedID: base.QuotedID, Revision: base.Revision}, alice.Card()},
		{"sender", "another sender cannot claim it", s, Binding{ChannelCID: base.ChannelCID, MessageID: base.MessageID, SenderID: "bob", ParentID: base.ParentID, QuotedID: base.QuotedID, Revision: base.Revision}, bob.Card()},
		{"parent", "moved to another thread", s, Binding{ChannelCID: base.ChannelCID, MessageID: base.MessageID, SenderID: base.SenderID, ParentID: "parent-2", QuotedID: base.QuotedID, Revision: base.Revision}, alice.Card()},
		{"no parent", "moved out of its thread", s, Binding{ChannelCID: base.ChannelCID, MessageID: base.MessageID, SenderID: base.SenderID, ParentID: "", QuotedID: base.QuotedID, Revision: base.Revision}, alice.Card()},
		{"field boundary", "fields are length-prefixed", s, Binding{ChannelCID: base.ChannelCID, MessageID: base.MessageID + "a", SenderID: "lice", ParentID: base.ParentID, QuotedID: base.QuotedID, Revision: base.Revision}, alice.Card()},
		{"quote", "moved to quote another message", s, Binding{ChannelCID: base.ChannelCID, MessageID: base.MessageID, SenderID: base.SenderID, ParentID: base.ParentID, QuotedID: "q-2"}, alice.Card()},
		{"revision", "an original replayed as an edit, or the reverse", s, Binding{ChannelCID: base.ChannelCID, MessageID: base.MessageID, SenderID: base.SenderID, ParentID: base.ParentID, Revision: 1}, alice.Card()},
		{"other session, other channel", "keys differ", other, Binding{ChannelCID: "messaging:other", MessageID: base.MessageID, SenderID: base.SenderID, ParentID: base.ParentID, QuotedID: base.QuotedID, Revision: base.Revision}, alice.Card()},
		{"other session, same channel", "a channel's new session does not open old envelopes", sameCID, base, alice.Card()},
	}
	for _, tc := range tests {
		if _, err := tc.s.Open(env, tc.ctx, tc.card); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt; %s", tc.name, err, tc.reason)
		}
	}
	// Moved between epochs: relabel the header's epoch and session ID.
	moved := bytes.Clone(env)
	moved[1+IDSize+3] = 1
	if _, err := rotated.Open(moved, base, alice.Card()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("epoch 0 envelope relabelled as epoch 1: err = %v", err)
	}
	moved = bytes.Clone(env)
	sid := sameCID.ID()
	copy(moved[1:], sid[:])
	if _, err := sameCID.Open(moved, base, alice.Card()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("envelope relabelled with another session ID: err = %v", err)
	}
	// The rotated session still opens epoch 0 envelopes.
	if _, err := rotated.Open(env, base, alice.Card()); err != nil {
		t.Errorf("rotated session lost epoch 0: %v", err)
	}
}

func TestSenderGenerationMismatch(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	alice1, err := alice.Rotate(testrand.New("a1"), identity.Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, "s", cid)
	env, _ := s.Seal(alice1, msgCtx("alice"), []byte("hi"))
	if _, err := s.Open(env, msgCtx("alice"), alice.Card()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("generation-1 envelope opened with the generation-0 card: %v", err)
	}
	if _, err := s.Open(env, msgCtx("alice"), alice1.Card()); err != nil {
		t.Errorf("generation-1 envelope with its card: %v", err)
	}
}

// sealRaw builds an envelope like seal, but lets the test choose who signs
// (or not sign at all), as a malicious member holding the epoch key could.
func sealRaw(t *testing.T, s *Session, signer *identity.Identity, ctx Binding, pt []byte) []byte {
	t.Helper()
	ep := s.epochs[s.current]
	padded := paddedLen(len(pt))
	hdr := make([]byte, HeaderSize)
	hdr[0] = Version
	copy(hdr[1:], s.id[:])
	copy(hdr[9+IDSize:], ep.commit[:])
	ad := ctx.appendTo(bytes.Clone(hdr))
	body := append(append(bytes.Clone(pt), 0x80), make([]byte, padded-len(pt)-1)...)
	sig := make([]byte, ed25519.SignatureSize)
	if signer != nil {
		sig = protosign.Sign(signer, purposeEnvelope, append(bytes.Clone(ad), body...))
	}
	return ep.aead.Seal(hdr, hdr[9+IDSize+commitSize:HeaderSize], append(body, sig...), ad)
}

func TestForgedMessages(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	mallory := newIdentity(t, "mallory", identity.KindX25519)
	s := newSession(t, "s", cid)
	ctx := msgCtx("alice")
	if _, err := s.Open(sealRaw(t, s, alice, ctx, []byte("x")), ctx, alice.Card()); err != nil {
		t.Fatalf("control: a correctly signed raw envelope must open: %v", err)
	}
	tests := []struct {
		name, reason string
		signer       *identity.Identity
	}{
		{"signed by another member", "mallory has the session key but not alice's signing key", mallory},
		{"unsigned", "a zero signature never verifies", nil},
	}
	for _, tc := range tests {
		env := sealRaw(t, s, tc.signer, ctx, []byte("transfer everything to mallory"))
		if got, err := s.Open(env, ctx, alice.Card()); !errors.Is(err, ErrDecrypt) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrDecrypt; %s", tc.name, got, err, tc.reason)
		}
	}
	if _, err := s.Seal(mallory, ctx, []byte("x")); err == nil {
		t.Error("Seal must refuse a context whose sender is not the sealing identity")
	}
}

func TestRemovedMemberLockedOut(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	s0 := newSession(t, "s", cid)
	carolCopy := s0 // everything carol ever held
	s1, err := s0.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	env, _ := s1.Seal(alice, msgCtx("alice"), []byte("after removal"))
	if h, _ := ParseHeader(env); h.Epoch != 1 {
		t.Fatalf("sealed under epoch %d after rotation, want 1", h.Epoch)
	}
	if _, err := carolCopy.Open(env, msgCtx("alice"), alice.Card()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("removed member opened a post-rotation envelope: %v", err)
	}
	// Even relabelled to the epoch carol holds, it does not open.
	b := bytes.Clone(env)
	b[1+IDSize+3] = 0
	if _, err := carolCopy.Open(b, msgCtx("alice"), alice.Card()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("relabelled envelope opened: %v", err)
	}
}

func TestTextForm(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	s := newSession(t, "s", cid)
	for _, limit := range []int{300, 1000, 5000} {
		max := MaxPlaintext(limit)
		txt, err := s.SealText(alice, msgCtx("alice"), bytes.Repeat([]byte("x"), max), limit)
		if err != nil || len(txt) > limit || !strings.HasPrefix(txt, TextPrefix) {
			t.Fatalf("limit %d: max plaintext %d gave %d chars, %v", limit, max, len(txt), err)
		}
		if got, err := s.OpenText(txt, msgCtx("alice"), alice.Card()); err != nil || len(got) != max {
			t.Fatalf("limit %d: OpenText: %v", limit, err)
		}
		if len(TextPrefix)+b64.EncodedLen(SealedSize(max+1)) <= limit {
			t.Fatalf("limit %d: MaxPlaintext %d is not the largest", limit, max)
		}
		// Too long for the limit fails, though Seal alone would succeed.
		_, err = s.SealText(alice, msgCtx("alice"), bytes.Repeat([]byte("x"), max+1), limit)
		var tl *TooLongError
		if !errors.As(err, &tl) || tl.Len != max+1 || tl.Max != max {
			t.Fatalf("limit %d: err = %v, want *TooLongError{%d, %d}", limit, err, max+1, max)
		}
	}
	if MaxPlaintext(10) != -1 || MaxPlaintext(-1) != -1 {
		t.Error("tiny limits must fit nothing")
	}
	var tl *TooLongError
	if _, err := s.SealText(alice, msgCtx("alice"), nil, 100); !errors.As(err, &tl) {
		t.Errorf("an empty message over a 100-character limit: err = %v, want *TooLongError", err)
	}
	env, _ := s.Seal(alice, msgCtx("alice"), []byte("x"))
	txt := EncodeText(env)
	tests := []struct {
		name, text, reason string
		want               error
	}{
		{"future version", "veil2:" + txt[len(TextPrefix):], "versions are never guessed", ErrUnknownVersion},
		{"plain text", "hello", "not an envelope", ErrMalformed},
		{"padded base64", txt + "==", "only canonical unpadded base64url", ErrMalformed},
		{"std alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(txt), "base64url only", ErrMalformed},
		{"short", TextPrefix + "AQ", "too short to be an envelope", ErrMalformed},
	}
	for _, tc := range tests {
		if tc.text == txt {
			continue // the replacer found nothing to replace
		}
		if _, err := DecodeText(tc.text); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v; %s", tc.name, err, tc.want, tc.reason)
		}
	}
	if !IsText(txt) || IsText("hello veil") {
		t.Error("IsText misclassifies")
	}
}

// TestSealNoncesIgnoreSessionRand: sessions rebuilt with one deterministic
// reader, as two processes of one bot or a test's reader give them, never
// seal with one nonce: the reader is for keys, nonces come from
// crypto/rand. One nonce twice under an epoch key would reveal the XOR of
// two plaintexts and the Poly1305 key.
func TestSealNoncesIgnoreSessionRand(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	key, err := NewEpochKey(testrand.New("epoch key"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewID(testrand.New("session ID"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range 4 {
		s, err := FromKeys(testrand.New("one reader for every process"), id, cid, map[uint32]EpochKey{0: key})
		if err != nil {
			t.Fatal(err)
		}
		env, err := s.Seal(alice, msgCtx("alice"), []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(env[HeaderSize-nonceSize : HeaderSize])
		if seen[nonce] {
			t.Fatalf("process %d sealed with a nonce already used under this epoch key", i)
		}
		seen[nonce] = true
	}
}

func TestParseHeaderRejects(t *testing.T) {
	t.Parallel()
	if _, err := ParseHeader(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty: %v", err)
	}
	if _, err := ParseHeader(make([]byte, 300)); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("version 0: %v", err)
	}
	b := make([]byte, Overhead+minPadded-1)
	b[0] = Version
	if _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("short: %v", err)
	}
}

func TestSessionAPI(t *testing.T) {
	t.Parallel()
	if _, err := New(nil, ""); err == nil {
		t.Error("empty channel CID accepted")
	}
	s := newSession(t, "s", cid)
	id, err := ParseID(s.ID().String())
	if err != nil || id != s.ID() {
		t.Fatalf("ParseID(String) = %v, %v", id, err)
	}
	for _, bad := range []string{"", "00", strings.ToUpper(s.ID().String()), s.ID().String() + "00", strings.Repeat("g", 32)} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	k0, _ := s.Key(0)
	if _, err := s.WithEpoch(0, k0); err != nil {
		t.Error("re-adding the same key must be a no-op")
	}
	other, _ := NewEpochKey(testrand.New("k"))
	if _, err := s.WithEpoch(0, other); err == nil {
		t.Error("a conflicting key for an existing epoch was accepted")
	}
	s5, err := s.WithEpoch(5, other)
	if err != nil || s5.Epoch() != 5 || s.Epoch() != 0 || !cmp.Equal(s5.Epochs(), []uint32{0, 5}) {
		t.Fatalf("WithEpoch: %v %v", s5, err)
	}
	if _, err := s.Key(3); !errors.Is(err, ErrUnknownEpoch) {
		t.Errorf("Key of an unknown epoch: %v", err)
	}
}

func TestSecretsRedacted(t *testing.T) {
	t.Parallel()
	s := newSession(t, "s", cid)
	k, _ := s.Key(0)
	g := Grant{SessionID: s.ID(), ChannelCID: cid, Key: k}
	secret := k.Bytes()
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		for _, v := range []any{k, &k, s, *s, g, &g} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "key", k, "session", s, "grant", g)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "key", k, "session", s, "grant", g)
	for _, enc := range []string{string(secret), fmt.Sprintf("%x", secret), fmt.Sprintf("%X", secret), b64.EncodeToString(secret), fmt.Sprint(secret), strings.Trim(fmt.Sprint(secret[:4]), "[]")} {
		if strings.Contains(out.String(), enc) {
			t.Fatalf("an encoding of the epoch key appears in:\n%s", out.String())
		}
	}
}
