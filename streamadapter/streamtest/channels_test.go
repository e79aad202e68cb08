package streamtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
)

func TestRolesModeratorsInvites(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"}, &stream.User{ID: "carol"}, &stream.User{ID: "dave"})
	created, err := c.CreateChannelWithMembers(ctx, "messaging", "roles", "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ch := created.Channel
	if _, err := ch.AddMembers(ctx, []string{"bob"}, stream.AddMembersWithHideHistory(), stream.AddMembersWithMessage(&stream.Message{Text: "bob joined", User: &stream.User{ID: "alice"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.AddModerators(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.AssignRole(ctx, []*stream.RoleAssignment{{UserID: "carol", ChannelRole: "channel_admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.InviteMembers(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.AcceptInvite(ctx, "dave", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.RejectInvite(ctx, "alice", nil); err == nil {
		t.Fatal("rejecting an invite that does not exist succeeded")
	}
	got, _ := c.CreateChannel(ctx, "messaging", "roles", "alice", nil)
	roles := map[string]string{}
	for _, m := range got.Channel.Members {
		roles[m.UserID] = m.Role
		if m.UserID == "bob" && !m.IsModerator {
			t.Error("bob is not a moderator")
		}
		if m.UserID == "dave" && (!m.Invited || m.InviteAcceptedAt == nil) {
			t.Errorf("dave's invite: %+v", m)
		}
	}
	if roles["bob"] != "moderator" || roles["carol"] != "admin" || roles["dave"] != "member" {
		t.Fatalf("roles %v", roles)
	}
	if _, err := ch.DemoteModerators(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	got, _ = c.CreateChannel(ctx, "messaging", "roles", "alice", nil)
	for _, m := range got.Channel.Members {
		if m.UserID == "bob" && m.Role != "member" {
			t.Fatalf("bob after demotion: %s", m.Role)
		}
	}
	if n := len(got.Channel.Messages); n != 1 || got.Channel.Messages[0].Type != "system" {
		t.Fatalf("the add-members message: %d messages", n)
	}
}

func TestDeleteChannels(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUser(ctx, &stream.User{ID: "alice"})
	for _, id := range []string{"a", "b"} {
		created, _ := c.CreateChannelWithMembers(ctx, "messaging", id, "alice", "alice")
		created.Channel.SendMessage(ctx, &stream.Message{Text: "x", ExtraData: map[string]any{"id": "msg-" + id}}, "alice")
	}
	task, err := c.DeleteChannels(ctx, []string{"messaging:a", "messaging:b"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.GetTask(ctx, task.TaskID); err != nil || st.Status != stream.TaskStatusCompleted {
		t.Fatalf("task: %+v %v", st, err)
	}
	q, _ := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"type": "messaging"}})
	if len(q.Channels) != 0 {
		t.Fatalf("%d channels left", len(q.Channels))
	}
	if _, err := c.GetMessage(ctx, "msg-a"); streamErr(t, err).Code != 16 {
		t.Fatal("a message of a deleted channel is still there")
	}
	if _, err := c.DeleteChannels(ctx, []string{"messaging:nope"}, false); streamErr(t, err).Code != 16 {
		t.Fatal("deleting an unknown channel")
	}
}

// TestHideHistory: stream-chat-go has no way to act with a user token, so
// the member's own query is a raw request with a token the client made.
func TestHideHistory(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "late"}, &stream.User{ID: "early"})
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "hh", "alice", "alice", "early")
	ch := created.Channel
	ch.SendMessage(ctx, &stream.Message{Text: "before", ExtraData: map[string]any{"id": "before"}}, "alice")
	time.Sleep(2 * time.Millisecond)
	ch.AddMembers(ctx, []string{"late"}, stream.AddMembersWithHideHistory())
	time.Sleep(2 * time.Millisecond)
	ch.SendMessage(ctx, &stream.Message{Text: "after", ExtraData: map[string]any{"id": "after"}}, "alice")
	seen := func(user string) string {
		tok, _ := c.CreateToken(user, time.Time{})
		req, _ := http.NewRequest("POST", s.URL+"/channels/messaging/hh/query?api_key="+s.APIKey(), strings.NewReader(`{"state":true}`))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Stream-Auth-Type", "jwt")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out stream.QueryResponse
		json.NewDecoder(resp.Body).Decode(&out)
		var ids []string
		for _, m := range out.Messages {
			ids = append(ids, m.ID)
		}
		return strings.Join(ids, ",")
	}
	if got := seen("early"); got != "before,after" {
		t.Errorf("early member sees %q", got)
	}
	if got := seen("late"); got != "after" {
		t.Errorf("member added with hide_history sees %q, want only \"after\"", got)
	}
}
