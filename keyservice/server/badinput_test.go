package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	alice := srv.member(t, "alice")
	srv.member(t, "bob")
	s, err := alice.mgr.Create(ctx, "messaging:bad", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	sid := s.ID().String()
	tok := userToken(t, "alice")

	// A card signed by a key other than the one it carries.
	forged := alice.id.Card().Marshal()
	forged[len(forged)-1] ^= 1
	// A generation-1 card that is not signed by alice's generation 0.
	other, _ := identity.Generate(testrand.New("other"), "alice", identity.Options{Kind: identity.KindX25519})
	other1, _ := other.Rotate(testrand.New("other1"), identity.Options{})
	// A card for another user, published under alice's name.
	bobsCard, _ := identity.Generate(testrand.New("b"), "bob", identity.Options{Kind: identity.KindX25519})

	tests := []struct {
		name, method, path string
		body               any
		status             int
		code, reason       string
	}{
		{"malformed JSON", "POST", "/v1/cards/lookup", `{"user_ids": [`, 400, keyservice.CodeInvalidRequest, "truncated JSON"},
		{"not an object", "POST", "/v1/cards/lookup", `[1,2]`, 400, keyservice.CodeInvalidRequest, "wrong shape"},
		{"trailing data", "POST", "/v1/cards/lookup", `{"user_ids":["a"]} {}`, 400, keyservice.CodeInvalidRequest, "one JSON value per body"},
		{"unknown field", "POST", "/v1/cards/lookup", `{"user_ids":["a"],"admin":true}`, 400, keyservice.CodeInvalidRequest, "unknown fields are refused"},
		{"wrong type", "POST", "/v1/sessions/" + sid + "/rotate", `{"from_epoch":"zero"}`, 400, keyservice.CodeInvalidRequest, "types are checked"},
		{"oversize body", "POST", "/v1/cards/lookup", `{"user_ids":["` + strings.Repeat("a", 70<<10) + `"]}`, 413, keyservice.CodeBodyTooLarge, "bodies are capped"},
		{"too many users", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: make([]string, 1001)}, 400, keyservice.CodeTooManyMembers, "per-call member cap"},
		{"forged card", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: forged}, 400, keyservice.CodeInvalidCard, "self-signature checked"},
		{"unchained card", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: other1.Card().Marshal()}, 400, keyservice.CodeInvalidCard, "a new generation must be signed by the latest"},
		{"fresh gen 0 over existing", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: other.Card().Marshal()}, 400, keyservice.CodeInvalidCard, "no silent key replacement"},
		{"card of another user", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: bobsCard.Card().Marshal()}, 400, keyservice.CodeInvalidCard, "the card must name the path's user"},
		{"bad session ID", "GET", "/v1/sessions/XYZ", nil, 400, keyservice.CodeInvalidRequest, "IDs are validated"},
		{"unknown session", "GET", "/v1/sessions/" + strings.Repeat("ab", 16), nil, 404, keyservice.CodeUnknownSession, "clear not-found"},
		{"unknown user history", "GET", "/v1/users/nobody/cards", nil, 404, keyservice.CodeUnknownUser, "clear not-found"},
		{"grant for user without card", "POST", "/v1/sessions/" + sid + "/members", wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{fakeGrant("ghost", 0)}}, 400, keyservice.CodeInvalidGrants, "grantees must exist"},
		{"grant that is not age", "POST", "/v1/sessions/" + sid + "/members", wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{{Grantee: "bob", Grant: []byte("hello")}}}, 400, keyservice.CodeInvalidGrants, "grants are age files"},
		{"duplicate grants", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: 0, Grants: []wire.Grant{fakeGrant("alice", 1), fakeGrant("alice", 1), fakeGrant("bob", 1)}}, 400, keyservice.CodeInvalidGrants, "one grant per member per epoch"},
		{"grant for removed member", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: 0, Remove: []string{"bob"}, Grants: []wire.Grant{fakeGrant("alice", 1), fakeGrant("bob", 1)}}, 400, keyservice.CodeInvalidGrants, "removed members get nothing"},
		{"member left out", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: 0, Grants: []wire.Grant{fakeGrant("alice", 1)}}, 400, keyservice.CodeInvalidGrants, "every remaining member gets the new epoch"},
		{"rotate from the last uint32", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: math.MaxUint32, Grants: []wire.Grant{fakeGrant("alice", 0), fakeGrant("bob", 0)}}, 400, keyservice.CodeInvalidRequest, "from_epoch 2³²-1 must not wrap the new epoch to 0"},
		{"rotate past the epoch cap", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: session.MaxEpochs, Grants: []wire.Grant{fakeGrant("alice", session.MaxEpochs+1), fakeGrant("bob", session.MaxEpochs+1)}}, 400, keyservice.CodeInvalidRequest, "no epoch beyond session.MaxEpochs, whatever from_epoch claims"},
		{"rotate to the last epoch", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: session.MaxEpochs - 1, Grants: []wire.Grant{fakeGrant("alice", session.MaxEpochs), fakeGrant("bob", session.MaxEpochs)}}, 400, keyservice.CodeInvalidRequest, "epochs are numbered below session.MaxEpochs"},
		{"stale epoch", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: 5, Grants: []wire.Grant{fakeGrant("alice", 6), fakeGrant("bob", 6)}}, 409, keyservice.CodeConflict, "rotation from an old epoch"},
		{"wrong extend epoch", "POST", "/v1/sessions/" + sid + "/members", wire.ExtendRequest{Epoch: 3, Grants: []wire.Grant{fakeGrant("ghost2", 3)}}, 400, keyservice.CodeInvalidGrants, "grantee check comes first"},
		{"existing member", "POST", "/v1/sessions/" + sid + "/members", wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{fakeGrant("bob", 0)}}, 409, keyservice.CodeConflict, "members are not granted twice"},
		{"no such route", "GET", "/v2/anything", nil, 404, keyservice.CodeNotFound, "JSON 404"},
	}
	for _, tc := range tests {
		got, eb := rawRequest(t, srv, tc.method, tc.path, tok, tc.body)
		if got != tc.status || eb.Error.Code != tc.code {
			t.Errorf("%s: %d %q (%s), want %d %q; %s", tc.name, got, eb.Error.Code, eb.Error.Message, tc.status, tc.code, tc.reason)
		}
	}
	// Nothing was stored half-way: the session is still at epoch 0 with
	// its two members and the directory still has alice's first card.
	info, err := alice.c.Info(ctx, s.ID())
	if err != nil || info.Epoch != 0 || len(info.Members) != 2 {
		t.Fatalf("state changed by refused requests: %+v %v", info, err)
	}
	if h, err := alice.c.History(ctx, "alice"); err != nil || len(h) != 1 || !h[0].Equal(alice.id.Card()) {
		t.Fatalf("directory changed by refused requests: %v", err)
	}
	// A refused create leaves no session behind.
	id, _ := session.NewID(nil)
	got, _ := rawRequest(t, srv, "POST", "/v1/sessions", tok, wire.CreateSessionRequest{ID: id.String(), ChannelCID: "messaging:half", Grants: []wire.Grant{fakeGrant("alice", 0), fakeGrant("ghost", 0)}})
	if got != 400 {
		t.Fatalf("create with a ghost grantee: %d", got)
	}
	if _, err := alice.c.Lookup(ctx, "messaging:half"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Fatalf("refused create left a session: %v", err)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t))
	srv.member(t, "alice")
	tok := userToken(t, "alice")
	id, _ := session.NewID(nil)
	body, _ := json.Marshal(wire.CreateSessionRequest{ID: id.String(), ChannelCID: "messaging:idem", Grants: []wire.Grant{fakeGrant("alice", 0)}})
	post := func(key string, b []byte) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/sessions", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	s1, r1 := post("k1", body)
	s2, r2 := post("k1", body)
	if s1 != 201 || s2 != 201 || r1 != r2 {
		t.Fatalf("retry with the same key: %d %s / %d %s; want the first response replayed", s1, r1, s2, r2)
	}
	other, _ := json.Marshal(wire.CreateSessionRequest{ID: id.String(), ChannelCID: "messaging:other", Grants: []wire.Grant{fakeGrant("alice", 0)}})
	if s, r := post("k1", other); s != http.StatusUnprocessableEntity || !strings.Contains(r, keyservice.CodeIdempotencyReuse) {
		t.Fatalf("same key, other request: %d %s", s, r)
	}
	// Without the key, a second create for the channel converges (200).
	s3, r3 := post("k2", body)
	if s3 != 200 || !strings.Contains(r3, `"created":false`) {
		t.Fatalf("second create for the channel: %d %s", s3, r3)
	}
}

