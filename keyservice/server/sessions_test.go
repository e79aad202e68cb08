package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
)

// TestCreate sends geneses to POST /v1/sessions: each is stored if the
// caller signed it with exactly the grants it needs, answered again when
// its creator sends it again, and refused with the code that names why
// otherwise, rights before content.
func TestCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.MaxMembersPerCall = 4 })
	alice, bob := srv.member(t, "alice"), srv.member(t, "bob")
	carol := srv.member(t, "carol")
	first := newChain(t, "messaging:first", alice.id, bob.id)
	srv.post(t, "alice", "/v1/sessions", first.create())
	// alice at generation 1, which the directory does not have.
	alice1, err := alice.id.Rotate(testrand.New("alice1"), identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	with := func(c *chain, edit func(*wire.CreateSessionRequest)) wire.CreateSessionRequest {
		req := c.create()
		edit(&req)
		return req
	}
	fresh := func(cid string) *chain { return newChain(t, cid, alice.id, bob.id) }
	tampered := fresh("messaging:tampered").create()
	tampered.Genesis = bytes.Clone(tampered.Genesis)
	tampered.Genesis[len(tampered.Genesis)-1] ^= 1
	change := fresh("messaging:change")
	changeReq := change.add(alice.id, nil, true)
	var many []*identity.Identity
	for i := range 4 {
		many = append(many, srv.member(t, fmt.Sprintf("many%d", i)).id)
	}
	tests := []struct {
		name   string
		as     string
		body   any
		status int
		code   string
		reason string
	}{
		{"same genesis again", "alice", first.create(), http.StatusOK, "", "a genesis sent again is answered as the first time"},
		{"same genesis by a member", "bob", first.create(), http.StatusForbidden, keyservice.CodeForbidden, "only the creator stores its genesis, even again"},
		{"same genesis by another user", "carol", first.create(), http.StatusForbidden, keyservice.CodeForbidden, "only the creator stores its genesis, even again"},
		{"another user's genesis with an oversize grant", "carol", with(fresh("messaging:g8"), func(r *wire.CreateSessionRequest) { r.Grants[0].Grant = make([]byte, session.MaxGrantSize+1) }), http.StatusForbidden, keyservice.CodeForbidden, "rights come before the request's content"},
		{"another session of the channel", "alice", fresh("messaging:first").create(), http.StatusConflict, keyservice.CodeSessionExists, "one session per channel, never adopted silently"},
		{"signed by another user", "bob", fresh("messaging:bob").create(), http.StatusForbidden, keyservice.CodeForbidden, "the caller signs its genesis"},
		{"not a record", "alice", wire.CreateSessionRequest{Genesis: []byte("genesis"), Grants: []wire.Grant{fakeGrant("alice", 0)}}, http.StatusBadRequest, keyservice.CodeInvalidLog, "records are parsed"},
		{"no genesis", "alice", wire.CreateSessionRequest{Grants: []wire.Grant{fakeGrant("alice", 0)}}, http.StatusBadRequest, keyservice.CodeInvalidLog, "a genesis is required"},
		{"bad signature", "alice", tampered, http.StatusBadRequest, keyservice.CodeInvalidLog, "signatures are verified"},
		{"a change, not a genesis", "alice", wire.CreateSessionRequest{Genesis: changeReq.Record, Grants: changeReq.Grants}, http.StatusBadRequest, keyservice.CodeInvalidLog, "a log starts with a genesis"},
		{"a grant missing", "alice", with(fresh("messaging:g1"), func(r *wire.CreateSessionRequest) { r.Grants = r.Grants[:1] }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "every member gets its epoch-0 grant"},
		{"a grant for a stranger", "alice", with(fresh("messaging:g2"), func(r *wire.CreateSessionRequest) { r.Grants = append(r.Grants, fakeGrant("carol", 0)) }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "nobody the log does not name"},
		{"a grant for epoch 1", "alice", with(fresh("messaging:g3"), func(r *wire.CreateSessionRequest) { r.Grants[0].Epoch = 1 }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "a genesis starts epoch 0"},
		{"two grants for one member", "alice", with(fresh("messaging:g4"), func(r *wire.CreateSessionRequest) { r.Grants[1] = r.Grants[0] }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "one grant per member"},
		{"an empty grant", "alice", with(fresh("messaging:g5"), func(r *wire.CreateSessionRequest) { r.Grants[0].Grant = nil }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "grants are not empty"},
		{"an oversize grant", "alice", with(fresh("messaging:g6"), func(r *wire.CreateSessionRequest) { r.Grants[0].Grant = make([]byte, session.MaxGrantSize+1) }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "grants are bounded"},
		{"a NUL grantee", "alice", with(fresh("messaging:g7"), func(r *wire.CreateSessionRequest) { r.Grants[0].Grantee = "al\x00ice" }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "grantees are user IDs"},
		{"more grants than a call carries", "alice", newChain(t, "messaging:many", alice.id, many...).create(), http.StatusBadRequest, keyservice.CodeTooManyMembers, "Config.MaxMembersPerCall"},
		{"signed by an unpublished generation", "alice", newChain(t, "messaging:gen1", alice1).create(), http.StatusNotFound, keyservice.CodeUnknownUser, "the directory has no card to verify it with"},
		{"as the service", "", first.create(), http.StatusForbidden, keyservice.CodeForbidden, "the service signs nothing"},
	}
	serviceTok, _ := ServiceToken(testSecret, "", 1<<40)
	for _, tt := range tests {
		tok := serviceTok
		if tt.as != "" {
			tok = userToken(t, tt.as)
		}
		r := request(t, srv, "POST", "/v1/sessions", tok, tt.body)
		if r.status != tt.status || r.err.Code != tt.code {
			t.Errorf("%s: %d %s (%s), want %d %s (%s)", tt.name, r.status, r.err.Code, r.err.Message, tt.status, tt.code, tt.reason)
		}
		if r.status < 300 {
			var resp wire.CreateSessionResponse
			if json.Unmarshal(r.body, &resp); resp.ID != first.id.String() {
				t.Errorf("%s: answered ID %q, want %s", tt.name, resp.ID, first.id)
			}
		}
	}
	// The client's view of the same answers.
	exists := fresh("messaging:first")
	err = alice.c.Create(ctx, exists.records[0], toGrants(exists.create().Grants))
	var se *session.SessionExistsError
	if !errors.As(err, &se) || se.ID != first.id || se.ChannelCID != "messaging:first" || !errors.Is(err, session.ErrSessionExists) {
		t.Errorf("Client.Create on a taken channel = %v, want a *session.SessionExistsError naming %v", err, first.id)
	}
	if err := alice.c.Create(ctx, first.records[0], nil); err != nil {
		t.Errorf("Client.Create of a stored genesis by its creator = %v, want nil", err)
	}
	if err := carol.c.Create(ctx, first.records[0], nil); !errors.Is(err, session.ErrForbidden) {
		t.Errorf("Client.Create of a stored genesis by another user = %v, want ErrForbidden", err)
	}
	// Nothing refused was stored.
	for _, cid := range []string{"messaging:bob", "messaging:tampered", "messaging:change", "messaging:g1", "messaging:g8", "messaging:many", "messaging:gen1"} {
		if _, err := alice.c.Lookup(ctx, cid); !errors.Is(err, session.ErrUnknownSession) {
			t.Errorf("refused create left a session for %s: %v", cid, err)
		}
	}
	if h, err := alice.c.Head(ctx, first.id); err != nil || h.Seq != 0 || h.Hash != first.head().Head() {
		t.Errorf("head of the first session: %+v, %v", h, err)
	}
}

func toGrants(ws []wire.Grant) []session.GrantRecord {
	out := make([]session.GrantRecord, len(ws))
	for i, g := range ws {
		out[i] = session.GrantRecord{Grantee: g.Grantee, Epoch: g.Epoch, Grant: g.Grant}
	}
	return out
}

// TestAppend sends records to POST /v1/sessions/{id}/log: each is stored
// if it follows the head, a member (its signer, or one publishing it
// again) sends it, the log's rules allow it and its grants are exactly
// those it needs; a record sent again by its signer or by a member is
// answered as the first time, even once it took the signer out;
// everything else is refused with the code session.MemoryService's error
// maps to, rights before content.
func TestAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t))
	alice, bob, carol := srv.member(t, "alice"), srv.member(t, "bob"), srv.member(t, "carol")
	rita, mallory := srv.member(t, "rita"), srv.member(t, "mallory")
	c := newChain(t, "messaging:append", alice.id, bob.id, rita.id)
	srv.post(t, "alice", "/v1/sessions", c.create())
	first := c.add(alice.id, []memberlog.Op{removeOp("rita")}, true)
	srv.post(t, "alice", logPath(c.id), first)
	second := c.add(bob.id, []memberlog.Op{}, true)
	srv.post(t, "bob", logPath(c.id), second)
	// Records that do not follow the head: built on record 1.
	stale := &chain{t: t, id: c.id, records: c.records[:2], states: c.states[:2]}
	staleReq, _ := stale.sign(alice.id, nil, true)
	other := newChain(t, "messaging:other", alice.id, bob.id)
	otherReq, _ := other.sign(alice.id, nil, true)
	next, _ := c.sign(alice.id, []memberlog.Op{addOp(carol.id)}, false)
	bobNext, _ := c.sign(bob.id, nil, true)
	ritaNext, _ := stale.sign(alice.id, nil, true) // anything: rita is refused before it is read
	bob1, err := bob.id.Rotate(testrand.New("bob1"), identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	unpublished, _ := c.sign(bob1, nil, true)
	edit := func(req wire.AppendRequest, f func(*wire.AppendRequest)) wire.AppendRequest {
		req.Grants = append([]wire.Grant(nil), req.Grants...)
		req.Record = bytes.Clone(req.Record)
		f(&req)
		return req
	}
	unknown := session.ID{0xab}
	tests := []struct {
		name   string
		as     string
		id     session.ID
		body   any
		status int
		code   string
		reason string
	}{
		{"unknown session", "alice", unknown, next, http.StatusNotFound, keyservice.CodeUnknownSession, "no session, no log"},
		{"not a member", "mallory", c.id, next, http.StatusForbidden, keyservice.CodeForbidden, "the roster appends"},
		{"removed member", "rita", c.id, ritaNext, http.StatusForbidden, keyservice.CodeForbidden, "the current roster, not the genesis's"},
		{"another member's record, a grant missing", "bob", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants = nil }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "a member may publish another's record again (a restore), with exactly its grants"},
		{"not a member, an oversize grant", "mallory", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants[0].Grant = make([]byte, session.MaxGrantSize+1) }), http.StatusForbidden, keyservice.CodeForbidden, "rights come before the request's content"},
		{"another member's record, an oversize grant", "bob", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants[0].Grant = make([]byte, session.MaxGrantSize+1) }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "a member's request is judged on its content"},
		{"another member's record, not the next", "bob", c.id, staleReq, http.StatusConflict, keyservice.CodeConflict, "a record published again follows the head like any other"},
		{"not a member, another's older record", "mallory", c.id, first, http.StatusForbidden, keyservice.CodeForbidden, "only a signer or a member hears that a record is stored"},
		{"not next", "alice", c.id, staleReq, http.StatusConflict, keyservice.CodeConflict, "another record came first"},
		{"not a record", "alice", c.id, wire.AppendRequest{Record: []byte("record")}, http.StatusBadRequest, keyservice.CodeInvalidLog, "records are parsed"},
		{"no record", "alice", c.id, wire.AppendRequest{}, http.StatusBadRequest, keyservice.CodeInvalidLog, "a record is required"},
		{"bad signature", "alice", c.id, edit(next, func(r *wire.AppendRequest) { r.Record[len(r.Record)-1] ^= 1 }), http.StatusBadRequest, keyservice.CodeInvalidLog, "signatures are verified"},
		{"a genesis", "alice", c.id, wire.AppendRequest{Record: other.records[0]}, http.StatusBadRequest, keyservice.CodeInvalidLog, "one genesis per log"},
		{"another session's record", "alice", c.id, otherReq, http.StatusBadRequest, keyservice.CodeInvalidLog, "a record names its session"},
		{"a grant missing", "alice", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants = nil }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "an added member gets the current epoch's grant"},
		{"a grant for a member who holds the key", "alice", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants = append(r.Grants, fakeGrant("bob", 2)) }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "exactly the grants the record needs"},
		{"a grant for another epoch", "alice", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants[0].Epoch = 3 }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "grants are for the epoch the record leaves in force"},
		{"a grant for the removed member", "bob", c.id, edit(bobNext, func(r *wire.AppendRequest) { r.Grants = append(r.Grants, fakeGrant("rita", 3)) }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "a removed member gets nothing"},
		{"an oversize grant", "alice", c.id, edit(next, func(r *wire.AppendRequest) { r.Grants[0].Grant = make([]byte, session.MaxGrantSize+1) }), http.StatusBadRequest, keyservice.CodeInvalidGrants, "grants are bounded"},
		{"signed by an unpublished generation", "bob", c.id, unpublished, http.StatusNotFound, keyservice.CodeUnknownUser, "the directory has no card to verify it with"},
		{"bad session ID", "alice", session.ID{}, next, http.StatusBadRequest, keyservice.CodeInvalidRequest, "IDs are checked"},
		{"unknown field", "alice", c.id, `{"record":"AQ==","grants":[],"epoch":3}`, http.StatusBadRequest, keyservice.CodeInvalidRequest, "unknown fields are refused"},
	}
	for _, tt := range tests {
		path := logPath(tt.id)
		if tt.id.IsZero() {
			path = "/v1/sessions/zz/log"
		}
		r := request(t, srv, "POST", path, userToken(t, tt.as), tt.body)
		if r.status != tt.status || r.err.Code != tt.code {
			t.Errorf("%s: %d %s (%s), want %d %s (%s)", tt.name, r.status, r.err.Code, r.err.Message, tt.status, tt.code, tt.reason)
		}
		if tt.code == keyservice.CodeConflict {
			// The conflict names the head to reload from.
			if h := r.err.Head; h == nil || h.Seq != 2 || !bytes.Equal(h.Hash, hashOf(c.head())) {
				t.Errorf("%s: the conflict's head is %+v, want record 2", tt.name, h)
			}
		}
	}
	head := func() session.Head {
		h, err := alice.c.Head(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := head(); h.Seq != 2 || h.Hash != c.head().Head() {
		t.Fatalf("refused appends moved the head: %+v", h)
	}
	// Sent again by its signer — the last record, an older one, with other
	// grants — each is answered as stored, and nothing moves.
	again := []struct {
		name string
		as   string
		body wire.AppendRequest
	}{
		{"the last record", "bob", second},
		{"an older record", "alice", first},
		{"with other grants", "bob", wire.AppendRequest{Record: second.Record}},
		{"another member's older record", "bob", first},
		{"another member's last record", "alice", second},
	}
	for _, a := range again {
		if r := request(t, srv, "POST", logPath(c.id), userToken(t, a.as), a.body); r.status != http.StatusOK {
			t.Errorf("%s sent again: %d %s", a.name, r.status, r.err.Code)
		}
	}
	if h := head(); h.Seq != 2 {
		t.Fatalf("records sent again moved the head to %d", h.Seq)
	}
	// The next record, alice's, is stored when bob sends it (as a member
	// publishes a record again after a restore); carol, added with
	// history, reads the log.
	srv.post(t, "bob", logPath(c.id), c.add(alice.id, []memberlog.Op{addOp(carol.id)}, false))
	log, err := carol.c.Log(ctx, c.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.records, log); diff != "" {
		t.Errorf("the stored log (-want +got)\n%s", diff)
	}
	if g, err := carol.c.Grants(ctx, c.id); err != nil || len(g) != 1 || g[0].Epoch != 2 {
		t.Errorf("carol's grants: %v, %v; want the one for epoch 2", g, err)
	}
	// A member who leaves reads no more and appends nothing new, but may
	// send its leave again (a retry that lost the answer).
	leave := c.add(carol.id, []memberlog.Op{removeOp("carol")}, false)
	srv.post(t, "carol", logPath(c.id), leave)
	if r := request(t, srv, "POST", logPath(c.id), userToken(t, "carol"), leave); r.status != http.StatusOK {
		t.Errorf("a member who left sending its leave again: %d %s, want 200 (the signer's own stored record)", r.status, r.err.Code)
	}
	if req, _ := c.sign(alice.id, nil, true); request(t, srv, "POST", logPath(c.id), userToken(t, "carol"), req).status != http.StatusForbidden {
		t.Error("a member who left sending a new record: want 403")
	}
	if _, err := carol.c.Grants(ctx, c.id); !errors.Is(err, session.ErrForbidden) {
		t.Errorf("grants of a member who left: %v, want ErrForbidden", err)
	}
	// She left without a new epoch, so she holds its key: added back
	// before the next one she needs no grant, and reads hers again.
	srv.post(t, "alice", logPath(c.id), c.add(alice.id, []memberlog.Op{addOp(carol.id)}, false))
	if g, err := carol.c.Grants(ctx, c.id); err != nil || len(g) != 1 || g[0].Epoch != 2 {
		t.Errorf("carol's grants, added back before a new epoch: %v, %v; want the one for epoch 2 she kept", g, err)
	}
	if h := head(); h.Seq != 5 || h.Hash != c.head().Head() {
		t.Errorf("head after the leave sent again and carol's return: %+v, want record 5", h)
	}
	_ = mallory
}

func hashOf(st *memberlog.State) []byte { h := st.Head(); return h[:] }

// TestLogPages reads a log of more records than a page holds, through the
// client (which follows the pages) and page by page.
func TestLogPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.MaxMembersPerCall = 3 })
	alice, bob := srv.member(t, "alice"), srv.member(t, "bob")
	c := newChain(t, "messaging:pages", alice.id, bob.id)
	srv.post(t, "alice", "/v1/sessions", c.create())
	for i := range 7 {
		signer := []*identity.Identity{alice.id, bob.id}[i%2]
		srv.post(t, signer.UserID(), logPath(c.id), c.add(signer, nil, true))
	}
	for _, from := range []uint32{0, 1, 3, 5, 7, 8, 9, math.MaxUint32} {
		got, err := bob.c.Log(ctx, c.id, from)
		if err != nil {
			t.Fatalf("Log from %d: %v", from, err)
		}
		var want [][]byte
		if from < uint32(len(c.records)) {
			want = c.records[from:]
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Log from %d over pages of 3 (-want +got)\n%s", from, diff)
		}
	}
	page := func(query string) (int, wire.LogResponse) {
		r := request(t, srv, "GET", logPath(c.id)+"?"+query, userToken(t, "bob"), nil)
		var resp wire.LogResponse
		json.Unmarshal(r.body, &resp)
		return r.status, resp
	}
	u32 := func(n uint32) *uint32 { return &n }
	tests := []struct {
		query    string
		status   int
		records  [][]byte
		next     *uint32
		reasonOf string
	}{
		{"", 200, c.records[:3], u32(3), "a page is MaxMembersPerCall records by default"},
		{"from=2&limit=2", 200, c.records[2:4], u32(4), "from and limit"},
		{"from=6", 200, c.records[6:], nil, "the last page has no next"},
		{"from=8", 200, [][]byte{}, nil, "past the head: an empty last page"},
		{"from=4294967295", 200, [][]byte{}, nil, "the greatest sequence number is no error"},
		{"from=4294967296", 400, nil, nil, "sequence numbers are 32 bits"},
		{"from=-1", 400, nil, nil, "sequence numbers are not negative"},
		{"from=x", 400, nil, nil, "sequence numbers are numbers"},
		{"limit=0", 400, nil, nil, "limit is 1 to MaxMembersPerCall"},
		{"limit=4", 400, nil, nil, "limit is 1 to MaxMembersPerCall"},
	}
	for _, tt := range tests {
		status, resp := page(tt.query)
		if status != tt.status {
			t.Errorf("?%s: %d, want %d (%s)", tt.query, status, tt.status, tt.reasonOf)
			continue
		}
		if status != 200 {
			continue
		}
		if diff := cmp.Diff(tt.records, resp.Records); diff != "" {
			t.Errorf("?%s: records (%s) (-want +got)\n%s", tt.query, tt.reasonOf, diff)
		}
		if diff := cmp.Diff(tt.next, resp.Next); diff != "" {
			t.Errorf("?%s: next (%s) (-want +got)\n%s", tt.query, tt.reasonOf, diff)
		}
	}
}

