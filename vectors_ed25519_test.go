package veil_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"testing"

	"filippo.io/edwards25519"

	"github.com/veilchat/veil/internal/zip215"
)

// ed25519Vector is one signature checked by the verification rule of
// docs/PROTOCOL.md §2 (ZIP 215).
type ed25519Vector struct {
	Comment   string `json:"comment"`
	PublicKey string `json:"public_key"`
	Message   string `json:"message"`
	Signature string `json:"signature"`
	// Valid is what every reader decides: ZIP 215, one at a time or in a
	// batch.
	Valid bool `json:"valid"`
	// Cofactorless is what crypto/ed25519.Verify decides (RFC 8032 §5.1.7
	// without the factor 8, R compared byte for byte); informative: it
	// shows where a reader built on such a library would disagree.
	Cofactorless bool `json:"cofactorless"`
	// CardKey says whether a card may carry PublicKey as its signing key
	// (§4.2: a canonical encoding of a point not of small order).
	CardKey bool `json:"card_key"`
}

func init() {
	extraVectors = append(extraVectors, func(t *testing.T) (string, any) {
		return "ed25519.json", ed25519Vectors(t)
	})
}

// fieldP is the field prime 2^255 − 19.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// groupL is the order of the prime-order subgroup, 2^252 +
// 27742317777372353535851937790883648493.
var groupL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// order8 is a point of order 8 (the first such point in ZIP 215's list).
const order8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"

// rfc8032Seed is the secret key of RFC 8032 §7.1, TEST 1.
const rfc8032Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

// encodeY returns the 32-byte encoding of the integer y (< 2^255) with the
// sign bit of x set to sign.
func encodeY(y *big.Int, sign byte) []byte {
	b := y.FillBytes(make([]byte, 32))
	slices.Reverse(b)
	b[31] |= sign << 7
	return b
}

// decodeY returns the y integer of an encoding (bit 255 cleared), not
// reduced modulo p.
func decodeY(enc []byte) *big.Int {
	b := bytes.Clone(enc)
	b[31] &= 0x7f
	slices.Reverse(b)
	return new(big.Int).SetBytes(b)
}

type smallOrderEncoding struct {
	enc        []byte
	order      int
	yPlusP     bool // y is encoded as y + p
	signOnZero bool // x = 0, with the sign bit set
}

// smallOrderEncodings returns every 32-byte string that decodes to a point
// of small order, canonical or not: the encodings of the 8 points of the
// torsion subgroup, the same with y + p in place of y where y + p < 2^255,
// and those with the sign bit set where x = 0 — ZIP 215's 14 encodings.
func smallOrderEncodings(t *testing.T) []smallOrderEncoding {
	t.Helper()
	t8, err := new(edwards25519.Point).SetBytes(unhex(t, order8))
	if err != nil {
		t.Fatal(err)
	}
	var out []smallOrderEncoding
	p := edwards25519.NewIdentityPoint()
	for i := range 8 {
		canon := p.Bytes()
		order := 8
		switch i {
		case 0:
			order = 1
		case 4:
			order = 2
		case 2, 6:
			order = 4
		}
		y := decodeY(canon)
		for _, yy := range []*big.Int{y, new(big.Int).Add(y, fieldP)} {
			if yy.BitLen() > 255 {
				continue
			}
			for sign := range byte(2) {
				enc := encodeY(yy, sign)
				q, err := new(edwards25519.Point).SetBytes(enc)
				if err != nil || q.Equal(p) != 1 {
					continue // the other sign names another point
				}
				out = append(out, smallOrderEncoding{enc: enc, order: order, yPlusP: yy != y, signOnZero: sign == 1 && (i == 0 || i == 4)})
			}
		}
		p.Add(p, t8)
	}
	if len(out) != 14 {
		t.Fatalf("%d small-order encodings, want ZIP 215's 14", len(out))
	}
	return out
}

func (e smallOrderEncoding) String() string {
	var form string
	switch {
	case e.yPlusP && e.signOnZero:
		form = "non-canonical: y + p, and the sign bit of x = 0"
	case e.yPlusP:
		form = "non-canonical: y + p"
	case e.signOnZero:
		form = "non-canonical: the sign bit of x = 0"
	default:
		form = "canonical"
	}
	return fmt.Sprintf("order %d, %s", e.order, form)
}

