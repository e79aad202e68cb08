package streamtest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

var channelReserved = []string{"id", "type", "cid", "members", "created_by", "created_by_id", "created_at", "updated_at", "frozen", "disabled", "team", "config", "member_count"}

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
	return out
}

func (s *Server) membersJSON(ch *channel) []any {
	out := make([]any, 0, len(ch.members))
	for _, m := range ch.members {
		j := map[string]any{"user_id": m.userID, "user": s.userJSON(m.userID), "role": m.role, "channel_role": "channel_" + m.role,
			"is_moderator": m.role == "moderator", "created_at": ts(m.created), "updated_at": ts(m.created)}
		if m.invited {
			j["invited"] = true
		}
		if m.accepted != nil {
			j["invite_accepted_at"] = ts(*m.accepted)
		}
		if m.rejected != nil {
			j["invite_rejected_at"] = ts(*m.rejected)
		}
		out = append(out, j)
	}
	return out
}

func (s *Server) channelState(ch *channel) map[string]any {
	return s.channelStatePage(ch, pageParams{})
}

// channelStatePage is a channel with a page of its messages.
func (s *Server) channelStatePage(ch *channel, p pageParams) map[string]any {
	msgs := s.paginate(s.channelMessages(ch), p)
	for _, m := range msgs {
		s.expirePin(m)
	}
	return map[string]any{"channel": s.channelJSON(ch), "members": s.membersJSON(ch), "messages": fieldsOf(msgs)}
}

