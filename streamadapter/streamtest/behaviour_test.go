package streamtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
)

// ticking is a clock that moves one second at each reading, so that every
// object gets its own creation time.
func ticking() func() time.Time {
	var mu sync.Mutex
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

func memberIDs(ms []*stream.ChannelMember) string {
	ids := []string{}
	for _, m := range ms {
		ids = append(ids, m.UserID)
	}
	return strings.Join(ids, ",")
}

func messageIDs(ms []*stream.Message) string {
	ids := []string{}
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ",")
}

// TestAsyncTaskResults: a completed DeleteChannels or DeleteUsers task
// reports {"status": "ok"} for each CID or user ID; an empty list (which
// stream-chat-go refuses before sending) is refused with code 4.
func TestAsyncTaskResults(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"}, &stream.User{ID: "carol"})
	for _, id := range []string{"a", "b"} {
		if _, err := c.CreateChannelWithMembers(ctx, "messaging", id, "alice", "alice"); err != nil {
			t.Fatal(err)
		}
	}
	ok := map[string]any{"status": "ok"}
	task, err := c.DeleteChannels(ctx, []string{"messaging:a", "messaging:b"}, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.GetTask(ctx, task.TaskID)
	if err != nil || st.Status != stream.TaskStatusCompleted || st.TaskID != task.TaskID ||
		fmt.Sprint(st.Result["messaging:a"]) != fmt.Sprint(ok) || fmt.Sprint(st.Result["messaging:b"]) != fmt.Sprint(ok) {
		t.Fatalf("DeleteChannels task: %+v %v", st, err)
	}
	task, err = c.DeleteUsers(ctx, []string{"bob", "carol"}, stream.DeleteUserOptions{User: stream.SoftDelete})
	if err != nil {
		t.Fatal(err)
	}
	st, err = c.GetTask(ctx, task.TaskID)
	if err != nil || st.Status != stream.TaskStatusCompleted || fmt.Sprint(st.Result["bob"]) != fmt.Sprint(ok) || fmt.Sprint(st.Result["carol"]) != fmt.Sprint(ok) {
		t.Fatalf("DeleteUsers task: %+v %v", st, err)
	}
	srv := serverToken(s)
	for _, tc := range []struct{ path, body string }{
		{"/channels/delete", `{"cids":[],"hard_delete":true}`},
		{"/users/delete", `{"user_ids":[],"user":"soft"}`},
	} {
		if code, out := call(t, s, "POST", tc.path, srv, tc.body); code != 400 || out["code"] != 4.0 {
			t.Errorf("POST %s with an empty list: HTTP %d %v, want code 4", tc.path, code, out)
		}
	}
}

// TestQueryMembers: filters on the member's user fields and membership,
// with sort, offset and limit, as Stream's query members documents.
func TestQueryMembers(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{Now: ticking()})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "ann", Name: "Annabel", ExtraData: map[string]any{"team": "red"}},
		&stream.User{ID: "ben", Name: "Benjamin", ExtraData: map[string]any{"team": "blue"}},
		&stream.User{ID: "cat", Name: "Catherine", ExtraData: map[string]any{"team": "red"}},
		&stream.User{ID: "dan", Name: "Daniel"}, &stream.User{ID: "eve", Name: "Evelyn"})
	// Members join in the order ann, ben, cat (one second apart); dan and
	// eve are invited; dan accepts; ben is a moderator.
	created, err := c.CreateChannelWithMembers(ctx, "messaging", "members", "ann", "ann")
	if err != nil {
		t.Fatal(err)
	}
	ch := created.Channel
	ch.AddMembers(ctx, []string{"ben"})
	ch.AddMembers(ctx, []string{"cat"})
	ch.AddModerators(ctx, "ben")
	ch.InviteMembers(ctx, "dan")
	ch.InviteMembers(ctx, "eve")
	ch.AcceptInvite(ctx, "dan", nil)
	all, err := ch.QueryMembers(ctx, &stream.QueryOption{Filter: map[string]any{}})
	if err != nil || memberIDs(all.Members) != "ann,ben,cat,dan,eve" {
		t.Fatalf("all members, oldest first: %v %v", memberIDs(all.Members), err)
	}
	benJoined := all.Members[1].CreatedAt.Format(time.RFC3339)
	catJoined := all.Members[2].CreatedAt.Format(time.RFC3339)

	asc := &stream.SortOption{Field: "created_at", Direction: 1}
	tests := []struct {
		name   string
		filter map[string]any
		limit  int
		offset int
		sort   []*stream.SortOption
		want   string
		reason string
	}{
		{"name autocomplete", map[string]any{"name": map[string]any{"$autocomplete": "an"}}, 0, 0, nil, "ann,dan", "a part of the user's name matches, in any case"},
		{"name eq", map[string]any{"name": "Catherine"}, 0, 0, nil, "cat", "a field without operator is $eq"},
		{"id in", map[string]any{"id": map[string]any{"$in": []string{"eve", "ann"}}}, 0, 0, nil, "ann,eve", "id is the member's user ID"},
		{"user_id eq", map[string]any{"user_id": map[string]any{"$eq": "cat"}}, 0, 0, nil, "cat", "user_id too"},
		{"custom user field", map[string]any{"team": "red"}, 0, 0, nil, "ann,cat", "the user's custom data"},
		{"invite pending", map[string]any{"invite": "pending"}, 0, 0, nil, "eve", "invited, neither accepted nor rejected"},
		{"invite accepted", map[string]any{"invite": "accepted"}, 0, 0, nil, "dan", "accepted invites"},
		{"banned", map[string]any{"banned": true}, 0, 0, nil, "", "bans are not emulated: nobody is banned"},
		{"not banned", map[string]any{"banned": false}, 0, 0, nil, "ann,ben,cat,dan,eve", "everyone is not banned"},
		{"moderators", map[string]any{"is_moderator": true}, 0, 0, nil, "ben", "is_moderator"},
		{"channel role", map[string]any{"channel_role": "channel_moderator"}, 0, 0, nil, "ben", "channel_role"},
		{"created_at range", map[string]any{"created_at": map[string]any{"$gte": benJoined, "$lte": catJoined}}, 0, 0, nil, "ben,cat", "inclusive range on join time"},
		{"created_at after", map[string]any{"created_at": map[string]any{"$gt": catJoined}}, 0, 0, nil, "dan,eve", "exclusive lower bound"},
		{"sort by user_id desc", map[string]any{}, 0, 0, []*stream.SortOption{{Field: "user_id", Direction: -1}}, "eve,dan,cat,ben,ann", "user_id, descending"},
		{"sort by created_at desc", map[string]any{}, 0, 0, []*stream.SortOption{{Field: "created_at", Direction: -1}}, "eve,dan,cat,ben,ann", "newest first"},
		{"page", map[string]any{}, 2, 1, []*stream.SortOption{asc}, "ben,cat", "offset 1, limit 2"},
		{"filter, sort and page", map[string]any{"name": map[string]any{"$autocomplete": "EL"}}, 2, 1, []*stream.SortOption{{Field: "user_id", Direction: -1}}, "dan,ann",
			"Annabel, Daniel and Evelyn match; by user_id descending: eve,dan,ann; offset 1, limit 2"},
	}
	for _, tc := range tests {
		got, err := ch.QueryMembers(ctx, &stream.QueryOption{Filter: tc.filter, Limit: tc.limit, Offset: tc.offset}, tc.sort...)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if ids := memberIDs(got.Members); ids != tc.want {
			t.Errorf("%s: %q, want %q (%s)", tc.name, ids, tc.want, tc.reason)
		}
	}
}

