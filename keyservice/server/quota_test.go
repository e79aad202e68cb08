package server

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
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

			// Bytes: a server whose limit is what two geneses count, plus
			// one byte — room for no record after them.
			used := int64(len(second.records[0])) + grantBytes(second.create().Grants)
			tight := newTestServer(t, st, func(c *Config) { c.MaxBytesPerUser = 2*used + 1 })
			// alice's bytes so far: the second genesis (the first was
			// freed when it was deleted); a fourth fills her quota.
			fourth := newChain(t, "messaging:quota-4", alice.id, bob.id)
			if n := int64(len(fourth.records[0])) + grantBytes(fourth.create().Grants); n != used {
				t.Fatalf("test setup: geneses of %d and %d bytes", n, used)
			}
			tight.post(t, "alice", "/v1/sessions", fourth.create())
			before, err := tight.client(t, "alice").Head(t.Context(), fourth.id)
			if err != nil {
				t.Fatal(err)
			}
			rec, recState := fourth.sign(alice.id, nil, true)
			if r := request(t, tight, "POST", logPath(fourth.id), userToken(t, "alice"), rec); r.status != http.StatusForbidden || r.err.Code != keyservice.CodeQuotaExceeded {
				t.Fatalf("an append past the bytes: %d %s, want 403 %s", r.status, r.err.Code, keyservice.CodeQuotaExceeded)
			}
			after, err := tight.client(t, "alice").Head(t.Context(), fourth.id)
			if err != nil || after != before {
				t.Errorf("head after a refused append: %+v, %v; want %+v", after, err, before)
			}
			// Deleting a session frees its bytes: the refused record now fits.
			if r := request(t, two, "DELETE", "/v1/sessions/"+second.id.String(), userToken(t, "alice"), nil); r.status >= 300 {
				t.Fatalf("delete: %d %s", r.status, r.err.Code)
			}
			tight.post(t, "alice", logPath(fourth.id), rec)
			fourth.records, fourth.states = append(fourth.records, rec.Record), append(fourth.states, recState)
			// bob signs the same kind of record within his own bytes.
			bobRec := fourth.add(bob.id, nil, true)
			tight.post(t, "bob", logPath(fourth.id), bobRec)
		})
	}
}

// TestGrantSizeOverHTTP: a grant of session.MaxGrantSize bytes is stored,
// one byte more is refused with invalid_grants and stores nothing, in a
// genesis and in an append, on SQLite and PostgreSQL.
func TestGrantSizeOverHTTP(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t, b.open(t))
			alice, bob := srv.member(t, "alice"), srv.member(t, "bob")
			sized := func(g wire.Grant, n int) wire.Grant {
				g.Grant = append(bytes.Clone(g.Grant), make([]byte, n-len(g.Grant))...)
				return g
			}
			over := newChain(t, "messaging:grant-over", alice.id, bob.id)
			req := over.create()
			req.Grants[1] = sized(req.Grants[1], session.MaxGrantSize+1)
			if r := request(t, srv, "POST", "/v1/sessions", userToken(t, "alice"), req); r.status != http.StatusBadRequest || r.err.Code != keyservice.CodeInvalidGrants {
				t.Fatalf("a genesis with a grant of %d bytes: %d %s, want 400 %s", session.MaxGrantSize+1, r.status, r.err.Code, keyservice.CodeInvalidGrants)
			}
			if r := request(t, srv, "GET", "/v1/sessions?channel_cid=messaging:grant-over", userToken(t, "alice"), nil); r.status != http.StatusNotFound {
				t.Errorf("the refused session's channel: %d, want 404 (nothing stored)", r.status)
			}
			at := newChain(t, "messaging:grant-at", alice.id, bob.id)
			req = at.create()
			req.Grants[1] = sized(req.Grants[1], session.MaxGrantSize)
			srv.post(t, "alice", "/v1/sessions", req)

			before, err := srv.client(t, "alice").Head(t.Context(), at.id)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := at.sign(alice.id, nil, true)
			orig := rec.Grants[0]
			rec.Grants[0] = sized(orig, session.MaxGrantSize+1)
			if r := request(t, srv, "POST", logPath(at.id), userToken(t, "alice"), rec); r.status != http.StatusBadRequest || r.err.Code != keyservice.CodeInvalidGrants {
				t.Fatalf("an append with a grant of %d bytes: %d %s, want 400 %s", session.MaxGrantSize+1, r.status, r.err.Code, keyservice.CodeInvalidGrants)
			}
			if after, err := srv.client(t, "alice").Head(t.Context(), at.id); err != nil || after != before {
				t.Errorf("head after a refused append: %+v, %v; want %+v", after, err, before)
			}
			rec.Grants[0] = sized(orig, session.MaxGrantSize)
			srv.post(t, "alice", logPath(at.id), rec)
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
