package streamtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/veilchat/veil/internal/httpjson"
)

// outgoing is a queued webhook call.
type outgoing struct {
	url  string
	body []byte
}

// emit queues an event for the webhook_url app setting (called with s.mu
// held, so events keep the order of the changes).
func (s *Server) emit(typ, cid string, fields map[string]any) {
	url, _ := s.app["webhook_url"].(string)
	if url == "" {
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
	case s.events <- outgoing{url, b}:
		s.sent = append(s.sent, b)
	default:
		s.log.Warn("webhook queue full; event dropped", "type", typ)
	}
}

// deliver posts queued events one at a time, in order, each once (Stream
// retries failed deliveries; the emulator does not).
func (s *Server) deliver() {
	for {
		select {
		case <-s.done:
			return
		case ev := <-s.events:
			req, err := s.webhookRequest(ev.url, ev.body)
			if err != nil {
				s.log.Warn("webhook delivery failed", "error", httpjson.RedactURLError(err).Error())
				continue
			}
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

// webhookRequest is a POST of body to url with the headers Stream puts on
// every webhook call: X-Webhook-Id (one per call), X-Webhook-Attempt
// (always 1: there are no retries), X-Api-Key and X-Signature, the hex
// HMAC-SHA256 of the body under the app secret.
func (s *Server) webhookRequest(url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, s.cfg.APISecret.Reveal())
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature", hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-Api-Key", s.cfg.APIKey)
	req.Header.Set("X-Webhook-Id", newUUID())
	req.Header.Set("X-Webhook-Attempt", "1")
	return req, nil
}

// newUUID returns a random (version 4) UUID, the form of Stream's webhook
// IDs.
func newUUID() string {
	h := randomHex(16)
	b := []byte(h)
	b[12] = '4'
	b[16] = "89ab"[b[16]%4]
	return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
}