// TestTruncateWithOptions: the messages leave the channel, the message
// given stays as a system message, truncated_by is the user given, and
// hard_delete erases the messages where a plain truncation only hides
// them (Snapshot still holds them, as Stream does).
func TestTruncateWithOptions(t *testing.T) {
	t.Parallel()
	for _, hard := range []bool{false, true} {
		t.Run(fmt.Sprint("hard=", hard), func(t *testing.T) {
			t.Parallel()
			s := NewTestServer(t, Config{Now: ticking()})
			c := s.Client()
			c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"})
			created, _ := c.CreateChannelWithMembers(ctx, "messaging", "trunc", "alice", "alice", "bob")
			ch := created.Channel
			for _, id := range []string{"old1", "old2"} {
				ch.SendMessage(ctx, &stream.Message{Text: "old", ExtraData: map[string]any{"id": id}}, "alice")
			}
			opts := []stream.TruncateOption{stream.TruncateWithUserID("bob"), stream.TruncateWithSkipPush(),
				stream.TruncateWithMessage(&stream.Message{ID: "notice", Text: "Channel truncated", User: &stream.User{ID: "bob"}})}
			if hard {
				opts = append(opts, stream.TruncateWithHardDelete())
			}
			if _, err := ch.Truncate(ctx, opts...); err != nil {
				t.Fatal(err)
			}
			q, err := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"cid": "messaging:trunc"}})
			if err != nil || len(q.Channels) != 1 {
				t.Fatalf("query: %v %v", q, err)
			}
			got := q.Channels[0]
			if messageIDs(got.Messages) != "notice" || got.Messages[0].Type != "system" || got.Messages[0].Text != "Channel truncated" || got.Messages[0].User.ID != "bob" {
				t.Fatalf("messages after truncation: %s %+v", messageIDs(got.Messages), got.Messages)
			}
			if got.TruncatedBy == nil || got.TruncatedBy.ID != "bob" || got.TruncatedAt == nil || !got.LastMessageAt.Equal(*got.Messages[0].CreatedAt) {
				t.Fatalf("truncated_by %v, truncated_at %v, last_message_at %v", got.TruncatedBy, got.TruncatedAt, got.LastMessageAt)
			}
			if _, err := c.GetMessage(ctx, "old1"); streamErr(t, err).Code != 16 {
				t.Fatal("a truncated message is still returned")
			}
			held := map[string]bool{}
			for _, m := range s.Snapshot().Messages {
				held[m.ID] = m.Hidden
			}
			if hidden, ok := held["old1"]; ok == hard || (ok && !hidden) {
				t.Fatalf("snapshot holds old1: %v, hidden: %v; want held (hidden) only by a soft truncation", ok, hidden)
			}
		})
	}

	// truncated_at cuts at a time; a user object names the truncator.
	s := NewTestServer(t, Config{Now: ticking()})
	c := s.Client()
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "cut", "alice", "alice")
	ch := created.Channel
	var cut *time.Time
	for _, id := range []string{"m1", "m2", "m3"} {
		sent, _ := ch.SendMessage(ctx, &stream.Message{Text: id, ExtraData: map[string]any{"id": id}}, "alice")
		if id == "m2" {
			cut = sent.Message.CreatedAt
		}
	}
	if _, err := ch.Truncate(ctx, stream.TruncateWithTruncatedAt(cut), stream.TruncateWithUser(&stream.User{ID: "carol"})); err != nil {
		t.Fatal(err)
	}
	q, _ := ch.Query(ctx, &stream.QueryRequest{State: true})
	if messageIDs(q.Messages) != "m3" || q.Channel.TruncatedBy == nil || q.Channel.TruncatedBy.ID != "carol" || !q.Channel.TruncatedAt.Equal(*cut) {
		t.Fatalf("truncated at m2: messages %s, by %v at %v", messageIDs(q.Messages), q.Channel.TruncatedBy, q.Channel.TruncatedAt)
	}
}

