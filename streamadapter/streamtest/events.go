package streamtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/veilchat/veil/internal/httpjson"
)

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
