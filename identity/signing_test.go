package identity

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"

	"filippo.io/edwards25519"

	"github.com/veilchat/veil/internal/protosign"
	"github.com/veilchat/veil/internal/testrand"
)

// order8 is a point of order 8.
const order8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretScalar is the Ed25519 secret scalar of seed (RFC 8032 §5.1.5).
func secretScalar(t *testing.T, seed []byte) *edwards25519.Scalar {
	t.Helper()
	h := sha512.Sum512(seed)
	a, err := new(edwards25519.Scalar).SetBytesWithClamping(h[:32])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// signWithNonce signs msg under pub like Ed25519 but with the nonce scalar
// derived from label: another valid signature of the same message, which
// any signer can make. A non-nil torsion is added to R: the factor 8 of the
// verification removes it.
func signWithNonce(t *testing.T, seed, pub, msg []byte, label string, torsion *edwards25519.Point) []byte {
	t.Helper()
	var wide [64]byte
	testrand.New(label).Read(wide[:])
	r, _ := new(edwards25519.Scalar).SetUniformBytes(wide[:])
	rPoint := new(edwards25519.Point).ScalarBaseMult(r)
	if torsion != nil {
		rPoint.Add(rPoint, torsion)
	}
	rEnc := rPoint.Bytes()
	h := sha512.New()
	h.Write(rEnc)
	h.Write(pub)
	h.Write(msg)
	k, _ := new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	s := new(edwards25519.Scalar).MultiplyAdd(k, secretScalar(t, seed), r)
	return append(rEnc, s.Bytes()...)
}

// resign returns generation g's card of id with a new self-signature.
func resign(t *testing.T, id *Identity, g int) *Card {
	t.Helper()
	c := id.gens[g].card
	sig := signWithNonce(t, id.gens[g].signSeed[:], c.signingKey, signedMessage(purposeCard, c.body), "resign", nil)
	again, err := ParseCard(slices.Concat(c.body, sig, c.prevSig))
	if err != nil {
		t.Fatalf("re-signed card: %v", err)
	}
	if again.Equal(c) {
		t.Fatal("the re-signed card has the same bytes")
	}
	return again
}

// TestParseCardRejectsWeakSigningKeys: a card whose signing key is a point
// of small order, or a non-canonical encoding, is refused. Under the
// cofactored rule, a small-order key verifies the signature R = identity,
// S = 0 of every message: such a card would make every grant, envelope and
// successor of its user verify.
func TestParseCardRejectsWeakSigningKeys(t *testing.T) {
	t.Parallel()
	recip := gen(t, "a", "alice", KindX25519).Card().recipRaw
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	yPlusP := func(y int64, sign byte) []byte { // the encoding of y + p
		b := new(big.Int).Add(big.NewInt(y), p).FillBytes(make([]byte, 32))
		slices.Reverse(b)
		b[31] |= sign << 7
		return b
	}
	withSign := func(enc []byte) []byte { b := bytes.Clone(enc); b[31] |= 0x80; return b }
	ident := edwards25519.NewIdentityPoint().Bytes()
	t8, err := new(edwards25519.Point).SetBytes(unhex(t, order8))
	if err != nil {
		t.Fatal(err)
	}
	four := new(edwards25519.Point).Add(t8, t8)
	four.Add(four, four) // [4]T8, of order 2
	tests := []struct {
		name, reason string
		key          []byte
	}{
		{"identity", "the identity verifies (R = identity, S = 0) for every message, even without the factor 8", ident},
		{"identity, y + p", "a non-canonical identity is still the identity", yPlusP(1, 0)},
		{"identity, sign bit on x = 0", "a non-canonical identity is still the identity", withSign(ident)},
		{"order 2", "small order: R = identity, S = 0 verifies every message under the factor 8", four.Bytes()},
		{"order 8", "small order: R = identity, S = 0 verifies every message under the factor 8", t8.Bytes()},
		{"order 4, y = p", "small order, non-canonically encoded", yPlusP(0, 0)},
	}
	forgery := append(bytes.Clone(ident), make([]byte, 32)...)
	for _, tc := range tests {
		body := encodeCardBody("alice", 0, KindX25519, t0, tc.key, recip)
		if _, err := ParseCard(append(body, forgery...)); !errors.Is(err, ErrInvalidCard) {
			t.Errorf("%s: ParseCard = %v, want ErrInvalidCard; %s", tc.name, err, tc.reason)
		}
	}
}

// TestSignRefusesReservedPurposes: an application cannot sign under the
// protocol's purposes, while the protocol still can.
func TestSignRefusesReservedPurposes(t *testing.T) {
	t.Parallel()
	id := gen(t, "a", "alice", KindX25519)
	for _, purpose := range []string{"veil/v1/grant", "veil/v1/envelope", "veil/v1/log", "veil/v1/card", "veil/v1/card-successor", "veil/v1/"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Sign(%q) did not panic: an application signing under it could mint a protocol signature", purpose)
				}
			}()
			id.Sign(purpose, []byte("attacker-chosen bytes"))
		}()
		sig := protosign.Sign(id, purpose, []byte("m"))
		if !id.Card().Verify(purpose, []byte("m"), sig) {
			t.Errorf("protosign.Sign(%q) does not verify", purpose)
		}
	}
	for _, purpose := range []string{"veil/test", "veil/v2/x", "app/v1/receipt", "veil/v1"} {
		if sig := id.Sign(purpose, []byte("m")); !id.Card().Verify(purpose, []byte("m"), sig) {
			t.Errorf("Sign(%q) does not verify", purpose)
		}
	}
}