// TestInvitesAtCreation: users listed in the channel request's invites are
// members with a pending invite, which they accept (with a message) or
// reject.
func TestInvitesAtCreation(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{Now: ticking()})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"}, &stream.User{ID: "carol"})
	created, err := c.CreateChannel(ctx, "messaging", "invites", "alice", &stream.ChannelRequest{Members: []string{"alice"}, Invites: []string{"bob", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	ch := created.Channel
	if memberIDs(ch.Members) != "alice,bob,carol" {
		t.Fatalf("members %s", memberIDs(ch.Members))
	}
	for _, m := range ch.Members[1:] {
		if !m.Invited || m.InviteAcceptedAt != nil || m.InviteRejectedAt != nil {
			t.Fatalf("%s's invite is not pending: %+v", m.UserID, m)
		}
	}
	if ch.Members[0].Invited {
		t.Fatal("alice, a member, is marked invited")
	}
	pending, _ := ch.QueryMembers(ctx, &stream.QueryOption{Filter: map[string]any{"invite": "pending"}})
	if memberIDs(pending.Members) != "bob,carol" {
		t.Fatalf("pending invites: %s", memberIDs(pending.Members))
	}
	if _, err := ch.AcceptInvite(ctx, "bob", &stream.Message{Text: "Bob joined", User: &stream.User{ID: "bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.RejectInvite(ctx, "carol", nil); err != nil {
		t.Fatal(err)
	}
	q, _ := ch.Query(ctx, &stream.QueryRequest{State: true})
	byID := map[string]*stream.ChannelMember{}
	for _, m := range q.Members {
		byID[m.UserID] = m
	}
	if byID["bob"].InviteAcceptedAt == nil || byID["bob"].InviteRejectedAt != nil || byID["carol"].InviteRejectedAt == nil || byID["carol"].InviteAcceptedAt != nil {
		t.Fatalf("after accept and reject: bob %+v carol %+v", byID["bob"], byID["carol"])
	}
	if len(q.Messages) != 1 || q.Messages[0].Type != "system" || q.Messages[0].Text != "Bob joined" || q.Messages[0].User.ID != "bob" {
		t.Fatalf("accept message: %+v", q.Messages)
	}
	for status, want := range map[string]string{"accepted": "bob", "rejected": "carol", "pending": ""} {
		got, _ := ch.QueryMembers(ctx, &stream.QueryOption{Filter: map[string]any{"invite": status}})
		if memberIDs(got.Members) != want {
			t.Errorf("invite %s: %q, want %q", status, memberIDs(got.Members), want)
		}
	}
}

// TestQueryChannelsLimitsAndSort: message_limit and member_limit bound
// what each channel carries; the sort given is applied, and without one
// the most recently updated channel comes first.
func TestQueryChannelsLimitsAndSort(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{Now: ticking()})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "u1"}, &stream.User{ID: "u2"}, &stream.User{ID: "u3"})
	// Created a, b, c in this order; the last messages go to b, then a.
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.CreateChannelWithMembers(ctx, "team", id, "u1", "u1", "u2", "u3"); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range []string{"c", "b", "b", "b", "a"} {
		if _, err := c.Channel("team", id).SendMessage(ctx, &stream.Message{Text: "x", ExtraData: map[string]any{"id": fmt.Sprintf("%s%d", id, i)}}, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	two, one := 2, 1
	cids := func(chs []*stream.Channel) string {
		ids := []string{}
		for _, ch := range chs {
			ids = append(ids, ch.ID)
		}
		return strings.Join(ids, ",")
	}
	tests := []struct {
		name   string
		sort   []*stream.SortOption
		want   string
		reason string
	}{
		{"default", nil, "a,b,c", "last_updated descending: a had the last message, then b, then c"},
		{"created_at ascending", []*stream.SortOption{{Field: "created_at", Direction: 1}}, "a,b,c", "oldest first"},
		{"created_at descending", []*stream.SortOption{{Field: "created_at", Direction: -1}}, "c,b,a", "newest first"},
		{"last_message_at ascending", []*stream.SortOption{{Field: "last_message_at", Direction: 1}}, "c,b,a", "c's message is the oldest last message"},
	}
	for _, tc := range tests {
		q, err := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"type": "team"}, MessageLimit: &two, MemberLimit: &one}, tc.sort...)
		if err != nil {
			t.Fatal(err)
		}
		if got := cids(q.Channels); got != tc.want {
			t.Errorf("%s: %s, want %s (%s)", tc.name, got, tc.want, tc.reason)
		}
		for _, ch := range q.Channels {
			if len(ch.Members) != 1 || len(ch.Messages) > 2 || ch.MemberCount != 3 {
				t.Errorf("%s: channel %s carries %d members (of %d) and %d messages; want 1 and at most 2", tc.name, ch.ID, len(ch.Members), ch.MemberCount, len(ch.Messages))
			}
			if ch.ID == "b" && messageIDs(ch.Messages) != "b2,b3" {
				t.Errorf("%s: b carries %s, want its 2 newest messages b2,b3", tc.name, messageIDs(ch.Messages))
			}
		}
	}
	zero := 0
	q, _ := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"id": "b"}, MessageLimit: &zero})
	if len(q.Channels) != 1 || len(q.Channels[0].Messages) != 0 || len(q.Channels[0].Members) != 3 {
		t.Fatalf("message_limit 0: %d messages, %d members", len(q.Channels[0].Messages), len(q.Channels[0].Members))
	}
}

