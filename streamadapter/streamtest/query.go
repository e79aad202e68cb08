package streamtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func page[T any](items []T, offset, limit, def int) []T {
	if limit <= 0 {
		limit = def
	}
	offset = max(offset, 0)
	if offset >= len(items) {
		return []T{}
	}
	end := len(items)
	if limit < end-offset { // no overflow for huge limits
		end = offset + limit
	}
	return items[offset:end]
}

// matches evaluates a Stream filter: field: value, field: {$eq|$in|$autocomplete},
// $and, $or.
func matches(obj map[string]any, filter map[string]any) bool {
	for k, cond := range filter {
		switch k {
		case "$and", "$or":
			subs, _ := cond.([]any)
			some := false
			for _, sub := range subs {
				m, _ := sub.(map[string]any)
				ok := matches(obj, m)
				if k == "$and" && !ok {
					return false
				}
				some = some || ok
			}
			if k == "$or" && !some {
				return false
			}
			continue
		}
		v := obj[k]
		op, isOp := cond.(map[string]any)
		if !isOp {
			if !equal(v, cond) {
				return false
			}
			continue
		}
		for o, arg := range op {
			switch o {
			case "$eq":
				if !equal(v, arg) {
					return false
				}
			case "$in":
				list, _ := arg.([]any)
				found := false
				for _, a := range list {
					if equal(v, a) || contains(v, a) {
						found = true
					}
				}
				if !found {
					return false
				}
			case "$autocomplete":
				str, _ := v.(string)
				prefix, _ := arg.(string)
				if !strings.Contains(strings.ToLower(str), strings.ToLower(prefix)) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func equal(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// contains reports whether a list value holds x (for "members": {"$in": [...]}).
func contains(list, x any) bool {
	l, ok := list.([]any)
	if !ok {
		return false
	}
	for _, e := range l {
		if equal(e, x) {
			return true
		}
	}
	return false
}

func compare(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	case float64:
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
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