func (s *Server) channelMessages(ch *channel) []*message {
	var out []*message
	cid := ch.typ + ":" + ch.id
	for _, m := range s.messages {
		parent, _ := m.fields["parent_id"].(string)
		shown, _ := m.fields["show_in_channel"].(bool)
		if m.cid == cid && !m.pending && (parent == "" || shown) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
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
	var memberIDs []string
	if ms, ok := q.Data["members"].([]any); ok {
		for _, m := range ms {
			if str, ok := m.(string); ok {
				memberIDs = append(memberIDs, str)
			}
		}
	}
	if id == "" {
		if len(memberIDs) == 0 {
			return nil, fail(http.StatusBadRequest, codeInputError, "either an ID or members are required")
		}
		sorted := append([]string(nil), memberIDs...)
		sort.Strings(sorted)
		sum := sha256.Sum256([]byte(strings.Join(sorted, "\x00")))
		id = "!members-" + hex.EncodeToString(sum[:12])
	}
	cid := typ + ":" + id
	ch := s.channels[cid]
	if ch == nil {
		if err := checkCustomSize(q.Data, channelReserved); err != nil {
			return nil, err
		}
		now := s.cfg.Now()
		createdBy := ""
		if cb, ok := q.Data["created_by"].(map[string]any); ok {
			createdBy, _ = cb["id"].(string)
		}
		s.seq++
		ch = &channel{typ: typ, id: id, data: map[string]any{}, createdBy: createdBy, created: now, updated: now, seq: s.seq}
		for k, v := range q.Data {
			if !slices.Contains(channelReserved, k) {
				ch.data[k] = v
			}
		}
		for _, m := range memberIDs {
			ch.members = append(ch.members, &member{userID: m, role: "member", created: now})
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
	members := state["members"].([]any)
	state["members"] = page(members, q.Members.Offset, q.Members.Limit, 100)
	return state, nil
}

func (s *Server) queryChannels(r *http.Request, body []byte) (any, error) {
	var q struct {
		Filter map[string]any `json:"filter_conditions"`
		Limit  int            `json:"limit"`
		Offset int            `json:"offset"`
	}
	if err := decode(body, &q); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var chans []*channel
	for _, cid := range sortedKeys(s.channels) {
		ch := s.channels[cid]
		obj := s.channelJSON(ch)
		ids := []any{}
		for _, m := range ch.members {
			ids = append(ids, m.userID)
		}
		obj["members"] = ids
		if matches(obj, q.Filter) {
			chans = append(chans, ch)
		}
	}
	sort.SliceStable(chans, func(i, j int) bool { return chans[i].seq > chans[j].seq })
	out := []any{}
	for _, ch := range page(chans, q.Offset, q.Limit, 10) {
		out = append(out, s.channelState(ch))
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
		AddMembers       []string       `json:"add_members"`
		RemoveMembers    []string       `json:"remove_members"`
		AddModerators    []string       `json:"add_moderators"`
		DemoteModerators []string       `json:"demote_moderators"`
		Invites          []string       `json:"invites"`
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
			add(u, false)
		}
		for _, a := range req.AssignRoles {
			role := strings.TrimPrefix(a.ChannelRole, "channel_")
			add(a.UserID, false).role = role
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
			add(u, true)
		}
	case req.AcceptInvite || req.RejectInvite:
		m := ch.member(req.UserID)
		if m == nil || !m.invited {
			return nil, fail(http.StatusBadRequest, codeInputError, "user %q has no pending invite", req.UserID)
		}
		t := now
		if req.AcceptInvite {
			m.accepted = &t
		} else {
			m.rejected = &t
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
	if err := checkPaths(req.Set, req.Unset, "id", "cid", "type", "created_at", "created_by"); err != nil {
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

// truncate is POST /channels/{type}/{id}/truncate.
func (s *Server) truncate(r *http.Request, body []byte) (any, error) {
	var req struct {
		HardDelete bool `json:"hard_delete"`
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
	cid := ch.typ + ":" + ch.id
	for id, m := range s.messages {
		if m.cid == cid {
			delete(s.messages, id)
		}
	}
	ch.updated = s.cfg.Now()
	return map[string]any{"channel": s.channelJSON(ch)}, nil
}

// queryMembers is GET /members?payload={type, id, filter_conditions, ...}.
func (s *Server) queryMembers(r *http.Request, body []byte) (any, error) {
	var q struct {
		Type   string         `json:"type"`
		ID     string         `json:"id"`
		Filter map[string]any `json:"filter_conditions"`
		Limit  int            `json:"limit"`
		Offset int            `json:"offset"`
	}
	if err := decode([]byte(r.URL.Query().Get("payload")), &q); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[q.Type+":"+q.ID]
	if ch == nil {
		return nil, notFound("channel", q.Type+":"+q.ID)
	}
	var out []any
	for _, m := range s.membersJSON(ch) {
		obj := m.(map[string]any)
		probe := map[string]any{"id": obj["user_id"], "user_id": obj["user_id"], "role": obj["role"]}
		if matches(probe, q.Filter) {
			out = append(out, obj)
		}
	}
	if out == nil {
		out = []any{}
	}
	return map[string]any{"members": page(out, q.Offset, q.Limit, 100)}, nil
}

// deleteChannels is POST /channels/delete, soft or hard, as an asynchronous
// task completed at once.
func (s *Server) deleteChannels(r *http.Request, body []byte) (any, error) {
	var req struct {
		CIDs       []string `json:"cids"`
		HardDelete bool     `json:"hard_delete"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.CIDs) == 0 {
		return nil, fail(http.StatusBadRequest, codeInputError, "cids is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cid := range req.CIDs {
		if s.channels[cid] == nil {
			return nil, notFound("channel", cid)
		}
	}
	for _, cid := range req.CIDs {
		s.removeChannel(s.channels[cid], req.HardDelete)
	}
	return map[string]any{"task_id": s.completedTask(map[string]any{"deleted_channels": req.CIDs, "hard_delete": req.HardDelete})}, nil
}

// removeChannel deletes a channel and its messages (with s.mu held). Soft
// and hard deletion look the same through the API: the channel and its
// messages are gone; the event says which it was.
func (s *Server) removeChannel(ch *channel, hard bool) {
	cid := ch.typ + ":" + ch.id
	for id, m := range s.messages {
		if m.cid == cid {
			delete(s.messages, id)
		}
	}
	delete(s.channels, cid)
	s.emit("channel.deleted", cid, map[string]any{"channel": s.channelJSON(ch), "hard_delete": hard})
}
