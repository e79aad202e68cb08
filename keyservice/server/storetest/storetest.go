package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

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
		{"Append", testAppend},
		{"AppendRefused", testAppendRefused},
		{"Log", testLog},
		{"Reads", testReads},
		{"RemovedMembersGrants", testRemovedMembersGrants},
		{"DeleteSession", testDeleteSession},
		{"Ping", testPing},
		{"NothingHalfway", testNothingHalfway},
		{"Quota", testQuota},
		{"RaceQuota", testRaceQuota},
		{"RaceAppend", testRaceAppend},
		{"RaceChain", testRaceChain},
		{"RaceCreateSession", testRaceCreateSession},
		{"RaceCreateSame", testRaceCreateSame},
		{"RaceInsertCard", testRaceInsertCard},
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

var ctx = context.Background()

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

// The store keeps log records as opaque bytes with the hash the handler
// computed; these fakes only need to be distinct.

// admin and member are roster entries.
func admin(u string) session.Member  { return session.Member{UserID: u, Admin: true} }
func member(u string) session.Member { return session.Member{UserID: u} }

// roster returns the members sorted by user ID, as a verified state lists
// them.
func roster(ms ...session.Member) []session.Member {
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b session.Member) int { return cmpStrings(a.UserID, b.UserID) })
	return out
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

// genesis returns session n on channel "messaging:<n>" with its genesis
// (tagged, so that two geneses of one ID can differ), the roster and an
// epoch-0 grant per member.
func genesis(n int, tag string, ms ...session.Member) server.NewSession {
	g := fmt.Appendf(nil, "genesis %d %s", n, tag)
	users := make([]string, len(ms))
	for i, m := range ms {
		users[i] = m.UserID
	}
	return server.NewSession{ID: sid(n), ChannelCID: fmt.Sprintf("messaging:%d", n), Genesis: g, Hash: sha256.Sum256(g),
		Roster: roster(ms...), Grants: grants(0, users...)}
}

// mustCreate stores genesis(n, "", ms...) and returns it.
func mustCreate(t *testing.T, st server.Store, n int, ms ...session.Member) server.NewSession {
	t.Helper()
	ns := genesis(n, "", ms...)
	if created, err := st.CreateSession(ctx, ns); err != nil || !created {
		t.Fatalf("CreateSession %d: created %v, err %v", n, created, err)
	}
	return ns
}

// next returns the record after prev (tagged, so that racers differ), with
// the roster and grants given.
func next(prev session.Head, tag string, r []session.Member, gs []session.GrantRecord) server.Append {
	rec := fmt.Appendf(nil, "record %d %s", prev.Seq+1, tag)
	return server.Append{Prev: prev, Record: rec, Hash: sha256.Sum256(rec), Roster: r, Grants: gs}
}

// headAfter is the head a stored Append leaves.
func headAfter(a server.Append) session.Head { return session.Head{Seq: a.Prev.Seq + 1, Hash: a.Hash} }

func mustAppend(t *testing.T, st server.Store, id session.ID, a server.Append) session.Head {
	t.Helper()
	if err := st.Append(ctx, id, a); err != nil {
		t.Fatalf("Append %d: %v", a.Prev.Seq+1, err)
	}
	return headAfter(a)
}

// state is everything a store says about a session, for comparisons.
type state struct {
	Rec    server.SessionRecord
	Roster []session.Member
	Log    [][]byte
	Grants map[string][]session.GrantRecord // of the roster's members
}

// snapshot reads a session's state.
func snapshot(t *testing.T, st server.Store, id session.ID) state {
	t.Helper()
	rec, err := st.Session(ctx, id)
	if err != nil {
		t.Fatalf("Session(%v): %v", id, err)
	}
	r, err := st.Roster(ctx, id)
	if err != nil {
		t.Fatalf("Roster(%v): %v", id, err)
	}
	log, head, err := st.Log(ctx, id, "", 0, math.MaxInt, math.MaxInt)
	if err != nil {
		t.Fatalf("Log(%v): %v", id, err)
	}
	if head != rec.Head {
		t.Fatalf("Log's head %v differs from Session's %v with nothing in between", head, rec.Head)
	}
	s := state{Rec: rec, Roster: r, Log: log, Grants: map[string][]session.GrantRecord{}}
	for _, m := range r {
		g, err := st.Grants(ctx, id, m.UserID)
		if err != nil {
			t.Fatalf("Grants(%v, %s): %v", id, m.UserID, err)
		}
		if len(g) > 0 {
			s.Grants[m.UserID] = g
		}
	}
	return s
}

