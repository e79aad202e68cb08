package memberlog

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// synthetic returns a roster entry for a user who never signs: its anchor
// names no real card.
func synthetic(i int) Member {
	m := Member{UserID: fmt.Sprintf("user-%06d", i)}
	testrand.New(m.UserID).Read(m.Anchor.Fingerprint[:])
	return m
}

// signedBy is what a raw Ed25519 verification of a record checks.
type signedBy struct {
	pub      ed25519.PublicKey
	msg, sig []byte
}

func rawSigned(tb testing.TB, raw []byte, card *identity.Card) signedBy {
	r := parsed(tb, raw)
	return signedBy{card.SigningKey(), slices.Concat([]byte(labelSign), []byte{0}, r.signed()), r.Signature[:]}
}

// benchLog builds a log of n changes by ten signing members over a roster
// of about a hundred more: per ten records, four adds with history, two
// removals with a new epoch, two rotations, a promotion and a demotion.
func benchLog(b *testing.B, n int) (genesis []byte, records [][]byte, dir directory, raws []signedBy) {
	dir = directory{}
	var actors []*identity.Identity
	for i := range 10 {
		user := fmt.Sprintf("signer-%d", i)
		id, err := identity.Generate(testrand.New(user), user, identity.Options{Kind: identity.KindX25519, Created: t0})
		if err != nil {
			b.Fatal(err)
		}
		actors = append(actors, id)
		dir[user] = id.Cards()
	}
	var members []Member
	for _, a := range actors[1:] {
		members = append(members, Member{UserID: a.UserID(), Anchor: AnchorOf(a.Card())})
	}
	next := 0
	var present []Member
	for range 100 {
		present = append(present, synthetic(next))
		next++
	}
	members = append(members, present...)
	admin := actors[0]
	genesis, s, err := NewGenesis(admin, admin.Card(), "messaging:bench", members, DefaultPolicy, commitment(0), nonce("bench"), 1)
	if err != nil {
		b.Fatal(err)
	}
	raws = append(raws, rawSigned(b, genesis, admin.Card()))
	for i := range n {
		actor := actors[1+i%(len(actors)-1)]
		var ops []Op
		newEpoch := false
		switch i % 10 {
		case 0, 1, 2, 3:
			actor = admin
			ops = []Op{{Kind: OpAdd, Member: synthetic(next)}}
			present = append(present, synthetic(next))
			next++
		case 4, 5:
			ops, newEpoch = []Op{remove(present[0].UserID)}, true
			present = present[1:]
		case 6, 7:
			newEpoch = true
		case 8:
			actor, ops = admin, []Op{setRole(actors[1+i%9].UserID(), RoleAdmin)}
		case 9:
			actor, ops = admin, []Op{setRole(actors[1+(i-1)%9].UserID(), RoleMember)}
		}
		raw, ns, err := s.NewChange(actor, ops, newEpoch, commitment(s.Epoch()+1), uint64(i))
		if err != nil {
			b.Fatalf("record %d: %v", i+1, err)
		}
		s = ns
		records = append(records, raw)
		raws = append(raws, rawSigned(b, raw, actor.Card()))
	}
	return genesis, records, dir, raws
}

// BenchmarkVerifyLog verifies a log of 1,000 changes from its genesis, as
// a client does at first contact, and compares with raw Ed25519
// verifications of the same records' signed bytes: x-ed25519-verify is
// ours / raw. What remains beyond the signatures is parsing, the rules and
// one roster digest per record.
func BenchmarkVerifyLog(b *testing.B) {
	const n = 1000
	genesis, records, dir, raws := benchLog(b, n)
	id := SessionIDOf(genesis)
	var tOurs, tRaw time.Duration
	for b.Loop() {
		t := time.Now()
		for _, r := range raws {
			if !ed25519.Verify(r.pub, r.msg, r.sig) {
				b.Fatal("raw verification failed")
			}
		}
		tRaw += time.Since(t)
		t = time.Now()
		s, err := Verify(genesis, id, dir.cards)
		for _, raw := range records {
			if err != nil {
				break
			}
			s, err = s.Apply(raw, dir.cards)
		}
		tOurs += time.Since(t)
		if err != nil || s.Seq() != n {
			b.Fatalf("the log did not verify: %v", err)
		}
	}
	b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N*(n+1)), "ns/record")
	b.ReportMetric(float64(tOurs)/float64(tRaw), "x-ed25519-verify")
}

// BenchmarkChange builds, signs and applies one removal with a new epoch
// in sessions of 10, 100 and 1,000 members, the signer's and a reader's
// work, against raw Ed25519 on the same bytes: x-ed25519-verify is ours /
// one verification, x-ed25519-sign+verify ours / one signature and one
// verification, the least a signed record costs both sides. Beyond that:
// two roster digests, linear in the roster.
func BenchmarkChange(b *testing.B) {
	alice := signer(b, "alice")
	dir := honest(b)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	for _, size := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			var members []Member
			for i := range size - 1 {
				members = append(members, synthetic(i))
			}
			genesis, s, err := NewGenesis(alice, alice.Card(), "messaging:bench", members, DefaultPolicy, commitment(0), nonce("bench"), 1)
			if err != nil {
				b.Fatal(err)
			}
			reader, err := Verify(genesis, s.ID(), dir.cards)
			if err != nil {
				b.Fatal(err)
			}
			ops := []Op{remove(members[0].UserID)}
			sample, _, err := s.NewChange(alice, ops, true, commitment(1), 2)
			if err != nil {
				b.Fatal(err)
			}
			msg := rawSigned(b, sample, alice.Card()).msg
			sig := ed25519.Sign(priv, msg)
			var tOurs, tSign, tVerify time.Duration
			for b.Loop() {
				t := time.Now()
				ed25519.Sign(priv, msg)
				tSign += time.Since(t)
				t = time.Now()
				if !ed25519.Verify(pub, msg, sig) {
					b.Fatal("raw verification failed")
				}
				tVerify += time.Since(t)
				t = time.Now()
				raw, _, err := s.NewChange(alice, ops, true, commitment(1), 2)
				if err == nil {
					_, err = reader.Apply(raw, dir.cards)
				}
				tOurs += time.Since(t)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N), "ours-ns/op")
			b.ReportMetric(float64(tOurs)/float64(tVerify), "x-ed25519-verify")
			b.ReportMetric(float64(tOurs)/float64(tSign+tVerify), "x-ed25519-sign+verify")
		})
	}
}
