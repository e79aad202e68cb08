package identity

import (
	"bytes"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/testrand"
)

func fuzzIdentities(tb testing.TB) []*Identity {
	var out []*Identity
	for _, kind := range []Kind{KindHybrid, KindX25519} {
		id, err := Generate(testrand.New("fuzz"+kind.String()), "fuzz-user", Options{Kind: kind, Created: time.Unix(1e9, 0)})
		if err != nil {
			tb.Fatal(err)
		}
		next, err := id.Rotate(testrand.New("fuzz-next"), Options{Created: time.Unix(1e9+1, 0)})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, next)
	}
	return out
}

// FuzzParseCard: no panic; a parsed card re-marshals to the same bytes and
// parses again to an equal card.
func FuzzParseCard(f *testing.F) {
	for _, id := range fuzzIdentities(f) {
		for _, c := range id.Cards() {
			raw := c.Marshal()
			f.Add(raw)
			f.Add(raw[:len(raw)-1])
			f.Add(raw[:20])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCard(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatal("a parsed card does not re-marshal to its bytes")
		}
		again, err := ParseCard(c.Marshal())
		if err != nil || !again.Equal(c) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// FuzzImport: no panic; an imported identity exports to text that imports
// to an equal identity.
func FuzzImport(f *testing.F) {
	for _, id := range fuzzIdentities(f) {
		text := id.Export()
		f.Add(text)
		f.Add(text[:len(text)/2])
		f.Add(bytes.Replace(text, []byte("# veil-generation: 1"), []byte("# veil-generation: 2"), 1))
	}
	f.Add([]byte("# veil-identity: v1\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		id, err := Import(text)
		if err != nil {
			return
		}
		again, err := Import(id.Export())
		if err != nil || !again.Equal(id) {
			t.Fatalf("export of an imported identity does not import back: %v", err)
		}
	})
}

// FuzzImportWithPassphrase: no panic on arbitrary (armored or binary) age
// input, with a low work-factor bound so that the fuzzer stays fast.
func FuzzImportWithPassphrase(f *testing.F) {
	id := fuzzIdentities(f)[1]
	enc, err := id.ExportWithPassphrase("pass", MinWorkFactor)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(enc[:len(enc)/2])
	f.Add([]byte("age-encryption.org/v1\n-> scrypt AAAA 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ImportWithPassphrase(b, "pass", MinWorkFactor)
		if err == nil && !got.Equal(id) {
			t.Fatal("a mutated file imported to another identity")
		}
	})
}
