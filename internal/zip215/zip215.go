package zip215

import (
	"bytes"
	"crypto/ed25519"

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
	bv    ed25519consensus.BatchVerifier
	items []item
}

// item keeps what a failed batch needs to find the bad signatures.
type item struct {
	pub, msg, sig []byte
}

// NewBatch returns an empty batch with room for n signatures.
func NewBatch(n int) *Batch {
	return &Batch{bv: ed25519consensus.NewPreallocatedBatchVerifier(n), items: make([]item, 0, n)}
}

// Add appends a signature to the batch. The batch keeps references to pub,
// msg and sig until the last call to VerifyEach: the caller must not modify
// them before.
func (b *Batch) Add(pub, msg, sig []byte) {
	b.bv.Add(pub, msg, sig)
	b.items = append(b.items, item{pub, msg, sig})
}

// Len returns the number of signatures added.
func (b *Batch) Len() int { return len(b.items) }

// Verify reports whether every signature added verifies; an empty batch
// does. It reads 16 random bytes per signature from crypto/rand (the
// weights that make a batch of invalid signatures fail).
func (b *Batch) Verify() bool {
	return len(b.items) == 0 || b.bv.Verify()
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