// challenge is k = SHA-512(R ‖ A ‖ msg) mod L, over the encodings as given.
func challenge(rEnc, aEnc, msg []byte) *edwards25519.Scalar {
	h := sha512.New()
	h.Write(rEnc)
	h.Write(aEnc)
	h.Write(msg)
	k, _ := new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	return k
}

// signRaw returns R ‖ S with S = r + k·a: a signature by secret scalar a
// under the key encoding aEnc, with nonce scalar r and the R encoding rEnc
// (which need not be [r]B: a small-order part vanishes in the check).
func signRaw(rEnc []byte, r *edwards25519.Scalar, aEnc []byte, a *edwards25519.Scalar, msg []byte) []byte {
	s := new(edwards25519.Scalar).MultiplyAdd(challenge(rEnc, aEnc, msg), a, r)
	return append(bytes.Clone(rEnc), s.Bytes()...)
}

// scalarOf returns the scalar of a 64-byte seed-derived hash, clamped as
// RFC 8032 §5.1.5 does.
func scalarOf(t *testing.T, seed []byte) *edwards25519.Scalar {
	h := sha512.Sum512(seed)
	a, err := new(edwards25519.Scalar).SetBytesWithClamping(h[:32])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ed25519Vectors(t *testing.T) []ed25519Vector {
	var out []ed25519Vector
	add := func(comment string, pub, msg, sig []byte) {
		out = append(out, ed25519Vector{
			Comment:      comment,
			PublicKey:    hex.EncodeToString(pub),
			Message:      hex.EncodeToString(msg),
			Signature:    hex.EncodeToString(sig),
			Valid:        zip215.Verify(pub, msg, sig),
			Cofactorless: ed25519.Verify(pub, msg, sig),
			CardKey:      zip215.ValidPublicKey(pub),
		})
	}
	withS := func(sig []byte, s *big.Int) []byte {
		return append(bytes.Clone(sig[:32]), encodeY(s, 0)...)
	}
	sOf := func(sig []byte) *big.Int { return decodeY(sig[32:]) } // S < 2^253 for every signature here
	identity := edwards25519.NewIdentityPoint().Bytes()
	zero := make([]byte, 32)

	seed := unhex(t, rfc8032Seed)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	a := scalarOf(t, seed)
	honest := ed25519.Sign(priv, nil)
	add("RFC 8032 §7.1 TEST 1: an honest signature of the empty message", pub, nil, honest)
	add("the same signature for another message", pub, []byte("veil"), honest)
	add("S + L: the same signature with S not reduced (S ≥ L)", pub, nil, withS(honest, new(big.Int).Add(sOf(honest), groupL)))
	high := bytes.Clone(honest)
	high[63] |= 0x80
	add("S with its bit 255 set (S ≥ 2^255)", pub, nil, high)
	add("S = L with A and R the identity: [8][S]B = [8]R + [8][k]A holds ([L]B is the identity), but S ≥ L",
		identity, []byte("veil"), append(bytes.Clone(identity), encodeY(groupL, 0)...))

	small := smallOrderEncodings(t)
	for _, e := range small {
		add("small-order key ("+e.String()+"), R the identity, S = 0: valid for every message; no card carries such a key",
			e.enc, []byte("any message"), append(bytes.Clone(identity), zero...))
	}
	for _, e := range small {
		add("small-order R ("+e.String()+"), S = k·a: the signer's key times the challenge, with no nonce; the factor 8 removes R",
			pub, []byte("veil"), signRaw(e.enc, edwards25519.NewScalar(), pub, a, []byte("veil")))
	}

	t8, _ := new(edwards25519.Point).SetBytes(unhex(t, order8))
	r := scalarOf(t, []byte("vector/ed25519/nonce"))
	rB := new(edwards25519.Point).ScalarBaseMult(r)
	mixedA := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(a), t8).Bytes()
	add("mixed-order key: A = [a]B + T with T of order 8, signed with a; valid under the factor 8, and a card may carry it",
		mixedA, []byte("veil"), signRaw(rB.Bytes(), r, mixedA, a, []byte("veil")))
	mixedR := new(edwards25519.Point).Add(rB, t8).Bytes()
	add("mixed-order R: R = [r]B + T with T of order 8, S = r + k·a",
		pub, []byte("veil"), signRaw(mixedR, r, pub, a, []byte("veil")))

	// Among the y < 19 (those with a second encoding y + p < 2^255): the
	// smallest that is not the y of a point, and the smallest that is the y
	// of a point not of small order, encoded as y + p.
	var notPoint, nonCanonical []byte
	for y := int64(2); y < 19; y++ {
		enc := encodeY(big.NewInt(y), 0)
		pt, err := new(edwards25519.Point).SetBytes(enc)
		switch {
		case err != nil && notPoint == nil:
			notPoint = enc
		case err == nil && nonCanonical == nil &&
			new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 0:
			nonCanonical = encodeY(new(big.Int).Add(big.NewInt(y), fieldP), 0)
		}
	}
	if notPoint == nil || nonCanonical == nil {
		t.Fatal("no y below 19 for the point-decoding vectors")
	}
	add("A is not a point: no x for its y", notPoint, nil, honest)
	add("R is not a point: no x for its y", pub, nil, append(bytes.Clone(notPoint), honest[32:]...))
	add("A is a non-canonical encoding (y ≥ p) of a point not of small order; R the identity, S = 0: the point decodes, the equation fails",
		nonCanonical, []byte("veil"), append(bytes.Clone(identity), zero...))
	return out
}

