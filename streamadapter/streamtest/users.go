package streamtest

import (
	"maps"
	"net/http"
	"slices"
	"sort"
)

// serverManaged are the user fields an upsert cannot set or remove.
var serverManaged = []string{"created_at", "last_active", "online", "deactivated_at", "deleted_at"}

var userReserved = []string{"id", "role", "created_at", "updated_at", "last_active", "online", "banned", "teams", "deactivated_at", "deleted_at"}

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

func (s *Server) userJSON(id string) map[string]any {
	if u := s.users[id]; u != nil {
		return u
	}
	return map[string]any{"id": id}
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