// TestServerSideCreatorAndAuthor: a channel created as the JavaScript SDK
// creates it (created_by_id) has that creator; a server-side creation
// without created_by or created_by_id, or a server-side message without
// user or user_id, is refused with code 4; with a user token the user is
// the creator and the author.
func TestServerSideCreatorAndAuthor(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice", Name: "Alice"}, &stream.User{ID: "bob"})
	srv := serverToken(s)
	code, out := call(t, s, "POST", "/channels/messaging/js/query", srv,
		`{"data":{"created_by_id":"alice","members":["alice",{"user_id":"bob","channel_role":"channel_moderator"}],"color":"blue"},"state":true}`)
	if code != 200 {
		t.Fatalf("create with created_by_id: HTTP %d %v", code, out)
	}
	q, err := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"created_by_id": "alice"}})
	if err != nil || len(q.Channels) != 1 || q.Channels[0].CreatedBy == nil || q.Channels[0].CreatedBy.ID != "alice" ||
		q.Channels[0].CreatedBy.Name != "Alice" || q.Channels[0].ExtraData["color"] != "blue" {
		t.Fatalf("channel created with created_by_id: %+v %v", q, err)
	}
	if roles := q.Channels[0].Members; len(roles) != 2 || roles[1].UserID != "bob" || roles[1].Role != "moderator" || !roles[1].IsModerator {
		t.Fatalf("a member given as an object with its channel role: %+v", roles)
	}

	code, out = call(t, s, "POST", "/channels/messaging/nobody/query", srv, `{"data":{"members":["alice"]},"state":true}`)
	if code != 400 || out["code"] != 4.0 || !strings.Contains(fmt.Sprint(out["message"]), "created_by_id") {
		t.Fatalf("server-side creation without a creator: HTTP %d %v", code, out)
	}
	if _, err := c.CreateChannel(ctx, "messaging", "nobody", "alice", nil); err != nil {
		t.Fatalf("the same channel with a creator: %v", err)
	}
	// An existing channel needs no creator to be read.
	if code, out := call(t, s, "POST", "/channels/messaging/nobody/query", srv, `{"state":true}`); code != 200 {
		t.Fatalf("reading an existing channel server-side: HTTP %d %v", code, out)
	}

	code, out = call(t, s, "POST", "/channels/messaging/js/message", srv, `{"message":{"text":"from nobody"}}`)
	if code != 400 || out["code"] != 4.0 {
		t.Fatalf("server-side message without a user: HTTP %d %v", code, out)
	}
	if code, _ := call(t, s, "POST", "/channels/messaging/js/message", srv, `{"message":{"text":"hi","id":"by-object","user":{"id":"bob"}}}`); code != 200 {
		t.Fatalf("server-side message with a user object: HTTP %d", code)
	}
	if m, err := c.GetMessage(ctx, "by-object"); err != nil || m.Message.User.ID != "bob" {
		t.Fatalf("author from the user object: %+v %v", m, err)
	}

	tok, _ := c.CreateToken("bob", time.Time{})
	if code, out := call(t, s, "POST", "/channels/messaging/bobs/query", tok, `{"data":{"members":["bob"]},"state":true}`); code != 200 ||
		out["channel"].(map[string]any)["created_by"].(map[string]any)["id"] != "bob" {
		t.Fatalf("a channel created with a user token: HTTP %d %v", code, out)
	}
	if code, out := call(t, s, "POST", "/channels/messaging/bobs/message", tok, `{"message":{"text":"mine"}}`); code != 200 ||
		out["message"].(map[string]any)["user"].(map[string]any)["id"] != "bob" {
		t.Fatalf("a message sent with a user token: HTTP %d %v", code, out)
	}
}

