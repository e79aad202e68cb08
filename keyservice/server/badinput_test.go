package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	alice := srv.member(t, "alice")
	bob := srv.member(t, "bob")
	c := newChain(t, "messaging:bad", alice.id, bob.id)
	srv.post(t, "alice", "/v1/sessions", c.create())
	sid := c.id.String()
	tok := userToken(t, "alice")

	// A card signed by a key other than the one it carries.
	forged := alice.id.Card().Marshal()
	forged[len(forged)-1] ^= 1
	// A generation-1 card that is not signed by alice's generation 0.
	other, _ := identity.Generate(testrand.New("other"), "alice", identity.Options{Kind: identity.KindX25519})
	other1, _ := other.Rotate(testrand.New("other1"), identity.Options{})
	// A card for another user, published under alice's name.
	bobsCard, _ := identity.Generate(testrand.New("b"), "bob", identity.Options{Kind: identity.KindX25519})
	big := newChain(t, "messaging:big", alice.id, bob.id).create()
	big.Grants[0].Grant = make([]byte, 70<<10)

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
		{"wrong type", "POST", "/v1/sessions/" + sid + "/log", `{"record":7}`, 400, keyservice.CodeInvalidRequest, "types are checked"},
		{"record not base64", "POST", "/v1/sessions/" + sid + "/log", `{"record":"!!"}`, 400, keyservice.CodeInvalidRequest, "byte strings are base64"},
		{"genesis not base64", "POST", "/v1/sessions", `{"genesis":"@@","grants":[]}`, 400, keyservice.CodeInvalidRequest, "byte strings are base64"},
		{"old create body", "POST", "/v1/sessions", `{"id":"` + sid + `","channel_cid":"messaging:x","grants":[]}`, 400, keyservice.CodeInvalidRequest, "sessions come from a signed genesis"},
		{"oversize body", "POST", "/v1/cards/lookup", `{"user_ids":["` + strings.Repeat("a", 70<<10) + `"]}`, 413, keyservice.CodeBodyTooLarge, "bodies are capped"},
		{"oversize create", "POST", "/v1/sessions", big, 413, keyservice.CodeBodyTooLarge, "bodies are capped"},
		{"too many users", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: make([]string, 1001)}, 400, keyservice.CodeTooManyMembers, "per-call member cap"},
		{"forged card", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: forged}, 400, keyservice.CodeInvalidCard, "self-signature checked"},
		{"unchained card", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: other1.Card().Marshal()}, 400, keyservice.CodeInvalidCard, "a new generation must be signed by the latest"},
		{"fresh gen 0 over existing", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: other.Card().Marshal()}, 400, keyservice.CodeInvalidCard, "no silent key replacement"},
		{"card of another user", "PUT", "/v1/users/alice/cards", wire.PublishCardRequest{Card: bobsCard.Card().Marshal()}, 400, keyservice.CodeInvalidCard, "the card must name the path's user"},
		{"bad session ID", "GET", "/v1/sessions/XYZ/log", nil, 400, keyservice.CodeInvalidRequest, "IDs are validated"},
		{"upper-case session ID", "GET", "/v1/sessions/" + strings.ToUpper(sid) + "/head", nil, 400, keyservice.CodeInvalidRequest, "one spelling per ID"},
		{"zero session ID", "GET", "/v1/sessions/" + strings.Repeat("0", 32) + "/head", nil, 400, keyservice.CodeInvalidRequest, "no session has the zero ID"},
		{"unknown session", "GET", "/v1/sessions/" + strings.Repeat("ab", 16) + "/head", nil, 404, keyservice.CodeUnknownSession, "clear not-found"},
		{"unknown user history", "GET", "/v1/users/nobody/cards", nil, 404, keyservice.CodeUnknownUser, "clear not-found"},
		{"removed route: session info", "GET", "/v1/sessions/" + sid, nil, 405, keyservice.CodeMethodNotAllowed, "members come from the log; the path only deletes"},
		{"removed route: members", "POST", "/v1/sessions/" + sid + "/members", `{}`, 404, keyservice.CodeNotFound, "members are added by records"},
		{"removed route: rotate", "POST", "/v1/sessions/" + sid + "/rotate", `{}`, 404, keyservice.CodeNotFound, "epochs start with records"},
		{"removed route: admins", "PUT", "/v1/sessions/" + sid + "/admins/bob", `{}`, 404, keyservice.CodeNotFound, "roles change with records"},
		{"no such route", "GET", "/v2/anything", nil, 404, keyservice.CodeNotFound, "JSON 404"},
	}
	for _, tc := range tests {
		got, eb := rawRequest(t, srv, tc.method, tc.path, tok, tc.body)
		if got != tc.status || eb.Error.Code != tc.code {
			t.Errorf("%s: %d %q (%s), want %d %q; %s", tc.name, got, eb.Error.Code, eb.Error.Message, tc.status, tc.code, tc.reason)
		}
	}
	// Nothing was stored half-way: the session is at its genesis and the
	// directory still has alice's first card.
	if h, err := alice.c.Head(ctx, c.id); err != nil || h.Seq != 0 {
		t.Fatalf("state changed by refused requests: %+v %v", h, err)
	}
	if h, err := alice.c.History(ctx, "alice"); err != nil || len(h) != 1 || !h[0].Equal(alice.id.Card()) {
		t.Fatalf("directory changed by refused requests: %v", err)
	}
	if _, err := alice.c.Lookup(ctx, "messaging:big"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Fatalf("refused create left a session: %v", err)
	}
}

