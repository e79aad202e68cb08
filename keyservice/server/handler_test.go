package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
)

var testSecret = bytes.Repeat([]byte("k"), 32)

// openTestStore opens a fresh SQLite store.
func openTestStore(t testing.TB) Store {
	t.Helper()
	st, err := OpenStore(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// backends are the stores the handler tests run on: SQLite, and
// PostgreSQL when VEIL_TEST_POSTGRES is set (skipped otherwise).
var backends = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"sqlite", func(t *testing.T) Store { return openTestStore(t) }},
	{"postgres", func(t *testing.T) Store {
		st, err := OpenStore(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

type testServer struct {
	*httptest.Server
	store Store
	h     *Handler
}

func newTestServer(t testing.TB, st Store, mutate ...func(*Config)) *testServer {
	t.Helper()
	cfg := Config{Store: st, Auth: Auth{Keys: []Key{{HS256: NewSecret(testSecret)}}}}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: st, h: h}
}

func userToken(t testing.TB, user string) string {
	t.Helper()
	tok, err := UserToken(testSecret, "", user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *testServer) client(t testing.TB, user string) *keyservice.Client {
	t.Helper()
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: s.URL, Token: keyservice.StaticToken(userToken(t, user)), Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// member is a user with an identity, a published card and a Manager that
// talks to the server over HTTP.
type member struct {
	id  *identity.Identity
	c   *keyservice.Client
	mgr *session.Manager
}

func (s *testServer) member(t testing.TB, name string, mutate ...func(*session.Config)) *member {
	t.Helper()
	id, err := identity.Generate(testrand.New("ks-"+name), name, identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	c := s.client(t, name)
	if err := c.PublishCard(context.Background(), id.Card()); err != nil {
		t.Fatal(err)
	}
	cfg := session.Config{Identity: id, Service: c, Directory: c, Rand: testrand.New("mgr-" + name)}
	for _, m := range mutate {
		m(&cfg)
	}
	mgr, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &member{id: id, c: c, mgr: mgr}
}

// response is an answer as rawRequest reads it.
type response struct {
	status int
	body   []byte
	err    wire.ErrorDetail
}

func rawRequest(t testing.TB, srv *testServer, method, path, token string, body any) (int, httpjson.ErrorBody) {
	t.Helper()
	r := request(t, srv, method, path, token, body)
	return r.status, httpjson.ErrorBody{Error: httpjson.ErrorJSON{Code: r.err.Code, Message: r.err.Message}}
}

func request(t testing.TB, srv *testServer, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb wire.ErrorBody
	json.Unmarshal(data, &eb)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && ct != "application/json" {
		t.Errorf("%s %s: error response with Content-Type %q", method, path, ct)
	}
	return response{status: resp.StatusCode, body: data, err: eb.Error}
}

// fakeGrant is grant bytes the service stores without opening.
func fakeGrant(user string, epoch uint32) wire.Grant {
	return wire.Grant{Grantee: user, Epoch: epoch, Grant: []byte("age-encryption.org/v1\n-> X25519 fake\n")}
}

// chain is a session's membership log built by hand, as its members sign
// it, for tests that send records themselves.
type chain struct {
	t       testing.TB
	id      session.ID
	records [][]byte
	states  []*memberlog.State // after each record
}

// newChain signs the genesis of a session for cid: creator its admin,
// members its members, the default policy.
func newChain(t testing.TB, cid string, creator *identity.Identity, members ...*identity.Identity) *chain {
	t.Helper()
	var ms []memberlog.Member
	for _, m := range members {
		ms = append(ms, memberlog.Member{UserID: m.UserID(), Anchor: memberlog.AnchorOf(m.Card()), Role: memberlog.RoleMember})
	}
	var nonce [memberlog.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[:], signed.Add(1)) // every genesis its own session ID
	raw, st, err := memberlog.NewGenesis(creator, creator.Card(), cid, ms, memberlog.DefaultPolicy, commitment(cid), nonce, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, id: session.ID(st.ID()), records: [][]byte{raw}, states: []*memberlog.State{st}}
}

// signed counts the records tests sign, to make each distinct.
var signed atomic.Uint64

// commitment is a distinct fake key commitment per tag: the service
// never sees keys, so none needs to match one.
func commitment(tag string) [32]byte {
	var c [32]byte
	copy(c[:], "commit:"+tag)
	return c
}

// head returns the chain's last state.
func (c *chain) head() *memberlog.State { return c.states[len(c.states)-1] }

// create returns the request that stores the chain's genesis with its
// grants.
func (c *chain) create() wire.CreateSessionRequest {
	return wire.CreateSessionRequest{Genesis: c.records[0], Grants: grantsFor(nil, c.states[0])}
}

// sign returns the next record by actor (ops, a new epoch when newEpoch)
// and its grants, without adding it to the chain.
func (c *chain) sign(actor *identity.Identity, ops []memberlog.Op, newEpoch bool) (wire.AppendRequest, *memberlog.State) {
	c.t.Helper()
	before := c.head()
	n := signed.Add(1)
	raw, after, err := before.NewChange(actor, ops, newEpoch, commitment(fmt.Sprint(n)), n) // distinct times: distinct records
	if err != nil {
		c.t.Fatal(err)
	}
	return wire.AppendRequest{Record: raw, Grants: grantsFor(before, after)}, after
}

// add signs the next record and adds it to the chain; the caller sends
// it.
func (c *chain) add(actor *identity.Identity, ops []memberlog.Op, newEpoch bool) wire.AppendRequest {
	req, after := c.sign(actor, ops, newEpoch)
	c.records = append(c.records, req.Record)
	c.states = append(c.states, after)
	return req
}

// grantsFor returns fake grants for exactly the users the record from
// before to after needs (memberlog.GrantsNeeded).
func grantsFor(before, after *memberlog.State) []wire.Grant {
	epoch, users := memberlog.GrantsNeeded(before, after)
	out := []wire.Grant{}
	for _, u := range users {
		out = append(out, fakeGrant(u, epoch))
	}
	return out
}

func addOp(id *identity.Identity) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpAdd, Member: memberlog.Member{UserID: id.UserID(), Anchor: memberlog.AnchorOf(id.Card()), Role: memberlog.RoleMember}}
}

func removeOp(user string) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpRemove, Member: memberlog.Member{UserID: user}}
}

// post sends a create (chain's genesis) or an append as user and fails
// the test unless it succeeds.
func (s *testServer) post(t testing.TB, user, path string, body any) {
	t.Helper()
	if r := request(t, s, "POST", path, userToken(t, user), body); r.status >= 300 {
		t.Fatalf("POST %s as %s: %d %s: %s", path, user, r.status, r.err.Code, r.err.Message)
	}
}

func logPath(id session.ID) string { return "/v1/sessions/" + id.String() + "/log" }

// TestAuthorizationMatrix sends every route as every kind of caller, on a
// session where alice is the admin, bob a member, rita was a member until
// alice removed her with a new epoch, and lena left without one (so she
// still holds the epoch's key, and keeps her grants, but is no member),
// and checks each answer's status: reads and appends for the log's
// current roster, deletion for its admins, grants for their grantee, and
// the service (an app backend's token) reading logs and deleting sessions
// but never signing or reading grants.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t))
	ids := map[string]*identity.Identity{}
	for _, u := range []string{"alice", "bob", "rita", "lena", "mallory"} {
		ids[u] = srv.member(t, u).id
	}
	serviceTok, _ := ServiceToken(testSecret, "", time.Hour)
	otherKey, _ := UserToken(bytes.Repeat([]byte("x"), 32), "", "alice", time.Hour)
	expired, _ := UserToken(testSecret, "", "alice", -time.Hour)
	actors := []struct{ name, user, token string }{
		{"no token", "", ""},
		{"bad token", "", otherKey},
		{"expired token", "", expired},
		{"other user", "mallory", userToken(t, "mallory")},
		{"removed member", "rita", userToken(t, "rita")},
		{"member who left", "lena", userToken(t, "lena")},
		{"member", "bob", userToken(t, "bob")},
		{"admin", "alice", userToken(t, "alice")},
		{"service", "", serviceTok},
	}
	n := 0
	// newSession makes a fresh session per cell: alice, bob, rita removed
	// by alice, and lena who left.
	newSession := func() *chain {
		n++
		c := newChain(t, fmt.Sprintf("messaging:cell-%d", n), ids["alice"], ids["bob"], ids["rita"], ids["lena"])
		srv.post(t, "alice", "/v1/sessions", c.create())
		srv.post(t, "alice", logPath(c.id), c.add(ids["alice"], []memberlog.Op{removeOp("rita")}, true))
		srv.post(t, "lena", logPath(c.id), c.add(ids["lena"], []memberlog.Op{removeOp("lena")}, false))
		return c
	}
	aliceCard := ids["alice"].Card().Marshal()
	const (
		unauth  = http.StatusUnauthorized
		forbid  = http.StatusForbidden
		ok      = http.StatusOK
		created = http.StatusCreated
	)
	endpoints := []struct {
		name   string
		method string
		path   func(c *chain) string
		body   func(c *chain, actor string) any
		want   [9]int // per actor, in the order above
	}{
		{"publish card", "PUT", func(*chain) string { return "/v1/users/alice/cards" },
			func(*chain, string) any { return wire.PublishCardRequest{Card: aliceCard} },
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, forbid, ok, forbid}},
		{"card history", "GET", func(*chain) string { return "/v1/users/alice/cards" }, nil,
			[9]int{unauth, unauth, unauth, ok, ok, ok, ok, ok, ok}},
		{"lookup cards", "POST", func(*chain) string { return "/v1/cards/lookup" },
			func(*chain, string) any { return wire.LookupRequest{UserIDs: []string{"alice", "bob"}} },
			[9]int{unauth, unauth, unauth, ok, ok, ok, ok, ok, ok}},
		{"create session", "POST", func(*chain) string { return "/v1/sessions" },
			func(c *chain, actor string) any {
				signer := ids[actor]
				if signer == nil {
					signer = ids["alice"]
				}
				return newChain(t, fmt.Sprintf("messaging:new-%d-%s", n, actor), signer).create()
			},
			[9]int{unauth, unauth, unauth, created, created, created, created, created, forbid}},
		{"lookup session", "GET", func(*chain) string { return fmt.Sprintf("/v1/sessions?channel_cid=messaging:cell-%d", n) }, nil,
			[9]int{unauth, unauth, unauth, ok, ok, ok, ok, ok, ok}},
		{"read log", "GET", func(c *chain) string { return logPath(c.id) }, nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, ok, ok, ok}},
		{"head", "GET", func(c *chain) string { return "/v1/sessions/" + c.id.String() + "/head" }, nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, ok, ok, ok}},
		{"my grants", "GET", func(c *chain) string { return "/v1/sessions/" + c.id.String() + "/grants" }, nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, ok, ok, forbid}},
		{"append", "POST", func(c *chain) string { return logPath(c.id) },
			func(c *chain, actor string) any {
				// Members rotate (the default policy lets them); the
				// others send a rotation alice signed.
				signer := ids["alice"]
				if actor == "bob" {
					signer = ids["bob"]
				}
				req, _ := c.sign(signer, nil, true)
				return req
			},
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, ok, ok, forbid}},
		{"delete session", "DELETE", func(c *chain) string { return "/v1/sessions/" + c.id.String() }, nil,
			[9]int{unauth, unauth, unauth, forbid, forbid, forbid, forbid, ok, ok}},
	}
	for _, ep := range endpoints {
		for i, actor := range actors {
			c := newSession()
			var body any
			if ep.body != nil {
				body = ep.body(c, actor.user)
			}
			r := request(t, srv, ep.method, ep.path(c), actor.token, body)
			if r.status != ep.want[i] {
				t.Errorf("%s as %s: status %d (%s: %s), want %d", ep.name, actor.name, r.status, r.err.Code, r.err.Message, ep.want[i])
			}
			if r.status >= 400 && r.err.Code == "" {
				t.Errorf("%s as %s: error without a JSON code", ep.name, actor.name)
			}
		}
	}
	// A refused append changed nothing: alice's client sees the log of the
	// last cell as its three records.
	last := newSession()
	for _, tok := range []string{userToken(t, "mallory"), userToken(t, "rita"), userToken(t, "lena"), serviceTok} {
		req, _ := last.sign(ids["alice"], nil, true)
		request(t, srv, "POST", logPath(last.id), tok, req)
	}
	if h, err := srv.client(t, "alice").Head(ctx, last.id); err != nil || h.Seq != 2 || h.Hash != last.head().Head() {
		t.Errorf("head after refused appends: %+v, %v; want record 2", h, err)
	}
	if got, _ := rawRequest(t, srv, "GET", "/healthz", "", nil); got != ok {
		t.Errorf("/healthz: %d", got)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`veil_keyservice_requests_total{code="403",route="POST /v1/sessions/{id}/log"}`, "veil_keyservice_request_duration_seconds_bucket"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestEndToEndOverHTTP(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 50} {
		t.Run(fmt.Sprintf("%d users", n), func(t *testing.T) {
			t.Parallel()
			endToEnd(t, newTestServer(t, openTestStore(t)), n)
		})
	}
}

