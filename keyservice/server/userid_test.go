package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/session"
)

// TestAwkwardUserIDsOverHTTP takes user IDs that are valid (identity's
// rule: 1 to 255 bytes of UTF-8 without control characters) but awkward in
// a URL path — each byte a path, a query, a fragment or a percent-encoding
// gives a meaning to — through every method of keyservice.Client, against
// the real handler: the IDs in paths (cards) must reach the handler as
// sent, and those in bodies and records must come back unchanged.
func TestAwkwardUserIDsOverHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		user   string
		reason string
	}{
		{"plain", "the control case"},
		{"with space", "a space is %20 in a path, and must be escaped once"},
		{"zoë", "non-ASCII is percent-encoded UTF-8"},
		{"用户", "multi-byte UTF-8 only"},
		{"a/b", "an escaped '/' stays in its segment"},
		{"/", "a user ID that is only a separator"},
		{"100%", "a '%' is escaped, not read as an escape"},
		{"%41", "what looks like an escape is the literal text"},
		{"what?", "'?' would start the query"},
		{"#tag", "'#' would start the fragment"},
		{"a+b", "'+' is literal in a path (a space only in a query)"},
		{"..", "a relative path element, resolved by servers and proxies unless escaped"},
		{".", "the current-directory element"},
		{"../cards", "a traversal attempt is a user ID like any other"},
		{"a;b=c&d", "sub-delimiters"},
		{"emoji 🔑", "4-byte UTF-8"},
		{strings.Repeat("é", identity.MaxUserIDLen/2), "the longest IDs, each letter escaped to six bytes"},
	}
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		srv := newTestServer(t, open(t))
		alice := srv.member(t, "alice")
		for i, tt := range tests {
			t.Run(tt.user, func(t *testing.T) {
				if err := identity.CheckUserID(tt.user); err != nil {
					t.Fatalf("the test's user ID is not valid: %v", err)
				}
				checkAwkwardUser(t, srv, alice, tt.user, i, tt.reason)
			})
		}
	})
}

// checkAwkwardUser runs user through every method of keyservice.Client:
// the directory's (PublishCard, PublishHistory, History, Latest) and the
// session service's (Create, Lookup, Head, Log, Grants, Append, Delete),
// these through session.Manager, which calls them as an application does.
func checkAwkwardUser(t *testing.T, srv *testServer, alice *member, user string, i int, reason string) {
	ctx := context.Background()
	u := srv.member(t, user) // PublishCard of generation 0
	// A second generation, published with the history.
	next, err := u.id.Rotate(testrand.New("rotate-"+user), identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.c.PublishHistory(ctx, next.Cards()); err != nil {
		t.Fatalf("PublishHistory: %v (%s)", err, reason)
	}
	hist, err := alice.c.History(ctx, user)
	if err != nil || len(hist) != 2 || !hist[1].Equal(next.Card()) {
		t.Fatalf("History = %d cards, %v; want both generations (%s)", len(hist), err, reason)
	}
	latest, err := alice.c.Latest(ctx, []string{user, "alice"})
	if err != nil || latest[user] == nil || !latest[user].Equal(next.Card()) {
		t.Fatalf("Latest = %v, %v; want generation 1 of %q (%s)", latest, err, user, reason)
	}
	// A Manager over the rotated identity: the user creates a session,
	// alice joins, the user adds bob, promotes alice, rotates; alice
	// removes the user; the user can no longer read.
	mgr, err := session.NewManager(session.Config{Identity: next, Service: u.c, Directory: u.c, Rand: testrand.New("mgr-" + user)})
	if err != nil {
		t.Fatal(err)
	}
	u = &member{id: next, c: u.c, mgr: mgr}
	cid := "messaging:awkward-" + string(rune('a'+i))
	s, err := u.mgr.Create(ctx, cid, []string{"alice"})
	if err != nil {
		t.Fatalf("Create: %v (%s)", err, reason)
	}
	if got, err := u.c.Lookup(ctx, cid); err != nil || got != s.ID() {
		t.Fatalf("Lookup = %v, %v (%s)", got, err, reason)
	}
	if err := u.mgr.SetAdmin(ctx, s.ID(), "alice", true); err != nil {
		t.Fatalf("SetAdmin (Append): %v (%s)", err, reason)
	}
	if err := u.mgr.Rotate(ctx, s.ID()); err != nil {
		t.Fatalf("Rotate (Append): %v (%s)", err, reason)
	}
	bind := session.Binding{ChannelCID: cid, MessageID: "m1", SenderID: user}
	text, err := u.mgr.SealText(ctx, s.ID(), bind, []byte("hello"), 5000)
	if err != nil {
		t.Fatalf("SealText (Head): %v (%s)", err, reason)
	}
	if plain, err := alice.mgr.OpenText(ctx, text, bind); err != nil || string(plain) != "hello" {
		t.Fatalf("alice opens the user's message: %q, %v (%s)", plain, err, reason)
	}
	info, err := alice.mgr.Info(ctx, s.ID())
	if err != nil {
		t.Fatal(err)
	}
	if info.Creator != user || len(info.Members) != 2 {
		t.Fatalf("Info = %+v; want the user as creator and two members (%s)", info, reason)
	}
	log, err := u.c.Log(ctx, s.ID(), 0)
	if err != nil || len(log) != 3 {
		t.Fatalf("Log = %d records, %v; want 3 (%s)", len(log), err, reason)
	}
	head, err := u.c.Head(ctx, s.ID())
	if err != nil || head.Seq != 2 {
		t.Fatalf("Head = %+v, %v; want record 2 (%s)", head, err, reason)
	}
	grants, err := u.c.Grants(ctx, s.ID())
	if err != nil || len(grants) != 2 || grants[0].Grantee != user {
		t.Fatalf("Grants = %d, %v; want the user's two epochs (%s)", len(grants), err, reason)
	}
	if err := alice.mgr.Revoke(ctx, s.ID(), []string{user}); err != nil {
		t.Fatalf("alice removes the user (Append): %v (%s)", err, reason)
	}
	if _, err := u.c.Grants(ctx, s.ID()); !errors.Is(err, keyservice.ErrForbidden) {
		t.Fatalf("Grants after removal = %v, want ErrForbidden (%s)", err, reason)
	}
	// The user's own second session, which it deletes as its admin.
	s2, err := u.mgr.Create(ctx, cid+"-2", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.c.Delete(ctx, s2.ID()); err != nil {
		t.Fatalf("Delete: %v (%s)", err, reason)
	}
	if _, err := u.c.Head(ctx, s2.ID()); !errors.Is(err, keyservice.ErrNotFound) {
		t.Fatalf("Head after Delete = %v, want ErrNotFound (%s)", err, reason)
	}
}
