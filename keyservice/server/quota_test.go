package server

import (
	"net/http"
	"testing"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
)

// TestQuotas fills a user's quotas over HTTP, through two replicas sharing
// one store, and checks that the next write is refused with
// quota_exceeded and changes nothing.
func TestQuotas(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			st := b.open(t)
			limit := func(c *Config) { c.MaxSessionsPerUser = 2 }
			one, two := newTestServer(t, st, limit), newTestServer(t, st, limit)
			alice, bob := one.member(t, "alice"), one.member(t, "bob")
			first := newChain(t, "messaging:quota-1", alice.id, bob.id)
			second := newChain(t, "messaging:quota-2", alice.id, bob.id)
			third := newChain(t, "messaging:quota-3", alice.id, bob.id)
			one.post(t, "alice", "/v1/sessions", first.create())
			two.post(t, "alice", "/v1/sessions", second.create())
			// Sent again: answered as the first time, no third session.
			if r := request(t, one, "POST", "/v1/sessions", userToken(t, "alice"), second.create()); r.status != http.StatusOK {
				t.Fatalf("a genesis sent again at the quota: %d %s, want 200", r.status, r.err.Code)
			}
			if r := request(t, one, "POST", "/v1/sessions", userToken(t, "alice"), third.create()); r.status != http.StatusForbidden || r.err.Code != keyservice.CodeQuotaExceeded {
				t.Fatalf("a third session: %d %s, want 403 %s", r.status, r.err.Code, keyservice.CodeQuotaExceeded)
			}
			if r := request(t, two, "GET", "/v1/sessions?channel_cid=messaging:quota-3", userToken(t, "alice"), nil); r.status != http.StatusNotFound {
				t.Errorf("the refused session's channel: %d, want 404 (nothing stored)", r.status)
			}
			// Quotas are per user: bob still creates.
			bobs := newChain(t, "messaging:quota-bob", bob.id, alice.id)
			two.post(t, "bob", "/v1/sessions", bobs.create())
			// Creations count: deleting a session gives none back.
			if r := request(t, one, "DELETE", "/v1/sessions/"+first.id.String(), userToken(t, "alice"), nil); r.status >= 300 {
				t.Fatalf("delete: %d %s", r.status, r.err.Code)
			}
			if r := request(t, two, "POST", "/v1/sessions", userToken(t, "alice"), third.create()); r.err.Code != keyservice.CodeQuotaExceeded {
				t.Errorf("a session after a delete: %d %s, want %s", r.status, r.err.Code, keyservice.CodeQuotaExceeded)
			}

			// Bytes: a server whose limit is what the second genesis
			// counted, plus one byte — room for no record.
			used := int64(len(second.records[0])) + grantBytes(second.create().Grants)
			tight := newTestServer(t, st, func(c *Config) { c.MaxBytesPerUser = 3*used + 1 })
			// alice's bytes so far: the first and second geneses (the same
			// size, both counted though one is deleted); a third fills it.
			fourth := newChain(t, "messaging:quota-4", alice.id, bob.id)
			if n := int64(len(fourth.records[0])) + grantBytes(fourth.create().Grants); n != used {
				t.Fatalf("test setup: geneses of %d and %d bytes", n, used)
			}
			tight.post(t, "alice", "/v1/sessions", fourth.create())
			before, err := tight.client(t, "alice").Head(t.Context(), fourth.id)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := fourth.sign(alice.id, nil, true)
			if r := request(t, tight, "POST", logPath(fourth.id), userToken(t, "alice"), rec); r.status != http.StatusForbidden || r.err.Code != keyservice.CodeQuotaExceeded {
				t.Fatalf("an append past the bytes: %d %s, want 403 %s", r.status, r.err.Code, keyservice.CodeQuotaExceeded)
			}
			after, err := tight.client(t, "alice").Head(t.Context(), fourth.id)
			if err != nil || after != before {
				t.Errorf("head after a refused append: %+v, %v; want %+v", after, err, before)
			}
			// bob signs the same kind of record within his own bytes.
			bobRec := fourth.add(bob.id, nil, true)
			tight.post(t, "bob", logPath(fourth.id), bobRec)
		})
	}
}

// grantBytes is what grants count against their uploader's quota.
func grantBytes(gs []wire.Grant) int64 {
	var n int64
	for _, g := range gs {
		n += int64(len(g.Grant))
	}
	return n
}
