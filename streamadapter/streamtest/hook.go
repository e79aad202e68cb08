package streamtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/veilchat/veil/internal/httpjson"
)

// hookPayload is the body Stream posts to the before-message-send hook:
// the message as it will be stored (before Stream renders or saves it:
// no ID unless the client chose one, html empty), its author, the
// channel, and what is known of the client that sent it (called with
// s.mu held).
func (s *Server) hookPayload(r *http.Request, ch *channel, in map[string]any) map[string]any {
	msg := map[string]any{"id": "", "text": "", "type": "regular", "attachments": []any{}, "latest_reactions": []any{}, "own_reactions": []any{},
		"reaction_counts": nil, "reaction_scores": nil, "reply_count": 0, "silent": false}
	for k, v := range in {
		if k != "user" && k != "user_id" {
			msg[k] = v
		}
	}
	// As stream-chat-go sends it, a message carries empty standard fields.
	for _, k := range []string{"parent_id", "quoted_message_id"} {
		if msg[k] == "" {
			delete(msg, k)
		}
	}
	if msg["attachments"] == nil {
		msg["attachments"] = []any{}
	}
	switch {
	case msg["parent_id"] != nil:
		msg["type"] = "reply"
	case msg["type"] != "system":
		msg["type"] = "regular"
	}
	msg["html"], msg["mentioned_users"] = "", s.mentions(in["mentioned_users"])
	info := map[string]any{"type": "client", "ip": r.RemoteAddr, "user_agent": r.UserAgent(), "sdk": r.Header.Get("X-Stream-Client")}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		info["ip"] = host
	}
	if caller(r) == "" {
		info["type"] = "server"
	}
	if ext := r.Header.Get("X-Stream-Ext"); ext != "" {
		info["ext"] = ext
	}
	return map[string]any{"message": msg, "user": s.userJSON(messageUser(in)), "channel": s.channelJSON(ch), "request_info": info}
}

// maxHookAnswer bounds the hook's answer that is read.
const maxHookAnswer = 1 << 20

// callHook posts the before-message-send body to the hook, once, and
// returns the message it answered, or nil to store the message as sent.
// Like Stream, it fails open: a hook that does not answer within the
// timeout, answers outside 2xx, or answers something that is not a
// message leaves the message as sent (with a warning in the log). An empty
// 2xx answer, or one without a message, accepts it unchanged.
func (s *Server) callHook(ctx context.Context, url string, timeout time.Duration, body []byte) map[string]any {
	req, err := s.webhookRequest(url, body)
	if err != nil {
		s.log.Warn("before-message-send hook not called; message stored as sent", "error", httpjson.RedactURLError(err).Error())
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := s.cfg.HTTPClient.Do(req.WithContext(ctx))
	if err != nil {
		s.log.Warn("before-message-send hook failed; message stored as sent", "error", httpjson.RedactURLError(err).Error())
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHookAnswer+1))
	switch {
	case err != nil:
		s.log.Warn("before-message-send hook failed; message stored as sent", "error", httpjson.RedactURLError(err).Error())
		return nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		s.log.Warn("before-message-send hook failed; message stored as sent", "status", resp.StatusCode)
		return nil
	case len(bytes.TrimSpace(b)) == 0:
		return nil
	}
	var answer struct {
		Message map[string]any `json:"message"`
	}
	if len(b) > maxHookAnswer || json.Unmarshal(b, &answer) != nil {
		s.log.Warn("before-message-send hook answered something that is not a message; message stored as sent")
		return nil
	}
	return answer.Message
}

// rewritable are the standard message fields a hook may change; it may
// also change any custom field. The others it answers are ignored.
var rewritable = []string{"text", "i18n", "show_in_channel", "silent", "attachments"}

// rewrite applies a hook's answer to the message sent.
func rewrite(in, answer map[string]any) map[string]any {
	out := maps.Clone(in)
	for k, v := range answer {
		if slices.Contains(rewritable, k) || !slices.Contains(messageReserved, k) {
			out[k] = v
		}
	}
	return out
}

// bounce is the answer to a message the hook rejected (a message of type
// "error"): the sender gets it back, with the hook's text, as a message of
// type "error" that is not stored or announced.
func (s *Server) bounce(r *http.Request, in, answer map[string]any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.lookupChannel(r)
	if err != nil {
		return nil, err
	}
	id, _ := in["id"].(string)
	if id == "" {
		id = s.cfg.NewID()
	}
	text, _ := answer["text"].(string)
	userID := messageUser(in)
	now := ts(s.cfg.Now())
	return map[string]any{"message": map[string]any{"id": id, "cid": ch.typ + ":" + ch.id, "type": "error", "text": text, "html": renderHTML(text),
		"user_id": userID, "user": s.userJSON(userID), "attachments": []any{}, "mentioned_users": []any{}, "reply_count": 0, "pinned": false,
		"created_at": now, "updated_at": now}}, nil
}
