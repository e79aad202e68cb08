package session

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
)

// benchPair times ours and raw alternately in one loop and reports both and
// their ratio (x-raw = ours / raw time).
func benchPair(b *testing.B, ours, raw func()) { benchTriple(b, ours, raw, nil) }

// benchTriple is benchPair with extra, a primitive that ours needs beyond
// raw, timed in the same loop: x-floor = ours / (raw + extra).
func benchTriple(b *testing.B, ours, raw, extra func()) {
	var tOurs, tRaw, tExtra time.Duration
	for b.Loop() {
		t := time.Now()
		raw()
		tRaw += time.Since(t)
		if extra != nil {
			t = time.Now()
			extra()
			tExtra += time.Since(t)
		}
		t = time.Now()
		ours()
		tOurs += time.Since(t)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tOurs.Nanoseconds())/n, "ours-ns/op")
	b.ReportMetric(float64(tRaw.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(tOurs)/float64(tRaw), "x-raw")
	if extra != nil {
		b.ReportMetric(float64(tOurs)/float64(tRaw+tExtra), "x-floor")
	}
}

// BenchmarkSeal and BenchmarkOpen compare sealing and opening a message
// with the raw primitives it is made of, on the same sizes: an Ed25519
// signature (verification) over the signed bytes, and XChaCha20-Poly1305
// over the padded plaintext and signature with the same associated data.
// Target: x-raw ≤ 1.15.
func BenchmarkSeal(b *testing.B) { benchEnvelope(b, true) }

// BenchmarkOpen: see BenchmarkSeal.
func BenchmarkOpen(b *testing.B) { benchEnvelope(b, false) }

func benchEnvelope(b *testing.B, seal bool) {
	alice := newIdentity(b, "alice", identity.KindX25519)
	s, err := New(nil, cid)
	if err != nil {
		b.Fatal(err)
	}
	ctx := Binding{ChannelCID: cid, MessageID: "3b1f6c1e-6a0b-4c1e-9d5e-1c0a7a1e2f3d", SenderID: "alice", ParentID: ""}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	aead, _ := chacha20poly1305.NewX(bytes.Repeat([]byte{2}, 32))
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	for _, n := range []int{64, 1024, 4096} {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			plain := bytes.Repeat([]byte("x"), n)
			adLen := HeaderSize + len(ctx.appendTo(nil))
			signed := make([]byte, len(purposeEnvelope)+1+adLen+paddedLen(n))
			ad := signed[:adLen]
			body := make([]byte, paddedLen(n)+sigSize)
			out := make([]byte, 0, len(body)+16)
			sig := ed25519.Sign(priv, signed)
			sealedRaw := aead.Seal(nil, nonce, body, ad)
			env, err := s.Seal(alice, ctx, plain)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			if seal {
				benchPair(b, func() {
					if _, err := s.Seal(alice, ctx, plain); err != nil {
						b.Fatal(err)
					}
				}, func() {
					ed25519.Sign(priv, signed)
					aead.Seal(out[:0], nonce, body, ad)
				})
				return
			}
			card := alice.Card()
			benchPair(b, func() {
				if _, err := s.Open(env, ctx, card); err != nil {
					b.Fatal(err)
				}
			}, func() {
				if _, err := aead.Open(out[:0], nonce, sealedRaw, ad); err != nil {
					b.Fatal(err)
				}
				if !ed25519.Verify(pub, signed, sig) {
					b.Fatal("verify")
				}
			})
		})
	}
}

// BenchmarkGrant compares wrapping and unwrapping a grant with raw age
// encryption and decryption of a payload of the same size to the same
// recipient (X25519 and post-quantum hybrid): x-raw. A grant is also signed
// by its granter and verified by its grantee, which raw age is not; x-floor
// compares with raw age plus a raw Ed25519 signature (wrap) or verification
// (unwrap) of the payload, the least a signed grant can cost. Target:
// x-floor ≤ 1.1.
func BenchmarkGrant(b *testing.B) {
	for _, kind := range []identity.Kind{identity.KindHybrid, identity.KindX25519} {
		granter := newIdentity(b, "alice", kind)
		grantee := newIdentity(b, "bob", kind)
		s, _ := New(nil, cid)
		grant, err := NewGrant(granter, grantee.Card(), s, 0)
		if err != nil {
			b.Fatal(err)
		}
		payload := bytes.Repeat([]byte{7}, 1+IDSize+4+KeySize+2+len(cid)+1+3+4+1+5+4+sigSize)
		rawFile := func() []byte {
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, grantee.Card().Recipient())
			if err != nil {
				b.Fatal(err)
			}
			w.Write(payload)
			w.Close()
			return buf.Bytes()
		}
		file := rawFile()
		lookup := fixedLookup(granter.Card())
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
		pub := priv.Public().(ed25519.PublicKey)
		sig := ed25519.Sign(priv, payload)
		rawOpen := func() {
			r, err := age.Decrypt(bytes.NewReader(file), grantee)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, r)
		}
		wrap := func() {
			if _, err := NewGrant(granter, grantee.Card(), s, 0); err != nil {
				b.Fatal(err)
			}
		}
		unwrap := func() {
			if _, err := OpenGrant(grant, grantee, lookup); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("wrap/"+kind.String(), func(b *testing.B) {
			benchTriple(b, wrap, func() { rawFile() }, func() { ed25519.Sign(priv, payload) })
		})
		b.Run("unwrap/"+kind.String(), func(b *testing.B) {
			benchTriple(b, unwrap, rawOpen, func() { ed25519.Verify(pub, payload, sig) })
		})
	}
}
