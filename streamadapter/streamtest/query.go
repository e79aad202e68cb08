package streamtest

import (
	"cmp"
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

// matches evaluates a Stream filter: field: value, field: {$eq, $ne, $in,
// $nin, $gt, $gte, $lt, $lte, $exists, $autocomplete}, $and, $or, $nor.
// Comparisons order numbers as numbers and RFC 3339 timestamps as times.
func matches(obj map[string]any, filter map[string]any) bool {
	for k, cond := range filter {
		switch k {
		case "$and", "$or", "$nor":
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
			if (k == "$or" && !some) || (k == "$nor" && some) {
				return false
			}
			continue
		}
		v, present := obj[k]
		op, isOp := cond.(map[string]any)
		if !isOp {
			if !equal(v, cond) {
				return false
			}
			continue
		}
		for o, arg := range op {
			if !holds(o, v, present, arg) {
				return false
			}
		}
	}
	return true
}

// holds evaluates one operator on a field's value.
func holds(op string, v any, present bool, arg any) bool {
	in := func() bool {
		list, _ := arg.([]any)
		for _, a := range list {
			if equal(v, a) || contains(v, a) {
				return true
			}
		}
		return false
	}
	switch op {
	case "$eq":
		return equal(v, arg)
	case "$ne":
		return !equal(v, arg)
	case "$in":
		return in()
	case "$nin":
		return !in()
	case "$gt":
		return present && compare(v, arg) > 0
	case "$gte":
		return present && compare(v, arg) >= 0
	case "$lt":
		return present && compare(v, arg) < 0
	case "$lte":
		return present && compare(v, arg) <= 0
	case "$exists":
		want, _ := arg.(bool)
		return (present && v != nil) == want
	case "$autocomplete":
		str, _ := v.(string)
		prefix, _ := arg.(string)
		return strings.Contains(strings.ToLower(str), strings.ToLower(prefix))
	}
	return false
}

func equal(a, b any) bool {
	if ta, ok := asTime(a); ok {
		if tb, ok := asTime(b); ok {
			return ta.Equal(tb)
		}
	}
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

// compare orders two field values: timestamps as times, numbers as
// numbers, strings as strings, booleans false first; a missing value comes
// before any other.
func compare(a, b any) int {
	if ta, ok := asTime(a); ok {
		if tb, ok := asTime(b); ok {
			return ta.Compare(tb)
		}
	}
	if fa, ok := asNumber(a); ok {
		if fb, ok := asNumber(b); ok {
			return cmp.Compare(fa, fb)
		}
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	}
	switch {
	case a == nil && b != nil:
		return -1
	case a != nil && b == nil:
		return 1
	}
	return 0
}

// asTime reads an RFC 3339 timestamp.
func asTime(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok || len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[10] != 'T' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

func asNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
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