// TestReplicas runs two handlers, as two replicas, over one store: each
// caches the log states it saw, and each must take the store's head over
// its cache, replaying what the other appended (or refusing a record that
// follows a head that is no longer the head).
func TestReplicas(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := b.open(t)
			one, two := newTestServer(t, st), newTestServer(t, st)
			alice, bob := one.member(t, "alice"), one.member(t, "bob")
			c := newChain(t, "messaging:replicas", alice.id, bob.id)
			one.post(t, "alice", "/v1/sessions", c.create())
			one.post(t, "alice", logPath(c.id), c.add(alice.id, nil, true)) // one caches record 1
			two.post(t, "bob", logPath(c.id), c.add(bob.id, nil, true))     // two replays, stores record 2
			// one holds record 1 in its cache; the store is at record 2.
			stale := &chain{t: t, id: c.id, records: c.records[:2], states: c.states[:2]}
			staleReq, _ := stale.sign(alice.id, nil, true)
			if r := request(t, one, "POST", logPath(c.id), userToken(t, "alice"), staleReq); r.status != http.StatusConflict || r.err.Head == nil || r.err.Head.Seq != 2 {
				t.Fatalf("a record after the cached head, on the replica that cached it: %d %s, head %+v; want 409 at head 2", r.status, r.err.Code, r.err.Head)
			}
			before := &chain{t: t, id: c.id, records: c.records[:3], states: c.states[:3]}
			bobReq, _ := before.sign(bob.id, nil, true)
			one.post(t, "alice", logPath(c.id), c.add(alice.id, []memberlog.Op{removeOp("bob")}, true))
			// bob was removed through one; two's cache still lists him.
			if r := request(t, two, "POST", logPath(c.id), userToken(t, "bob"), bobReq); r.status != http.StatusForbidden {
				t.Errorf("an append by a member removed through the other replica: %d, want 403", r.status)
			}
			for _, srv := range []*testServer{one, two} {
				h, err := srv.client(t, "alice").Head(ctx, c.id)
				if err != nil || h.Hash != c.head().Head() {
					t.Errorf("head through a replica: %+v, %v", h, err)
				}
			}
			if n := testutilCount(t, one, "incremental"); n < 1 {
				t.Errorf("the first replica replayed %v records incrementally, want the other's record replayed after its cached state", n)
			}
			if n := testutilCount(t, two, "full"); n < 1 {
				t.Errorf("the second replica never replayed a log in full")
			}
		})
	}
}

