package zip215

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// Verify reports whether sig is a valid signature of msg under pub by the
// ZIP 215 rules. It is safe for concurrent use and retains no input.
func Verify(pub, msg, sig []byte) bool {
	return ed25519consensus.Verify(pub, msg, sig)
}

// ValidPublicKey reports whether pub is a public key a signer can honestly
// have: the canonical encoding (y < p, and no sign bit on x = 0) of a point
// that is not of small order. Under ZIP 215 a small-order key verifies one
// signature (R the identity, S = 0) of every message, and a non-canonical
// encoding is a second name for a key that has a canonical one.
//
// Keys of mixed order (a prime-order point plus a small-order one) pass: the
// cofactor removes their small-order part from every verification, so they
// verify only what their prime-order part signed.
func ValidPublicKey(pub []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil || !bytes.Equal(p.Bytes(), pub) {
		return false
	}
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0
}

// Batch verifies many signatures at once, accepting exactly the signatures
// that [Verify] accepts: a batch of valid signatures costs about half of
// verifying them one by one. The zero value is an empty batch. A Batch is not
// safe for concurrent use.
type Batch struct {
	items []item
}

// item keeps what a failed batch needs to find the bad signatures.
type item struct {
	pub, msg, sig []byte
}

// NewBatch returns an empty batch with room for n signatures.
func NewBatch(n int) *Batch {
	return &Batch{items: make([]item, 0, n)}
}

// Add appends a signature to the batch. The batch keeps references to pub,
// msg and sig until the last call to VerifyEach: the caller must not modify
// them before.
func (b *Batch) Add(pub, msg, sig []byte) {
	b.items = append(b.items, item{pub, msg, sig})
}

// Len returns the number of signatures added.
func (b *Batch) Len() int { return len(b.items) }

// Verify reports whether every signature added verifies; an empty batch
// does. It reads 16 random bytes per signature from crypto/rand (the
// weights that make a batch of invalid signatures fail).
//
// It checks the equation ZIP 215 gives for a batch, with the cofactor:
// [8](−(Σ zᵢsᵢ)B + Σ zᵢRᵢ + Σ zᵢkᵢAᵢ) = 0, for random 128-bit zᵢ, where
// kᵢ = SHA-512(Rᵢ ‖ Aᵢ ‖ Mᵢ) — the equation of
// github.com/hdevalence/ed25519consensus, with the terms of one public key
// (the same 32 bytes) summed into one: a page of messages from a few
// senders costs one point per signature (its R) instead of two.
func (b *Batch) Verify() bool {
	n := len(b.items)
	if n == 0 {
		return true
	}
	scalars := make([]*edwards25519.Scalar, 0, n+2)
	points := make([]*edwards25519.Point, 0, n+2)
	bScalar := edwards25519.NewScalar() // Σ zᵢsᵢ, negated at the end
	scalars = append(scalars, bScalar)
	points = append(points, edwards25519.NewGeneratorPoint())
	keyScalar := map[[32]byte]*edwards25519.Scalar{} // Σ zᵢkᵢ per public key
	var keyOrder [][32]byte
	var zb [32]byte
	h := sha512.New()
	var digest [64]byte
	for _, it := range b.items {
		if len(it.pub) != ed25519.PublicKeySize || len(it.sig) != ed25519.SignatureSize {
			return false
		}
		// ZIP 215: R and A may be any encoding of a point, canonical or
		// not (SetBytes takes them all); S must be canonical.
		r, err := new(edwards25519.Point).SetBytes(it.sig[:32])
		if err != nil {
			return false
		}
		s, err := new(edwards25519.Scalar).SetCanonicalBytes(it.sig[32:])
		if err != nil {
			return false
		}
		var key [32]byte
		copy(key[:], it.pub)
		if _, ok := keyScalar[key]; !ok {
			if _, err := new(edwards25519.Point).SetBytes(it.pub); err != nil {
				return false
			}
			keyScalar[key] = edwards25519.NewScalar()
			keyOrder = append(keyOrder, key)
		}
		h.Reset()
		h.Write(it.sig[:32])
		h.Write(it.pub)
		h.Write(it.msg)
		k, _ := new(edwards25519.Scalar).SetUniformBytes(h.Sum(digest[:0]))
		if _, err := rand.Read(zb[:16]); err != nil {
			panic("zip215: crypto/rand failed: " + err.Error())
		}
		z, _ := new(edwards25519.Scalar).SetCanonicalBytes(zb[:]) // < 2¹²⁸ < ℓ
		bScalar.MultiplyAdd(z, s, bScalar)
		kz := keyScalar[key]
		kz.MultiplyAdd(z, k, kz)
		scalars = append(scalars, z)
		points = append(points, r)
	}
	bScalar.Negate(bScalar)
	for _, key := range keyOrder {
		a, _ := new(edwards25519.Point).SetBytes(key[:])
		scalars = append(scalars, keyScalar[key])
		points = append(points, a)
	}
	sum := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	return sum.MultByCofactor(sum).Equal(edwards25519.NewIdentityPoint()) == 1
}

// VerifyEach reports, for each signature in the order added, whether it
// verifies: one batch verification when all do, and one verification per
// signature otherwise.
func (b *Batch) VerifyEach() []bool {
	out := make([]bool, len(b.items))
	if b.Verify() {
		for i := range out {
			out[i] = true
		}
		return out
	}
	for i, it := range b.items {
		out[i] = Verify(it.pub, it.msg, it.sig)
	}
	return out
}
