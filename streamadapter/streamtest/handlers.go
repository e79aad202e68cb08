package streamtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/veilchat/veil/internal/httpjson"
)

// serverManaged are the user fields an upsert cannot set or remove.
var serverManaged = []string{"created_at", "last_active", "online", "deactivated_at", "deleted_at"}

var userReserved = []string{"id", "role", "created_at", "updated_at", "last_active", "online", "banned", "teams", "deactivated_at", "deleted_at"}

// ---- users ----

func (s *Server) upsertUsers(r *http.Request, body []byte) (any, error) {
	var req struct {
		Users map[string]map[string]any `json:"users"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.Users) == 0 {
		return nil, fail(http.StatusBadRequest, codeInputError, "users is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// As Stream does, an upsert replaces the user's data with the payload
	// (fields it leaves out are removed; partial updates keep them), and
	// keeps only what the server manages. All or nothing: every user is
	// checked before any is stored.
	out := map[string]any{}
	next := map[string]map[string]any{}
	now := ts(s.cfg.Now())
	for _, id := range sortedKeys(req.Users) {
		u := req.Users[id]
		if id == "" || u["id"] != id {
			return nil, &apiError{Code: codeInputError, Message: "user id does not match its key", StatusCode: 400, ExceptionFields: map[string]string{"id": id}}
		}
		if err := checkCustomSize(u, userReserved); err != nil {
			return nil, err
		}
		stored := map[string]any{"created_at": now}
		if old := s.users[id]; old != nil {
			for _, k := range serverManaged {
				if v, ok := old[k]; ok {
					stored[k] = v
				}
			}
		}
		for k, v := range u {
			if !slices.Contains(serverManaged, k) && k != "updated_at" {
				stored[k] = v
			}
		}
		if role, _ := stored["role"].(string); role == "" {
			stored["role"] = "user"
		}
		stored["updated_at"] = now
		next[id], out[id] = stored, stored
	}
	maps.Copy(s.users, next)
	return map[string]any{"users": out}, nil
}

func (s *Server) queryUsers(r *http.Request, body []byte) (any, error) {
	var q struct {
		Filter map[string]any `json:"filter_conditions"`
		Sort   []struct {
			Field     string `json:"field"`
			Direction int    `json:"direction"`
		} `json:"sort"`
		Limit  int `json:"limit"`
		Offset int `json:"offset"`
	}
	if p := r.URL.Query().Get("payload"); p != "" {
		if err := decode([]byte(p), &q); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var users []map[string]any
	for _, id := range sortedKeys(s.users) {
		if matches(s.users[id], q.Filter) {
			users = append(users, s.users[id])
		}
	}
	field, dir := "created_at", -1 // newest first by default
	if len(q.Sort) > 0 {
		field, dir = q.Sort[0].Field, q.Sort[0].Direction
	}
	sort.SliceStable(users, func(i, j int) bool {
		c := compare(users[i][field], users[j][field])
		if dir < 0 {
			return c > 0
		}
		return c < 0
	})
	return map[string]any{"users": page(users, q.Offset, q.Limit, 30)}, nil
}

func (s *Server) partialUpdateUsers(r *http.Request, body []byte) (any, error) {
	var req struct {
		Users []struct {
			ID    string         `json:"id"`
			Set   map[string]any `json:"set"`
			Unset []string       `json:"unset"`
		} `json:"users"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	for _, p := range req.Users {
		if err := checkPaths(p.Set, p.Unset, "id", "created_at"); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// All or nothing: every user is patched and checked before any is
	// stored.
	out := map[string]any{}
	next := map[string]map[string]any{}
	now := ts(s.cfg.Now())
	for _, p := range req.Users {
		u := next[p.ID]
		if u == nil {
			u = s.users[p.ID]
		}
		if u == nil {
			return nil, notFound("user", p.ID)
		}
		u = patched(u, p.Set, p.Unset)
		if err := checkCustomSize(u, userReserved); err != nil {
			return nil, err
		}
		u["updated_at"] = now
		next[p.ID], out[p.ID] = u, u
	}
	maps.Copy(s.users, next)
	return map[string]any{"users": out}, nil
}

func page[T any](items []T, offset, limit, def int) []T {
	if limit <= 0 {
		limit = def
	}
	offset = max(offset, 0)
	if offset >= len(items) {
		return []T{}
	}
	end := len(items)
	if limit < end-offset { // no overflow for huge limits
		end = offset + limit
	}
	return items[offset:end]
}

// matches evaluates a Stream filter: field: value, field: {$eq|$in|$autocomplete},
// $and, $or.
func matches(obj map[string]any, filter map[string]any) bool {
	for k, cond := range filter {
		switch k {
		case "$and", "$or":
			subs, _ := cond.([]any)
			some := false
			for _, sub := range subs {
				m, _ := sub.(map[string]any)
				ok := matches(obj, m)
				if k == "$and" && !ok {
					return false
				}
				some = some || ok
			}
			if k == "$or" && !some {
				return false
			}
			continue
		}
		v := obj[k]
		op, isOp := cond.(map[string]any)
		if !isOp {
			if !equal(v, cond) {
				return false
			}
			continue
		}
		for o, arg := range op {
			switch o {
			case "$eq":
				if !equal(v, arg) {
					return false
				}
			case "$in":
				list, _ := arg.([]any)
				found := false
				for _, a := range list {
					if equal(v, a) || contains(v, a) {
						found = true
					}
				}
				if !found {
					return false
				}
			case "$autocomplete":
				str, _ := v.(string)
				prefix, _ := arg.(string)
				if !strings.Contains(strings.ToLower(str), strings.ToLower(prefix)) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func equal(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// contains reports whether a list value holds x (for "members": {"$in": [...]}).
func contains(list, x any) bool {
	l, ok := list.([]any)
	if !ok {
		return false
	}
	for _, e := range l {
		if equal(e, x) {
			return true
		}
	}
	return false
}

func compare(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	case float64:
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// ---- channels ----

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

func (s *Server) userJSON(id string) map[string]any {
	if u := s.users[id]; u != nil {
		return u
	}
	return map[string]any{"id": id}
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

// ---- messages ----

var messageReserved = []string{"id", "cid", "text", "html", "type", "user", "user_id", "attachments", "latest_reactions", "own_reactions",
	"reaction_counts", "reaction_scores", "parent_id", "show_in_channel", "reply_count", "quoted_message_id", "mentioned_users",
	"created_at", "updated_at", "deleted_at", "silent", "pinned", "pinned_at", "pinned_by", "pin_expires", "command", "mml", "i18n"}

func renderHTML(text string) string {
	if text == "" {
		return ""
	}
	return "<p>" + html.EscapeString(text) + "</p>\n"
}

func (s *Server) sendMessage(r *http.Request, body []byte) (any, error) {
	var req struct {
		Message                map[string]any    `json:"message"`
		SkipPush               bool              `json:"skip_push"`
		SkipEnrichURL          bool              `json:"skip_enrich_url"`
		Pending                bool              `json:"pending"`
		PendingMessageMetadata map[string]string `json:"pending_message_metadata"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Message == nil {
		return nil, fail(http.StatusBadRequest, codeInputError, "message is required")
	}
	// The hook runs outside the lock: it may call the server.
	if hook := s.cfg.BeforeMessageSend; hook != nil {
		rewritten, err := hook(req.Message)
		if err != nil {
			return nil, fail(http.StatusBadRequest, codeInputError, "SendMessage failed: message rejected by the before-message-send hook: %s", err.Error())
		}
		if rewritten != nil {
			req.Message = rewritten
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	m, err := s.newMessage(ch, req.Message)
	if err != nil {
		return nil, err
	}
	if req.Pending {
		// A pending message is stored but stays out of the channel (and no
		// event is sent) until the app commits it.
		m.pending = true
		return map[string]any{"message": m.fields, "pending_message_metadata": req.PendingMessageMetadata}, nil
	}
	s.emit("message.new", m.cid, map[string]any{"message": m.fields, "user": m.fields["user"]})
	return map[string]any{"message": m.fields}, nil
}

func (s *Server) checkText(fields map[string]any) error {
	text, _ := fields["text"].(string)
	if n := utf8.RuneCountInString(text); n > s.cfg.MaxMessageLength {
		return &apiError{Code: codeMessageTooLong, StatusCode: 400, MoreInfo: "https://getstream.io/chat/docs/api_errors_response",
			Message:         "SendMessage failed with error: \"message is too long\"",
			ExceptionFields: map[string]string{"message.text": "message is too long (" + itoa(n) + " characters, max " + itoa(s.cfg.MaxMessageLength) + ")"}}
	}
	return checkCustomSize(fields, messageReserved)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (s *Server) newMessage(ch *channel, in map[string]any) (*message, error) {
	if err := s.checkText(in); err != nil {
		return nil, err
	}
	id, _ := in["id"].(string)
	if id == "" {
		id = s.cfg.NewID()
	}
	if _, dup := s.messages[id]; dup {
		return nil, fail(http.StatusBadRequest, codeInputError, "a message with ID %s already exists", id)
	}
	userID, _ := in["user_id"].(string)
	if u, ok := in["user"].(map[string]any); ok && userID == "" {
		userID, _ = u["id"].(string)
	}
	now := ts(s.cfg.Now())
	f := map[string]any{}
	for k, v := range in {
		f[k] = v
	}
	typ := "regular"
	if p, _ := in["parent_id"].(string); p != "" {
		parent := s.messages[p]
		if parent == nil {
			return nil, notFound("parent message", p)
		}
		typ = "reply"
		n, _ := parent.fields["reply_count"].(int)
		parent.fields["reply_count"] = n + 1
	}
	if t, _ := in["type"].(string); t == "system" {
		typ = t
	}
	f["id"], f["cid"], f["type"] = id, ch.typ+":"+ch.id, typ
	f["user_id"], f["user"] = userID, s.userJSON(userID)
	text, _ := in["text"].(string)
	f["text"], f["html"] = text, renderHTML(text)
	f["created_at"], f["updated_at"] = now, now
	if f["attachments"] == nil {
		f["attachments"] = []any{}
	}
	s.seq++
	m := &message{fields: f, cid: ch.typ + ":" + ch.id, seq: s.seq}
	s.messages[id] = m
	return m, nil
}

func (s *Server) getMessage(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[r.PathValue("id")]
	if m == nil {
		return nil, notFound("message", r.PathValue("id"))
	}
	s.expirePin(m)
	return map[string]any{"message": m.fields}, nil
}

func (s *Server) updateMessage(r *http.Request, body []byte) (any, error) {
	var req struct {
		Message map[string]any `json:"message"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[r.PathValue("id")]
	if m == nil {
		return nil, notFound("message", r.PathValue("id"))
	}
	if err := s.checkText(req.Message); err != nil {
		return nil, err
	}
	keep := map[string]any{}
	for _, k := range []string{"id", "cid", "type", "user", "user_id", "created_at", "parent_id", "reply_count"} {
		if v, ok := m.fields[k]; ok {
			keep[k] = v
		}
	}
	for k, v := range req.Message {
		if _, fixed := keep[k]; !fixed {
			keep[k] = v
		}
	}
	return s.storeUpdated(m, keep), nil
}

// storeUpdated renders the new fields of an edited message (html,
// updated_at), stores them and announces the update.
func (s *Server) storeUpdated(m *message, fields map[string]any) map[string]any {
	text, _ := fields["text"].(string)
	fields["text"], fields["html"], fields["updated_at"] = text, renderHTML(text), ts(s.cfg.Now())
	if fields["attachments"] == nil {
		fields["attachments"] = []any{}
	}
	m.fields = fields
	s.emit("message.updated", m.cid, map[string]any{"message": m.fields})
	return map[string]any{"message": m.fields}
}

func (s *Server) deleteMessage(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	m := s.messages[id]
	if m == nil {
		return nil, notFound("message", id)
	}
	if r.URL.Query().Get("hard") == "true" {
		delete(s.messages, id)
	} else {
		m.fields["type"], m.fields["deleted_at"] = "deleted", ts(s.cfg.Now())
		m.fields["text"], m.fields["html"] = "", ""
	}
	s.emit("message.deleted", m.cid, map[string]any{"message": m.fields, "hard_delete": r.URL.Query().Get("hard") == "true"})
	return map[string]any{"message": m.fields}, nil
}

// ---- files ----

func (s *Server) uploadFile(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	_, err := s.lookupChannel(r)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	mr, err := multipartReader(r, body)
	if err != nil {
		return nil, fail(http.StatusBadRequest, codeInputError, "expected a multipart form with a file")
	}
	var data []byte
	found := false
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.FormName() == "file" {
			data, err = io.ReadAll(p)
			if err != nil {
				return nil, fail(http.StatusBadRequest, codeInputError, "cannot read the file")
			}
			found = true
		}
	}
	if !found {
		return nil, fail(http.StatusBadRequest, codeInputError, "the form has no file")
	}
	name := randomHex(16)
	s.mu.Lock()
	s.files[name] = data
	base := s.URL
	s.mu.Unlock()
	return map[string]any{"file": base + "/files/" + name}, nil
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

// ---- webhooks ----

// emit queues an event for the webhook (called with s.mu held, so events
// keep the order of the changes).
func (s *Server) emit(typ, cid string, fields map[string]any) {
	if s.cfg.WebhookURL == "" {
		return
	}
	ev := map[string]any{"type": typ, "cid": cid, "created_at": ts(s.cfg.Now())}
	if i := strings.IndexByte(cid, ':'); i > 0 {
		ev["channel_type"], ev["channel_id"] = cid[:i], cid[i+1:]
	}
	for k, v := range fields {
		ev[k] = v
	}
	b, _ := json.Marshal(ev)
	select {
	case s.events <- b:
	default:
		s.log.Warn("webhook queue full; event dropped", "type", typ)
	}
}

// deliver posts queued events one at a time, in order.
func (s *Server) deliver() {
	for {
		select {
		case <-s.done:
			return
		case b := <-s.events:
			req, err := http.NewRequest(http.MethodPost, s.cfg.WebhookURL, strings.NewReader(string(b)))
			if err != nil {
				s.log.Warn("webhook delivery failed", "error", httpjson.RedactURLError(err).Error())
				continue
			}
			m := hmac.New(sha256.New, s.cfg.APISecret.Reveal())
			m.Write(b)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Signature", hex.EncodeToString(m.Sum(nil)))
			req.Header.Set("X-Api-Key", s.cfg.APIKey)
			req.Header.Set("X-Webhook-Id", randomHex(8))
			resp, err := s.cfg.HTTPClient.Do(req)
			if err != nil {
				s.log.Warn("webhook delivery failed", "error", httpjson.RedactURLError(err).Error())
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}