// TestPinsIgnoreSignatureBytes: a card signed anew (same body, another
// valid signature) is the same card to the pins: neither a key change
// when presented, nor a contradiction when the directory's history holds
// it.
func TestPinsIgnoreSignatureBytes(t *testing.T) {
	t.Parallel()
	a1 := rotate(t, gen(t, "a", "alice", KindX25519), "a1")
	a2 := rotate(t, a1, "a2")
	again := resign(t, a1, 1)
	if !again.SameKeys(a1.Card()) || again.Fingerprint() != a1.Card().Fingerprint() {
		t.Fatal("a re-signed card does not have the same keys")
	}
	if !again.IsSuccessorOf(a1.Cards()[0]) {
		t.Fatal("the re-signed card lost its predecessor's signature")
	}
	tests := []struct {
		name, reason string
		card         *Card
		history      []*Card
	}{
		{"presented re-signed", "the pinned card, signed again, is the pinned card", again, nil},
		{"history holds it re-signed", "the directory's copy of the pinned generation says the same", a2.Card(), []*Card{a2.Cards()[0], again, a2.Card()}},
	}
	for _, tc := range tests {
		var pins MemoryPins
		if err := pins.Pin(a1.Card()); err != nil {
			t.Fatal(err)
		}
		if err := Check(&pins, tc.card, tc.history); err != nil {
			t.Errorf("%s: %v; %s", tc.name, err, tc.reason)
		}
	}

	b := gen(t, "b", "bob", KindX25519)
	other := []struct {
		name string
		card *Card
	}{
		{"other generation", a2.Card()},
		{"other user", b.Card()},
		{"other keys", gen(t, "evil", "alice", KindX25519).Card()},
		{"nil", nil},
	}
	for _, tc := range other {
		if a1.Card().SameKeys(tc.card) {
			t.Errorf("%s: SameKeys = true", tc.name)
		}
	}
}