// TestFieldsStreamAlwaysReturns: last_message_at (moving back when the
// newest message is hard-deleted), pinned: false on unpinned messages,
// pinned_by from the request's user object, mentioned users as user
// objects, and a hard delete's response (type "deleted", deleted_at).
func TestFieldsStreamAlwaysReturns(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{Now: ticking()})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob", Name: "Bob"})
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "fields", "alice", "alice", "bob")
	ch := created.Channel
	if q, _ := ch.Query(ctx, &stream.QueryRequest{State: true}); !q.Channel.LastMessageAt.IsZero() {
		t.Fatalf("last_message_at %v on a channel without messages", q.Channel.LastMessageAt)
	}
	first, _ := ch.SendMessage(ctx, &stream.Message{Text: "first", ExtraData: map[string]any{"id": "first"}}, "alice")
	second, err := ch.SendMessage(ctx, &stream.Message{Text: "second", ExtraData: map[string]any{"id": "second"}, MentionedUsers: []*stream.User{{ID: "bob"}}}, "alice")
	if err != nil || len(second.Message.MentionedUsers) != 1 || second.Message.MentionedUsers[0].Name != "Bob" {
		t.Fatalf("mentioned_users: %+v %v", second, err)
	}
	lastAt := func() time.Time {
		q, err := ch.Query(ctx, &stream.QueryRequest{State: true})
		if err != nil {
			t.Fatal(err)
		}
		return q.Channel.LastMessageAt
	}
	if got := lastAt(); !got.Equal(*second.Message.CreatedAt) {
		t.Fatalf("last_message_at %v, want the second message's %v", got, second.Message.CreatedAt)
	}
	srv := serverToken(s)
	code, out := call(t, s, "DELETE", "/messages/second?hard=true", srv, "")
	msg, _ := out["message"].(map[string]any)
	if code != 200 || msg["type"] != "deleted" || msg["deleted_at"] == nil || msg["id"] != "second" {
		t.Fatalf("hard delete response: HTTP %d %v", code, out)
	}
	if got := lastAt(); !got.Equal(*first.Message.CreatedAt) {
		t.Fatalf("after hard-deleting the newest message, last_message_at %v, want the first message's %v", got, first.Message.CreatedAt)
	}
	code, out = call(t, s, "DELETE", "/messages/first", srv, "")
	if msg, _ := out["message"].(map[string]any); code != 200 || msg["type"] != "deleted" || msg["deleted_at"] == nil {
		t.Fatalf("soft delete response: HTTP %d %v", code, out)
	}

	// "pinned": false is there, not omitted.
	code, out = call(t, s, "POST", "/channels/messaging/fields/message", srv, `{"message":{"id":"p","text":"pin me","user_id":"alice"}}`)
	if pinned, present := out["message"].(map[string]any)["pinned"]; code != 200 || !present || pinned != false {
		t.Fatalf("an unpinned message: HTTP %d, pinned %v (present %v)", code, pinned, present)
	}
	// The JavaScript SDK names the pinner with a user object.
	if code, out := call(t, s, "PUT", "/messages/p", srv, `{"set":{"pinned":true},"user":{"id":"bob"}}`); code != 200 {
		t.Fatalf("pin: HTTP %d %v", code, out)
	}
	g, err := c.GetMessage(ctx, "p")
	if err != nil || !g.Message.Pinned || g.Message.PinnedBy == nil || g.Message.PinnedBy.ID != "bob" || g.Message.PinnedAt == nil {
		t.Fatalf("pinned with a user object: %+v %v", g.Message, err)
	}
	// An edit that keeps it pinned keeps who pinned it.
	up, err := c.UpdateMessage(ctx, &stream.Message{Text: "edited", Pinned: true, UserID: "alice"}, "p")
	if err != nil || !up.Message.Pinned || up.Message.PinnedBy == nil || up.Message.PinnedBy.ID != "bob" || !up.Message.PinnedAt.Equal(*g.Message.PinnedAt) {
		t.Fatalf("edit of a pinned message: %+v %v", up.Message, err)
	}
}