// testutilCount returns the replays of kind a handler counted.
func testutilCount(t *testing.T, srv *testServer, kind string) float64 {
	t.Helper()
	mfs, err := srv.h.cfg.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "veil_keyservice_log_replays_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRacingAppends sends records at one head at once over HTTP: of
// different records exactly one is stored and the others are conflicts;
// one record sent many times at once is stored once and every sending
// succeeds.
func TestRacingAppends(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// Two replicas, so that racers also pass each other's caches.
			st := b.open(t)
			srvs := []*testServer{newTestServer(t, st), newTestServer(t, st)}
			alice, bob := srvs[0].member(t, "alice"), srvs[0].member(t, "bob")
			c := newChain(t, "messaging:race", alice.id, bob.id)
			srvs[0].post(t, "alice", "/v1/sessions", c.create())
			const racers = 8
			reqs := make([]wire.AppendRequest, racers)
			afters := make([]*memberlog.State, racers)
			for i := range reqs {
				signer := []*identity.Identity{alice.id, bob.id}[i%2]
				reqs[i], afters[i] = c.sign(signer, nil, true) // distinct commitments: distinct records
				if i > 1 && bytes.Equal(reqs[i].Record, reqs[i-2].Record) {
					t.Fatal("racers' records are not distinct")
				}
			}
			statuses := raceRequests(t, racers, func(i int) response {
				return request(t, srvs[i%2], "POST", logPath(c.id), userToken(t, []string{"alice", "bob"}[i%2]), reqs[i])
			})
			winner := -1
			for i, s := range statuses {
				switch {
				case s == http.StatusOK && winner < 0:
					winner = i
				case s == http.StatusOK:
					t.Errorf("racers %d and %d both stored a record at one head", winner, i)
				case s != http.StatusConflict:
					t.Errorf("racer %d: %d, want 409", i, s)
				}
			}
			if winner < 0 {
				t.Fatal("no racer stored its record")
			}
			c.records = append(c.records, reqs[winner].Record)
			c.states = append(c.states, afters[winner])
			same := c.add(alice.id, nil, true)
			statuses = raceRequests(t, racers, func(i int) response {
				return request(t, srvs[i%2], "POST", logPath(c.id), userToken(t, "alice"), same)
			})
			for i, s := range statuses {
				if s != http.StatusOK {
					t.Errorf("one record sent %d times at once: racer %d got %d, want 200", racers, i, s)
				}
			}
			log, err := bob.c.Log(ctx, c.id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.records, log); diff != "" {
				t.Errorf("the log after the races: the winner's record, then the one sent at once, each once (-want +got)\n%s", diff)
			}
		})
	}
}