// TestUntrustedStrings sends user IDs, channel CIDs and Idempotency-Keys
// that no store can keep (NUL bytes, invalid UTF-8) or that no card can
// carry (control characters, over-long), in every place a request carries
// them, to a server over SQLite and one over PostgreSQL: each is refused
// with a 400 (a 401 in a token) before the store sees it, never a 5xx from
// a database that refuses the bytes.
func TestUntrustedStrings(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		open func(t *testing.T) Store
	}{
		{"sqlite", func(t *testing.T) Store { return openTestStore(t) }},
		{"postgres", func(t *testing.T) Store {
			if !pgtest.Available() {
				t.Skip("VEIL_TEST_POSTGRES not set")
			}
			st, err := OpenStore(context.Background(), pgtest.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := newTestServer(t, b.open(t))
			alice := srv.member(t, "alice")
			srv.member(t, "bob")
			s, err := alice.mgr.Create(ctx, "messaging:strings", []string{"bob"})
			if err != nil {
				t.Fatal(err)
			}
			sid := s.ID().String()
			tok := userToken(t, "alice")
			newID := func() string { id, _ := session.NewID(nil); return id.String() }
			create := func(cid, grantee string) wire.CreateSessionRequest {
				return wire.CreateSessionRequest{ID: newID(), ChannelCID: cid, Grants: []wire.Grant{fakeGrant("alice", 0), fakeGrant(grantee, 0)}}
			}
			long := strings.Repeat("u", identity.MaxUserIDLen+1)
			tests := []struct {
				name, method, path string
				body               any
				idemKey, token     string // defaults: none, alice's token
				status             int
				code, reason       string
			}{
				{"lookup session, NUL", "GET", "/v1/sessions?channel_cid=messaging:a%00b", nil, "", "", 400, keyservice.CodeInvalidRequest, "PostgreSQL TEXT holds no NUL"},
				{"lookup session, invalid UTF-8", "GET", "/v1/sessions?channel_cid=messaging:%ff", nil, "", "", 400, keyservice.CodeInvalidRequest, "PostgreSQL TEXT holds UTF-8 only"},
				{"card history, NUL", "GET", "/v1/users/a%00b/cards", nil, "", "", 400, keyservice.CodeInvalidRequest, "path user IDs are checked"},
				{"card history, invalid UTF-8", "GET", "/v1/users/%ff/cards", nil, "", "", 400, keyservice.CodeInvalidRequest, "path user IDs are checked"},
				{"card history, control character", "GET", "/v1/users/a%1fb/cards", nil, "", "", 400, keyservice.CodeInvalidRequest, "no card carries such an ID"},
				{"card history, over-long", "GET", "/v1/users/" + long + "/cards", nil, "", "", 400, keyservice.CodeInvalidRequest, "user IDs are bounded"},
				{"lookup cards, NUL", "POST", "/v1/cards/lookup", `{"user_ids":["alice","a\u0000b"]}`, "", "", 400, keyservice.CodeInvalidRequest, "every listed ID is checked"},
				{"lookup cards, DEL", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{"a\x7fb"}}, "", "", 400, keyservice.CodeInvalidRequest, "no card carries such an ID"},
				{"lookup cards, empty", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{""}}, "", "", 400, keyservice.CodeInvalidRequest, "user IDs are not empty"},
				{"create session, NUL channel", "POST", "/v1/sessions", create("messaging:\x00", "bob"), "", "", 400, keyservice.CodeInvalidRequest, "channel CIDs are checked"},
				{"create session, NUL grantee", "POST", "/v1/sessions", create("messaging:nul-grantee", "b\x00b"), "", "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"create session, control grantee", "POST", "/v1/sessions", create("messaging:ctl-grantee", "b\nb"), "", "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"create session, invalid UTF-8 key", "POST", "/v1/sessions", create("messaging:key-utf8", "bob"), "k\xff", "", 400, keyservice.CodeInvalidRequest, "Idempotency-Keys are stored as text"},
				{"create session, control in key", "POST", "/v1/sessions", create("messaging:key-ctl", "bob"), "k\tk", "", 400, keyservice.CodeInvalidRequest, "Idempotency-Keys are printable"},
				{"create session, over-long key", "POST", "/v1/sessions", create("messaging:key-long", "bob"), strings.Repeat("k", 256), "", 400, keyservice.CodeInvalidRequest, "Idempotency-Keys are bounded"},
				{"extend, NUL grantee", "POST", "/v1/sessions/" + sid + "/members", wire.ExtendRequest{Epoch: 0, Grants: []wire.Grant{fakeGrant("c\x00", 0)}}, "", "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"rotate, NUL grantee", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: 0, Remove: []string{}, Grants: []wire.Grant{fakeGrant("alice", 1), fakeGrant("bob", 1), fakeGrant("c\x00", 1)}}, "", "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"rotate, NUL in remove", "POST", "/v1/sessions/" + sid + "/rotate", wire.RotateRequest{FromEpoch: 0, Remove: []string{"b\x00b"}, Grants: []wire.Grant{fakeGrant("alice", 1), fakeGrant("bob", 1)}}, "", "", 400, keyservice.CodeInvalidRequest, "removed users are user IDs"},
				{"set admin, NUL", "PUT", "/v1/sessions/" + sid + "/admins/b%00b", wire.AdminRequest{Admin: true}, "", "", 400, keyservice.CodeInvalidRequest, "path user IDs are checked"},
				{"set admin, invalid UTF-8", "PUT", "/v1/sessions/" + sid + "/admins/%ff", wire.AdminRequest{Admin: true}, "", "", 400, keyservice.CodeInvalidRequest, "path user IDs are checked"},
				{"token, NUL user", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{"alice"}}, "", userToken(t, "a\x00b"), 401, keyservice.CodeUnauthenticated, "the caller's ID reaches the store too"},
				{"token, control user", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{"alice"}}, "", userToken(t, "a\rb"), 401, keyservice.CodeUnauthenticated, "the caller's ID reaches the store too"},
			}
			for _, tt := range tests {
				var rd io.Reader
				switch b := tt.body.(type) {
				case nil:
				case string:
					rd = strings.NewReader(b)
				default:
					j, _ := json.Marshal(b)
					rd = bytes.NewReader(j)
				}
				req, err := http.NewRequest(tt.method, srv.URL+tt.path, rd)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				bearer := cmp.Or(tt.token, tok)
				req.Header.Set("Authorization", "Bearer "+bearer)
				if tt.idemKey != "" {
					req.Header["Idempotency-Key"] = []string{tt.idemKey}
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				var eb httpjson.ErrorBody
				json.NewDecoder(resp.Body).Decode(&eb)
				resp.Body.Close()
				if resp.StatusCode != tt.status || eb.Error.Code != tt.code {
					t.Errorf("%s: %d %s (%s), want %d %s; %s", tt.name, resp.StatusCode, eb.Error.Code, eb.Error.Message, tt.status, tt.code, tt.reason)
				}
			}
			// The refused requests stored nothing: the session is as created.
			info, err := alice.c.Info(ctx, s.ID())
			if err != nil || info.Epoch != 0 || len(info.Members) != 2 || info.Members[1].Admin {
				t.Fatalf("state changed by refused requests: %+v %v", info, err)
			}
		})
	}
}
