package streamtest

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

var messageReserved = []string{"id", "cid", "text", "html", "type", "user", "user_id", "attachments", "latest_reactions", "own_reactions",
	"reaction_counts", "reaction_scores", "parent_id", "show_in_channel", "reply_count", "quoted_message_id", "mentioned_users",
	"created_at", "updated_at", "deleted_at", "silent", "pinned", "pinned_at", "pinned_by", "pin_expires", "command", "mml", "i18n"}

// messageUser is the author a message names: user_id, or the id of its
// user object.
func messageUser(in map[string]any) string {
	if id, _ := in["user_id"].(string); id != "" {
		return id
	}
	u, _ := in["user"].(map[string]any)
	id, _ := u["id"].(string)
	return id
}

// visibleMessage is the message with that ID, or nil when there is none
// or a soft truncation hid it (with s.mu held).
func (s *Server) visibleMessage(id string) *message {
	if m := s.messages[id]; m != nil && !m.truncated {
		return m
	}
	return nil
}

// revise replaces a message's fields, keeping the version it replaces for
// Snapshot. The old map is never changed again.
func (m *message) revise(next map[string]any) {
	m.history = append(m.history, m.fields)
	m.fields = next
}

// partialUpdateMessage is PUT /messages/{id}: set and unset fields.
func (s *Server) partialUpdateMessage(r *http.Request, body []byte) (any, error) {
	var req struct {
		Set    map[string]any `json:"set"`
		Unset  []string       `json:"unset"`
		UserID string         `json:"user_id"`
		User   map[string]any `json:"user"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.visibleMessage(r.PathValue("id"))
	if m == nil {
		return nil, notFound("message", r.PathValue("id"))
	}
	if err := checkPaths(req.Set, req.Unset, "id", "cid", "user", "user_id", "created_at", "type", "parent_id"); err != nil {
		return nil, err
	}
	next := patched(m.fields, req.Set, req.Unset)
	if err := s.checkText(next); err != nil {
		return nil, err
	}
	// Pinning (PinMessage and UnPinMessage are partial updates): the
	// pinner is user_id (stream-chat-go) or user (the JavaScript SDK).
	by := req.UserID
	if by == "" {
		by, _ = req.User["id"].(string)
	}
	if req.Set["pinned"] == true {
		delete(next, "pinned_at")
	}
	return s.storeUpdated(m, next, by), nil
}

// replies is GET /messages/{id}/replies with limit and id_lt/id_gt.
func (s *Server) replies(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := s.visibleMessage(r.PathValue("id"))
	if parent == nil {
		return nil, notFound("message", r.PathValue("id"))
	}
	var out []*message
	if ch := s.channels[parent.cid]; ch != nil {
		for _, m := range ch.msgs {
			if m.fields["parent_id"] == parent.fields["id"] && !m.truncated {
				out = append(out, m)
			}
		}
	}
	out = s.paginate(out, queryPage(r))
	return map[string]any{"messages": fieldsOf(out)}, nil
}

func fieldsOf(msgs []*message) []any {
	out := make([]any, len(msgs))
	for i, m := range msgs {
		out[i] = m.fields
	}
	return out
}

// getMessages is GET /channels/{type}/{id}/messages?ids=a,b.
func (s *Server) getMessages(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
		if m := s.visibleMessage(id); m != nil && m.cid == ch.typ+":"+ch.id {
			out = append(out, m.fields)
		}
	}
	return map[string]any{"messages": out}, nil
}

// expirePin unpins a message whose pin_expires has passed (called with the
// lock held before a message is returned).
func (s *Server) expirePin(m *message) {
	exp, _ := m.fields["pin_expires"].(string)
	if exp == "" || m.fields["pinned"] != true {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, exp)
	if err == nil && !s.cfg.Now().Before(t) {
		m.fields["pinned"] = false
		delete(m.fields, "pinned_at")
		delete(m.fields, "pinned_by")
		delete(m.fields, "pin_expires")
	}
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
	// A user sends as itself; a server-side request must say who sends.
	if messageUser(req.Message) == "" {
		if caller(r) == "" {
			return nil, fail(http.StatusBadRequest, codeInputError,
				"SendMessage failed with error: \"either message.user or message.user_id must be provided when using server side auth\"")
		}
		req.Message["user_id"] = caller(r)
	}
	// The hooks run outside the lock: they may call the server.
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
	hookURL, timeout := s.hookSettings()
	var hookBody []byte
	if hookURL != "" {
		ch, err := s.lookupChannel(r)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		hookBody, _ = json.Marshal(s.hookPayload(r, ch, req.Message))
		s.sent = append(s.sent, hookBody)
	}
	s.mu.Unlock()
	if hookURL != "" {
		if answer := s.callHook(r.Context(), hookURL, timeout, hookBody); answer != nil {
			if answer["type"] == "error" {
				return s.bounce(r, req.Message, answer)
			}
			req.Message = rewrite(req.Message, answer)
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
		m.pending, m.pendingMeta = true, req.PendingMessageMetadata
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

// mentions turns mentioned_users, given as user IDs (or user objects), into
// the user objects Stream returns.
func (s *Server) mentions(v any) []any {
	list, _ := v.([]any)
	out := make([]any, 0, len(list))
	for _, e := range list {
		id, _ := e.(string)
		if u, ok := e.(map[string]any); ok {
			id, _ = u["id"].(string)
		}
		if id != "" {
			out = append(out, s.userJSON(id))
		}
	}
	return out
}

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
	userID := messageUser(in)
	now := ts(s.cfg.Now())
	f := maps.Clone(in)
	typ := "regular"
	if p, _ := in["parent_id"].(string); p != "" {
		parent := s.visibleMessage(p)
		if parent == nil || parent.cid != ch.typ+":"+ch.id {
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
	f["reply_count"], f["mentioned_users"] = 0, s.mentions(in["mentioned_users"])
	delete(f, "deleted_at")
	if f["attachments"] == nil {
		f["attachments"] = []any{}
	}
	s.setPin(f, false, userID)
	s.seq++
	m := &message{fields: f, cid: ch.typ + ":" + ch.id, seq: s.seq}
	s.messages[id] = m
	ch.msgs = append(ch.msgs, m)
	return m, nil
}

// setPin makes a message's pin fields consistent: pinned is always there,
// true or false; a pinned message has pinned_at and pinned_by (by, unless
// it was pinned already and keep), an unpinned one neither, nor
// pin_expires.
func (s *Server) setPin(f map[string]any, keep bool, by string) {
	if f["pinned"] != true {
		f["pinned"] = false
		delete(f, "pinned_at")
		delete(f, "pinned_by")
		delete(f, "pin_expires")
		return
	}
	if keep && f["pinned_at"] != nil {
		return
	}
	f["pinned_at"], f["pinned_by"] = ts(s.cfg.Now()), s.userJSON(by)
}

func (s *Server) getMessage(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.visibleMessage(r.PathValue("id"))
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
	m := s.visibleMessage(r.PathValue("id"))
	if m == nil {
		return nil, notFound("message", r.PathValue("id"))
	}
	if err := s.checkText(req.Message); err != nil {
		return nil, err
	}
	keep := map[string]any{}
	fixed := []string{"id", "cid", "type", "user", "user_id", "created_at", "parent_id", "reply_count"}
	if req.Message["pinned"] == true {
		// Still pinned: when and by whom stay.
		fixed = append(fixed, "pinned_at", "pinned_by", "pin_expires")
	}
	for _, k := range fixed {
		if v, ok := m.fields[k]; ok {
			keep[k] = v
		}
	}
	for k, v := range req.Message {
		if _, isFixed := keep[k]; !isFixed {
			keep[k] = v
		}
	}
	by := messageUser(req.Message)
	if by == "" {
		by, _ = m.fields["user_id"].(string)
	}
	return s.storeUpdated(m, keep, by), nil
}

// storeUpdated renders the new fields of an edited message (html,
// updated_at, mentions, pin), stores them as its new version and
// announces the update.
func (s *Server) storeUpdated(m *message, fields map[string]any, by string) map[string]any {
	text, _ := fields["text"].(string)
	fields["text"], fields["html"], fields["updated_at"] = text, renderHTML(text), ts(s.cfg.Now())
	if fields["attachments"] == nil {
		fields["attachments"] = []any{}
	}
	fields["mentioned_users"] = s.mentions(fields["mentioned_users"])
	s.setPin(fields, true, by)
	m.revise(fields)
	s.emit("message.updated", m.cid, map[string]any{"message": m.fields})
	return map[string]any{"message": m.fields}
}

// deleteMessage is DELETE /messages/{id}: soft (the message stays, with
// type "deleted" and no text) or, with hard=true, erased; either way the
// response is the message with type "deleted" and deleted_at.
func (s *Server) deleteMessage(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	m := s.visibleMessage(id)
	if m == nil {
		return nil, notFound("message", id)
	}
	hard := r.URL.Query().Get("hard") == "true"
	next := maps.Clone(m.fields)
	next["type"], next["deleted_at"] = "deleted", ts(s.cfg.Now())
	if hard {
		s.dropMessage(m)
	} else {
		next["text"], next["html"] = "", ""
		m.revise(next)
	}
	s.emit("message.deleted", m.cid, map[string]any{"message": next, "hard_delete": hard})
	return map[string]any{"message": next}, nil
}
