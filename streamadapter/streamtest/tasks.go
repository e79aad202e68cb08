package streamtest

import "net/http"

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

// completedTask records an asynchronous task that has already finished
// (with s.mu held) and returns its ID for GET /tasks/{id}.
func (s *Server) completedTask(result map[string]any) string {
	id := randomHex(12)
	now := ts(s.cfg.Now())
	s.tasks[id] = map[string]any{"task_id": id, "status": "completed", "created_at": now, "updated_at": now, "result": result}
	return id
}
