package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
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

type testServer struct {
	*httptest.Server
	store Store
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
	return &testServer{Server: srv, store: st}
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

func (s *testServer) member(t testing.TB, name string) *member {
	t.Helper()
	id, err := identity.Generate(testrand.New("ks-"+name), name, identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	c := s.client(t, name)
	if err := c.PublishCard(context.Background(), id.Card()); err != nil {
		t.Fatal(err)
	}
	mgr, err := session.NewManager(session.Config{Identity: id, Service: c, Directory: c})
	if err != nil {
		t.Fatal(err)
	}
	return &member{id: id, c: c, mgr: mgr}
}

func rawRequest(t testing.TB, srv *testServer, method, path, token string, body any) (int, httpjson.ErrorBody) {
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb httpjson.ErrorBody
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &eb)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && ct != "application/json" {
		t.Errorf("%s %s: error response with Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, eb
}

func fakeGrant(user string, epoch uint32) wire.Grant {
	return wire.Grant{Grantee: user, Epoch: epoch, Grant: []byte("age-encryption.org/v1\n-> X25519 fake\n")}
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t))
	alice := srv.member(t, "alice")
	for _, u := range []string{"bob", "mallory", "carol"} {
		srv.member(t, u)
	}
	serviceTok, _ := ServiceToken(testSecret, "", time.Hour)
	otherKey, _ := UserToken(bytes.Repeat([]byte("x"), 32), "", "alice", time.Hour)
	expired := func() string {
		tok, _ := UserToken(testSecret, "", "alice", -time.Hour)
		return tok
	}()
	actors := []struct{ name, token string }{
		{"no token", ""},
		{"bad token", otherKey},
		{"expired token", expired},
		{"other user", userToken(t, "mallory")},
		{"member", userToken(t, "bob")},
		{"admin", userToken(t, "alice")},
		{"service", serviceTok},
	}
	n := 0
	// newSession makes a fresh session (alice admin, bob member) per cell.
	newSession := func() session.ID {
		n++
		s, err := alice.mgr.Create(ctx, fmt.Sprintf("messaging:cell-%d", n), []string{"bob"})
		if err != nil {
			t.Fatal(err)
		}
		return s.ID()
	}
	aliceCard := alice.id.Card().Marshal()
	type endpoint struct {
		name   string
		method string
		path   func(id session.ID) string
		body   func(actor string) any
		want   [7]int // per actor, in the order above
	}
	const (
		unauth = http.StatusUnauthorized
		forbid = http.StatusForbidden
		ok     = http.StatusOK
	)
	endpoints := []endpoint{
		{"publish card", "PUT", func(session.ID) string { return "/v1/users/alice/cards" },
			func(string) any { return wire.PublishCardRequest{Card: aliceCard} }, [7]int{unauth, unauth, unauth, forbid, forbid, ok, forbid}},
		{"card history", "GET", func(session.ID) string { return "/v1/users/alice/cards" },
			nil, [7]int{unauth, unauth, unauth, ok, ok, ok, ok}},
		{"lookup cards", "POST", func(session.ID) string { return "/v1/cards/lookup" },
			func(string) any { return wire.LookupRequest{UserIDs: []string{"alice", "bob"}} }, [7]int{unauth, unauth, unauth, ok, ok, ok, ok}},
		{"create session", "POST", func(session.ID) string { return "/v1/sessions" },
			func(actor string) any {
				id, _ := session.NewID(nil)
				return wire.CreateSessionRequest{ID: id.String(), ChannelCID: "messaging:new-" + id.String(), Grants: []wire.Grant{fakeGrant(actor, 0)}}
			}, [7]int{unauth, unauth, unauth, http.StatusCreated, http.StatusCreated, http.StatusCreated, forbid}},
		{"lookup session", "GET", func(id session.ID) string { return "/v1/sessions?channel_cid=messaging:cell-" + fmt.Sprint(n) },
			nil, [7]int{unauth, unauth, unauth, ok, ok, ok, ok}},
		{"session info", "GET", func(id session.ID) string { return "/v1/sessions/" + id.String() },
			nil, [7]int{unauth, unauth, unauth, forbid, ok, ok, ok}},
		{"my grants", "GET", func(id session.ID) string { return "/v1/sessions/" + id.String() + "/grants" },
			nil, [7]int{unauth, unauth, unauth, forbid, ok, ok, forbid}},
		{"extend", "POST", func(id session.ID) string { return "/v1/sessions/" + id.String() + "/members" },
			func(string) any { return wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{fakeGrant("carol", 0)}} }, [7]int{unauth, unauth, unauth, forbid, ok, ok, forbid}},
		{"rotate", "POST", func(id session.ID) string { return "/v1/sessions/" + id.String() + "/rotate" },
			func(string) any {
				return wire.RotateRequest{FromEpoch: 0, Remove: []string{"bob"}, Grants: []wire.Grant{fakeGrant("alice", 1)}}
			}, [7]int{unauth, unauth, unauth, forbid, forbid, ok, forbid}},
		{"set admin", "PUT", func(id session.ID) string { return "/v1/sessions/" + id.String() + "/admins/bob" },
			func(string) any { return wire.AdminRequest{Admin: true} }, [7]int{unauth, unauth, unauth, forbid, forbid, ok, forbid}},
		{"delete session", "DELETE", func(id session.ID) string { return "/v1/sessions/" + id.String() },
			nil, [7]int{unauth, unauth, unauth, forbid, forbid, ok, ok}},
	}
	for _, ep := range endpoints {
		for i, actor := range actors {
			id := newSession()
			var body any
			if ep.body != nil {
				name := map[string]string{"other user": "mallory", "member": "bob", "admin": "alice"}[actor.name]
				body = ep.body(name)
			}
			got, eb := rawRequest(t, srv, ep.method, ep.path(id), actor.token, body)
			if got != ep.want[i] {
				t.Errorf("%s as %s: status %d (%s: %s), want %d", ep.name, actor.name, got, eb.Error.Code, eb.Error.Message, ep.want[i])
			}
			if got >= 400 && eb.Error.Code == "" {
				t.Errorf("%s as %s: error without a JSON code", ep.name, actor.name)
			}
		}
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
	for _, want := range []string{`veil_keyservice_requests_total{code="403",route="POST /v1/sessions/{id}/rotate"}`, "veil_keyservice_request_duration_seconds_bucket"} {
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
	// Add a newcomer, then revoke the last member and rotate.
	newcomer := srv.member(t, "newcomer")
	if err := members[n-1].mgr.Extend(ctx, s.ID(), []string{"newcomer"}, false); err != nil {
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
	// The revoked user's fetch of the new epoch is refused, and its cached
	// keys do not open the new envelope.
	if _, err := revoked.c.Grants(ctx, s.ID()); !errors.Is(err, keyservice.ErrForbidden) {
		t.Fatalf("revoked user fetched grants: %v", err)
	}
	if _, err := read(revoked, names[(n-1)/2], "m2", m2); err == nil {
		t.Fatal("revoked user opened a post-revocation message")
	}
	cached, _ := revoked.mgr.Retrieve(ctx, s.ID())
	if _, err := cached.OpenText(m2, session.Binding{ChannelCID: cid, MessageID: "m2", SenderID: names[(n-1)/2]}, members[(n-1)/2].id.Card()); err == nil {
		t.Fatal("revoked user's cached keys opened a post-revocation message")
	}
}

// TestRightsBeforeState checks that the routes which compare a request with
// a session's state (its members, the grantees' cards) check the caller's
// rights first: whatever a non-member sends, it gets the answer GET
// /v1/sessions/{id} gives it, a plain member gets 403 from rotate, and no
// answer names a member.
func TestRightsBeforeState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t))
	alice := srv.member(t, "alice")
	for _, u := range []string{"bob", "carol", "mallory"} {
		srv.member(t, u)
	}
	s, err := alice.mgr.Create(ctx, "messaging:rights", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	sid := s.ID().String()
	unknown := strings.Repeat("ab", 16)
	tests := []struct {
		name, actor, path string
		body              any
		wantStatus        int
		wantCode          string
		reason            string
	}{
		{"rotate, non-member granting itself", "mallory", "/v1/sessions/" + sid + "/rotate",
			wire.RotateRequest{FromEpoch: 0, Remove: []string{}, Grants: []wire.Grant{fakeGrant("mallory", 1)}}, http.StatusForbidden, keyservice.CodeForbidden,
			"the membership check would name alice as left without a grant"},
		{"rotate, non-member naming a user without a card", "mallory", "/v1/sessions/" + sid + "/rotate",
			wire.RotateRequest{FromEpoch: 0, Remove: []string{}, Grants: []wire.Grant{fakeGrant("ghost", 1)}}, http.StatusForbidden, keyservice.CodeForbidden,
			"no grant check before the rights"},
		{"rotate, plain member", "bob", "/v1/sessions/" + sid + "/rotate",
			wire.RotateRequest{FromEpoch: 0, Remove: []string{}, Grants: []wire.Grant{fakeGrant("bob", 1)}}, http.StatusForbidden, keyservice.CodeForbidden,
			"only admins rotate, so only admins learn who lacks a grant"},
		{"rotate, unknown session", "mallory", "/v1/sessions/" + unknown + "/rotate",
			wire.RotateRequest{FromEpoch: 0, Remove: []string{}, Grants: []wire.Grant{fakeGrant("ghost", 1)}}, http.StatusNotFound, keyservice.CodeUnknownSession,
			"an unknown session is answered as GET answers it"},
		{"extend, non-member naming a user without a card", "mallory", "/v1/sessions/" + sid + "/members",
			wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{fakeGrant("ghost", 0)}}, http.StatusForbidden, keyservice.CodeForbidden,
			"no grant check before the rights"},
		{"extend, non-member adding itself", "mallory", "/v1/sessions/" + sid + "/members",
			wire.ExtendRequest{Epoch: 7, Grants: []wire.Grant{fakeGrant("mallory", 7)}}, http.StatusForbidden, keyservice.CodeForbidden,
			"no word on the epoch before the rights"},
		{"extend, unknown session", "mallory", "/v1/sessions/" + unknown + "/members",
			wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{fakeGrant("ghost", 0)}}, http.StatusNotFound, keyservice.CodeUnknownSession,
			"an unknown session is answered as GET answers it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := userToken(t, tt.actor)
			got, eb := rawRequest(t, srv, "POST", tt.path, tok, tt.body)
			if got != tt.wantStatus || eb.Error.Code != tt.wantCode {
				t.Errorf("%d %s (%s), want %d %s (%s)", got, eb.Error.Code, eb.Error.Message, tt.wantStatus, tt.wantCode, tt.reason)
			}
			if tt.actor == "mallory" {
				info := tt.path[:len("/v1/sessions/")+32]
				if gs, gb := rawRequest(t, srv, "GET", info, tok, nil); gs != got || gb.Error.Code != eb.Error.Code {
					t.Errorf("GET %s answers a non-member %d %s, this route %d %s: one answer reveals what the other hides", info, gs, gb.Error.Code, got, eb.Error.Code)
				}
			}
			for _, m := range []string{"alice", "carol"} {
				if strings.Contains(eb.Error.Message, m) {
					t.Errorf("the answer names member %s: %q (%s)", m, eb.Error.Message, tt.reason)
				}
			}
		})
	}
	// Nothing changed, and an admin still gets the detailed answer.
	if info, err := alice.c.Info(ctx, s.ID()); err != nil || info.Epoch != 0 || len(info.Members) != 3 {
		t.Fatalf("state changed by refused requests: %+v %v", info, err)
	}
	got, eb := rawRequest(t, srv, "POST", "/v1/sessions/"+sid+"/rotate", userToken(t, "alice"),
		wire.RotateRequest{FromEpoch: 0, Remove: []string{}, Grants: []wire.Grant{fakeGrant("alice", 1), fakeGrant("bob", 1)}})
	if got != http.StatusBadRequest || !strings.Contains(eb.Error.Message, `"carol"`) {
		t.Errorf("admin leaving carol out: %d %q, want 400 naming carol", got, eb.Error.Message)
	}
}

