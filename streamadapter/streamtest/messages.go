package streamtest

import (
	"encoding/json"
	"html"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// partialUpdateMessage is PUT /messages/{id}: set and unset fields.
func (s *Server) partialUpdateMessage(r *http.Request, body []byte) (any, error) {
	var req struct {
		Set    map[string]any `json:"set"`
		Unset  []string       `json:"unset"`
		UserID string         `json:"user_id"`
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
	if err := checkPaths(req.Set, req.Unset, "id", "cid", "user", "user_id", "created_at", "type", "parent_id"); err != nil {
		return nil, err
	}
	next := patched(m.fields, req.Set, req.Unset)
	if err := s.checkText(next); err != nil {
		return nil, err
	}
	// Pinning (PinMessage and UnPinMessage are partial updates).
	if p, ok := req.Set["pinned"].(bool); ok {
		if p {
			next["pinned_at"], next["pinned_by"] = ts(s.cfg.Now()), s.userJSON(req.UserID)
		} else {
			delete(next, "pinned_at")
			delete(next, "pinned_by")
			delete(next, "pin_expires")
		}
	}
	return s.storeUpdated(m, next), nil
}

// replies is GET /messages/{id}/replies with limit and id_lt/id_gt.
func (s *Server) replies(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := r.PathValue("id")
	if s.messages[parent] == nil {
		return nil, notFound("message", parent)
	}
	var out []*message
	for _, m := range s.messages {
		if m.fields["parent_id"] == parent {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
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
		if m := s.messages[id]; m != nil && m.cid == ch.typ+":"+ch.id {
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
