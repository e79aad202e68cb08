package streamadapter

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParsePayload: parsePayload never panics, and a payload it accepts
// means the same to a reader that matches names exactly (a map decode):
// the same text, the same custom fields, as many attachments; and it
// survives marshalPayload unchanged.
func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		`{"text":"hello"}`,
		`{"text":"hello","custom":{"a":{"b":[1,2.5,null,true]}}}`,
		`{"text":"hello","Text":"goodbye"}`,
		`{"text":"a","text":"b"}`,
		`{"text":"x","attachments":[{"url":"https://cdn.example/f","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","name":"a","mime_type":"text/plain","size":1,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}`,
		`null`, `{"text":"a"}}`, "{\"text\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, atts, err := parsePayload(b, 1<<31)
		if err != nil {
			return
		}
		var exact map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&exact); err != nil {
			t.Fatalf("accepted %q, which is not a JSON object: %v", b, err)
		}
		if exact["text"] != p.Text {
			t.Fatalf("accepted %q: text %q, an exact reader reads %v", b, p.Text, exact["text"])
		}
		if c, _ := exact["custom"].(map[string]any); len(c) != len(p.Custom) || (len(c) > 0 && !reflect.DeepEqual(c, p.Custom)) {
			t.Fatalf("accepted %q: custom %v, an exact reader reads %v", b, p.Custom, exact["custom"])
		}
		if a, _ := exact["attachments"].([]any); len(a) != len(atts) {
			t.Fatalf("accepted %q: %d attachments, an exact reader reads %d", b, len(atts), len(a))
		}
		again, err := marshalPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := parsePayload(again, 1<<31)
		if err != nil || q.Text != p.Text || len(q.Custom) != len(p.Custom) || (len(p.Custom) > 0 && !reflect.DeepEqual(q.Custom, p.Custom)) ||
			len(q.Attachments) != len(p.Attachments) {
			t.Fatalf("accepted %q, re-encoded as %q: %v", b, again, err)
		}
	})
}