// cmpOpts treats nil and empty alike.
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
	ns := genesis(1, "", admin("alice"))
	if _, err := st.CreateSession(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ns.Genesis[0] ^= 0xff
	ns.Grants[0].Grant[0] ^= 0xff
	for range 2 {
		g, err := st.Grants(ctx, ns.ID, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(grants(0, "alice"), g); diff != "" {
			t.Errorf("stored grant changed through a caller's slice (-want +got)\n%s", diff)
		}
		g[0].Grant[0] ^= 0xff
		log, _, err := st.Log(ctx, ns.ID, "alice", 0, 10, math.MaxInt)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([][]byte{genesis(1, "").Genesis}, log); diff != "" {
			t.Errorf("stored genesis changed through a caller's slice (-want +got)\n%s", diff)
		}
		log[0][0] ^= 0xff
	}
}

func testCreateSession(t *testing.T, st server.Store) {
	ns := genesis(1, "", admin("alice"), member("bob"), member("carol"))
	created, err := st.CreateSession(ctx, ns)
	if err != nil || !created {
		t.Fatalf("CreateSession: created %v, %v", created, err)
	}
	want := state{
		Rec:    server.SessionRecord{ID: ns.ID, ChannelCID: "messaging:1", Head: session.Head{Seq: 0, Hash: ns.Hash}},
		Roster: []session.Member{admin("alice"), member("bob"), member("carol")},
		Log:    [][]byte{ns.Genesis},
		Grants: map[string][]session.GrantRecord{"alice": grants(0, "alice"), "bob": grants(0, "bob"), "carol": grants(0, "carol")},
	}
	if diff := cmp.Diff(want, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
		t.Fatalf("after CreateSession (-want +got)\n%s", diff)
	}
	otherGrants := ns
	otherGrants.Grants = grants(0, "alice")
	sameChannel := genesis(2, "", admin("dave"))
	sameChannel.ChannelCID = ns.ChannelCID
	tests := []struct {
		name        string
		ns          server.NewSession
		wantCreated bool
		wantErr     error
		reason      string
	}{
		{"same genesis again", ns, false, nil, "a genesis sent again is stored once, and answered as the first time"},
		{"same genesis, other grants", otherGrants, false, nil, "the session is the genesis's: grants sent again change nothing"},
		{"other genesis, same ID", genesis(1, "other", admin("mallory")), false, keyservice.ErrConflict, "an ID names one genesis"},
		{"other session of the channel", sameChannel, false, session.ErrSessionExists, "one session per channel, never adopted silently"},
	}
	for _, tt := range tests {
		created, err := st.CreateSession(ctx, tt.ns)
		if created != tt.wantCreated || !is(err, tt.wantErr) {
			t.Errorf("%s: created %v, %v; want %v, %v (%s)", tt.name, created, err, tt.wantCreated, tt.wantErr, tt.reason)
		}
		if diff := cmp.Diff(want, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
			t.Errorf("%s: the session changed (%s) (-want +got)\n%s", tt.name, tt.reason, diff)
		}
	}
	_, err = st.CreateSession(ctx, sameChannel)
	var exists *session.SessionExistsError
	if !errors.As(err, &exists) || exists.ID != ns.ID || exists.ChannelCID != ns.ChannelCID {
		t.Errorf("CreateSession on a taken channel = %v, want a *session.SessionExistsError naming %v on %s", err, ns.ID, ns.ChannelCID)
	}
	if _, err := st.Session(ctx, sid(2)); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("a refused session was stored: %v", err)
	}
}

func testSessionByChannel(t *testing.T, st server.Store) {
	if _, err := st.SessionByChannel(ctx, "messaging:1"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("SessionByChannel of an empty store = %v, want ErrNotFound", err)
	}
	mustCreate(t, st, 1, admin("alice"))
	mustCreate(t, st, 2, admin("alice"))
	tests := []struct {
		cid     string
		want    session.ID
		wantErr error
		reason  string
	}{
		{"messaging:1", sid(1), nil, "the channel's session"},
		{"messaging:2", sid(2), nil, "each channel its own"},
		{"Messaging:1", session.ID{}, keyservice.ErrNotFound, "channel CIDs are compared byte for byte"},
		{"messaging:3", session.ID{}, keyservice.ErrNotFound, "a channel without a session"},
	}
	for _, tt := range tests {
		got, err := st.SessionByChannel(ctx, tt.cid)
		if got != tt.want || !is(err, tt.wantErr) {
			t.Errorf("SessionByChannel(%s) = %v, %v; want %v, %v (%s)", tt.cid, got, err, tt.want, tt.wantErr, tt.reason)
		}
	}
}

