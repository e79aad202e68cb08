package streamtest

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"
)

// Snapshot is a copy of everything a Server holds, taken at one instant by
// [Server.Snapshot]: what Stream would keep after the same calls, for
// tests that look for what must not be there (plaintext in an encrypted
// channel) without reading it back through the API, which hides some of
// it (soft-deleted channels, truncated messages, earlier versions of
// edited messages). A Snapshot shares nothing with the Server; the caller
// owns it.
type Snapshot struct {
	// App are the app settings (UpdateAppSettings).
	App map[string]any
	// Users are the stored users by ID, as the API returns them (a
	// soft-deleted user has deleted_at).
	Users map[string]map[string]any
	// Channels are the channels, oldest first, soft-deleted ones included.
	Channels []SnapshotChannel
	// Messages are the stored messages and replies, oldest first, those of
	// soft-deleted channels and those hidden by a soft truncation
	// included. Hard deletion erases a message.
	Messages []SnapshotMessage
	// Files are the uploaded files' bytes, by URL.
	Files map[string][]byte
	// Webhooks are the bodies of the calls made to the webhook URL and to
	// the before-message-send hook, in order.
	Webhooks [][]byte
}

// SnapshotChannel is a channel in a [Snapshot].
type SnapshotChannel struct {
	// Channel is its JSON object as the API returns it, custom data
	// flattened in.
	Channel map[string]any
	// Members are its members' JSON objects.
	Members []map[string]any
	// Deleted is set for a soft-deleted channel, which the API no longer
	// returns.
	Deleted bool
}

// SnapshotMessage is a message in a [Snapshot].
type SnapshotMessage struct {
	// ID and CID name the message and its channel.
	ID, CID string
	// Versions are its JSON objects, oldest first: as sent, then one per
	// change a client made (update, partial update, soft deletion). The
	// last is the current one.
	Versions []map[string]any
	// Pending is set for a message sent with pending, PendingMetadata is
	// the pending_message_metadata sent with it.
	Pending         bool
	PendingMetadata map[string]string
	// Hidden is set when the API no longer returns the message: a soft
	// truncation hid it, or its channel was soft-deleted.
	Hidden bool
}

// Snapshot returns a deep copy of the server's state. It is safe to call
// while requests are served.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := Snapshot{App: copyJSON(s.app).(map[string]any), Users: map[string]map[string]any{}, Files: map[string][]byte{}}
	for id, u := range s.users {
		sn.Users[id] = copyJSON(u).(map[string]any)
	}
	type entry struct {
		ch      *channel
		deleted bool
	}
	var chans []entry
	for _, ch := range s.deleted {
		chans = append(chans, entry{ch, true})
	}
	for _, ch := range s.channels {
		chans = append(chans, entry{ch, false})
	}
	sort.Slice(chans, func(i, j int) bool { return chans[i].ch.seq < chans[j].ch.seq })
	var msgs []*message
	hidden := map[*message]bool{}
	for _, e := range chans {
		members := make([]map[string]any, 0, len(e.ch.members))
		for _, m := range e.ch.members {
			members = append(members, copyJSON(s.memberJSON(m)).(map[string]any))
		}
		sn.Channels = append(sn.Channels, SnapshotChannel{Channel: copyJSON(s.channelJSON(e.ch)).(map[string]any), Members: members, Deleted: e.deleted})
		for _, m := range e.ch.msgs {
			msgs = append(msgs, m)
			hidden[m] = e.deleted || m.truncated
		}
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].seq < msgs[j].seq })
	for _, m := range msgs {
		versions := make([]map[string]any, 0, len(m.history)+1)
		for _, v := range append(slices.Clone(m.history), m.fields) {
			versions = append(versions, copyJSON(v).(map[string]any))
		}
		id, _ := m.fields["id"].(string)
		sn.Messages = append(sn.Messages, SnapshotMessage{ID: id, CID: m.cid, Versions: versions,
			Pending: m.pending, PendingMetadata: maps.Clone(m.pendingMeta), Hidden: hidden[m]})
	}
	for name, b := range s.files {
		sn.Files[s.URL+"/files/"+name] = bytes.Clone(b)
	}
	for _, b := range s.sent {
		sn.Webhooks = append(sn.Webhooks, bytes.Clone(b))
	}
	return sn
}

// copyJSON deep-copies a decoded JSON value (objects and arrays; other
// values are immutable).
func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = copyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyJSON(e)
		}
		return out
	case map[string]string:
		return maps.Clone(v)
	case []string:
		return slices.Clone(v)
	}
	return v
}

// Find returns where needle occurs in the snapshot, as paths such as
// "users/alice/name", "channels/0/members/1/user/name",
// "messages/m1/versions/0/text", "files/<URL>" or "webhooks/3". It looks
// in every string and object key of the app settings, users, channels and
// messages (pending metadata included), in file bytes, and in webhook
// bodies both as sent and as decoded, since JSON escapes some characters
// (a body that does not decode is searched as sent only). An empty
// needle is found nowhere. Strings are searched as they are: a needle
// sent inside base64 or another encoding is not found.
func (sn Snapshot) Find(needle []byte) []string {
	if len(needle) == 0 {
		return nil
	}
	found := findIn(nil, "app", sn.App, needle)
	for _, id := range sortedKeys(sn.Users) {
		found = findIn(found, "users/"+id, sn.Users[id], needle)
	}
	for i, ch := range sn.Channels {
		p := "channels/" + strconv.Itoa(i)
		found = findIn(found, p+"/channel", ch.Channel, needle)
		for j, m := range ch.Members {
			found = findIn(found, p+"/members/"+strconv.Itoa(j), m, needle)
		}
	}
	for _, m := range sn.Messages {
		p := "messages/" + m.ID
		for i, v := range m.Versions {
			found = findIn(found, p+"/versions/"+strconv.Itoa(i), v, needle)
		}
		for _, k := range sortedKeys(m.PendingMetadata) {
			found = findIn(found, p+"/pending_message_metadata", map[string]any{k: m.PendingMetadata[k]}, needle)
		}
	}
	for _, u := range sortedKeys(sn.Files) {
		if bytes.Contains(sn.Files[u], needle) {
			found = append(found, "files/"+u)
		}
	}
	for i, b := range sn.Webhooks {
		p := "webhooks/" + strconv.Itoa(i)
		var v any
		switch {
		case bytes.Contains(b, needle):
			found = append(found, p)
		case json.Unmarshal(b, &v) == nil:
			if len(findIn(nil, p, v, needle)) > 0 {
				found = append(found, p)
			}
		}
	}
	return found
}

// findIn appends the paths of the strings and keys in v that contain
// needle.
func findIn(found []string, path string, v any, needle []byte) []string {
	switch v := v.(type) {
	case string:
		if bytes.Contains([]byte(v), needle) {
			found = append(found, path)
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			if bytes.Contains([]byte(k), needle) {
				found = append(found, path+"/"+k+" (key)")
			}
			found = findIn(found, path+"/"+k, v[k], needle)
		}
	case []any:
		for i, e := range v {
			found = findIn(found, path+"/"+strconv.Itoa(i), e, needle)
		}
	}
	return found
}
