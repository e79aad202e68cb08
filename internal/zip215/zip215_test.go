package zip215

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"github.com/veilchat/veil/internal/testrand"
)

// order8 is a point of order 8.
const order8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"

func point(t testing.TB, h string) *edwards25519.Point {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidPublicKey(t *testing.T) {
	t.Parallel()
	honest := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	hp, err := new(edwards25519.Point).SetBytes(honest)
	if err != nil {
		t.Fatal(err)
	}
	t8 := point(t, order8)
	ident := edwards25519.NewIdentityPoint().Bytes()
	signedZero := bytes.Clone(ident)
	signedZero[31] |= 0x80
	identYPlusP := bytes.Repeat([]byte{0xff}, 32)
	identYPlusP[0], identYPlusP[31] = 0xee, 0x7f // y = p + 1, little-endian
	tests := []struct {
		name, reason string
		key          []byte
		want         bool
	}{
		{"honest", "a key from a seed", honest, true},
		{"mixed order", "the factor 8 removes the small-order part from every verification", new(edwards25519.Point).Add(hp, t8).Bytes(), true},
		{"identity", "verifies R = identity, S = 0 for every message", ident, false},
		{"identity, y + p", "non-canonical and of small order", identYPlusP, false},
		{"identity, sign bit on x = 0", "non-canonical and of small order", signedZero, false},
		{"order 8", "verifies R = identity, S = 0 for every message", t8.Bytes(), false},
		{"not a point", "y = 2 has no x", append([]byte{2}, make([]byte, 31)...), false},
		{"short", "a key is 32 bytes", honest[:31], false},
	}
	for _, tc := range tests {
		if got := ValidPublicKey(tc.key); got != tc.want {
			t.Errorf("%s: ValidPublicKey = %v, want %v; %s", tc.name, got, tc.want, tc.reason)
		}
	}
}

type signature struct{ pub, msg, sig []byte }

// randomSignatures returns n signatures, about a third of them made
// invalid, and some valid only under the cofactored rule: by small-order
// keys, or with a small-order component in R.
func randomSignatures(t testing.TB, rnd *testrand.Reader, n int) []signature {
	t.Helper()
	t8 := point(t, order8)
	ident := edwards25519.NewIdentityPoint().Bytes()
	out := make([]signature, n)
	for i := range out {
		var seed [32]byte
		rnd.Read(seed[:])
		priv := ed25519.NewKeyFromSeed(seed[:])
		msg := make([]byte, i%50)
		rnd.Read(msg)
		s := signature{priv.Public().(ed25519.PublicKey), msg, ed25519.Sign(priv, msg)}
		var pick [2]byte
		rnd.Read(pick[:])
		switch pick[0] % 9 {
		case 0: // a bit flipped in the signature
			s.sig[int(pick[1])%64] ^= 1 << (pick[1] % 8)
		case 1: // another message
			s.msg = append(s.msg, pick[1])
		case 2: // another key
			s.pub = ed25519.NewKeyFromSeed(append(seed[1:], 0)).Public().(ed25519.PublicKey)
		case 3: // a small-order key: R = identity, S = 0 is valid
			s.pub = slices.Clone(t8.Bytes())
			s.sig = append(bytes.Clone(ident), make([]byte, 32)...)
		case 4: // the order-8 point added to the key: invalid for this R
			p, _ := new(edwards25519.Point).SetBytes(s.pub)
			s.pub = p.Add(p, t8).Bytes()
		case 5: // a key that is not a point
			s.pub = append([]byte{2}, make([]byte, 31)...)
		}
		out[i] = s
	}
	return out
}

// TestBatchAgreesWithVerify: on random signatures, valid and invalid, a
// batch decides exactly what Verify decides one at a time.
func TestBatchAgreesWithVerify(t *testing.T) {
	t.Parallel()
	rnd := testrand.New("zip215 batch")
	var passed, failed int
	for round := range 60 {
		sigs := randomSignatures(t, rnd, 1+round%17)
		b := NewBatch(len(sigs))
		want := make([]bool, len(sigs))
		all := true
		for i, s := range sigs {
			b.Add(s.pub, s.msg, s.sig)
			want[i] = Verify(s.pub, s.msg, s.sig)
			all = all && want[i]
		}
		if all {
			passed++
		} else {
			failed++
		}
		if got := b.Verify(); got != all {
			t.Errorf("round %d: batch Verify = %v, one at a time all valid = %v", round, got, all)
		}
		if got := b.VerifyEach(); !slices.Equal(got, want) {
			t.Errorf("round %d: VerifyEach = %v, one at a time %v", round, got, want)
		}
	}
	if passed < 5 || failed < 5 {
		t.Fatalf("%d valid batches and %d invalid ones: too few of either to compare", passed, failed)
	}
	var empty Batch
	if !empty.Verify() || len(empty.VerifyEach()) != 0 || empty.Len() != 0 {
		t.Error("an empty batch must verify, with no results")
	}
}

// BenchmarkVerify compares ZIP 215 verification, one signature at a time
// and in batches, with crypto/ed25519.Verify (the cofactorless rule) on the
// same signatures, in the same run: ns-per-sig for each, and zip215 and
// batch as multiples of crypto/ed25519 (x-stdlib; below 1 is faster).
// Expected: single ≈ 1, a batch of 100 ≈ 0.5.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("sigs=%d", n), func(b *testing.B) {
			sigs := make([]signature, n)
			rnd := testrand.New("bench")
			for i := range sigs {
				var seed [32]byte
				rnd.Read(seed[:])
				priv := ed25519.NewKeyFromSeed(seed[:])
				msg := make([]byte, 200)
				rnd.Read(msg)
				sigs[i] = signature{priv.Public().(ed25519.PublicKey), msg, ed25519.Sign(priv, msg)}
			}
			var tStd, tOne, tBatch time.Duration
			for b.Loop() {
				t := time.Now()
				for _, s := range sigs {
					if !ed25519.Verify(s.pub, s.msg, s.sig) {
						b.Fatal("crypto/ed25519 rejects a valid signature")
					}
				}
				tStd += time.Since(t)
				t = time.Now()
				for _, s := range sigs {
					if !Verify(s.pub, s.msg, s.sig) {
						b.Fatal("zip215 rejects a valid signature")
					}
				}
				tOne += time.Since(t)
				t = time.Now()
				batch := NewBatch(n)
				for _, s := range sigs {
					batch.Add(s.pub, s.msg, s.sig)
				}
				if !batch.Verify() {
					b.Fatal("a batch of valid signatures fails")
				}
				tBatch += time.Since(t)
			}
			per := float64(b.N * n)
			b.ReportMetric(float64(tStd.Nanoseconds())/per, "stdlib-ns/sig")
			b.ReportMetric(float64(tOne.Nanoseconds())/per, "zip215-ns/sig")
			b.ReportMetric(float64(tBatch.Nanoseconds())/per, "batch-ns/sig")
			b.ReportMetric(float64(tOne)/float64(tStd), "zip215-x-stdlib")
			b.ReportMetric(float64(tBatch)/float64(tStd), "batch-x-stdlib")
		})
	}
}
