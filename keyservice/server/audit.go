package server

import (
	"log/slog"
	"net/http"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

// auditChange logs, at info, a record the handler stored: a genesis (before
// nil) or a change of session id, so that an operator can follow who
// changed which session's membership and when — and, after a restore from
// a backup, see which records members published again. It names the
// session, the record's sequence number and epoch, its signer, who sent it
// when that is someone else, the users the record added and removed (their number past
// maxAuditUsers), and
// the roster's size; never a grant, a key or a token.
func (h *Handler) auditChange(r *http.Request, id session.ID, before, after *memberlog.State, signer, sender string) {
	attrs := []any{"session", id.String(), "seq", after.Seq(), "epoch", after.Epoch(), "signer", signer}
	msg := "membership change"
	if before == nil {
		msg = "session created"
		attrs = append(attrs, "channel", after.ChannelCID())
	} else if after.Epoch() != before.Epoch() {
		attrs = append(attrs, "new_epoch", true)
	}
	if sender != signer {
		attrs = append(attrs, "republished_by", sender)
	}
	added, removed := rosterDiff(before, after)
	attrs = appendUsers(attrs, "added", added)
	attrs = appendUsers(attrs, "removed", removed)
	attrs = append(attrs, "members", len(after.Members()))
	h.log.Log(r.Context(), slog.LevelInfo, msg, attrs...)
}

// rosterDiff returns the users in after's roster but not before's, and
// those in before's but not after's (before nil: an empty roster). A
// genesis "adds" its whole roster; only its size is worth a log line then.
func rosterDiff(before, after *memberlog.State) (added, removed []string) {
	if before == nil {
		return nil, nil
	}
	for _, m := range after.Members() {
		if _, ok := before.Member(m.UserID); !ok {
			added = append(added, m.UserID)
		}
	}
	for _, m := range before.Members() {
		if _, ok := after.Member(m.UserID); !ok {
			removed = append(removed, m.UserID)
		}
	}
	return added, removed
}

// maxAuditUsers bounds the user IDs one audit line names per list; a
// longer list is logged as its length.
const maxAuditUsers = 16

// appendUsers appends the users under key, or their number when there are
// more than maxAuditUsers, and nothing when there are none.
func appendUsers(attrs []any, key string, users []string) []any {
	switch {
	case len(users) == 0:
		return attrs
	case len(users) > maxAuditUsers:
		return append(attrs, key+"_count", len(users))
	}
	return append(attrs, key, users)
}

// principalName is how a log line names the caller.
func principalName(p Principal) string {
	if p.Service {
		return "(service)"
	}
	return p.UserID
}
