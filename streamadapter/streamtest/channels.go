package streamtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

var channelReserved = []string{"id", "type", "cid", "members", "invites", "created_by", "created_by_id", "created_at", "updated_at", "frozen", "disabled",
	"team", "config", "member_count", "last_message_at", "truncated_at", "truncated_by"}

func (s *Server) channelJSON(ch *channel) map[string]any {
	out := map[string]any{}
	for k, v := range ch.data {
		out[k] = v
	}
	out["id"], out["type"], out["cid"] = ch.id, ch.typ, ch.typ+":"+ch.id
	out["created_at"], out["updated_at"] = ts(ch.created), ts(ch.updated)
	out["member_count"] = len(ch.members)
	out["created_by"] = s.userJSON(ch.createdBy)
	out["config"] = map[string]any{"name": ch.typ, "max_message_length": s.cfg.MaxMessageLength}
	if last := lastMessage(ch); last != nil {
		out["last_message_at"] = last.fields["created_at"]
	}
	if ch.truncatedAt != nil {
		out["truncated_at"] = ts(*ch.truncatedAt)
		if ch.truncatedBy != "" {
			out["truncated_by"] = s.userJSON(ch.truncatedBy)
		}
	}
	return out
}

// lastMessage is the newest message shown in the channel, which sets its
// last_message_at (so a hard deletion of it moves last_message_at back).
func lastMessage(ch *channel) *message {
	for i := len(ch.msgs) - 1; i >= 0; i-- {
		if m := ch.msgs[i]; inChannel(m) {
			return m
		}
	}
	return nil
}

// inChannel reports whether a message shows in its channel's message list:
// not pending, not truncated, and not a reply unless shown in the channel.
func inChannel(m *message) bool {
	parent, _ := m.fields["parent_id"].(string)
	shown, _ := m.fields["show_in_channel"].(bool)
	return !m.pending && !m.truncated && (parent == "" || shown)
}

func (s *Server) memberJSON(m *member) map[string]any {
	j := map[string]any{"user_id": m.userID, "user": s.userJSON(m.userID), "role": m.role, "channel_role": "channel_" + m.role,
		"is_moderator": m.role == "moderator", "banned": false, "created_at": ts(m.created), "updated_at": ts(m.created)}
	if m.invited {
		j["invited"] = true
	}
	if m.accepted != nil {
		j["invite_accepted_at"] = ts(*m.accepted)
	}
	if m.rejected != nil {
		j["invite_rejected_at"] = ts(*m.rejected)
	}
	return j
}

func (s *Server) membersJSON(ch *channel) []any {
	out := make([]any, 0, len(ch.members))
	for _, m := range ch.members {
		out = append(out, s.memberJSON(m))
	}
	return out
}

// inviteStatus is what Stream's invite filter matches: "pending",
// "accepted" or "rejected" for an invited member, "" for one added
// directly.
func (m *member) inviteStatus() string {
	switch {
	case !m.invited:
		return ""
	case m.rejected != nil:
		return "rejected"
	case m.accepted != nil:
		return "accepted"
	}
	return "pending"
}

func (s *Server) channelState(ch *channel) map[string]any {
	return s.channelStatePage(ch, pageParams{})
}

// channelStatePage is a channel with a page of its messages.
func (s *Server) channelStatePage(ch *channel, p pageParams) map[string]any {
	msgs := s.paginate(channelMessages(ch), p)
	for _, m := range msgs {
		s.expirePin(m)
	}
	return map[string]any{"channel": s.channelJSON(ch), "members": s.membersJSON(ch), "messages": fieldsOf(msgs)}
}

func channelMessages(ch *channel) []*message {
	var out []*message
	for _, m := range ch.msgs {
		if inChannel(m) {
			out = append(out, m)
		}
	}
	return out
}

func (s *Server) lookupChannel(r *http.Request) (*channel, error) {
	cid := r.PathValue("type") + ":" + r.PathValue("id")
	ch := s.channels[cid]
	if ch == nil {
		return nil, notFound("channel", cid)
	}
	return ch, nil
}

// memberRef is a member named by its user ID, as stream-chat-go sends
// members, or as {"user_id", "channel_role"}, as Stream's JavaScript SDK
// may.
type memberRef struct {
	UserID      string
	ChannelRole string
}

