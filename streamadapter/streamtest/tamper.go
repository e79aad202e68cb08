package streamtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Tamper changes a stored message in place, as whoever runs Stream could:
// edit receives the message's current JSON object (custom data flattened)
// and changes it; the result becomes the current version, with no event,
// no hook and no trace in the message's history. Setting "cid" to another
// channel's CID moves the message there. It is for tests of what readers
// make of a server that lies.
func (s *Server) Tamper(messageID string, edit func(message map[string]any)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[messageID]
	if m == nil {
		return fmt.Errorf("streamtest: no message %q", messageID)
	}
	f := maps.Clone(m.fields)
	edit(f)
	if cid, _ := f["cid"].(string); cid != m.cid {
		to := s.channels[cid]
		if to == nil {
			return fmt.Errorf("streamtest: no channel %q", cid)
		}
		if from := s.channels[m.cid]; from != nil {
			from.msgs = slices.DeleteFunc(from.msgs, func(x *message) bool { return x == m })
		}
		to.msgs = append(to.msgs, m)
		m.cid = cid
		if typ, id, ok := strings.Cut(cid, ":"); ok {
			if c, ok := f["channel"].(map[string]any); ok {
				c["type"], c["id"], c["cid"] = typ, id, cid
			}
		}
	}
	m.fields = f
	return nil
}

// TamperFile replaces the bytes of an uploaded file, as whoever runs
// Stream's CDN could.
func (s *Server) TamperFile(url string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := url[strings.LastIndexByte(url, '/')+1:]
	if _, ok := s.files[name]; !ok {
		return fmt.Errorf("streamtest: no file %q", url)
	}
	s.files[name] = slices.Clone(data)
	return nil
}

// Versions returns the JSON objects of a stored message, oldest first
// (the current one last), for tests that put an older version back with
// Tamper.
func (s *Server) Versions(messageID string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[messageID]
	if m == nil {
		return nil
	}
	out := make([]map[string]any, 0, len(m.history)+1)
	for _, v := range append(slices.Clone(m.history), m.fields) {
		out = append(out, maps.Clone(v))
	}
	return out
}