// TestVectorsEd25519 checks every stored ed25519.json vector one at a
// time, in a batch of its own and in batches with other vectors, and the
// card-key rule on its key.
func TestVectorsEd25519(t *testing.T) {
	t.Parallel()
	var vs []ed25519Vector
	readVectors(t, "ed25519.json", &vs)
	type sig struct{ pub, msg, sig []byte }
	sigs := make([]sig, len(vs))
	var valid []sig
	for i, v := range vs {
		s := sig{unhex(t, v.PublicKey), unhex(t, v.Message), unhex(t, v.Signature)}
		sigs[i] = s
		if got := zip215.Verify(s.pub, s.msg, s.sig); got != v.Valid {
			t.Errorf("ed25519[%d] (%s): Verify = %v, want %v", i, v.Comment, got, v.Valid)
		}
		if got := ed25519.Verify(s.pub, s.msg, s.sig); got != v.Cofactorless {
			t.Errorf("ed25519[%d] (%s): crypto/ed25519.Verify = %v, want %v", i, v.Comment, got, v.Cofactorless)
		}
		if got := zip215.ValidPublicKey(s.pub); got != v.CardKey {
			t.Errorf("ed25519[%d] (%s): ValidPublicKey = %v, want %v", i, v.Comment, got, v.CardKey)
		}
		b := zip215.NewBatch(1)
		b.Add(s.pub, s.msg, s.sig)
		if got := b.Verify(); got != v.Valid {
			t.Errorf("ed25519[%d] (%s): a batch of one says %v, one at a time %v", i, v.Comment, got, v.Valid)
		}
		if v.Valid {
			valid = append(valid, s)
		}
	}
	all := zip215.NewBatch(len(valid))
	for _, s := range valid {
		all.Add(s.pub, s.msg, s.sig)
	}
	if !all.Verify() {
		t.Error("a batch of every valid vector fails")
	}
	// Every vector in a batch with all the valid ones: the batch decides
	// like the vector alone, and VerifyEach names it.
	for i, v := range vs {
		b := zip215.NewBatch(len(valid) + 1)
		for _, s := range valid[:len(valid)/2] {
			b.Add(s.pub, s.msg, s.sig)
		}
		b.Add(sigs[i].pub, sigs[i].msg, sigs[i].sig)
		for _, s := range valid[len(valid)/2:] {
			b.Add(s.pub, s.msg, s.sig)
		}
		if got := b.Verify(); got != v.Valid {
			t.Errorf("ed25519[%d] (%s): a batch with the valid vectors says %v, want %v", i, v.Comment, got, v.Valid)
		}
		if got := b.VerifyEach()[len(valid)/2]; got != v.Valid {
			t.Errorf("ed25519[%d] (%s): VerifyEach says %v, want %v", i, v.Comment, got, v.Valid)
		}
	}
}
