package session

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestOpenBatchMatchesOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	var items []Sealed
	var want []string
	add := func(env []byte, b Binding, plain string) {
		items = append(items, Sealed{Envelope: env, Binding: b})
		want = append(want, plain)
	}
	for i := range 40 {
		sender := alice
		if i%4 == 3 {
			sender = carol
		}
		b := ctxFor(sender.Identity().UserID(), fmt.Sprintf("m%d", i))
		text := seal(t, sender, s.ID(), b.MessageID, fmt.Sprintf("message %d", i))
		env, err := DecodeText(text)
		if err != nil {
			t.Fatal(err)
		}
		add(env, b, fmt.Sprintf("message %d", i))
	}
	// Tampered by someone without the key: the AEAD fails.
	tampered := append([]byte(nil), items[5].Envelope...)
	tampered[len(tampered)-3] ^= 1
	items[5].Envelope, want[5] = tampered, "ErrDecrypt"
	// Moved to another message ID.
	items[9].Binding.MessageID, want[9] = "elsewhere", "ErrDecrypt"
	// Forged by a member: decrypts, signature does not verify.
	sess, err := carol.Retrieve(ctx, s.ID())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseHeader(items[13].Envelope)
	ep := sess.epochs[h.Epoch]
	nonce := items[13].Envelope[9+IDSize+commitSize : HeaderSize]
	ad := items[13].Binding.appendTo(append([]byte(nil), items[13].Envelope[:HeaderSize]...))
	body, err := ep.aead.Open(nil, nonce, items[13].Envelope[HeaderSize:], ad)
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)-1] ^= 1
	items[13].Envelope = append(append([]byte(nil), items[13].Envelope[:HeaderSize]...), ep.aead.Seal(nil, nonce, body, ad)...)
	want[13] = "ErrSignature"
	// Not an envelope.
	items[20].Envelope, want[20] = []byte("nope"), "ErrDecrypt"

	got := bob.OpenBatch(ctx, items)
	if len(got) != len(items) {
		t.Fatalf("%d results for %d envelopes", len(got), len(items))
	}
	for i, r := range got {
		switch want[i] {
		case "ErrSignature":
			if !errors.Is(r.Err, ErrSignature) || !errors.Is(r.Err, ErrDecrypt) || r.Plaintext != nil {
				t.Errorf("item %d: %q, %v; want ErrSignature", i, r.Plaintext, r.Err)
			}
		case "ErrDecrypt":
			if !errors.Is(r.Err, ErrDecrypt) || errors.Is(r.Err, ErrSignature) || r.Plaintext != nil {
				t.Errorf("item %d: %q, %v; want ErrDecrypt", i, r.Plaintext, r.Err)
			}
		default:
			if r.Err != nil || string(r.Plaintext) != want[i] {
				t.Errorf("item %d: %q, %v; want %q", i, r.Plaintext, r.Err, want[i])
			}
		}
		// One by one, on a manager that has seen nothing, gives the same.
		if one, err := carol.Open(ctx, items[i].Envelope, items[i].Binding); (err == nil) != (r.Err == nil) ||
			errors.Is(err, ErrSignature) != errors.Is(r.Err, ErrSignature) || string(one) != string(r.Plaintext) {
			t.Errorf("item %d: batch %q, %v; one by one %q, %v", i, r.Plaintext, r.Err, one, err)
		}
	}

	// A replayed older revision fails in the batch as it would alone.
	b0 := ctxFor("alice", "edited")
	v0, _ := DecodeText(seal(t, alice, s.ID(), "edited", "first"))
	b1 := b0
	b1.Revision = 1
	t1, err := alice.SealText(ctx, s.ID(), b1, []byte("second"), 5000)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := DecodeText(t1)
	res := bob.OpenBatch(ctx, []Sealed{{v1, b1}, {v0, b0}})
	if res[0].Err != nil || string(res[0].Plaintext) != "second" || !errors.Is(res[1].Err, ErrStaleRevision) {
		t.Fatalf("revision 1 then 0: %q %v, %q %v", res[0].Plaintext, res[0].Err, res[1].Plaintext, res[1].Err)
	}

	// A non-member gets the service's refusal for every envelope.
	dave := w.user(t, "dave")
	for i, r := range dave.OpenBatch(ctx, items[:3]) {
		if !errors.Is(r.Err, ErrForbidden) {
			t.Errorf("dave, item %d: %v, want ErrForbidden", i, r.Err)
		}
	}
}