// testAppend appends records that change the roster every way a log can,
// and checks after each the head, the roster, the log and the members'
// grants. Each record comes with the readers a verified state would list:
// the roster when the epoch began and everyone added with history since.
func testAppend(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"))
	want := state{
		Rec:    server.SessionRecord{ID: ns.ID, ChannelCID: ns.ChannelCID, Head: session.Head{Hash: ns.Hash}},
		Roster: ns.Roster,
		Log:    [][]byte{ns.Genesis},
	}
	// held is every user's grants, members or not; a snapshot shows the
	// members'.
	held := map[string][]session.GrantRecord{"alice": grants(0, "alice"), "bob": grants(0, "bob")}
	steps := []struct {
		name    string
		roster  []session.Member
		readers []string
		grants  []session.GrantRecord
		gone    []string // users whose grants go
		reason  string
	}{
		{"add carol with history", roster(admin("alice"), member("bob"), member("carol")), []string{"alice", "bob", "carol"}, grants(0, "carol"), nil,
			"a member added at the current epoch gets its grant"},
		{"remove bob, new epoch", roster(admin("alice"), member("carol")), []string{"alice", "carol"}, grants(1, "alice", "carol"), []string{"bob"},
			"a removed member is no reader of the new epoch: its grants go"},
		{"promote carol", roster(admin("alice"), admin("carol")), []string{"alice", "carol"}, nil, nil,
			"a role change is a roster change without grants"},
		{"carol leaves", roster(admin("alice")), []string{"alice", "carol"}, nil, nil,
			"a member who leaves without a new epoch holds its key still: its grants stay, unread"},
		{"add carol back with history", roster(admin("alice"), member("carol")), []string{"alice", "carol"}, nil, nil,
			"added back before the next epoch, it needs no grant and reads its grants again"},
		{"carol leaves again", roster(admin("alice")), []string{"alice", "carol"}, nil, nil,
			"a reader still"},
		{"new epoch", roster(admin("alice")), []string{"alice"}, grants(2, "alice"), []string{"carol"},
			"a member who left is no reader of the next epoch: its grants go then"},
		{"add bob and carol again and dave, new epoch", roster(admin("alice"), member("bob"), member("carol"), member("dave")), []string{"alice", "bob", "carol", "dave"},
			grants(3, "alice", "bob", "carol", "dave"), nil,
			"a member added again starts with the new grants only"},
	}
	for i, s := range steps {
		a := next(want.Rec.Head, "", s.roster, s.grants)
		a.Readers = s.readers
		if err := st.Append(ctx, ns.ID, a); err != nil {
			t.Fatalf("%s: Append: %v", s.name, err)
		}
		want.Rec.Head = headAfter(a)
		want.Roster = s.roster
		want.Log = append(want.Log, a.Record)
		for _, u := range s.gone {
			delete(held, u)
		}
		for _, g := range s.grants {
			held[g.Grantee] = append(held[g.Grantee], g)
		}
		want.Grants = map[string][]session.GrantRecord{}
		for _, m := range s.roster {
			if g := held[m.UserID]; len(g) > 0 {
				want.Grants[m.UserID] = g
			}
		}
		if want.Rec.Head.Seq != uint32(i+1) {
			t.Fatalf("%s: head %d", s.name, want.Rec.Head.Seq)
		}
		if diff := cmp.Diff(want, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
			t.Errorf("%s: (%s) (-want +got)\n%s", s.name, s.reason, diff)
		}
	}
	for _, u := range []string{"bob", "carol"} {
		if got, err := st.Grants(ctx, ns.ID, u); err != nil || len(got) != 1 || got[0].Epoch != 3 {
			t.Errorf("%s's grants after leaving the readers and coming back: %v, %v; want the epoch-3 grant only", u, got, err)
		}
	}
}

