package streamtest

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
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

// pageParams are Stream's message pagination parameters.
type pageParams struct {
	Limit    int        `json:"limit"`
	Offset   int        `json:"offset"`
	IDLT     string     `json:"id_lt"`
	IDLTE    string     `json:"id_lte"`
	IDGT     string     `json:"id_gt"`
	IDGTE    string     `json:"id_gte"`
	IDAround string     `json:"id_around"`
	After    *time.Time `json:"created_at_after"`
	AfterEq  *time.Time `json:"created_at_after_or_equal"`
	Before   *time.Time `json:"created_at_before"`
	BeforeEq *time.Time `json:"created_at_before_or_equal"`
}

func queryPage(r *http.Request) pageParams {
	q := r.URL.Query()
	p := pageParams{IDLT: q.Get("id_lt"), IDLTE: q.Get("id_lte"), IDGT: q.Get("id_gt"), IDGTE: q.Get("id_gte")}
	p.Limit, _ = strconv.Atoi(q.Get("limit"))
	p.Offset, _ = strconv.Atoi(q.Get("offset"))
	return p
}

// paginate keeps the messages inside the id_* bounds (by creation order)
// and returns a page of limit (default 25): the newest of the window unless
// paging forward with id_gt/id_gte, oldest first, as Stream pages.
func (s *Server) paginate(msgs []*message, p pageParams) []*message {
	bound := func(id string, keep func(a, b int) bool) func(*message) bool {
		ref := s.messages[id]
		if id == "" || ref == nil {
			return func(*message) bool { return true }
		}
		return func(m *message) bool { return keep(m.seq, ref.seq) }
	}
	checks := []func(*message) bool{
		bound(p.IDLT, func(a, b int) bool { return a < b }), bound(p.IDLTE, func(a, b int) bool { return a <= b }),
		bound(p.IDGT, func(a, b int) bool { return a > b }), bound(p.IDGTE, func(a, b int) bool { return a >= b }),
	}
	created := func(m *message) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, m.fields["created_at"].(string))
		return t
	}
	timeOK := func(m *message) bool {
		c := created(m)
		return (p.After == nil || c.After(*p.After)) && (p.AfterEq == nil || !c.Before(*p.AfterEq)) &&
			(p.Before == nil || c.Before(*p.Before)) && (p.BeforeEq == nil || !c.After(*p.BeforeEq))
	}
	var kept []*message
	for _, m := range msgs {
		if checks[0](m) && checks[1](m) && checks[2](m) && checks[3](m) && timeOK(m) {
			kept = append(kept, m)
		}
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 25
	}
	if ref := s.messages[p.IDAround]; p.IDAround != "" && ref != nil {
		// A window of limit messages centred on the reference.
		at := 0
		for i, m := range kept {
			if m.seq <= ref.seq {
				at = i
			}
		}
		start := max(0, min(at-limit/2, len(kept)-limit))
		return kept[start:min(start+limit, len(kept))]
	}
	if p.IDGT == "" && p.IDGTE == "" && p.Offset >= 0 && p.Offset < len(kept) && limit < len(kept)-p.Offset {
		kept = kept[len(kept)-limit-p.Offset:]
	}
	return page(kept, p.Offset, limit, 25)
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

// deleteFile is DELETE /channels/{type}/{id}/file?url=…
func (s *Server) deleteFile(r *http.Request, body []byte) (any, error) {
	u := r.URL.Query().Get("url")
	name := u[strings.LastIndexByte(u, '/')+1:]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[name]; !ok {
		return nil, notFound("file", u)
	}
	delete(s.files, name)
	return map[string]any{}, nil
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

// deleteUsers is POST /users/delete: an asynchronous task, completed at
// once.
func (s *Server) deleteUsers(r *http.Request, body []byte) (any, error) {
	var req struct {
		UserIDs  []string `json:"user_ids"`
		User     string   `json:"user"`
		Messages string   `json:"messages"`
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.UserIDs) == 0 {
		return nil, fail(http.StatusBadRequest, codeInputError, "user_ids is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range req.UserIDs {
		if s.users[u] == nil {
			return nil, notFound("user", u)
		}
	}
	now := s.cfg.Now()
	for _, u := range req.UserIDs {
		if req.User == "hard" {
			delete(s.users, u)
		} else {
			s.users[u]["deleted_at"] = ts(now)
		}
		if req.Messages != "" {
			for id, m := range s.messages {
				if m.fields["user_id"] == u {
					if req.Messages == "hard" {
						delete(s.messages, id)
					} else {
						m.fields["type"], m.fields["deleted_at"], m.fields["text"], m.fields["html"] = "deleted", ts(now), "", ""
					}
				}
			}
		}
	}
	return map[string]any{"task_id": s.completedTask(map[string]any{"deleted_users": req.UserIDs})}, nil
}

// getTask is GET /tasks/{id}.
func (s *Server) getTask(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[r.PathValue("id")]
	if t == nil {
		return nil, notFound("task", r.PathValue("id"))
	}
	return t, nil
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

// completedTask records an asynchronous task that has already finished
// (with s.mu held) and returns its ID for GET /tasks/{id}.
func (s *Server) completedTask(result map[string]any) string {
	id := randomHex(12)
	now := ts(s.cfg.Now())
	s.tasks[id] = map[string]any{"task_id": id, "status": "completed", "created_at": now, "updated_at": now, "result": result}
	return id
}