// UnmarshalJSON reads either form.
func (m *memberRef) UnmarshalJSON(b []byte) error {
	var id string
	if json.Unmarshal(b, &id) == nil {
		*m = memberRef{UserID: id}
		return nil
	}
	var o struct {
		UserID      string `json:"user_id"`
		ChannelRole string `json:"channel_role"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*m = memberRef{o.UserID, o.ChannelRole}
	return nil
}

// memberRefs reads a decoded list of members in either form, skipping
// entries that name no user.
func memberRefs(v any) []memberRef {
	list, _ := v.([]any)
	var out []memberRef
	for _, e := range list {
		switch e := e.(type) {
		case string:
			if e != "" {
				out = append(out, memberRef{UserID: e})
			}
		case map[string]any:
			id, _ := e["user_id"].(string)
			role, _ := e["channel_role"].(string)
			if id != "" {
				out = append(out, memberRef{id, role})
			}
		}
	}
	return out
}

// distinctID is the ID Stream gives a channel created by its members alone.
func distinctID(members []memberRef) string {
	ids := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.UserID)
	}
	sort.Strings(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\x00")))
	return "!members-" + hex.EncodeToString(sum[:12])
}

// creatorOf is the channel creator a request's data names: created_by (an
// object with an id, as stream-chat-go sends it) or created_by_id (as the
// JavaScript SDK does).
func creatorOf(data map[string]any) string {
	if cb, ok := data["created_by"].(map[string]any); ok {
		if id, _ := cb["id"].(string); id != "" {
			return id
		}
	}
	id, _ := data["created_by_id"].(string)
	return id
}

// queryChannel is get-or-create (with an ID, or distinct by members).
func (s *Server) queryChannel(r *http.Request, body []byte) (any, error) {
	var q struct {
		Data     map[string]any `json:"data"`
		Messages pageParams     `json:"messages"`
		Members  pageParams     `json:"members"`
	}
	if err := decode(body, &q); err != nil {
		return nil, err
	}
	typ, id := r.PathValue("type"), r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	members := memberRefs(q.Data["members"])
	if id == "" {
		if len(members) == 0 {
			return nil, fail(http.StatusBadRequest, codeInputError, "either an ID or members are required")
		}
		id = distinctID(members)
	}
	cid := typ + ":" + id
	ch := s.channels[cid]
	if ch == nil {
		if err := checkCustomSize(q.Data, channelReserved); err != nil {
			return nil, err
		}
		// A user creates channels as itself; a server-side request must
		// say who creates it.
		createdBy := creatorOf(q.Data)
		if createdBy == "" {
			createdBy = caller(r)
		}
		if createdBy == "" {
			return nil, fail(http.StatusBadRequest, codeInputError,
				"GetOrCreateChannel failed with error: \"either data.created_by or data.created_by_id must be provided when using server side auth.\"")
		}
		now := s.cfg.Now()
		s.seq++
		ch = &channel{typ: typ, id: id, data: map[string]any{}, createdBy: createdBy, created: now, updated: now, seq: s.seq}
		for k, v := range q.Data {
			if !slices.Contains(channelReserved, k) {
				ch.data[k] = v
			}
		}
		for _, m := range members {
			if ch.member(m.UserID) == nil {
				ch.members = append(ch.members, &member{userID: m.UserID, role: roleOf(m.ChannelRole), created: now})
			}
		}
		// Users invited at creation are members whose invite is pending.
		for _, u := range memberRefs(q.Data["invites"]) {
			if m := ch.member(u.UserID); m != nil {
				m.invited = true
			} else {
				ch.members = append(ch.members, &member{userID: u.UserID, role: "member", created: now, invited: true})
			}
		}
		s.channels[cid] = ch
	}
	state := s.channelStatePage(ch, q.Messages)
	// A member added with hide_history does not see what was sent before
	// it joined, when it queries with its own token.
	if m := ch.member(caller(r)); m != nil && m.hideHistory {
		var visible []any
		for _, f := range state["messages"].([]any) {
			created, _ := time.Parse(time.RFC3339Nano, f.(map[string]any)["created_at"].(string))
			if !created.Before(m.created) {
				visible = append(visible, f)
			}
		}
		if visible == nil {
			visible = []any{}
		}
		state["messages"] = visible
	}
	members2 := state["members"].([]any)
	state["members"] = page(members2, q.Members.Offset, q.Members.Limit, 100)
	return state, nil
}

// roleOf is a member's role from a channel role ("channel_moderator" is
// "moderator"); none is "member".
func roleOf(channelRole string) string {
	if r := strings.TrimPrefix(channelRole, "channel_"); r != "" {
		return r
	}
	return "member"
}

// sortOption is one field of a query's sort.
type sortOption struct {
	Field     string `json:"field"`
	Direction int    `json:"direction"`
}

// sortBy sorts items stably by the sort options, in order, each ascending
// (direction 1) or descending (-1), comparing the values key returns.
func sortBy[T any](items []T, opts []sortOption, key func(T, string) any) {
	sort.SliceStable(items, func(i, j int) bool {
		for _, o := range opts {
			c := compare(key(items[i], o.Field), key(items[j], o.Field))
			if o.Direction < 0 {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
}

func (s *Server) queryChannels(r *http.Request, body []byte) (any, error) {
	var q struct {
		Filter       map[string]any `json:"filter_conditions"`
		Sort         []sortOption   `json:"sort"`
		Limit        int            `json:"limit"`
		Offset       int            `json:"offset"`
		MessageLimit *int           `json:"message_limit"`
		MemberLimit  *int           `json:"member_limit"`
	}
	if err := decode(body, &q); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type row struct {
		ch  *channel
		obj map[string]any
	}
	var rows []row
	for _, cid := range sortedKeys(s.channels) {
		ch := s.channels[cid]
		obj := s.channelJSON(ch)
		ids := []any{}
		for _, m := range ch.members {
			ids = append(ids, m.userID)
		}
		obj["members"] = ids
		obj["created_by_id"] = ch.createdBy
		// last_updated: the later of creation and the last message.
		obj["last_updated"] = obj["created_at"]
		if last, ok := obj["last_message_at"]; ok {
			obj["last_updated"] = last
		}
		if matches(obj, q.Filter) {
			rows = append(rows, row{ch, obj})
		}
	}
	// Newest first, then the sort asked for (Stream's default:
	// last_updated, descending).
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].ch.seq > rows[j].ch.seq })
	opts := q.Sort
	if len(opts) == 0 {
		opts = []sortOption{{Field: "last_updated", Direction: -1}}
	}
	sortBy(rows, opts, func(r row, field string) any { return r.obj[field] })
	messageLimit, memberLimit := 25, 100
	if q.MessageLimit != nil {
		messageLimit = min(max(*q.MessageLimit, 0), 300)
	}
	if q.MemberLimit != nil {
		memberLimit = min(max(*q.MemberLimit, 0), 100)
	}
	out := []any{}
	for _, r := range page(rows, q.Offset, q.Limit, 10) {
		state := s.channelStatePage(r.ch, pageParams{Limit: messageLimit})
		if messageLimit == 0 {
			state["messages"] = []any{}
		}
		state["members"] = state["members"].([]any)[:min(memberLimit, len(r.ch.members))]
		out = append(out, state)
	}
	return map[string]any{"channels": out}, nil
}

// updateChannel handles the POST /channels/{type}/{id} family: data
// update, add_members (with assign_roles and hide_history),
// remove_members, add_moderators, demote_moderators, invites,
// accept_invite and reject_invite; each may carry a system message.
func (s *Server) updateChannel(r *http.Request, body []byte) (any, error) {
	var req struct {
		Data             map[string]any `json:"data"`
		AddMembers       []memberRef    `json:"add_members"`
		RemoveMembers    []string       `json:"remove_members"`
		AddModerators    []string       `json:"add_moderators"`
		DemoteModerators []string       `json:"demote_moderators"`
		Invites          []memberRef    `json:"invites"`
		AcceptInvite     bool           `json:"accept_invite"`
		RejectInvite     bool           `json:"reject_invite"`
		UserID           string         `json:"user_id"`
		HideHistory      bool           `json:"hide_history"`
		AssignRoles      []struct {
			UserID      string `json:"user_id"`
			ChannelRole string `json:"channel_role"`
		} `json:"assign_roles"`
		Message map[string]any `json:"message"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	cid := ch.typ + ":" + ch.id
	add := func(u string, invited bool) *member {
		if m := ch.member(u); m != nil {
			return m
		}
		m := &member{userID: u, role: "member", created: now, invited: invited, hideHistory: req.HideHistory}
		ch.members = append(ch.members, m)
		s.emit("member.added", cid, map[string]any{"member": map[string]any{"user_id": u}, "user": s.userJSON(u)})
		return m
	}
	switch {
	case req.AddMembers != nil || req.AssignRoles != nil:
		for _, u := range req.AddMembers {
			m := add(u.UserID, false)
			if u.ChannelRole != "" {
				m.role = roleOf(u.ChannelRole)
			}
		}
		for _, a := range req.AssignRoles {
			add(a.UserID, false).role = roleOf(a.ChannelRole)
		}
	case req.RemoveMembers != nil:
		for _, u := range req.RemoveMembers {
			for i, m := range ch.members {
				if m.userID == u {
					ch.members = append(ch.members[:i], ch.members[i+1:]...)
					s.emit("member.removed", cid, map[string]any{"member": map[string]any{"user_id": u}, "user": s.userJSON(u)})
					break
				}
			}
		}
	case req.AddModerators != nil:
		for _, u := range req.AddModerators {
			add(u, false).role = "moderator"
		}
	case req.DemoteModerators != nil:
		for _, u := range req.DemoteModerators {
			if m := ch.member(u); m != nil {
				m.role = "member"
			}
		}
	case req.Invites != nil:
		for _, u := range req.Invites {
			add(u.UserID, true)
		}
	case req.AcceptInvite || req.RejectInvite:
		m := ch.member(req.UserID)
		if m == nil || !m.invited {
			return nil, fail(http.StatusBadRequest, codeInputError, "user %q has no pending invite", req.UserID)
		}
		t := now
		if req.AcceptInvite {
			m.accepted, m.rejected = &t, nil
		} else {
			m.rejected, m.accepted = &t, nil
		}
	default:
		if err := checkCustomSize(req.Data, channelReserved); err != nil {
			return nil, err
		}
		ch.data = map[string]any{}
		for k, v := range req.Data {
			if !slices.Contains(channelReserved, k) {
				ch.data[k] = v
			}
		}
		ch.updated = now
		s.emit("channel.updated", cid, map[string]any{"channel": s.channelJSON(ch)})
	}
	if req.Message != nil {
		if messageUser(req.Message) == "" && req.UserID != "" {
			req.Message["user_id"] = req.UserID
		}
		req.Message["type"] = "system"
		m, err := s.newMessage(ch, req.Message)
		if err != nil {
			return nil, err
		}
		s.emit("message.new", cid, map[string]any{"message": m.fields})
	}
	return s.channelState(ch), nil
}

func (ch *channel) member(u string) *member {
	for _, m := range ch.members {
		if m.userID == u {
			return m
		}
	}
	return nil
}

func (s *Server) partialUpdateChannel(r *http.Request, body []byte) (any, error) {
	var req struct {
		Set   map[string]any `json:"set"`
		Unset []string       `json:"unset"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	if err := checkPaths(req.Set, req.Unset, "id", "cid", "type", "created_at", "created_by", "member_count", "last_message_at", "truncated_at", "truncated_by"); err != nil {
		return nil, err
	}
	next := patched(ch.data, req.Set, req.Unset)
	if err := checkCustomSize(next, channelReserved); err != nil {
		return nil, err
	}
	ch.data, ch.updated = next, s.cfg.Now()
	s.emit("channel.updated", ch.typ+":"+ch.id, map[string]any{"channel": s.channelJSON(ch)})
	return s.channelState(ch), nil
}

func (s *Server) deleteChannel(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	s.removeChannel(ch, r.URL.Query().Get("hard_delete") == "true")
	return map[string]any{"channel": s.channelJSON(ch)}, nil
}

// truncate is POST /channels/{type}/{id}/truncate: the messages created up
// to truncated_at (default: now) leave the channel, hidden (kept, as
// Stream keeps them for exports) or, with hard_delete, erased; the
// message given, if any, is then added as a system message.
// skip_push is accepted: push is not emulated.
func (s *Server) truncate(r *http.Request, body []byte) (any, error) {
	var req struct {
		HardDelete  bool           `json:"hard_delete"`
		SkipPush    bool           `json:"skip_push"`
		TruncatedAt *time.Time     `json:"truncated_at"`
		Message     map[string]any `json:"message"`
		UserID      string         `json:"user_id"`
		User        map[string]any `json:"user"`
	}
	if len(body) > 0 {
		if err := decode(body, &req); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	by := req.UserID
	if by == "" {
		by, _ = req.User["id"].(string)
	}
	if by == "" {
		by = caller(r)
	}
	now := s.cfg.Now()
	cut := now
	if req.TruncatedAt != nil {
		cut = *req.TruncatedAt
	}
	for _, m := range slices.Clone(ch.msgs) {
		created, _ := time.Parse(time.RFC3339Nano, m.fields["created_at"].(string))
		if m.truncated || created.After(cut) {
			continue
		}
		if req.HardDelete {
			s.dropMessage(m)
		} else {
			m.truncated = true
		}
	}
	ch.truncatedAt, ch.truncatedBy, ch.updated = &cut, by, now
	cid := ch.typ + ":" + ch.id
	out := map[string]any{"channel": s.channelJSON(ch)}
	s.emit("channel.truncated", cid, map[string]any{"channel": out["channel"]})
	if req.Message != nil {
		if messageUser(req.Message) == "" {
			req.Message["user_id"] = by
		}
		req.Message["type"] = "system"
		m, err := s.newMessage(ch, req.Message)
		if err != nil {
			return nil, err
		}
		out["message"] = m.fields
		out["channel"] = s.channelJSON(ch) // its last_message_at
		s.emit("message.new", cid, map[string]any{"message": m.fields})
	}
	return out, nil
}

// queryMembers is GET /members?payload={type, id (or members), filter_conditions,
// sort, limit, offset}. Filters see the member's user (name, custom fields,
// and each as user.<field>) and its membership: id and user_id,
// channel_role, role, is_moderator, banned, invite, joined, created_at,
// updated_at, last_active, cid. The default sort is created_at ascending.
func (s *Server) queryMembers(r *http.Request, body []byte) (any, error) {
	var q struct {
		Type    string         `json:"type"`
		ID      string         `json:"id"`
		Members []memberRef    `json:"members"`
		Filter  map[string]any `json:"filter_conditions"`
		Sort    []sortOption   `json:"sort"`
		Limit   int            `json:"limit"`
		Offset  int            `json:"offset"`
	}
	if err := decode([]byte(r.URL.Query().Get("payload")), &q); err != nil {
		return nil, err
	}
	if q.ID == "" && len(q.Members) > 0 {
		q.ID = distinctID(q.Members)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cid := q.Type + ":" + q.ID
	ch := s.channels[cid]
	if ch == nil {
		return nil, notFound("channel", cid)
	}
	type row struct {
		out, probe map[string]any
	}
	var rows []row
	for _, m := range ch.members {
		probe := map[string]any{}
		user := s.userJSON(m.userID)
		for k, v := range user {
			probe[k], probe["user."+k] = v, v
		}
		probe["id"], probe["user_id"], probe["cid"] = m.userID, m.userID, cid
		probe["role"], probe["channel_role"], probe["is_moderator"] = m.role, "channel_"+m.role, m.role == "moderator"
		probe["banned"], probe["joined"] = false, !m.invited || m.accepted != nil
		probe["created_at"], probe["updated_at"] = ts(m.created), ts(m.created)
		probe["last_active"] = user["last_active"]
		if st := m.inviteStatus(); st != "" {
			probe["invite"] = st
		}
		if matches(probe, q.Filter) {
			rows = append(rows, row{s.memberJSON(m), probe})
		}
	}
	opts := q.Sort
	if len(opts) == 0 {
		opts = []sortOption{{Field: "created_at", Direction: 1}}
	}
	sortBy(rows, opts, func(r row, field string) any { return r.probe[field] })
	out := []any{}
	for _, r := range page(rows, q.Offset, q.Limit, 100) {
		out = append(out, r.out)
	}
	return map[string]any{"members": out}, nil
}

// deleteChannels is POST /channels/delete, soft or hard, as an asynchronous
// task completed at once, whose result has {"status": "ok"} for each CID.
func (s *Server) deleteChannels(r *http.Request, body []byte) (any, error) {
	var req struct {
		CIDs       []string `json:"cids"`
		HardDelete bool     `json:"hard_delete"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.CIDs) == 0 {
		return nil, fail(http.StatusBadRequest, codeInputError, "DeleteChannels failed with error: \"cids must not be empty\"")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cid := range req.CIDs {
		if s.channels[cid] == nil {
			return nil, notFound("channel", cid)
		}
	}
	result := map[string]any{}
	for _, cid := range req.CIDs {
		if ch := s.channels[cid]; ch != nil { // a CID may be listed twice
			s.removeChannel(ch, req.HardDelete)
		}
		result[cid] = map[string]any{"status": "ok"}
	}
	return map[string]any{"task_id": s.completedTask(result)}, nil
}

// removeChannel deletes a channel and its messages (with s.mu held). The
// API shows soft and hard deletion alike: the channel and its messages
// are gone; the event says which it was. A soft-deleted channel is kept,
// with its messages, for Snapshot, as Stream keeps it for exports.
func (s *Server) removeChannel(ch *channel, hard bool) {
	cid := ch.typ + ":" + ch.id
	for _, m := range ch.msgs {
		delete(s.messages, m.fields["id"].(string))
	}
	delete(s.channels, cid)
	if !hard {
		s.deleted = append(s.deleted, ch)
	}
	s.emit("channel.deleted", cid, map[string]any{"channel": s.channelJSON(ch), "hard_delete": hard})
}

// dropMessage erases a message (with s.mu held).
func (s *Server) dropMessage(m *message) {
	delete(s.messages, m.fields["id"].(string))
	if ch := s.channels[m.cid]; ch != nil {
		ch.msgs = slices.DeleteFunc(ch.msgs, func(x *message) bool { return x == m })
	}
}