// testAppendRefused appends records that do not follow the head, or to no
// session, and checks that each is refused with its sentinel and changes
// nothing.
func testAppendRefused(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"))
	h0 := session.Head{Hash: ns.Hash}
	h1 := mustAppend(t, st, ns.ID, next(h0, "", ns.Roster, nil))
	before := snapshot(t, st, ns.ID)
	wrongHash := h1
	wrongHash.Hash[31] ^= 1
	ahead := session.Head{Seq: 2, Hash: h1.Hash}
	tests := []struct {
		name    string
		id      session.ID
		a       server.Append
		wantErr error
		reason  string
	}{
		{"after an old head", ns.ID, next(h0, "late", roster(admin("alice")), grants(1, "alice")), keyservice.ErrConflict,
			"another record came first"},
		{"after the head's sequence number, another hash", ns.ID, next(wrongHash, "fork", roster(admin("alice")), nil), keyservice.ErrConflict,
			"the head is its sequence number and its hash"},
		{"after a head not reached", ns.ID, next(ahead, "ahead", roster(admin("alice")), nil), keyservice.ErrConflict,
			"no gaps in a log"},
		{"same record again", ns.ID, next(h0, "", ns.Roster, nil), keyservice.ErrConflict,
			"the store compares heads, not bytes: the handler answers records sent again"},
		{"unknown session", sid(9), next(h0, "", ns.Roster, nil), keyservice.ErrNotFound,
			"no session, no log"},
	}
	for _, tt := range tests {
		if err := st.Append(ctx, tt.id, tt.a); !is(err, tt.wantErr) {
			t.Errorf("%s: Append = %v, want %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		}
		if diff := cmp.Diff(before, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
			t.Errorf("%s: a refused append changed the session (-want +got)\n%s", tt.name, diff)
		}
	}
	if _, err := st.Session(ctx, sid(9)); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("an append to no session made one: %v", err)
	}
}

// testLog reads a log of records of different sizes in pages of every
// shape.
func testLog(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"))
	all := [][]byte{ns.Genesis}
	head := session.Head{Hash: ns.Hash}
	for i := range 9 {
		a := next(head, fmt.Sprintf("%0*d", 10*i, 0), ns.Roster, nil)
		head = mustAppend(t, st, ns.ID, a)
		all = append(all, a.Record)
	}
	size := func(rs [][]byte) int {
		n := 0
		for _, r := range rs {
			n += len(r)
		}
		return n
	}
	tests := []struct {
		name            string
		from            uint32
		limit, maxBytes int
		want            [][]byte
		reason          string
	}{
		{"everything", 0, math.MaxInt, math.MaxInt, all, "records in order, the genesis first"},
		{"a middle page", 3, 4, math.MaxInt, all[3:7], "limit records from from"},
		{"the last record", 9, 10, math.MaxInt, all[9:], "a page ends at the head"},
		{"past the head", 10, 10, math.MaxInt, nil, "nothing after the head"},
		{"from the last sequence number", math.MaxUint32, 10, math.MaxInt, nil, "the greatest cursor is no error"},
		{"no room", 0, 0, math.MaxInt, nil, "limit 0 asks for nothing"},
		{"bytes reached exactly", 0, 10, size(all[:3]), all[:3], "a page ends with the record that reaches maxBytes"},
		{"bytes passed", 0, 10, size(all[:3]) + 1, all[:4], "the record that passes maxBytes is the page's last"},
		{"bytes below one record", 5, 10, 1, all[5:6], "at least one record, however large"},
		{"bytes zero", 5, 10, 0, all[5:6], "at least one record, however large"},
		{"limit before bytes", 2, 2, math.MaxInt, all[2:4], "whichever bound comes first"},
	}
	for _, tt := range tests {
		got, gotHead, err := st.Log(ctx, ns.ID, "alice", tt.from, tt.limit, tt.maxBytes)
		if err != nil {
			t.Errorf("%s: Log: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
			t.Errorf("%s: Log(from %d, limit %d, %d bytes) (%s) (-want +got)\n%s", tt.name, tt.from, tt.limit, tt.maxBytes, tt.reason, diff)
		}
		if gotHead != head {
			t.Errorf("%s: head %v, want %v", tt.name, gotHead, head)
		}
	}
}

// testReads checks who may read a session: members of the stored roster,
// and the service (an empty reader); an unknown session is unknown to
// everyone.
func testReads(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"))
	head := session.Head{Hash: ns.Hash}
	tests := []struct {
		name, reader string
		id           session.ID
		wantErr      error
		wantGrants   []session.GrantRecord
		reason       string
	}{
		{"admin", "alice", ns.ID, nil, grants(0, "alice"), "members read"},
		{"member", "bob", ns.ID, nil, grants(0, "bob"), "members read, each its own grants"},
		{"service", "", ns.ID, nil, nil, "the service reads logs and heads, and is granted nothing"},
		{"not a member", "mallory", ns.ID, keyservice.ErrForbidden, nil, "only the roster reads"},
		{"case matters", "Alice", ns.ID, keyservice.ErrForbidden, nil, "user IDs are compared byte for byte"},
		{"unknown session, not a member", "mallory", sid(9), keyservice.ErrNotFound, nil, "unknown before forbidden"},
		{"unknown session, service", "", sid(9), keyservice.ErrNotFound, nil, "unknown to everyone"},
	}
	for _, tt := range tests {
		log, h, err := st.Log(ctx, tt.id, tt.reader, 0, 10, math.MaxInt)
		if !is(err, tt.wantErr) {
			t.Errorf("%s: Log = %v, want %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		} else if err == nil && (len(log) != 1 || h != head) {
			t.Errorf("%s: Log = %d records, head %v", tt.name, len(log), h)
		}
		h, err = st.Head(ctx, tt.id, tt.reader)
		if !is(err, tt.wantErr) || (err == nil && h != head) {
			t.Errorf("%s: Head = %v, %v; want %v, %v (%s)", tt.name, h, err, head, tt.wantErr, tt.reason)
		}
		g, err := st.Grants(ctx, tt.id, tt.reader)
		if !is(err, tt.wantErr) {
			t.Errorf("%s: Grants = %v, want %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		} else if diff := cmp.Diff(tt.wantGrants, g, cmpOpts...); diff != "" {
			t.Errorf("%s: Grants (-want +got)\n%s", tt.name, diff)
		}
	}
	if _, err := st.Roster(ctx, sid(9)); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("Roster of an unknown session = %v, want ErrNotFound", err)
	}
	if _, err := st.Session(ctx, sid(9)); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("Session of an unknown session = %v, want ErrNotFound", err)
	}
}

// testRemovedMembersGrants checks what becomes of the grants of users who
// leave the roster. Out of the roster a user reads nothing. A member
// removed with a new epoch is no reader of it, and its grants are gone,
// not only hidden: added again, it holds only what it is granted then. A
// member who left without a new epoch is still a reader: its grants stay,
// to be read again if it is added back before the next epoch (which grants
// it nothing), and go with the next epoch otherwise.
func testRemovedMembersGrants(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"), member("carol"), member("dave"))
	h := session.Head{Hash: ns.Hash}
	step := func(tag string, r []session.Member, readers []string, gs []session.GrantRecord) {
		t.Helper()
		a := next(h, tag, r, gs)
		a.Readers = readers
		h = mustAppend(t, st, ns.ID, a)
	}
	epoch1 := []string{"alice", "carol", "dave"}
	step("remove bob", roster(admin("alice"), member("carol"), member("dave")), epoch1, grants(1, "alice", "carol", "dave"))
	step("carol leaves", roster(admin("alice"), member("dave")), epoch1, nil)
	step("dave leaves", roster(admin("alice")), epoch1, nil)
	for _, u := range []string{"bob", "carol", "dave"} {
		if _, _, err := st.Log(ctx, ns.ID, u, 0, 10, math.MaxInt); !errors.Is(err, keyservice.ErrForbidden) {
			t.Errorf("Log as %s, out of the roster = %v, want ErrForbidden", u, err)
		}
		if _, err := st.Head(ctx, ns.ID, u); !errors.Is(err, keyservice.ErrForbidden) {
			t.Errorf("Head as %s, out of the roster = %v, want ErrForbidden", u, err)
		}
		if _, err := st.Grants(ctx, ns.ID, u); !errors.Is(err, keyservice.ErrForbidden) {
			t.Errorf("Grants as %s, out of the roster = %v, want ErrForbidden", u, err)
		}
	}
	step("carol back", roster(admin("alice"), member("carol")), epoch1, nil)
	if got, err := st.Grants(ctx, ns.ID, "carol"); err != nil || !cmp.Equal(append(grants(0, "carol"), grant("carol", 1)), got, cmpOpts...) {
		t.Errorf("carol's grants, back before the next epoch: %v, %v; want those of epochs 0 and 1, which she kept", got, err)
	}
	step("new epoch", roster(admin("alice"), member("carol")), []string{"alice", "carol"}, grants(2, "alice", "carol"))
	step("bob and dave back", roster(admin("alice"), member("bob"), member("carol"), member("dave")), []string{"alice", "bob", "carol", "dave"}, grants(2, "bob", "dave"))
	for _, tt := range []struct {
		user   string
		want   []session.GrantRecord
		reason string
	}{
		{"bob", grants(2, "bob"), "its grants went with its removal"},
		{"carol", append(grants(0, "carol"), grant("carol", 1), grant("carol", 2)), "it left and came back within epoch 1: it kept them"},
		{"dave", grants(2, "dave"), "it left within epoch 1: its grants went with epoch 2"},
		{"alice", append(grants(0, "alice"), grant("alice", 1), grant("alice", 2)), "a member's grants stay"},
	} {
		got, err := st.Grants(ctx, ns.ID, tt.user)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
			t.Errorf("%s's grants (%s) (-want +got)\n%s", tt.user, tt.reason, diff)
		}
	}
}

func testDeleteSession(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"))
	mustAppend(t, st, ns.ID, next(session.Head{Hash: ns.Hash}, "", roster(admin("alice"), member("bob")), grants(1, "alice", "bob")))
	before := snapshot(t, st, ns.ID)
	tests := []struct {
		name, caller string
		id           session.ID
		wantErr      error
		reason       string
	}{
		{"unknown session", "alice", sid(9), keyservice.ErrNotFound, "nothing to delete"},
		{"not a member", "mallory", ns.ID, keyservice.ErrForbidden, "only admins delete"},
		{"member", "bob", ns.ID, keyservice.ErrForbidden, "only admins delete"},
	}
	for _, tt := range tests {
		if err := st.DeleteSession(ctx, tt.id, tt.caller); !is(err, tt.wantErr) {
			t.Errorf("%s: DeleteSession = %v, want %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		}
		if diff := cmp.Diff(before, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
			t.Errorf("%s: a refused delete changed the session (-want +got)\n%s", tt.name, diff)
		}
	}
	if err := st.DeleteSession(ctx, ns.ID, "alice"); err != nil {
		t.Fatalf("DeleteSession by its admin: %v", err)
	}
	gone := []struct {
		name string
		err  error
	}{
		{"Session", second(st.Session(ctx, ns.ID))},
		{"SessionByChannel", second(st.SessionByChannel(ctx, ns.ChannelCID))},
		{"Roster", second(st.Roster(ctx, ns.ID))},
		{"Log", third(st.Log(ctx, ns.ID, "", 0, 10, math.MaxInt))},
		{"Head", second(st.Head(ctx, ns.ID, "alice"))},
		{"Grants", second(st.Grants(ctx, ns.ID, "alice"))},
		{"Append", st.Append(ctx, ns.ID, next(before.Rec.Head, "", ns.Roster, nil))},
		{"DeleteSession again", st.DeleteSession(ctx, ns.ID, "alice")},
	}
	for _, g := range gone {
		if !errors.Is(g.err, keyservice.ErrNotFound) {
			t.Errorf("%s after DeleteSession = %v, want ErrNotFound", g.name, g.err)
		}
	}
	// The channel and the ID are free again; nothing of the old log
	// remains.
	mustCreate(t, st, 1, admin("alice"), member("bob"))
	want := state{
		Rec:    server.SessionRecord{ID: ns.ID, ChannelCID: ns.ChannelCID, Head: session.Head{Hash: ns.Hash}},
		Roster: ns.Roster, Log: [][]byte{ns.Genesis},
		Grants: map[string][]session.GrantRecord{"alice": grants(0, "alice"), "bob": grants(0, "bob")},
	}
	if diff := cmp.Diff(want, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
		t.Errorf("session made again after its deletion (-want +got)\n%s", diff)
	}
	if err := st.DeleteSession(ctx, ns.ID, ""); err != nil {
		t.Errorf("DeleteSession by the service: %v", err)
	}
}

// second and third return a call's error.
func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

func testPing(t *testing.T, st server.Store) {
	if err := st.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testNothingHalfway makes calls fail after part of their work could have
// been done, and checks that none of it is visible.
func testNothingHalfway(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"))
	head := session.Head{Hash: ns.Hash}
	before := snapshot(t, st, ns.ID)
	many := []session.Member{admin("alice"), member("bob")}
	var manyGrants []session.GrantRecord
	for i := range 600 {
		u := fmt.Sprintf("new%03d", i)
		many = append(many, member(u))
		manyGrants = append(manyGrants, grant(u, 0))
	}
	tests := []struct {
		name   string
		call   func() error
		reason string
	}{
		{"Append of hundreds of members, two grants for one at the end",
			func() error {
				return st.Append(ctx, ns.ID, next(head, "", roster(many...), append(manyGrants, grant("new599", 0))))
			}, "a store that writes in batches must undo the record, the head, the roster and the batches"},
		{"Append removing bob, two grants for alice",
			func() error {
				return st.Append(ctx, ns.ID, next(head, "", roster(admin("alice")), append(grants(1, "alice"), grant("alice", 1))))
			}, "bob's grants stay when the call fails"},
		{"CreateSession with two grants for one grantee",
			func() error {
				ns2 := genesis(2, "", admin("carol"), member("dave"))
				ns2.Grants = append(ns2.Grants, grant("dave", 0))
				_, err := st.CreateSession(ctx, ns2)
				return err
			}, "no session without all its grants"},
		{"Append past its signer's bytes",
			func() error {
				a := next(head, "", roster(admin("alice")), grants(1, "alice"))
				a.Quota = server.Quota{User: "alice", MaxBytes: 1}
				return st.Append(ctx, ns.ID, a)
			}, "the quota is checked in the transaction that stores, and rolls it back"},
		{"CreateSession past its creator's sessions",
			func() error {
				ns2 := genesis(2, "", admin("carol"), member("dave"))
				ns2.Quota = server.Quota{User: "carol", MaxSessions: -1, MaxBytes: 1}
				_, err := st.CreateSession(ctx, ns2)
				return err
			}, "no session the quota refuses"},
	}
	for _, tt := range tests {
		if err := tt.call(); err == nil {
			t.Errorf("%s: succeeded, want an error", tt.name)
		}
		if diff := cmp.Diff(before, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
			t.Errorf("%s: state changed by a failed call (%s) (-want +got)\n%s", tt.name, tt.reason, diff)
		}
	}
	if _, err := st.SessionByChannel(ctx, "messaging:2"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("a failed CreateSession left a session: %v", err)
	}
	// And the head did not move: the next record still follows it.
	mustAppend(t, st, ns.ID, next(head, "", before.Roster, nil))
}

func testQuota(t *testing.T, st server.Store) {
	// alice may create two sessions and store 100 bytes.
	q := server.Quota{User: "alice", MaxSessions: 2, MaxBytes: 100}
	create := func(n int) error {
		ns := genesis(n, "", admin("alice"))
		ns.Quota = q
		_, err := st.CreateSession(ctx, ns)
		return err
	}
	if err := create(1); err != nil {
		t.Fatalf("first session: %v", err)
	}
	// Sent again: not a second session.
	if err := create(1); err != nil {
		t.Fatalf("first session sent again: %v", err)
	}
	if err := create(2); err != nil {
		t.Fatalf("second session: %v", err)
	}
	if err := create(3); !errors.Is(err, keyservice.ErrQuotaExceeded) {
		t.Fatalf("third session: %v, want ErrQuotaExceeded", err)
	}
	if _, err := st.SessionByChannel(ctx, "messaging:3"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("a refused session was stored: %v", err)
	}
	// Quotas are per user: bob's first session counts nothing of alice's.
	bobs := genesis(4, "", admin("bob"))
	bobs.Quota = server.Quota{User: "bob", MaxSessions: 1, MaxBytes: 100}
	if _, err := st.CreateSession(ctx, bobs); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
	// Deleting gives no session back: creations count.
	if err := st.DeleteSession(ctx, sid(2), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := create(5); !errors.Is(err, keyservice.ErrQuotaExceeded) {
		t.Errorf("a session after a delete: %v, want ErrQuotaExceeded (creations count)", err)
	}

	// Bytes: session 1 counted its genesis and grant, session 2's were
	// freed with it; fill up to the limit exactly with an append.
	ns := genesis(1, "", admin("alice"))
	used := int64(len(ns.Genesis) + len(ns.Grants[0].Grant))
	head := session.Head{Hash: ns.Hash}
	a := next(head, "", roster(admin("alice")), nil)
	pad := q.MaxBytes - used - int64(len(a.Record))
	if pad < 0 {
		t.Fatalf("test setup: %d bytes used of %d", used, q.MaxBytes)
	}
	// A refused append (not at the head) counts nothing.
	stale := next(session.Head{Seq: 7}, "", roster(admin("alice")), nil)
	stale.Quota = q
	if err := st.Append(ctx, ns.ID, stale); !errors.Is(err, keyservice.ErrConflict) {
		t.Fatalf("append not at the head: %v, want ErrConflict", err)
	}
	a.Grants = []session.GrantRecord{{Grantee: "alice", Epoch: 1, Grant: make([]byte, pad)}}
	a.Quota = q
	head = mustAppend(t, st, ns.ID, a)
	before := snapshot(t, st, ns.ID)
	over := next(head, "", roster(admin("alice")), nil)
	over.Quota = q
	if err := st.Append(ctx, ns.ID, over); !errors.Is(err, keyservice.ErrQuotaExceeded) {
		t.Fatalf("append past the bytes: %v, want ErrQuotaExceeded", err)
	}
	if diff := cmp.Diff(before, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
		t.Errorf("a refused append changed the session (-want +got)\n%s", diff)
	}
	// Without a user, or for another user, the same record is stored.
	over.Quota = server.Quota{User: "bob", MaxBytes: 1000}
	mustAppend(t, st, ns.ID, over)

	// Deleting a session frees the bytes each user was charged for it:
	// alice, full, stores a whole quota's worth again (in bob's session:
	// a Store leaves rights to the handler).
	bobHead := session.Head{Hash: bobs.Hash}
	full := next(bobHead, "", roster(admin("bob")), nil)
	full.Grants = []session.GrantRecord{{Grantee: "bob", Epoch: 1, Grant: make([]byte, q.MaxBytes-int64(len(full.Record)))}}
	full.Quota = q
	if err := st.Append(ctx, bobs.ID, full); !errors.Is(err, keyservice.ErrQuotaExceeded) {
		t.Fatalf("alice, full, stores more: %v, want ErrQuotaExceeded", err)
	}
	if err := st.DeleteSession(ctx, ns.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, st, bobs.ID, full)
	// Another user's bytes in the deleted session were freed too: bob's
	// 1,000 bytes hold the whole quota again.
	bobFull := next(headAfter(full), "", roster(admin("bob")), nil)
	bobFull.Grants = []session.GrantRecord{{Grantee: "bob", Epoch: 2, Grant: make([]byte, 1000-int64(len(bobFull.Record))-int64(len(bobs.Genesis)+len(bobs.Grants[0].Grant)))}}
	bobFull.Quota = server.Quota{User: "bob", MaxBytes: 1000}
	mustAppend(t, st, bobs.ID, bobFull)
}

func testRaceQuota(t *testing.T, st server.Store) {
	const limit = 5
	errs := race(func(i int) error {
		ns := genesis(i, "", admin("alice"))
		ns.Quota = server.Quota{User: "alice", MaxSessions: limit}
		_, err := st.CreateSession(ctx, ns)
		return err
	})
	created := 0
	for i, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, keyservice.ErrQuotaExceeded):
			t.Errorf("racer %d: %v, want nil or ErrQuotaExceeded", i, err)
		}
	}
	if created != limit {
		t.Errorf("%d sessions created at once under a quota of %d", created, limit)
	}
	stored := 0
	for i := range racers {
		if _, err := st.Session(ctx, sid(i)); err == nil {
			stored++
		}
	}
	if stored != limit {
		t.Errorf("%d sessions stored under a quota of %d", stored, limit)
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

// testRaceAppend races appends at one head, each adding another user with
// its grant: exactly one is stored, with its roster and grants, and no
// trace of the others.
func testRaceAppend(t *testing.T, st server.Store) {
	ns := mustCreate(t, st, 1, admin("alice"), member("bob"))
	h0 := session.Head{Hash: ns.Hash}
	app := func(i int) server.Append {
		u := fmt.Sprintf("racer%02d", i)
		return next(h0, u, roster(admin("alice"), member("bob"), member(u)), grants(0, u))
	}
	w := oneWinner(t, race(func(i int) error { return st.Append(ctx, ns.ID, app(i)) }), keyservice.ErrConflict)
	win := app(w)
	want := state{
		Rec:    server.SessionRecord{ID: ns.ID, ChannelCID: ns.ChannelCID, Head: headAfter(win)},
		Roster: win.Roster,
		Log:    [][]byte{ns.Genesis, win.Record},
		Grants: map[string][]session.GrantRecord{"alice": grants(0, "alice"), "bob": grants(0, "bob"), win.Roster[2].UserID: win.Grants},
	}
	if diff := cmp.Diff(want, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
		t.Errorf("after %d racing appends at one head: only the winner's (-want +got)\n%s", racers, diff)
	}
}

// testRaceChain has racers extend one log concurrently, each appending
// after whatever head it reads and reading again when it loses: the log
// ends with every racer's records once each, consecutive, the head at the
// last.
func testRaceChain(t *testing.T, st server.Store) {
	const perRacer = 4
	ns := mustCreate(t, st, 1, admin("alice"))
	errs := race(func(i int) error {
		for k := 0; k < perRacer; {
			rec, err := st.Session(ctx, ns.ID)
			if err != nil {
				return err
			}
			err = st.Append(ctx, ns.ID, next(rec.Head, fmt.Sprintf("racer %d #%d", i, k), ns.Roster, nil))
			switch {
			case err == nil:
				k++
			case !errors.Is(err, keyservice.ErrConflict):
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	got := snapshot(t, st, ns.ID)
	if len(got.Log) != 1+racers*perRacer {
		t.Fatalf("%d records, want %d", len(got.Log), 1+racers*perRacer)
	}
	seen := map[string]bool{}
	for seq, r := range got.Log[1:] {
		var n, i, k int
		if _, err := fmt.Sscanf(string(r), "record %d racer %d #%d", &n, &i, &k); err != nil || n != seq+1 {
			t.Fatalf("record %d is %q", seq+1, r)
		}
		key := fmt.Sprint(i, k)
		if seen[key] {
			t.Errorf("racer %d's record %d stored twice", i, k)
		}
		seen[key] = true
	}
	last := got.Log[len(got.Log)-1]
	if want := (session.Head{Seq: racers * perRacer, Hash: sha256.Sum256(last)}); got.Rec.Head != want {
		t.Errorf("head %v, want the last record's %v", got.Rec.Head, want)
	}
}

// testRaceCreateSession races creators of different sessions for one
// channel: one session is stored, and every other creator is told which.
func testRaceCreateSession(t *testing.T, st server.Store) {
	ns := func(i int) server.NewSession {
		g := genesis(i+1, "", admin(fmt.Sprintf("user%02d", i)))
		g.ChannelCID = "messaging:contested"
		return g
	}
	created := make([]bool, racers)
	errs := race(func(i int) error {
		var err error
		created[i], err = st.CreateSession(ctx, ns(i))
		return err
	})
	w := oneWinner(t, errs, session.ErrSessionExists)
	for i, err := range errs {
		var exists *session.SessionExistsError
		if i != w && (!errors.As(err, &exists) || exists.ID != sid(w+1) || exists.ChannelCID != "messaging:contested") {
			t.Errorf("racer %d: %v, want a *session.SessionExistsError naming the winner's %v", i, err, sid(w+1))
		}
		if created[i] != (i == w) {
			t.Errorf("racer %d: created %v", i, created[i])
		}
	}
	if got, err := st.SessionByChannel(ctx, "messaging:contested"); err != nil || got != sid(w+1) {
		t.Errorf("SessionByChannel = %v, %v; want the winner's", got, err)
	}
	for i := range racers {
		if _, err := st.Session(ctx, sid(i+1)); (i == w) != (err == nil) {
			t.Errorf("Session of racer %d: %v", i, err)
		}
	}
}

// testRaceCreateSame races creators of one genesis (one client retrying, a
// request duplicated by a proxy): one stores it, the others are told it is
// there.
func testRaceCreateSame(t *testing.T, st server.Store) {
	ns := genesis(1, "", admin("alice"), member("bob"))
	created := make([]bool, racers)
	errs := race(func(i int) error {
		var err error
		created[i], err = st.CreateSession(ctx, ns)
		return err
	})
	n := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v (the same genesis sent at once must converge, not fail)", i, err)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d racers created the session, want 1", n)
	}
	want := state{
		Rec:    server.SessionRecord{ID: ns.ID, ChannelCID: ns.ChannelCID, Head: session.Head{Hash: ns.Hash}},
		Roster: ns.Roster, Log: [][]byte{ns.Genesis},
		Grants: map[string][]session.GrantRecord{"alice": grants(0, "alice"), "bob": grants(0, "bob")},
	}
	if diff := cmp.Diff(want, snapshot(t, st, ns.ID), cmpOpts...); diff != "" {
		t.Errorf("session after racing creators of one genesis: stored once (-want +got)\n%s", diff)
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