// raceRequests runs n requests at once and returns their statuses.
func raceRequests(t *testing.T, n int, send func(i int) response) []int {
	out := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = send(i).status
		})
	}
	close(start)
	wg.Wait()
	return out
}

// TestStateCacheBounded fills the state cache past its bound: it keeps the
// most recently used states within it, replaces a session's state, and
// keeps no state larger than itself.
func TestStateCacheBounded(t *testing.T) {
	t.Parallel()
	alice, err := identity.Generate(testrand.New("cache-alice"), "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	states := make([]*memberlog.State, 20)
	for i := range states {
		states[i] = newChain(t, fmt.Sprintf("messaging:%d", i), alice).head()
	}
	w := weight(states[0])
	c := newStateCache(5 * w)
	id := func(i int) session.ID { return session.ID(states[i].ID()) }
	for i := range 19 {
		c.put(id(i), states[i])
	}
	c.get(id(14)) // used: outlives 15, put after it
	c.put(id(19), states[19])
	if c.size > c.max || len(c.entries) != 5 || c.lru.Len() != 5 {
		t.Fatalf("%d bytes in %d entries (%d listed), want 5 entries within %d", c.size, len(c.entries), c.lru.Len(), c.max)
	}
	for i := range states {
		want := i == 14 || i >= 16
		if got := c.get(id(i)); (got == states[i]) != want {
			t.Errorf("state %d cached: %v, want %v: the 5 most recently used", i, got != nil, want)
		}
	}
	c.put(id(19), states[19])
	if len(c.entries) != 5 || c.size != 5*w {
		t.Errorf("a state put again is counted twice: %d entries, %d bytes", len(c.entries), c.size)
	}
	tiny := newStateCache(w - 1)
	tiny.put(id(0), states[0])
	if tiny.get(id(0)) != nil || tiny.size != 0 {
		t.Error("a state larger than the cache was kept")
	}
}

// TestManagerLifecycle runs session.Managers over the HTTP client and the
// handler through a session's whole life — create, extend with and without
// history, promote, revoke, rotate, demote, leave, delete — sealing and
// opening along the way, on SQLite and on PostgreSQL. After each step
// every member's verified view (Manager.Info) is what the step made, and
// who reads what follows from it.
func TestManagerLifecycle(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := newTestServer(t, b.open(t), func(c *Config) { c.RateLimit, c.RateBurst = rate.Inf, 1 })
			users := map[string]*member{}
			for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
				users[u] = srv.member(t, u)
			}
			const cid = "messaging:lifecycle"
			s, err := users["alice"].mgr.Create(ctx, cid, []string{"bob"})
			if err != nil {
				t.Fatal(err)
			}
			id := s.ID()
			sealed := map[string]string{}  // message ID → text form
			senders := map[string]string{} // message ID → sender
			seal := func(from, msgID string) {
				t.Helper()
				text, err := users[from].mgr.SealText(ctx, id, session.Binding{ChannelCID: cid, MessageID: msgID, SenderID: from}, []byte("text of "+msgID), 5000)
				if err != nil {
					t.Fatalf("%s seals %s: %v", from, msgID, err)
				}
				sealed[msgID], senders[msgID] = text, from
			}
			reads := func(user, msgID string) bool {
				t.Helper()
				got, err := users[user].mgr.OpenText(ctx, sealed[msgID], session.Binding{ChannelCID: cid, MessageID: msgID, SenderID: senders[msgID]})
				if err == nil && string(got) != "text of "+msgID {
					t.Fatalf("%s opened %s as %q", user, msgID, got)
				}
				return err == nil
			}
			type view struct {
				Epoch, Seq uint32
				Members    []session.Member
			}
			m := func(u string) session.Member { return session.Member{UserID: u} }
			a := func(u string) session.Member { return session.Member{UserID: u, Admin: true} }
			steps := []struct {
				name    string
				do      func() error
				want    view
				readers map[string][]string // message → who reads it after the step
				refused []string            // who may no longer read the log
			}{
				{"create, alice seals", func() error { seal("alice", "m1"); return nil },
					view{0, 0, []session.Member{a("alice"), m("bob")}}, map[string][]string{"m1": {"alice", "bob"}}, nil},
				{"extend carol with history", func() error { return users["alice"].mgr.Extend(ctx, id, []string{"carol"}, false) },
					view{0, 1, []session.Member{a("alice"), m("bob"), m("carol")}}, map[string][]string{"m1": {"alice", "bob", "carol"}}, nil},
				{"extend dave without history, dave seals", func() error {
					if err := users["alice"].mgr.Extend(ctx, id, []string{"dave"}, true); err != nil {
						return err
					}
					seal("dave", "m2")
					return nil
				}, view{1, 2, []session.Member{a("alice"), m("bob"), m("carol"), m("dave")}},
					map[string][]string{"m1": {"alice", "bob", "carol"}, "m2": {"alice", "bob", "carol", "dave"}}, nil},
				{"a member may not add under the default policy", func() error {
					if err := users["dave"].mgr.Extend(ctx, id, []string{"erin"}, false); !errors.Is(err, session.ErrForbidden) {
						return fmt.Errorf("dave added erin: %v, want ErrForbidden", err)
					}
					return nil
				}, view{1, 2, []session.Member{a("alice"), m("bob"), m("carol"), m("dave")}}, nil, nil},
				{"promote dave, who adds erin", func() error {
					if err := users["alice"].mgr.SetAdmin(ctx, id, "dave", true); err != nil {
						return err
					}
					return users["dave"].mgr.Extend(ctx, id, []string{"erin"}, false)
				}, view{1, 4, []session.Member{a("alice"), m("bob"), m("carol"), a("dave"), m("erin")}},
					map[string][]string{"m2": {"alice", "bob", "carol", "dave", "erin"}}, nil},
				{"carol revokes bob, alice seals", func() error {
					if err := users["carol"].mgr.Revoke(ctx, id, []string{"bob"}); err != nil {
						return err
					}
					seal("alice", "m3")
					return nil
				}, view{2, 5, []session.Member{a("alice"), m("carol"), a("dave"), m("erin")}},
					map[string][]string{"m3": {"alice", "carol", "dave", "erin"}}, []string{"bob"}},
				{"erin rotates and seals", func() error {
					if err := users["erin"].mgr.Rotate(ctx, id); err != nil {
						return err
					}
					seal("erin", "m4")
					return nil
				}, view{3, 6, []session.Member{a("alice"), m("carol"), a("dave"), m("erin")}},
					map[string][]string{"m4": {"alice", "carol", "dave", "erin"}}, []string{"bob"}},
				{"demote dave", func() error { return users["alice"].mgr.SetAdmin(ctx, id, "dave", false) },
					view{3, 7, []session.Member{a("alice"), m("carol"), m("dave"), m("erin")}}, nil, []string{"bob"}},
				{"carol leaves, alice's next seal rotates", func() error {
					if err := users["carol"].mgr.Leave(ctx, id); err != nil {
						return err
					}
					seal("alice", "m5")
					return nil
				}, view{4, 9, []session.Member{a("alice"), m("dave"), m("erin")}},
					map[string][]string{"m4": {"alice", "carol", "dave", "erin"}, "m5": {"alice", "dave", "erin"}}, []string{"bob", "carol"}},
			}
			for _, st := range steps {
				if err := st.do(); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				for _, u := range st.want.Members {
					info, err := users[u.UserID].mgr.Info(ctx, id)
					if err != nil {
						t.Fatalf("%s: %s's Info: %v", st.name, u.UserID, err)
					}
					got := view{info.Epoch, info.Seq, info.Members}
					if diff := cmp.Diff(st.want, got); diff != "" {
						t.Errorf("%s: %s's view (-want +got)\n%s", st.name, u.UserID, diff)
					}
				}
				for msg, want := range st.readers {
					for u := range users {
						if got, want := reads(u, msg), contains(want, u); got != want {
							t.Errorf("%s: %s reads %s: %v, want %v", st.name, u, msg, got, want)
						}
					}
				}
				for _, u := range st.refused {
					if _, err := users[u].c.Log(ctx, id, 0); !errors.Is(err, session.ErrForbidden) {
						t.Errorf("%s: %s reads the log: %v, want ErrForbidden", st.name, u, err)
					}
				}
			}
			for _, u := range []string{"dave", "bob"} {
				if err := users[u].c.Delete(ctx, id); !errors.Is(err, session.ErrForbidden) {
					t.Errorf("%s deletes the session: %v, want ErrForbidden", u, err)
				}
			}
			if err := users["alice"].c.Delete(ctx, id); err != nil {
				t.Fatalf("the admin deletes the session: %v", err)
			}
			if _, err := users["dave"].c.Lookup(ctx, cid); !errors.Is(err, session.ErrUnknownSession) {
				t.Errorf("Lookup after the deletion: %v, want ErrUnknownSession", err)
			}
			if _, err := users["alice"].mgr.Create(ctx, cid, []string{"dave"}); err != nil {
				t.Errorf("a new session for the channel after the deletion: %v", err)
			}
		})
	}
}

func contains(ss []string, s string) bool { return slices.Contains(ss, s) }