// TestUntrustedStrings sends user IDs and channel CIDs that no store can
// keep (NUL bytes, invalid UTF-8) or that no card can carry (control
// characters, over-long), in every place a request carries them outside a
// signed record, to a server over SQLite and one over PostgreSQL: each is
// refused with a 400 (a 401 in a token) before the store sees it, never a
// 5xx from a database that refuses the bytes.
func TestUntrustedStrings(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := newTestServer(t, b.open(t))
			alice, bob := srv.member(t, "alice"), srv.member(t, "bob")
			carol := srv.member(t, "carol")
			c := newChain(t, "messaging:strings", alice.id, bob.id)
			srv.post(t, "alice", "/v1/sessions", c.create())
			sid := c.id.String()
			withGrantee := func(grantee string) wire.CreateSessionRequest {
				req := newChain(t, "messaging:grantee-"+fmt.Sprint(len(grantee)), alice.id, bob.id).create()
				req.Grants[1].Grantee = grantee
				return req
			}
			add, _ := c.sign(alice.id, []memberlog.Op{addOp(carol.id)}, false)
			addWith := func(grantee string) wire.AppendRequest {
				req := add
				req.Grants = []wire.Grant{fakeGrant(grantee, 0)}
				return req
			}
			long := strings.Repeat("u", identity.MaxUserIDLen+1)
			tests := []struct {
				name, method, path string
				body               any
				token              string // default: alice's
				status             int
				code, reason       string
			}{
				{"lookup session, NUL", "GET", "/v1/sessions?channel_cid=messaging:a%00b", nil, "", 400, keyservice.CodeInvalidRequest, "PostgreSQL TEXT holds no NUL"},
				{"lookup session, invalid UTF-8", "GET", "/v1/sessions?channel_cid=messaging:%ff", nil, "", 400, keyservice.CodeInvalidRequest, "PostgreSQL TEXT holds UTF-8 only"},
				{"lookup session, empty", "GET", "/v1/sessions?channel_cid=", nil, "", 400, keyservice.CodeInvalidRequest, "a channel is named"},
				{"card history, NUL", "GET", "/v1/users/a%00b/cards", nil, "", 400, keyservice.CodeInvalidRequest, "path user IDs are checked"},
				{"card history, invalid UTF-8", "GET", "/v1/users/%ff/cards", nil, "", 400, keyservice.CodeInvalidRequest, "path user IDs are checked"},
				{"card history, control character", "GET", "/v1/users/a%1fb/cards", nil, "", 400, keyservice.CodeInvalidRequest, "no card carries such an ID"},
				{"card history, over-long", "GET", "/v1/users/" + long + "/cards", nil, "", 400, keyservice.CodeInvalidRequest, "user IDs are bounded"},
				{"lookup cards, NUL", "POST", "/v1/cards/lookup", `{"user_ids":["alice","a\u0000b"]}`, "", 400, keyservice.CodeInvalidRequest, "every listed ID is checked"},
				{"lookup cards, DEL", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{"a\x7fb"}}, "", 400, keyservice.CodeInvalidRequest, "no card carries such an ID"},
				{"lookup cards, empty", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{""}}, "", 400, keyservice.CodeInvalidRequest, "user IDs are not empty"},
				{"create session, NUL grantee", "POST", "/v1/sessions", withGrantee("b\x00b"), "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"create session, control grantee", "POST", "/v1/sessions", withGrantee("b\nb"), "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"create session, invalid UTF-8 grantee", "POST", "/v1/sessions", withGrantee("b\xffb"), "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"append, NUL grantee", "POST", "/v1/sessions/" + sid + "/log", addWith("c\x00"), "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"append, over-long grantee", "POST", "/v1/sessions/" + sid + "/log", addWith(long), "", 400, keyservice.CodeInvalidGrants, "grantees are user IDs"},
				{"log, NUL in the ID", "GET", "/v1/sessions/a%00b/log", nil, "", 400, keyservice.CodeInvalidRequest, "path IDs are checked"},
				{"log, NUL in from", "GET", "/v1/sessions/" + sid + "/log?from=1%00", nil, "", 400, keyservice.CodeInvalidRequest, "query values are checked"},
				{"log, invalid UTF-8 in limit", "GET", "/v1/sessions/" + sid + "/log?limit=%ff", nil, "", 400, keyservice.CodeInvalidRequest, "query values are checked"},
				{"head, invalid UTF-8 in the ID", "GET", "/v1/sessions/%ff/head", nil, "", 400, keyservice.CodeInvalidRequest, "path IDs are checked"},
				{"grants, NUL in the cursor", "GET", "/v1/sessions/" + sid + "/grants?after_epoch=%00", nil, "", 400, keyservice.CodeInvalidRequest, "query values are checked"},
				{"token, NUL user", "POST", "/v1/cards/lookup", wire.LookupRequest{UserIDs: []string{"alice"}}, userToken(t, "a\x00b"), 401, keyservice.CodeUnauthenticated, "the caller's ID reaches the store too"},
				{"token, control user", "GET", "/v1/sessions/" + sid + "/grants", nil, userToken(t, "a\rb"), 401, keyservice.CodeUnauthenticated, "the caller's ID reaches the store too"},
			}
			for _, tt := range tests {
				r := request(t, srv, tt.method, tt.path, cmp.Or(tt.token, userToken(t, "alice")), tt.body)
				if r.status != tt.status || r.err.Code != tt.code {
					t.Errorf("%s: %d %s (%s), want %d %s; %s", tt.name, r.status, r.err.Code, r.err.Message, tt.status, tt.code, tt.reason)
				}
			}
			// The refused requests stored nothing: the session is at its
			// genesis.
			if h, err := alice.c.Head(ctx, c.id); err != nil || h.Seq != 0 {
				t.Fatalf("state changed by refused requests: %+v %v", h, err)
			}
		})
	}
}