// TestBatchAgreesWithVerify: on random signatures, valid and invalid in
// every way a signature can be, a batch decides exactly what Card.Verify
// decides one at a time.
func TestBatchAgreesWithVerify(t *testing.T) {
	t.Parallel()
	ids := []*Identity{gen(t, "a", "alice", KindX25519), gen(t, "b", "bob", KindX25519), rotate(t, gen(t, "c", "carol", KindX25519), "c1")}
	byUser := map[string]*Identity{}
	for _, id := range ids {
		byUser[id.UserID()] = id
	}
	t8, _ := new(edwards25519.Point).SetBytes(unhex(t, order8))
	const mixedR = "R = [r]B + a point of order 8 (valid under the factor 8)"
	L, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	type entry struct {
		card    *Card
		purpose string
		msg     []byte
		sig     []byte
		how     string
	}
	// Each mutation turns a valid signature into another one, valid or not.
	mutations := []struct {
		how    string
		mutate func(e entry, rnd *testrand.Reader) entry
	}{
		{"valid", func(e entry, _ *testrand.Reader) entry { return e }},
		{"flipped bit", func(e entry, rnd *testrand.Reader) entry {
			var b [2]byte
			rnd.Read(b[:])
			e.sig = bytes.Clone(e.sig)
			e.sig[int(b[0])%64] ^= 1 << (b[1] % 8)
			return e
		}},
		{"other message", func(e entry, _ *testrand.Reader) entry { e.msg = append(bytes.Clone(e.msg), 0); return e }},
		{"other purpose", func(e entry, _ *testrand.Reader) entry { e.purpose += "x"; return e }},
		{"other signer", func(e entry, _ *testrand.Reader) entry {
			for _, id := range ids {
				if id.UserID() != e.card.UserID() {
					e.card = id.Card()
					break
				}
			}
			return e
		}},
		{"S + L", func(e entry, _ *testrand.Reader) entry {
			le := bytes.Clone(e.sig[32:])
			slices.Reverse(le)
			s := new(big.Int).Add(new(big.Int).SetBytes(le), L)
			b := s.FillBytes(make([]byte, 32))
			slices.Reverse(b)
			e.sig = append(bytes.Clone(e.sig[:32]), b...)
			return e
		}},
		{mixedR, func(e entry, _ *testrand.Reader) entry {
			signer := byUser[e.card.UserID()].current()
			e.sig = signWithNonce(t, signer.signSeed[:], e.card.signingKey, signedMessage(e.purpose, e.msg), string(e.msg), t8)
			return e
		}},
		{"short", func(e entry, _ *testrand.Reader) entry { e.sig = e.sig[:63]; return e }},
	}
	rnd := testrand.New("batch")
	var passed, failed int
	for round := range 40 {
		n := 1 + round%9
		var entries []entry
		for i := range n {
			id := ids[(round+i)%len(ids)]
			msg := make([]byte, round+i)
			rnd.Read(msg)
			e := entry{card: id.Card(), purpose: "veil/test", msg: msg}
			e.sig = id.Sign(e.purpose, msg)
			var pick [1]byte
			rnd.Read(pick[:])
			m := mutations[0]
			if pick[0] < 96 { // about one in three is mutated
				m = mutations[int(pick[0])%len(mutations)]
			}
			e = m.mutate(e, rnd)
			e.how = m.how
			entries = append(entries, e)
		}
		bv := NewBatchVerifier(n)
		want := make([]bool, n)
		all := true
		for i, e := range entries {
			bv.Add(e.card, e.purpose, e.msg, e.sig)
			want[i] = e.card.Verify(e.purpose, e.msg, e.sig)
			all = all && want[i]
			if e.how == "valid" || e.how == mixedR {
				if !want[i] {
					t.Fatalf("round %d: a %s signature does not verify", round, e.how)
				}
			}
		}
		if bv.Len() != n {
			t.Fatalf("Len = %d, want %d", bv.Len(), n)
		}
		if all {
			passed++
		} else {
			failed++
		}
		if got := bv.Verify(); got != all {
			t.Errorf("round %d: batch Verify = %v, one at a time all valid = %v (%s)", round, got, all, describe(entries, func(e entry) string { return e.how }))
		}
		if got := bv.VerifyEach(); !slices.Equal(got, want) {
			t.Errorf("round %d: VerifyEach = %v, one at a time %v", round, got, want)
		}
	}
	if passed < 5 || failed < 5 {
		t.Fatalf("%d batches of valid signatures and %d with an invalid one: too few of either to compare", passed, failed)
	}
	var empty BatchVerifier
	if !empty.Verify() || len(empty.VerifyEach()) != 0 {
		t.Error("an empty batch must verify, with no results")
	}
}

func describe[T any](xs []T, f func(T) string) string {
	var b bytes.Buffer
	for i, x := range xs {
		fmt.Fprintf(&b, "%d:%s ", i, f(x))
	}
	return b.String()
}
