package e2ee

import (
	"bytes"
	"testing"

	"github.com/veilchat/veil/internal/testrand"
)

// mustStateKey parses a test key of StateKeySize bytes.
func mustStateKey(b []byte) StateKey {
	k, err := ParseStateKey(b)
	if err != nil {
		panic(err)
	}
	return k
}

func TestParseStateKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
		in           []byte
		ok           bool
	}{
		{"32 bytes", "the one valid size", bytes.Repeat([]byte{7}, StateKeySize), true},
		{"31 bytes", "a truncated key is refused, not padded", bytes.Repeat([]byte{7}, StateKeySize-1), false},
		{"33 bytes", "a longer key is refused, not truncated", bytes.Repeat([]byte{7}, StateKeySize+1), false},
		{"empty", "no key is not the zero key", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseStateKey(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseStateKey(%d bytes) error %v, want ok %v (%s)", len(tc.in), err, tc.ok, tc.reason)
			}
			if tc.ok && !bytes.Equal(k.Bytes(), tc.in) {
				t.Errorf("Bytes does not give the parsed bytes back (%s)", tc.reason)
			}
			if !tc.ok && k.Bytes() != nil {
				t.Errorf("a refused key is not the zero value (%s)", tc.reason)
			}
		})
	}
}

func TestStateKeyCopies(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte{7}, StateKeySize)
	k := mustStateKey(in)
	clear(in)
	out := k.Bytes()
	clear(out)
	if !bytes.Equal(k.Bytes(), bytes.Repeat([]byte{7}, StateKeySize)) {
		t.Fatal("a StateKey shares bytes with its input or its output: clearing them changed the key")
	}
	a, _ := NewStateKey(testrand.New("a"))
	b, _ := NewStateKey(testrand.New("b"))
	if len(a.Bytes()) != StateKeySize || bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("NewStateKey does not read StateKeySize bytes of its randomness")
	}
}
