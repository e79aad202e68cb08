package streamtest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
)

func TestMessageOperations(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"})
	created, err := c.CreateChannelWithMembers(ctx, "messaging", "more", "alice", "alice", "bob")
	if err != nil {
		t.Fatal(err)
	}
	ch := created.Channel
	ch.SendMessage(ctx, &stream.Message{Text: "root", ExtraData: map[string]any{"id": "root"}}, "alice")
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := ch.SendMessage(ctx, &stream.Message{Text: id, ParentID: "root", ExtraData: map[string]any{"id": id}}, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := ch.GetReplies(ctx, "root", map[string][]string{"limit": {"2"}})
	if err != nil || len(rep.Messages) != 2 || rep.Messages[0].ID != "r2" || rep.Messages[1].ID != "r3" {
		t.Fatalf("last 2 replies: %+v %v", rep, err)
	}
	rep, err = ch.GetReplies(ctx, "root", map[string][]string{"id_lt": {"r3"}})
	if err != nil || len(rep.Messages) != 2 || rep.Messages[0].ID != "r1" {
		t.Fatalf("replies before r3: %+v %v", rep, err)
	}
	many, err := ch.GetMessages(ctx, []string{"root", "r2", "missing"})
	if err != nil || len(many.Messages) != 2 {
		t.Fatalf("get many: %+v %v", many, err)
	}
	pu, err := c.PartialUpdateMessage(ctx, "root", &stream.MessagePartialUpdateRequest{
		PartialUpdate: stream.PartialUpdate{Set: map[string]any{"text": "root!", "veil.epoch": 2.0}}, UserID: "alice"})
	if err != nil || pu.Message.Text != "root!" || pu.Message.HTML != "<p>root!</p>\n" || pu.Message.ExtraData["veil"].(map[string]any)["epoch"] != 2.0 {
		t.Fatalf("partial update: %+v %v", pu, err)
	}
	// Channel update with a system message.
	if _, err := ch.Update(ctx, map[string]any{"name": "More"}, &stream.Message{Text: "renamed", User: &stream.User{ID: "alice"}}); err != nil {
		t.Fatal(err)
	}
	q, _ := c.CreateChannel(ctx, "messaging", "more", "alice", nil)
	last := q.Channel.Messages[len(q.Channel.Messages)-1]
	if last.Type != "system" || last.Text != "renamed" {
		t.Fatalf("system message: %+v", last)
	}
	// Members query.
	mq, err := ch.QueryMembers(ctx, &stream.QueryOption{Filter: map[string]any{"id": map[string]any{"$in": []string{"bob"}}}})
	if err != nil || len(mq.Members) != 1 || mq.Members[0].UserID != "bob" {
		t.Fatalf("query members: %+v %v", mq, err)
	}
	// Truncate.
	if _, err := ch.Truncate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetMessage(ctx, "root"); streamErr(t, err).Code != 16 {
		t.Fatal("message survived truncation")
	}
	// File deletion.
	f, err := ch.SendFile(ctx, stream.SendFileRequest{Reader: bytes.NewReader([]byte("x")), FileName: "x", User: &stream.User{ID: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.DeleteFile(ctx, f.File); err != nil {
		t.Fatal(err)
	}
	if resp, _ := http.Get(f.File); resp.StatusCode != 404 {
		t.Fatalf("deleted file still served: %d", resp.StatusCode)
	}
}

func TestPinsTasksAndHook(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := NewTestServer(t, Config{Now: clock, BeforeMessageSend: func(m map[string]any) (map[string]any, error) {
		if text, _ := m["text"].(string); strings.HasPrefix(text, "plaintext:") {
			return nil, errors.New("encrypted channels refuse plaintext")
		}
		m["checked"] = true
		return m, nil
	}})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"})
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "pins", "alice", "alice", "bob")
	ch := created.Channel
	_, err := ch.SendMessage(ctx, &stream.Message{Text: "plaintext: hello"}, "alice")
	if se := streamErr(t, err); se.Code != 4 || !strings.Contains(se.Message, "refuse plaintext") {
		t.Fatalf("rejected by the hook: %+v", se)
	}
	sent, err := ch.SendMessage(ctx, &stream.Message{Text: "veil1:AAAA", ExtraData: map[string]any{"id": "p1"}}, "alice")
	if err != nil || sent.Message.ExtraData["checked"] != true {
		t.Fatalf("rewritten by the hook: %+v %v", sent, err)
	}
	exp := now.Add(time.Hour)
	pinned, err := c.PinMessage(ctx, "p1", "bob", &exp)
	if err != nil || !pinned.Message.Pinned || pinned.Message.PinnedBy == nil || pinned.Message.PinnedBy.ID != "bob" || pinned.Message.PinExpires == nil {
		t.Fatalf("pin: %+v %v", pinned, err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if g, _ := c.GetMessage(ctx, "p1"); g.Message.Pinned {
		t.Fatal("the pin did not expire")
	}
	c.PinMessage(ctx, "p1", "bob", nil)
	if un, err := c.UnPinMessage(ctx, "p1", "bob"); err != nil || un.Message.Pinned || un.Message.PinnedAt != nil {
		t.Fatalf("unpin: %+v %v", un, err)
	}
	task, err := c.DeleteUsers(ctx, []string{"bob"}, stream.DeleteUserOptions{User: stream.HardDelete, Messages: stream.HardDelete})
	if err != nil || task.TaskID == "" {
		t.Fatalf("delete users: %+v %v", task, err)
	}
	st, err := c.GetTask(ctx, task.TaskID)
	if err != nil || st.Status != stream.TaskStatusCompleted {
		t.Fatalf("task: %+v %v", st, err)
	}
	q, _ := c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{"id": map[string]any{"$eq": "bob"}}})
	if len(q.Users) != 0 {
		t.Fatal("bob survived a hard delete")
	}
	if _, err := c.GetTask(ctx, "nope"); streamErr(t, err).Code != 16 {
		t.Fatal("unknown task")
	}
}

func TestChannelMessagePaging(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	c.UpsertUser(ctx, &stream.User{ID: "alice"})
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "paging", "alice", "alice")
	ch := created.Channel
	for i := range 30 {
		if _, err := ch.SendMessage(ctx, &stream.Message{Text: "x", ExtraData: map[string]any{"id": fmt.Sprintf("m%02d", i)}}, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(msgs []*stream.Message) string {
		var out []string
		for _, m := range msgs {
			out = append(out, m.ID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name string
		p    *stream.MessagePaginationParamsRequest
		want string
	}{
		{"default: 25 newest", nil, "first=m05 last=m29 n=25"},
		{"limit 3", &stream.MessagePaginationParamsRequest{PaginationParamsRequest: stream.PaginationParamsRequest{Limit: 3}}, "first=m27 last=m29 n=3"},
		{"before m10", &stream.MessagePaginationParamsRequest{PaginationParamsRequest: stream.PaginationParamsRequest{Limit: 2, IDLT: "m10"}}, "first=m08 last=m09 n=2"},
		{"after m10", &stream.MessagePaginationParamsRequest{PaginationParamsRequest: stream.PaginationParamsRequest{Limit: 2, IDGT: "m10"}}, "first=m11 last=m12 n=2"},
	}
	for _, tc := range tests {
		resp, err := ch.Query(ctx, &stream.QueryRequest{State: true, Messages: tc.p})
		if err != nil {
			t.Fatal(err)
		}
		m := resp.Messages
		if len(m) == 0 {
			t.Errorf("%s: no messages", tc.name)
			continue
		}
		got := fmt.Sprintf("first=%s last=%s n=%d", m[0].ID, m[len(m)-1].ID, len(m))
		if got != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got, ids(m), tc.want)
		}
	}
}

func TestMessagePagingAndOptions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	tick := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Second); return now }
	s := NewTestServer(t, Config{Now: tick})
	c := s.Client()
	c.UpsertUsers(ctx, &stream.User{ID: "u0"}, &stream.User{ID: "u1"}, &stream.User{ID: "u2"})
	created, _ := c.CreateChannel(ctx, "messaging", "opts", "u0", &stream.ChannelRequest{Members: []string{"u0", "u1", "u2"}, ExtraData: map[string]any{"tier": "gold", "region": "eu"}})
	ch := created.Channel
	for i := range 10 {
		ch.SendMessage(ctx, &stream.Message{Text: "x", ExtraData: map[string]any{"id": fmt.Sprintf("m%d", i)}}, "u0")
	}
	q := func(p stream.MessagePaginationParamsRequest, members *stream.PaginationParamsRequest) *stream.QueryResponse {
		resp, err := ch.Query(ctx, &stream.QueryRequest{State: true, Messages: &p, Members: members})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	around := q(stream.MessagePaginationParamsRequest{PaginationParamsRequest: stream.PaginationParamsRequest{Limit: 3}, IDAround: "m5"}, nil)
	if len(around.Messages) != 3 || around.Messages[0].ID != "m4" || around.Messages[2].ID != "m6" {
		t.Fatalf("id_around: %v", around.Messages)
	}
	m7, _ := c.GetMessage(ctx, "m7")
	after := q(stream.MessagePaginationParamsRequest{CreatedAtAfterEq: m7.Message.CreatedAt}, nil)
	if len(after.Messages) != 3 || after.Messages[0].ID != "m7" {
		t.Fatalf("created_at_after_or_equal: %d messages", len(after.Messages))
	}
	mp := q(stream.MessagePaginationParamsRequest{}, &stream.PaginationParamsRequest{Limit: 2, Offset: 1})
	if len(mp.Members) != 2 || mp.Members[0].UserID != "u1" {
		t.Fatalf("member paging: %v", mp.Members)
	}

	// Pending messages stay out of the channel; replies shown in channel
	// appear; quoted and silent messages keep their fields.
	pend, err := ch.SendMessage(ctx, &stream.Message{Text: "wait", ExtraData: map[string]any{"id": "pend"}}, "u0", stream.MessagePending, stream.MessagePendingMessageMetadata(map[string]string{"k": "v"}))
	if err != nil || pend.PendingMessageMetadata["k"] != "v" {
		t.Fatalf("pending: %+v %v", pend, err)
	}
	ch.SendMessage(ctx, &stream.Message{Text: "shown", ParentID: "m9", ShowInChannel: true, ExtraData: map[string]any{"id": "shown"}}, "u1")
	ch.SendMessage(ctx, &stream.Message{Text: "quote", QuotedMessageID: "m1", Silent: true, ExtraData: map[string]any{"id": "quote"}}, "u2", stream.MessageSkipEnrichURL)
	all := q(stream.MessagePaginationParamsRequest{PaginationParamsRequest: stream.PaginationParamsRequest{Limit: 100}}, nil)
	seen := map[string]*stream.Message{}
	for _, m := range all.Messages {
		seen[m.ID] = m
	}
	if seen["pend"] != nil || seen["shown"] == nil || seen["quote"] == nil || seen["quote"].QuotedMessageID != "m1" || !seen["quote"].Silent {
		t.Fatalf("pending/shown/quoted: %v", seen)
	}

	// Custom-field filters with $in and $and.
	qc, err := c.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"$and": []any{
		map[string]any{"tier": map[string]any{"$in": []string{"gold", "silver"}}}, map[string]any{"region": "eu"}}}})
	if err != nil || len(qc.Channels) != 1 {
		t.Fatalf("$and/$in on custom fields: %v %v", qc, err)
	}
	// Custom data limits on users and channels too.
	_, err = c.UpsertUser(ctx, &stream.User{ID: "big", ExtraData: map[string]any{"bio": strings.Repeat("b", 6000)}})
	if streamErr(t, err).Code != 22 {
		t.Fatal("6 KB of user custom data accepted")
	}
	_, err = ch.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"blob": strings.Repeat("c", 6000)}})
	if streamErr(t, err).Code != 22 {
		t.Fatal("6 KB of channel custom data accepted")
	}
	// Images upload like files.
	img, err := ch.SendImage(ctx, stream.SendFileRequest{Reader: strings.NewReader("png"), FileName: "a.png", User: &stream.User{ID: "u0"}})
	if err != nil || !strings.HasPrefix(img.File, s.URL) {
		t.Fatalf("image: %+v %v", img, err)
	}
}
