package streamtest

import (
	"math"
	"net/http"
	"time"
)

// Stream's limits on before_message_send_hook_attempt_timeout_ms: 0 (or
// unset) means the default, 1–5000 a timeout in milliseconds; anything
// else is refused.
const (
	defaultHookTimeout = 1500 * time.Millisecond
	maxHookTimeoutMS   = 5000
)

// getApp is GET /app: the app settings, as UpdateAppSettings left them.
func (s *Server) getApp(r *http.Request, body []byte) (any, error) {
	if caller(r) != "" {
		return nil, serverSideOnly("GetApp")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	app := map[string]any{}
	for k, v := range s.app {
		app[k] = v
	}
	return map[string]any{"app": app}, nil
}

// updateApp is PATCH /app: the settings given replace the stored ones, a
// null removes one. webhook_url, before_message_send_hook_url and
// before_message_send_hook_attempt_timeout_ms take effect; the others are
// kept and returned but change nothing.
func (s *Server) updateApp(r *http.Request, body []byte) (any, error) {
	if caller(r) != "" {
		return nil, serverSideOnly("UpdateApp")
	}
	var req map[string]any
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	for _, k := range []string{"webhook_url", "before_message_send_hook_url"} {
		if v, ok := req[k]; ok && v != nil {
			if _, isString := v.(string); !isString {
				return nil, fail(http.StatusBadRequest, codeInputError, "UpdateApp failed with error: %q must be a string", k)
			}
		}
	}
	if v, ok := req["before_message_send_hook_attempt_timeout_ms"]; ok && v != nil {
		ms, isNumber := v.(float64)
		if !isNumber || ms != math.Trunc(ms) || ms < 0 || ms > maxHookTimeoutMS {
			return nil, fail(http.StatusBadRequest, codeInputError,
				"UpdateApp failed with error: \"before_message_send_hook_attempt_timeout_ms must be an integer from 0 to %d\"", maxHookTimeoutMS)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range req {
		if v == nil {
			delete(s.app, k)
		} else {
			s.app[k] = v
		}
	}
	return map[string]any{}, nil
}

// hookSettings returns the before-message-send hook's URL ("" when none)
// and its per-attempt timeout (called with s.mu held).
func (s *Server) hookSettings() (string, time.Duration) {
	url, _ := s.app["before_message_send_hook_url"].(string)
	timeout := defaultHookTimeout
	if ms, _ := s.app["before_message_send_hook_attempt_timeout_ms"].(float64); ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	return url, timeout
}

func serverSideOnly(op string) *apiError {
	return fail(http.StatusForbidden, codeForbidden, "%s failed with error: \"this request is only allowed with server-side auth\"", op)
}