// TestMarkdown: html is the text's markdown rendered as Stream renders it;
// HTML written in the text shows as text.
func TestMarkdown(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "md", "alice", "alice")
	tests := []struct{ name, text, want, reason string }{
		{"plain", "hello", "<p>hello</p>\n", "a paragraph"},
		{"bold", "**bold**", "<p><strong>bold</strong></p>\n", "strong emphasis"},
		{"italics", "_it_ and *it*", "<p><em>it</em> and <em>it</em></p>\n", "emphasis, both spellings"},
		{"link", "[Veil](https://veil.example/docs)", "<p><a href=\"https://veil.example/docs\">Veil</a></p>\n", "a link"},
		{"inline code", "run `veil serve`", "<p>run <code>veil serve</code></p>\n", "inline code"},
		{"code block", "```\nx := 1\n```", "<pre><code>x := 1\n</code></pre>\n", "a fenced block"},
		{"list", "- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n", "a bullet list"},
		{"ordered list", "1. one\n2. two", "<ol>\n<li>one</li>\n<li>two</li>\n</ol>\n", "a numbered list"},
		{"inline HTML", "veil1:AAAA <b>", "<p>veil1:AAAA &lt;b&gt;</p>\n", "HTML in the text shows as text"},
		{"HTML block", "<div onclick=\"x()\">hi</div>", "<p>&lt;div onclick=&quot;x()&quot;&gt;hi&lt;/div&gt;</p>\n", "an HTML block too"},
		{"script link", "[x](javascript:alert(1))", "<p><a href=\"\">x</a></p>\n", "a dangerous link loses its URL"},
		{"ciphertext", "veil1:q83vEjRWeJA+/=", "<p>veil1:q83vEjRWeJA+/=</p>\n", "base64 has no markdown meaning"},
	}
	for i, tc := range tests {
		sent, err := created.Channel.SendMessage(ctx, &stream.Message{Text: tc.text, ExtraData: map[string]any{"id": fmt.Sprint("md", i)}}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if sent.Message.HTML != tc.want {
			t.Errorf("%s: %q renders %q, want %q (%s)", tc.name, tc.text, sent.Message.HTML, tc.want, tc.reason)
		}
	}
}

// TestPlainTextRendersAsMarkdown: every text of up to four characters
// from a letter, a digit and the punctuation the plain-text path accepts
// renders on that path exactly as the markdown parser renders it.
func TestPlainTextRendersAsMarkdown(t *testing.T) {
	t.Parallel()
	alphabet := "a1 +/=:.,;?@%$'\"-"
	texts := []string{""}
	checked := 0
	for range 4 {
		var longer []string
		for _, p := range texts {
			for i := range len(alphabet) {
				text := p + alphabet[i:i+1]
				longer = append(longer, text)
				if plain(text) {
					checked++
					if got, want := renderHTML(text), renderMarkdown(text); got != want {
						t.Fatalf("%q renders %q on the plain path, %q through markdown", text, got, want)
					}
				}
			}
		}
		texts = longer
	}
	if checked < 1000 {
		t.Fatalf("only %d texts took the plain path", checked)
	}
}