// TestStoreErrorStatus checks how store errors become API answers: each
// sentinel, wrapped or not, a client error with its stable code; anything
// else an opaque 500.
func TestStoreErrorStatus(t *testing.T) {
	t.Parallel()
	h := &Handler{}
	tests := []struct {
		name   string
		err    error
		status int
		code   string
		reason string
	}{
		{"not found", keyservice.ErrNotFound, http.StatusNotFound, keyservice.CodeUnknownSession, "the store's lookups"},
		{"conflict, wrapped", fmt.Errorf("rotating: %w", keyservice.ErrConflict), http.StatusConflict, keyservice.CodeConflict, "sentinels may come wrapped"},
		{"forbidden", keyservice.ErrForbidden, http.StatusForbidden, keyservice.CodeForbidden, "rights"},
		{"too many epochs", ErrTooManyEpochs, http.StatusBadRequest, keyservice.CodeInvalidRequest, "a rotation from epoch 2³²-1 is the caller's mistake, not the server's"},
		{"anything else", errors.New("keyservice: disk on fire"), http.StatusInternalServerError, keyservice.CodeInternal, "internal errors stay opaque"},
	}
	for _, tt := range tests {
		ae := h.apiError(tt.err)
		if ae.Status != tt.status || ae.Code != tt.code {
			t.Errorf("%s: %d %s, want %d %s (%s)", tt.name, ae.Status, ae.Code, tt.status, tt.code, tt.reason)
		}
		if strings.Contains(ae.Message, "disk") {
			t.Errorf("%s: the answer carries the internal error: %q", tt.name, ae.Message)
		}
	}
}
