package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
)

// Run runs the conformance suite. open must return a new, empty Store for
// each call and arrange for it to be closed when t ends (t.Cleanup); Run
// calls it from parallel subtests, once per subtest.
func Run(t *testing.T, open func(t *testing.T) server.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st server.Store)
	}{
		{"InsertCard", testInsertCard},
		{"LatestCards", testLatestCards},
		{"LatestCardsMany", testLatestCardsMany},
		{"CardHistory", testCardHistory},
		{"Ownership", testOwnership},
		{"CreateSession", testCreateSession},
		{"SessionByChannel", testSessionByChannel},
		{"Session", testSession},
		{"Grants", testGrants},
		{"Extend", testExtend},
		{"Rotate", testRotate},
		{"SetAdmin", testSetAdmin},
		{"DeleteSession", testDeleteSession},
		{"Idempotency", testIdempotency},
		{"Ping", testPing},
		{"NothingHalfway", testNothingHalfway},
		{"RaceRotate", testRaceRotate},
		{"RaceCreateSession", testRaceCreateSession},
		{"RaceInsertCard", testRaceInsertCard},
		{"RaceExtend", testRaceExtend},
		{"RaceMixed", testRaceMixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// racers is how many goroutines the race tests run at once.
const racers = 16

var (
	ctx = context.Background()
	// created is a time with microsecond precision (what stores keep) in
	// a zone other than UTC (stores may return it in any zone).
	created = time.Date(2026, 6, 1, 12, 30, 45, 123456000, time.FixedZone("CEST", 2*3600))
)

// card returns distinct bytes for a user's card generation.
func card(user string, gen uint32) []byte {
	return []byte(fmt.Sprintf("veil card %s gen %d", user, gen))
}

// grant returns a grant record for user at epoch, with distinct bytes.
func grant(user string, epoch uint32) session.GrantRecord {
	return session.GrantRecord{Grantee: user, Epoch: epoch, Grant: []byte(fmt.Sprintf("age-encryption.org/v1\n%s@%d", user, epoch))}
}

func grants(epoch uint32, users ...string) []session.GrantRecord {
	out := make([]session.GrantRecord, len(users))
	for i, u := range users {
		out[i] = grant(u, epoch)
	}
	return out
}

// sid returns a session ID that depends only on n.
func sid(n int) session.ID {
	var id session.ID
	id[0], id[14], id[15] = 0x5e, byte(n>>8), byte(n)
	return id
}

// is reports whether err matches want (nil wants no error).
func is(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// mustCreate creates session n on channel "messaging:<n>" with creator as
// admin and members as members, all granted epoch 0.
func mustCreate(t *testing.T, st server.Store, n int, creator string, members ...string) session.ID {
	t.Helper()
	id := sid(n)
	got, ok, err := st.CreateSession(ctx, server.SessionRecord{ID: id, ChannelCID: fmt.Sprintf("messaging:%d", n), CreatedBy: creator, CreatedAt: created},
		grants(0, append([]string{creator}, members...)...))
	if err != nil || !ok || got != id {
		t.Fatalf("CreateSession %d: id %v, created %v, err %v", n, got, ok, err)
	}
	return id
}

// state is everything a store knows about a session, for comparisons.
type state struct {
	Rec     server.SessionRecord
	Members []session.Member
	Grants  map[string][]session.GrantRecord // of the members and of others asked about
}

// snapshot reads a session's state; users are extra users whose grants
// are read too (removed members, grantees of failed calls).
func snapshot(t *testing.T, st server.Store, id session.ID, users ...string) state {
	t.Helper()
	rec, members, err := st.Session(ctx, id)
	if err != nil {
		t.Fatalf("Session(%v): %v", id, err)
	}
	s := state{Rec: rec, Members: members, Grants: map[string][]session.GrantRecord{}}
	for _, m := range members {
		users = append(users, m.UserID)
	}
	for _, u := range users {
		g, err := st.Grants(ctx, id, u)
		if err != nil {
			t.Fatalf("Grants(%v, %s): %v", id, u, err)
		}
		if len(g) > 0 {
			s.Grants[u] = g
		}
	}
	return s
}

// cmpOpts treats nil and empty alike and times by Equal.
var cmpOpts = []cmp.Option{cmpopts.EquateEmpty()}

func testInsertCard(t *testing.T, st server.Store) {
	steps := []struct {
		name    string
		user    string
		gen     uint32
		card    []byte
		wantErr error
		reason  string
	}{
		{"first card", "alice", 0, card("alice", 0), nil, "generation 0 starts a history"},
		{"same generation again", "alice", 0, []byte("another alice 0"), keyservice.ErrConflict, "a published generation is never replaced"},
		{"skipping a generation", "alice", 2, card("alice", 2), keyservice.ErrConflict, "generation 1 does not exist yet"},
		{"next generation", "alice", 1, card("alice", 1), nil, "chained to generation 0"},
		{"first card not zero", "bob", 1, card("bob", 1), keyservice.ErrConflict, "a history starts at generation 0"},
		{"other user", "bob", 0, card("bob", 0), nil, "users are independent"},
		{"same bytes, other user", "carol", 0, card("bob", 0), nil, "the store does not interpret cards"},
		{"third generation", "alice", 2, card("alice", 2), nil, "now generation 1 exists"},
		{"old generation again", "alice", 1, card("alice", 1), keyservice.ErrConflict, "even with identical bytes"},
	}
	for _, s := range steps {
		if err := st.InsertCard(ctx, s.user, s.gen, s.card); !is(err, s.wantErr) {
			t.Errorf("%s: InsertCard(%s, %d) = %v, want %v (%s)", s.name, s.user, s.gen, err, s.wantErr, s.reason)
		}
	}
	want := map[string][][]byte{
		"alice": {card("alice", 0), card("alice", 1), card("alice", 2)},
		"bob":   {card("bob", 0)},
		"carol": {card("bob", 0)},
	}
	for user, w := range want {
		got, err := st.CardHistory(ctx, user)
		if err != nil {
			t.Fatalf("CardHistory(%s): %v", user, err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("CardHistory(%s): failed inserts must store nothing (-want +got)\n%s", user, diff)
		}
	}
}

func testLatestCards(t *testing.T, st server.Store) {
	for _, c := range []struct {
		user string
		gen  uint32
	}{{"alice", 0}, {"alice", 1}, {"bob", 0}, {"Bob", 0}} {
		if err := st.InsertCard(ctx, c.user, c.gen, card(c.user, c.gen)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		users  []string
		want   map[string][]byte
		reason string
	}{
		{"none asked", nil, map[string][]byte{}, "an empty question has an empty answer"},
		{"unknown only", []string{"zed", "yan"}, map[string][]byte{}, "users without a card are absent"},
		{"newest generation", []string{"alice"}, map[string][]byte{"alice": card("alice", 1)}, "only the latest card"},
		{"mixed", []string{"bob", "alice", "carol"}, map[string][]byte{"alice": card("alice", 1), "bob": card("bob", 0)}, "known users present, unknown absent"},
		{"duplicates", []string{"bob", "bob", "alice", "bob"}, map[string][]byte{"alice": card("alice", 1), "bob": card("bob", 0)}, "a user asked twice is answered once"},
		{"case matters", []string{"Bob"}, map[string][]byte{"Bob": card("Bob", 0)}, "user IDs are compared byte for byte"},
	}
	for _, tt := range tests {
		got, err := st.LatestCards(ctx, tt.users)
		if err != nil {
			t.Errorf("%s: LatestCards: %v", tt.name, err)
			continue
		}
		if got == nil {
			t.Errorf("%s: LatestCards returned a nil map", tt.name)
		}
		if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
			t.Errorf("%s: LatestCards(%q) (-want +got) (%s)\n%s", tt.name, tt.users, tt.reason, diff)
		}
	}
}

// testLatestCardsMany asks for more users at once than the key service
// allows per request (1,000), with some of them without a card.
func testLatestCardsMany(t *testing.T, st server.Store) {
	const n = 1200
	users := make([]string, 0, n)
	want := map[string][]byte{}
	for i := range n {
		u := fmt.Sprintf("user-%04d", i)
		users = append(users, u)
		if i%3 == 0 {
			continue // no card
		}
		if err := st.InsertCard(ctx, u, 0, card(u, 0)); err != nil {
			t.Fatal(err)
		}
		want[u] = card(u, 0)
	}
	got, err := st.LatestCards(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LatestCards of %d users (-want +got)\n%s", n, diff)
	}
}

func testCardHistory(t *testing.T, st server.Store) {
	if _, err := st.CardHistory(ctx, "nobody"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("CardHistory of a user without cards = %v, want ErrNotFound", err)
	}
	var want [][]byte
	for gen := range uint32(5) {
		if err := st.InsertCard(ctx, "alice", gen, card("alice", gen)); err != nil {
			t.Fatal(err)
		}
		want = append(want, card("alice", gen))
	}
	got, err := st.CardHistory(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CardHistory: generation 0 first (-want +got)\n%s", diff)
	}
	if _, err := st.CardHistory(ctx, "Alice"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("CardHistory(Alice) = %v, want ErrNotFound: user IDs are case-sensitive", err)
	}
}

// testOwnership checks that the store keeps copies: callers may reuse the
// slices they passed and modify the ones they got.
func testOwnership(t *testing.T, st server.Store) {
	b := card("alice", 0)
	if err := st.InsertCard(ctx, "alice", 0, b); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	got, err := st.CardHistory(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	got[0][1] ^= 0xff
	latest, err := st.LatestCards(ctx, []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(card("alice", 0), latest["alice"]); diff != "" {
		t.Errorf("stored card changed through a caller's slice (-want +got)\n%s", diff)
	}
	gs := grants(0, "alice")
	id := sid(1)
	if _, _, err := st.CreateSession(ctx, server.SessionRecord{ID: id, ChannelCID: "messaging:own", CreatedBy: "alice", CreatedAt: created}, gs); err != nil {
		t.Fatal(err)
	}
	gs[0].Grant[0] ^= 0xff
	g1, err := st.Grants(ctx, id, "alice")
	if err != nil {
		t.Fatal(err)
	}
	g1[0].Grant[0] ^= 0xff
	g2, err := st.Grants(ctx, id, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(grants(0, "alice"), g2); diff != "" {
		t.Errorf("stored grant changed through a caller's slice (-want +got)\n%s", diff)
	}
}

func testCreateSession(t *testing.T, st server.Store) {
	rec := server.SessionRecord{ID: sid(1), ChannelCID: "messaging:general", CreatedBy: "alice", CreatedAt: created}
	first := snapshotAfterCreate(t, st, rec, grants(0, "alice", "bob", "carol"))
	want := state{
		Rec: server.SessionRecord{ID: sid(1), ChannelCID: "messaging:general", Epoch: 0, CreatedBy: "alice", CreatedAt: created},
		Members: []session.Member{
			{UserID: "alice", Admin: true, Since: 0},
			{UserID: "bob", Admin: false, Since: 0},
			{UserID: "carol", Admin: false, Since: 0},
		},
		Grants: map[string][]session.GrantRecord{
			"alice": grants(0, "alice"), "bob": grants(0, "bob"), "carol": grants(0, "carol"),
		},
	}
	if diff := cmp.Diff(want, first, cmpOpts...); diff != "" {
		t.Fatalf("after CreateSession (-want +got)\n%s", diff)
	}

	tests := []struct {
		name        string
		rec         server.SessionRecord
		grants      []session.GrantRecord
		wantID      session.ID
		wantCreated bool
		wantErr     error
		reason      string
	}{
		{"retry", rec, grants(0, "alice", "bob", "carol"), sid(1), false, nil,
			"the same request again finds the channel's session"},
		{"channel taken", server.SessionRecord{ID: sid(2), ChannelCID: "messaging:general", CreatedBy: "dave", CreatedAt: created}, grants(0, "dave", "erin"), sid(1), false, nil,
			"a channel has one session; the second creator gets the first one's ID"},
		{"ID taken", server.SessionRecord{ID: sid(1), ChannelCID: "messaging:other", CreatedBy: "dave", CreatedAt: created}, grants(0, "dave"), session.ID{}, false, keyservice.ErrConflict,
			"a session ID belongs to one channel"},
		{"channel taken and ID taken", server.SessionRecord{ID: sid(1), ChannelCID: "messaging:general", CreatedBy: "dave", CreatedAt: created}, grants(0, "dave"), sid(1), false, nil,
			"the channel rule is checked first"},
	}
	for _, tt := range tests {
		id, ok, err := st.CreateSession(ctx, tt.rec, tt.grants)
		if !is(err, tt.wantErr) || id != tt.wantID || ok != tt.wantCreated {
			t.Errorf("%s: CreateSession = %v, %v, %v; want %v, %v, %v (%s)", tt.name, id, ok, err, tt.wantID, tt.wantCreated, tt.wantErr, tt.reason)
		}
	}
	// None of them stored anything.
	if diff := cmp.Diff(want, snapshot(t, st, sid(1), "dave", "erin"), cmpOpts...); diff != "" {
		t.Errorf("a CreateSession that did not create changed the session (-want +got)\n%s", diff)
	}
	for _, probe := range []struct {
		name string
		err  error
	}{
		{"Session(sid 2)", third(st.Session(ctx, sid(2)))},
		{"SessionByChannel(other)", second(st.SessionByChannel(ctx, "messaging:other"))},
	} {
		if !errors.Is(probe.err, keyservice.ErrNotFound) {
			t.Errorf("%s = %v, want ErrNotFound: nothing is stored when nothing is created", probe.name, probe.err)
		}
	}
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

// third returns the error of a three-result call.
func third[T, U any](_ T, _ U, err error) error { return err }

func snapshotAfterCreate(t *testing.T, st server.Store, rec server.SessionRecord, gs []session.GrantRecord) state {
	t.Helper()
	id, ok, err := st.CreateSession(ctx, rec, gs)
	if err != nil || !ok || id != rec.ID {
		t.Fatalf("CreateSession = %v, %v, %v; want %v, true, nil", id, ok, err, rec.ID)
	}
	return snapshot(t, st, id)
}

func testSessionByChannel(t *testing.T, st server.Store) {
	id := mustCreate(t, st, 7, "alice")
	tests := []struct {
		name    string
		cid     string
		want    session.ID
		wantErr error
		reason  string
	}{
		{"known", "messaging:7", id, nil, "the channel's session"},
		{"unknown", "messaging:8", session.ID{}, keyservice.ErrNotFound, "no session for that channel"},
		{"case matters", "Messaging:7", session.ID{}, keyservice.ErrNotFound, "CIDs are compared byte for byte"},
		{"empty", "", session.ID{}, keyservice.ErrNotFound, "no channel"},
	}
	for _, tt := range tests {
		got, err := st.SessionByChannel(ctx, tt.cid)
		if !is(err, tt.wantErr) || got != tt.want {
			t.Errorf("%s: SessionByChannel(%q) = %v, %v; want %v, %v (%s)", tt.name, tt.cid, got, err, tt.want, tt.wantErr, tt.reason)
		}
	}
}

func testSession(t *testing.T, st server.Store) {
	if _, _, err := st.Session(ctx, sid(99)); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("Session of an unknown ID = %v, want ErrNotFound", err)
	}
	// Members come sorted by user ID, byte-wise: upper case before "_"
	// before lower case, whatever the database's collation.
	id := mustCreate(t, st, 1, "bob", "alice", "_svc", "Zed", "Alice", "ümlaut", "al")
	rec, members, err := st.Session(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	wantRec := server.SessionRecord{ID: id, ChannelCID: "messaging:1", CreatedBy: "bob", CreatedAt: created}
	if diff := cmp.Diff(wantRec, rec); diff != "" {
		t.Errorf("SessionRecord (-want +got); CreatedAt is compared with time.Time.Equal\n%s", diff)
	}
	var order []string
	for _, m := range members {
		order = append(order, m.UserID)
	}
	want := []string{"Alice", "Zed", "_svc", "al", "alice", "bob", "ümlaut"}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("members not sorted by user ID byte-wise (-want +got)\n%s", diff)
	}
	if !slices.IsSortedFunc(members, func(a, b session.Member) int {
		return cmpStrings(a.UserID, b.UserID)
	}) {
		t.Error("members not sorted")
	}
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testGrants(t *testing.T, st server.Store) {
	id := mustCreate(t, st, 1, "alice", "bob")
	for epoch := range uint32(3) {
		if err := st.Rotate(ctx, id, "alice", epoch, nil, grants(epoch+1, "alice", "bob")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		id     session.ID
		user   string
		want   []session.GrantRecord
		reason string
	}{
		{"every epoch", id, "bob", []session.GrantRecord{grant("bob", 0), grant("bob", 1), grant("bob", 2), grant("bob", 3)}, "epoch ascending"},
		{"only own", id, "alice", []session.GrantRecord{grant("alice", 0), grant("alice", 1), grant("alice", 2), grant("alice", 3)}, "one user's grants"},
		{"non-member", id, "mallory", nil, "none, and no error"},
		{"unknown session", sid(99), "alice", nil, "none, and no error"},
	}
	for _, tt := range tests {
		got, err := st.Grants(ctx, tt.id, tt.user)
		if err != nil {
			t.Errorf("%s: Grants: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
			t.Errorf("%s: Grants(%s) (-want +got) (%s)\n%s", tt.name, tt.user, tt.reason, diff)
		}
	}
}

// fixture makes a session for one table case: alice admin, bob member,
// rotated to epoch 1 when rotated is set.
func fixture(t *testing.T, st server.Store, n int, rotated bool) session.ID {
	t.Helper()
	id := mustCreate(t, st, n, "alice", "bob")
	if rotated {
		if err := st.Rotate(ctx, id, "alice", 0, nil, grants(1, "alice", "bob")); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func testExtend(t *testing.T, st server.Store) {
	tests := []struct {
		name     string
		unknown  bool // act on a session that does not exist
		caller   string
		at       uint32
		grantees []string
		wantErr  error
		reason   string
	}{
		{"unknown session", true, "alice", 1, []string{"carol"}, keyservice.ErrNotFound, "no such session"},
		{"unknown session, non-member", true, "mallory", 0, []string{"carol"}, keyservice.ErrNotFound, "existence is checked first"},
		{"non-member", false, "mallory", 1, []string{"carol"}, keyservice.ErrForbidden, "only members extend"},
		{"non-member, stale epoch", false, "mallory", 0, []string{"carol"}, keyservice.ErrForbidden, "membership is checked before the epoch"},
		{"service", false, "", 1, []string{"carol"}, keyservice.ErrForbidden, "the empty caller is no member"},
		{"stale epoch", false, "alice", 0, []string{"carol"}, keyservice.ErrConflict, "the session moved on to epoch 1"},
		{"future epoch", false, "alice", 2, []string{"carol"}, keyservice.ErrConflict, "epoch 2 has not started"},
		{"grantee is a member", false, "alice", 1, []string{"bob"}, keyservice.ErrConflict, "bob is a member already"},
		{"one grantee is a member", false, "alice", 1, []string{"carol", "bob", "dave"}, keyservice.ErrConflict, "one existing member fails the whole call"},
		{"grantee is the caller", false, "bob", 1, []string{"bob"}, keyservice.ErrConflict, "a member cannot re-add itself"},
		{"admin adds", false, "alice", 1, []string{"carol", "dave"}, nil, "members extend at the current epoch"},
		{"member adds", false, "bob", 1, []string{"carol"}, nil, "admin rights are not needed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fixture(t, st, i+1, true)
			target := id
			if tt.unknown {
				target = sid(1000 + i)
			}
			before := snapshot(t, st, id, tt.grantees...)
			err := st.Extend(ctx, target, tt.caller, tt.at, grants(tt.at, tt.grantees...))
			if !is(err, tt.wantErr) {
				t.Fatalf("Extend = %v, want %v (%s)", err, tt.wantErr, tt.reason)
			}
			want := before
			if err == nil {
				want.Grants = cloneGrants(before.Grants)
				for _, u := range tt.grantees {
					want.Members = append(want.Members, session.Member{UserID: u, Since: tt.at})
					want.Grants[u] = grants(tt.at, u)
				}
				sortMembers(want.Members)
			}
			if diff := cmp.Diff(want, snapshot(t, st, id, tt.grantees...), cmpOpts...); diff != "" {
				t.Errorf("session after Extend (-want +got)\n%s", diff)
			}
		})
	}
}

func testRotate(t *testing.T, st server.Store) {
	tests := []struct {
		name     string
		unknown  bool
		caller   string
		from     uint32
		remove   []string
		grantees []string
		wantErr  error
		reason   string
	}{
		{"unknown session", true, "alice", 1, nil, []string{"alice"}, keyservice.ErrNotFound, "no such session"},
		{"non-member", false, "mallory", 1, nil, []string{"alice", "bob"}, keyservice.ErrForbidden, "only admins rotate"},
		{"member", false, "bob", 1, nil, []string{"alice", "bob"}, keyservice.ErrForbidden, "members are not admins"},
		{"member, stale epoch", false, "bob", 0, nil, []string{"alice", "bob"}, keyservice.ErrForbidden, "rights are checked before the epoch"},
		{"service", false, "", 1, nil, []string{"alice", "bob"}, keyservice.ErrForbidden, "the service holds no keys to grant"},
		{"stale epoch", false, "alice", 0, nil, []string{"alice", "bob"}, keyservice.ErrConflict, "the session is at epoch 1"},
		{"future epoch", false, "alice", 2, nil, []string{"alice", "bob"}, keyservice.ErrConflict, "the session is at epoch 1"},
		{"plain rotation", false, "alice", 1, nil, []string{"alice", "bob"}, nil, "new epoch, same members"},
		{"remove a member", false, "alice", 1, []string{"bob"}, []string{"alice"}, nil, "bob and all his grants go"},
		{"remove and add", false, "alice", 1, []string{"bob"}, []string{"alice", "carol"}, nil, "carol joins at the new epoch"},
		{"remove a non-member", false, "alice", 1, []string{"zed"}, []string{"alice", "bob"}, nil, "removing nobody is no error"},
		{"member left without grant", false, "alice", 1, nil, []string{"alice"}, keyservice.ErrConflict, "bob (added since the caller looked) would lose access"},
		{"last epoch", false, "alice", math.MaxUint32, nil, []string{"alice", "bob"}, server.ErrTooManyEpochs, "no epoch follows 4294967295; the next must not wrap to 0"},
		{"last epoch, unknown session", true, "mallory", math.MaxUint32, nil, []string{"alice"}, server.ErrTooManyEpochs, "checked first, whatever the session"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fixture(t, st, i+1, true)
			target := id
			if tt.unknown {
				target = sid(1000 + i)
			}
			extra := append(slices.Clone(tt.remove), tt.grantees...)
			before := snapshot(t, st, id, extra...)
			err := st.Rotate(ctx, target, tt.caller, tt.from, tt.remove, grants(tt.from+1, tt.grantees...))
			if !is(err, tt.wantErr) {
				t.Fatalf("Rotate = %v, want %v (%s)", err, tt.wantErr, tt.reason)
			}
			want := before
			if err == nil {
				want = state{Rec: before.Rec, Grants: map[string][]session.GrantRecord{}}
				want.Rec.Epoch = tt.from + 1
				for _, m := range before.Members {
					if !slices.Contains(tt.remove, m.UserID) {
						want.Members = append(want.Members, m)
						want.Grants[m.UserID] = before.Grants[m.UserID]
					}
				}
				for _, u := range tt.grantees {
					if !slices.ContainsFunc(want.Members, func(m session.Member) bool { return m.UserID == u }) {
						want.Members = append(want.Members, session.Member{UserID: u, Since: tt.from + 1})
					}
					want.Grants[u] = append(slices.Clone(want.Grants[u]), grant(u, tt.from+1))
				}
				sortMembers(want.Members)
			}
			if diff := cmp.Diff(want, snapshot(t, st, id, extra...), cmpOpts...); diff != "" {
				t.Errorf("session after Rotate (-want +got) (%s)\n%s", tt.reason, diff)
			}
		})
	}
}

func testSetAdmin(t *testing.T, st server.Store) {
	tests := []struct {
		name    string
		unknown bool
		caller  string
		user    string
		admin   bool
		wantErr error
		reason  string
	}{
		{"unknown session", true, "alice", "bob", true, keyservice.ErrNotFound, "no such session (as for Extend and Rotate)"},
		{"non-member", false, "mallory", "bob", true, keyservice.ErrForbidden, "only admins name admins"},
		{"member", false, "bob", "bob", true, keyservice.ErrForbidden, "a member cannot promote itself"},
		{"service", false, "", "bob", true, keyservice.ErrForbidden, "the empty caller is no admin here"},
		{"target not a member", false, "alice", "carol", true, keyservice.ErrNotFound, "carol is no member"},
		{"non-member caller, target not a member", false, "mallory", "carol", true, keyservice.ErrForbidden, "rights are checked first"},
		{"promote", false, "alice", "bob", true, nil, "bob becomes an admin"},
		{"demote self", false, "alice", "alice", false, nil, "an admin may step down"},
		{"already so", false, "alice", "alice", true, nil, "setting the current value is no error"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fixture(t, st, i+1, false)
			target := id
			if tt.unknown {
				target = sid(1000 + i)
			}
			before := snapshot(t, st, id)
			err := st.SetAdmin(ctx, target, tt.caller, tt.user, tt.admin)
			if !is(err, tt.wantErr) {
				t.Fatalf("SetAdmin = %v, want %v (%s)", err, tt.wantErr, tt.reason)
			}
			want := before
			if err == nil {
				want.Members = slices.Clone(before.Members)
				for i := range want.Members {
					if want.Members[i].UserID == tt.user {
						want.Members[i].Admin = tt.admin
					}
				}
			}
			if diff := cmp.Diff(want, snapshot(t, st, id), cmpOpts...); diff != "" {
				t.Errorf("session after SetAdmin (-want +got)\n%s", diff)
			}
		})
	}
	// The flag takes effect: a promoted member may rotate, a demoted admin
	// may not.
	id := fixture(t, st, 100, false)
	steps := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"bob promoted", func() error { return st.SetAdmin(ctx, id, "alice", "bob", true) }, nil},
		{"bob rotates", func() error { return st.Rotate(ctx, id, "bob", 0, nil, grants(1, "alice", "bob")) }, nil},
		{"bob demotes alice", func() error { return st.SetAdmin(ctx, id, "bob", "alice", false) }, nil},
		{"alice cannot rotate", func() error { return st.Rotate(ctx, id, "alice", 1, nil, grants(2, "alice", "bob")) }, keyservice.ErrForbidden},
		{"alice cannot delete", func() error { return st.DeleteSession(ctx, id, "alice") }, keyservice.ErrForbidden},
	}
	for _, s := range steps {
		if err := s.call(); !is(err, s.wantErr) {
			t.Errorf("%s: %v, want %v", s.name, err, s.wantErr)
		}
	}
}

func testDeleteSession(t *testing.T, st server.Store) {
	tests := []struct {
		name    string
		unknown bool
		caller  string
		wantErr error
		reason  string
	}{
		{"unknown session", true, "", keyservice.ErrNotFound, "no such session"},
		{"unknown session, user", true, "alice", keyservice.ErrNotFound, "existence is checked first"},
		{"non-member", false, "mallory", keyservice.ErrForbidden, "only admins delete"},
		{"member", false, "bob", keyservice.ErrForbidden, "members are not admins"},
		{"admin", false, "alice", nil, "admins delete"},
		{"service", false, "", nil, "the service (empty caller) may always delete"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fixture(t, st, i+1, true)
			target := id
			if tt.unknown {
				target = sid(1000 + i)
			}
			before := snapshot(t, st, id)
			err := st.DeleteSession(ctx, target, tt.caller)
			if !is(err, tt.wantErr) {
				t.Fatalf("DeleteSession = %v, want %v (%s)", err, tt.wantErr, tt.reason)
			}
			if err != nil {
				if diff := cmp.Diff(before, snapshot(t, st, id), cmpOpts...); diff != "" {
					t.Errorf("a refused DeleteSession changed the session (-want +got)\n%s", diff)
				}
				return
			}
			if _, _, err := st.Session(ctx, id); !errors.Is(err, keyservice.ErrNotFound) {
				t.Errorf("Session after delete = %v, want ErrNotFound", err)
			}
			if _, err := st.SessionByChannel(ctx, before.Rec.ChannelCID); !errors.Is(err, keyservice.ErrNotFound) {
				t.Errorf("SessionByChannel after delete = %v, want ErrNotFound", err)
			}
			for _, u := range []string{"alice", "bob"} {
				if g, err := st.Grants(ctx, id, u); err != nil || len(g) > 0 {
					t.Errorf("Grants(%s) after delete = %d grants, %v; want none", u, len(g), err)
				}
			}
			// The channel and the ID are free again.
			rec := server.SessionRecord{ID: id, ChannelCID: before.Rec.ChannelCID, CreatedBy: "carol", CreatedAt: created}
			if got, ok, err := st.CreateSession(ctx, rec, grants(0, "carol")); err != nil || !ok || got != id {
				t.Errorf("re-creating after delete = %v, %v, %v; want a new session", got, ok, err)
			}
			if g, err := st.Grants(ctx, id, "alice"); err != nil || len(g) > 0 {
				t.Errorf("the new session inherited %d grants of the deleted one (%v)", len(g), err)
			}
		})
	}
}

func testIdempotency(t *testing.T, st server.Store) {
	rec := server.IdempotencyRecord{UserID: "alice", Key: "k1", RequestHash: []byte("0123456789abcdef0123456789abcdef"), Status: 201, Response: []byte(`{"id":"x","created":true}`), CreatedAt: created}
	if _, err := st.Idempotency(ctx, "alice", "k1"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("Idempotency before Put = %v, want ErrNotFound", err)
	}
	other := rec
	other.Status, other.Response = 200, []byte(`{}`)
	otherUser := rec
	otherUser.UserID = "bob"
	empty := server.IdempotencyRecord{UserID: "carol", Key: "k", CreatedAt: created}
	steps := []struct {
		name    string
		rec     server.IdempotencyRecord
		wantErr error
		reason  string
	}{
		{"first", rec, nil, "stored"},
		{"same key again", other, keyservice.ErrConflict, "the first outcome stays"},
		{"same key, other user", otherUser, nil, "keys are per user"},
		{"empty body", empty, nil, "empty hash and response are values too"},
	}
	for _, s := range steps {
		if err := st.PutIdempotency(ctx, s.rec); !is(err, s.wantErr) {
			t.Errorf("%s: PutIdempotency = %v, want %v (%s)", s.name, err, s.wantErr, s.reason)
		}
	}
	for _, want := range []server.IdempotencyRecord{rec, otherUser, empty} {
		got, err := st.Idempotency(ctx, want.UserID, want.Key)
		if err != nil {
			t.Errorf("Idempotency(%s, %s): %v", want.UserID, want.Key, err)
			continue
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("Idempotency(%s, %s) (-want +got)\n%s", want.UserID, want.Key, diff)
		}
	}
	if _, err := st.Idempotency(ctx, "alice", "K1"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("Idempotency(alice, K1) = %v, want ErrNotFound: keys are case-sensitive", err)
	}
}

func testPing(t *testing.T, st server.Store) {
	if err := st.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testNothingHalfway makes calls fail after part of their work could have
// been done, and checks that none of it is visible.
func testNothingHalfway(t *testing.T, st server.Store) {
	id := fixture(t, st, 1, false)
	probe := []string{"carol", "dave", "erin", "new000", "new599"}
	before := snapshot(t, st, id, probe...)
	tests := []struct {
		name   string
		call   func() error
		reason string
	}{
		{"Extend with one member among new grantees",
			func() error {
				return st.Extend(ctx, id, "alice", 0, grants(0, "carol", "dave", "bob", "erin"))
			}, "carol and dave must not be added when bob fails the call"},
		{"Extend with hundreds of new grantees and one member last",
			func() error {
				var users []string
				for i := range 600 {
					users = append(users, fmt.Sprintf("new%03d", i))
				}
				return st.Extend(ctx, id, "alice", 0, grants(0, append(users, "bob")...))
			}, "a store that writes in batches must undo the batches before the failing one"},
		{"Extend with a wrong-epoch grant",
			func() error {
				return st.Extend(ctx, id, "alice", 0, append(grants(0, "carol"), grant("dave", 1)))
			}, "a malformed call stores nothing"},
		{"Extend with two grants for one grantee",
			func() error {
				return st.Extend(ctx, id, "alice", 0, append(grants(0, "carol", "dave"), grant("carol", 0)))
			}, "a malformed call stores nothing"},
		{"Rotate with a wrong-epoch grant",
			func() error {
				return st.Rotate(ctx, id, "alice", 0, []string{"bob"}, append(grants(1, "alice"), grant("carol", 2)))
			}, "neither the epoch, nor the removal, nor the good grant"},
		{"Rotate with two grants for one grantee",
			func() error {
				return st.Rotate(ctx, id, "alice", 0, []string{"bob"}, append(grants(1, "alice", "carol"), grant("carol", 1)))
			}, "neither the epoch, nor the removal, nor the good grants"},
		{"CreateSession with a wrong-epoch grant",
			func() error {
				_, _, err := st.CreateSession(ctx, server.SessionRecord{ID: sid(2), ChannelCID: "messaging:2", CreatedBy: "carol", CreatedAt: created}, append(grants(0, "carol"), grant("dave", 3)))
				return err
			}, "no session without all its grants"},
	}
	for _, tt := range tests {
		if err := tt.call(); err == nil {
			t.Errorf("%s: succeeded, want an error", tt.name)
		}
		if diff := cmp.Diff(before, snapshot(t, st, id, probe...), cmpOpts...); diff != "" {
			t.Errorf("%s: state changed by a failed call (%s) (-want +got)\n%s", tt.name, tt.reason, diff)
		}
	}
	if _, err := st.SessionByChannel(ctx, "messaging:2"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("a failed CreateSession left a session: %v", err)
	}
}

// race runs fn(i) for i in [0, racers) at once and returns the errors.
func race(fn func(i int) error) []error {
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one error is nil and all others are
// loserErr, and returns the winner's index.
func oneWinner(t *testing.T, errs []error, loserErr error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Errorf("racers %d and %d both won", winner, i)
		case !errors.Is(err, loserErr):
			t.Errorf("racer %d: %v, want %v", i, err, loserErr)
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won: %v", errs)
	}
	return winner
}

func testRaceRotate(t *testing.T, st server.Store) {
	id := mustCreate(t, st, 1, "alice", "bob")
	// Each racer removes a different set and grants distinct bytes, so the
	// result shows whose rotation took effect, and that only one did.
	rot := func(i int) []session.GrantRecord {
		g := grants(1, "alice", "bob")
		for k := range g {
			g[k].Grant = fmt.Appendf(g[k].Grant, "#%d", i)
		}
		return g
	}
	errs := race(func(i int) error { return st.Rotate(ctx, id, "alice", 0, nil, rot(i)) })
	w := oneWinner(t, errs, keyservice.ErrConflict)
	got := snapshot(t, st, id)
	if got.Rec.Epoch != 1 {
		t.Errorf("epoch %d after %d racing rotations from 0, want 1", got.Rec.Epoch, racers)
	}
	for k, u := range []string{"alice", "bob"} {
		want := []session.GrantRecord{grant(u, 0), rot(w)[k]}
		if diff := cmp.Diff(want, got.Grants[u]); diff != "" {
			t.Errorf("grants of %s: only the winner's epoch-1 grant (-want +got)\n%s", u, diff)
		}
	}
}

func testRaceCreateSession(t *testing.T, st server.Store) {
	type result struct {
		id      session.ID
		created bool
	}
	results := make([]result, racers)
	errs := race(func(i int) error {
		rec := server.SessionRecord{ID: sid(i + 1), ChannelCID: "messaging:contested", CreatedBy: fmt.Sprintf("user%02d", i), CreatedAt: created}
		id, ok, err := st.CreateSession(ctx, rec, grants(0, rec.CreatedBy))
		results[i] = result{id, ok}
		return err
	})
	winner := -1
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v (racing creators of one channel must converge, not fail)", i, err)
		}
		if results[i].created {
			if winner >= 0 {
				t.Errorf("racers %d and %d both created a session", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no racer created the session")
	}
	for i, r := range results {
		if r.id != sid(winner+1) {
			t.Errorf("racer %d got session %v, want the winner's %v", i, r.id, sid(winner+1))
		}
	}
	if got, err := st.SessionByChannel(ctx, "messaging:contested"); err != nil || got != sid(winner+1) {
		t.Errorf("SessionByChannel = %v, %v; want the winner's", got, err)
	}
	_, members, err := st.Session(ctx, sid(winner+1))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]session.Member{{UserID: fmt.Sprintf("user%02d", winner), Admin: true}}, members); diff != "" {
		t.Errorf("members: only the winner's (-want +got)\n%s", diff)
	}
	for i := range racers {
		if i != winner {
			if _, _, err := st.Session(ctx, sid(i+1)); !errors.Is(err, keyservice.ErrNotFound) {
				t.Errorf("loser %d's session exists: %v", i, err)
			}
		}
	}
}

func testRaceInsertCard(t *testing.T, st server.Store) {
	body := func(i int) []byte { return fmt.Appendf(card("alice", 0), "#%d", i) }
	errs := race(func(i int) error { return st.InsertCard(ctx, "alice", 0, body(i)) })
	w := oneWinner(t, errs, keyservice.ErrConflict)
	got, err := st.CardHistory(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{body(w)}, got); diff != "" {
		t.Errorf("history: only the winner's card (-want +got)\n%s", diff)
	}
	// And the next generation, raced the same way.
	errs = race(func(i int) error { return st.InsertCard(ctx, "alice", 1, body(100+i)) })
	w1 := oneWinner(t, errs, keyservice.ErrConflict)
	got, _ = st.CardHistory(ctx, "alice")
	if diff := cmp.Diff([][]byte{body(w), body(100 + w1)}, got); diff != "" {
		t.Errorf("history (-want +got)\n%s", diff)
	}
}

func testRaceExtend(t *testing.T, st server.Store) {
	id := mustCreate(t, st, 1, "alice", "bob")
	errs := race(func(i int) error {
		caller := []string{"alice", "bob"}[i%2]
		return st.Extend(ctx, id, caller, 0, grants(0, "carol"))
	})
	oneWinner(t, errs, keyservice.ErrConflict)
	got := snapshot(t, st, id)
	wantMembers := []session.Member{{UserID: "alice", Admin: true}, {UserID: "bob"}, {UserID: "carol"}}
	if diff := cmp.Diff(wantMembers, got.Members); diff != "" {
		t.Errorf("members (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(grants(0, "carol"), got.Grants["carol"]); diff != "" {
		t.Errorf("carol's grants: exactly one (-want +got)\n%s", diff)
	}
}

// testRaceMixed races rotations, extensions, admin changes and reads on
// one session and checks the invariants that must hold whatever the
// interleaving: epochs advance one at a time, every grant is for an epoch
// the session reached, and no member lacks the grant of the epoch it
// joined at.
func testRaceMixed(t *testing.T, st server.Store) {
	id := mustCreate(t, st, 1, "alice", "bob")
	var mu sync.Mutex
	rotations := 0
	errs := race(func(i int) error {
		switch i % 4 {
		case 0: // rotate from whatever epoch is current
			for {
				rec, members, err := st.Session(ctx, id)
				if err != nil {
					return err
				}
				users := make([]string, len(members))
				for j, m := range members {
					users[j] = m.UserID
				}
				// A member added after this read makes the rotation
				// conflict; it is retried with the new membership.
				err = st.Rotate(ctx, id, "alice", rec.Epoch, nil, grants(rec.Epoch+1, users...))
				if errors.Is(err, keyservice.ErrConflict) {
					continue
				}
				if err == nil {
					mu.Lock()
					rotations++
					mu.Unlock()
				}
				return err
			}
		case 1: // add a member at the current epoch
			u := fmt.Sprintf("new%02d", i)
			for {
				rec, _, err := st.Session(ctx, id)
				if err != nil {
					return err
				}
				err = st.Extend(ctx, id, "bob", rec.Epoch, grants(rec.Epoch, u))
				if !errors.Is(err, keyservice.ErrConflict) {
					return err
				}
			}
		case 2:
			return st.SetAdmin(ctx, id, "alice", "bob", i%8 == 2)
		default:
			_, err := st.Grants(ctx, id, "alice")
			return err
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	got := snapshot(t, st, id)
	if int(got.Rec.Epoch) != rotations {
		t.Errorf("epoch %d after %d successful rotations", got.Rec.Epoch, rotations)
	}
	for _, m := range got.Members {
		gs := got.Grants[m.UserID]
		if len(gs) == 0 || gs[0].Epoch != m.Since {
			t.Errorf("member %s (since %d) has grants %v: the first must be for its first epoch", m.UserID, m.Since, gs)
		}
		for _, g := range gs {
			if g.Epoch > got.Rec.Epoch {
				t.Errorf("member %s has a grant for epoch %d, beyond the session's %d", m.UserID, g.Epoch, got.Rec.Epoch)
			}
		}
	}
	var want, epochs []uint32
	for e := range got.Rec.Epoch + 1 {
		want = append(want, e)
	}
	for _, g := range got.Grants["alice"] {
		epochs = append(epochs, g.Epoch)
	}
	if diff := cmp.Diff(want, epochs); diff != "" {
		t.Errorf("alice's grant epochs: one per epoch, in order (-want +got)\n%s", diff)
	}
}

func cloneGrants(m map[string][]session.GrantRecord) map[string][]session.GrantRecord {
	out := make(map[string][]session.GrantRecord, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func sortMembers(ms []session.Member) {
	slices.SortFunc(ms, func(a, b session.Member) int { return cmpStrings(a.UserID, b.UserID) })
}