func endToEnd(t *testing.T, srv *testServer, n int) {
	ctx := context.Background()
	members := make([]*member, n)
	names := make([]string, n)
	for i := range members {
		names[i] = fmt.Sprintf("user%02d", i)
		members[i] = srv.member(t, names[i])
	}
	owner := members[0]
	cid := fmt.Sprintf("messaging:e2e-%d", n)
	s, err := owner.mgr.Create(ctx, cid, names[1:])
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *member, msgID, text string) string {
		out, err := m.mgr.SealText(ctx, s.ID(), session.Binding{ChannelCID: cid, MessageID: msgID, SenderID: m.id.UserID()}, []byte(text), 5000)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	read := func(m *member, sender, msgID, text string) (string, error) {
		b, err := m.mgr.OpenText(ctx, text, session.Binding{ChannelCID: cid, MessageID: msgID, SenderID: sender})
		return string(b), err
	}
	m1 := send(members[n-1], "m1", "hello from the last member")
	for _, m := range members {
		if got, err := read(m, names[n-1], "m1", m1); err != nil || got != "hello from the last member" {
			t.Fatalf("%s: %q, %v", m.id.UserID(), got, err)
		}
	}
	// The owner adds a newcomer, then revokes the last member.
	newcomer := srv.member(t, "newcomer")
	if err := owner.mgr.Extend(ctx, s.ID(), []string{"newcomer"}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := read(newcomer, names[n-1], "m1", m1); err != nil || got != "hello from the last member" {
		t.Fatalf("newcomer: %q, %v", got, err)
	}
	revoked := members[n-1]
	if err := owner.mgr.Revoke(ctx, s.ID(), []string{revoked.id.UserID()}); err != nil {
		t.Fatal(err)
	}
	m2 := send(members[(n-1)/2], "m2", "after the revocation")
	if got, err := read(newcomer, names[(n-1)/2], "m2", m2); err != nil || got != "after the revocation" {
		t.Fatalf("newcomer after rotation: %q, %v", got, err)
	}
	// The revoked user's fetch of the log and the grants is refused, and
	// its cached keys do not open the new envelope.
	if _, err := revoked.c.Grants(ctx, s.ID()); !errors.Is(err, keyservice.ErrForbidden) || !errors.Is(err, session.ErrForbidden) {
		t.Fatalf("revoked user fetched grants: %v", err)
	}
	if _, err := revoked.c.Log(ctx, s.ID(), 0); !errors.Is(err, session.ErrForbidden) {
		t.Fatalf("revoked user fetched the log: %v", err)
	}
	if _, err := read(revoked, names[(n-1)/2], "m2", m2); err == nil {
		t.Fatal("revoked user opened a post-revocation message")
	}
	cached, _ := revoked.mgr.Retrieve(ctx, s.ID())
	if _, err := cached.OpenText(m2, session.Binding{ChannelCID: cid, MessageID: "m2", SenderID: names[(n-1)/2]}, members[(n-1)/2].id.Card()); err == nil {
		t.Fatal("revoked user's cached keys opened a post-revocation message")
	}
}

// TestStoreErrorStatus checks how store errors become API answers: each
// sentinel, wrapped or not, a client error with its stable code; anything
// else an opaque 500.
func TestStoreErrorStatus(t *testing.T) {
	t.Parallel()
	h := &Handler{}
	id := session.ID{1, 2, 3}
	tests := []struct {
		name      string
		err       error
		status    int
		code      string
		sessionID string
		reason    string
	}{
		{"not found", keyservice.ErrNotFound, http.StatusNotFound, keyservice.CodeUnknownSession, "", "the store's lookups"},
		{"conflict, wrapped", fmt.Errorf("appending: %w", keyservice.ErrConflict), http.StatusConflict, keyservice.CodeConflict, "", "sentinels may come wrapped"},
		{"forbidden", keyservice.ErrForbidden, http.StatusForbidden, keyservice.CodeForbidden, "", "rights"},
		{"session exists", fmt.Errorf("creating: %w", &session.SessionExistsError{ChannelCID: "messaging:x", ID: id}), http.StatusConflict, keyservice.CodeSessionExists, id.String(),
			"the answer names the channel's session, so the client returns a *session.SessionExistsError"},
		{"cancelled", context.Canceled, http.StatusServiceUnavailable, keyservice.CodeUnavailable, "", "a request given up on"},
		{"anything else", errors.New("keyservice: disk on fire"), http.StatusInternalServerError, keyservice.CodeInternal, "", "internal errors stay opaque"},
	}
	for _, tt := range tests {
		a := h.apiError(tt.err)
		if a.status != tt.status || a.detail.Code != tt.code || a.detail.SessionID != tt.sessionID {
			t.Errorf("%s: %d %s %q, want %d %s %q (%s)", tt.name, a.status, a.detail.Code, a.detail.SessionID, tt.status, tt.code, tt.sessionID, tt.reason)
		}
		if strings.Contains(a.detail.Message, "disk") {
			t.Errorf("%s: the answer carries the internal error: %q", tt.name, a.detail.Message)
		}
	}
}
