package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// askCounter counts the requests a Manager makes of its Service.
type askCounter struct {
	Service
	requests atomic.Int32
}

func (c *askCounter) Head(ctx context.Context, id ID) (Head, error) {
	c.requests.Add(1)
	return c.Service.Head(ctx, id)
}

func (c *askCounter) Log(ctx context.Context, id ID, from uint32) ([][]byte, error) {
	c.requests.Add(1)
	return c.Service.Log(ctx, id, from)
}

func (c *askCounter) Grants(ctx context.Context, id ID) ([]GrantRecord, error) {
	c.requests.Add(1)
	return c.Service.Grants(ctx, id)
}

// TestOpenBatchAsksOncePerSession: the epoch in a header is not
// authenticated until the envelope opens, so whoever serves messages can
// name any; a page of envelopes naming epochs that do not exist costs one
// question to the Service per session, not one per envelope.
func TestOpenBatchAsksOncePerSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice := w.user(t, "alice")
	id := newIdentity(t, "bob", identity.KindX25519)
	if err := w.dir.Publish(id.Card()); err != nil {
		t.Fatal(err)
	}
	svc := &askCounter{Service: w.svc.As("bob")}
	bob, err := NewManager(Config{Identity: id, Service: svc, Directory: &w.dir, Rand: testrand.New("rand-bob")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	var items []Sealed
	for i := range 50 {
		b := ctxFor("alice", fmt.Sprintf("m%d", i))
		env, err := DecodeText(seal(t, alice, s.ID(), b.MessageID, "hello"))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 { // the first one is real
			binary.BigEndian.PutUint32(env[1+IDSize:], uint32(1000+i))
		}
		items = append(items, Sealed{Envelope: env, Binding: b})
	}
	res := bob.OpenBatch(ctx, items)
	if res[0].Err != nil || string(res[0].Plaintext) != "hello" {
		t.Fatalf("the real envelope: %q, %v", res[0].Plaintext, res[0].Err)
	}
	for i, r := range res[1:] {
		if !errors.Is(r.Err, ErrUnknownEpoch) {
			t.Fatalf("envelope %d: %v, want ErrUnknownEpoch", i+1, r.Err)
		}
	}
	if n := svc.requests.Load(); n > 4 {
		t.Fatalf("%d requests to the Service for one session", n)
	}
}
