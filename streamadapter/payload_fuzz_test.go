package streamadapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParsePayload: parsePayload never panics, oneMeaning agrees with a
// walk of encoding/json's tokens, and a payload it accepts
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
		`{"t\u0065xt":"a","text":"b"}`, `{"text":"a\"b\\"}`, ` {"text":"x","attachments":[]} `,
		`{"text":"x","custom":{"k":[{"a":1,"a":2}]}}`, `{"text":"x","custom":{"n":-1.5e3,"t":true,"f":false}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if json.Valid(b) && utf8.Valid(b) {
			fast, slow := oneMeaning(b), oneMeaningReference(b)
			if (fast == nil) != (slow == nil) {
				t.Fatalf("%q: the scan says %v, encoding/json's tokens %v", b, fast, slow)
			}
		}
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

// oneMeaningReference is oneMeaning through encoding/json's tokens, which
// the fuzz target compares it with: it reports an error unless b is one JSON object with a string
// text in which no object repeats a name and the payload's and the
// descriptors' names are spelled exactly: encoding/json matches names case
// insensitively (K matching the Kelvin sign) and takes the last of
// repeated ones, where another reader of the same message (a JavaScript
// client) would read another text or another file. The UTF-8 check is the
// caller's.
func oneMeaningReference(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := checkValueReference(dec, inPayload, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}

// checkValue reads the next value of dec, found where 'where' says.
func checkValueReference(dec *json.Decoder, where, depth int) error {
	if depth > maxPayloadDepth {
		return errors.New("too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, isDelim := tok.(json.Delim)
	switch {
	case where == inText:
		if _, ok := tok.(string); !ok {
			return errors.New("text is not a string")
		}
		return nil
	case (where == inPayload || where == inDescriptor) && d != '{',
		where == inAttachments && d != '[':
		return errors.New("not an object or array where one is due")
	case !isDelim:
		return nil
	case d == '[':
		in := inValue
		if where == inAttachments {
			in = inDescriptor
		}
		for dec.More() {
			if err := checkValueReference(dec, in, depth+1); err != nil {
				return err
			}
		}
	case d == '{':
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := tok.(string)
			if seen[name] {
				return fmt.Errorf("the name %q repeats", name)
			}
			seen[name] = true
			for _, known := range payloadNames[where] {
				if name != known && strings.EqualFold(name, known) {
					return fmt.Errorf("%q is spelled %q", known, name)
				}
			}
			in := inValue
			switch {
			case where == inPayload && name == "text":
				in = inText
			case where == inPayload && name == "attachments":
				in = inAttachments
			}
			if err := checkValueReference(dec, in, depth+1); err != nil {
				return err
			}
		}
		if where == inPayload && !seen["text"] {
			return errors.New("no text")
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}
