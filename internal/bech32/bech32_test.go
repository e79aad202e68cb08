package bech32

import (
	"bytes"
	"testing"
)

func TestBIP173Vectors(t *testing.T) {
	valid := []string{
		"A12UEL5L",
		"a12uel5l",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	}
	for _, s := range valid {
		hrp, data, err := Decode(s)
		if err != nil {
			t.Errorf("Decode(%q): %v", s, err)
			continue
		}
		got, err := Encode(hrp, data)
		if err != nil || got != s {
			t.Errorf("Encode(Decode(%q)) = %q, %v", s, got, err)
		}
	}
	invalid := []struct{ s, reason string }{
		{"pzry9x0s0muk", "no separator"},
		{"1pzry9x0s0muk", "empty hrp"},
		{"x1b4n0q5v", "invalid data character"},
		{"li1dgmt3", "checksum too short"},
		{"A1G7SGD8", "checksum computed with uppercase hrp"},
		{"a12UEL5L", "mixed case"},
		{"a12uel5m", "wrong checksum"},
	}
	for _, tc := range invalid {
		if _, _, err := Decode(tc.s); err == nil {
			t.Errorf("Decode(%q) succeeded; want an error (%s)", tc.s, tc.reason)
		}
	}
}

func TestRoundTripLong(t *testing.T) {
	data := bytes.Repeat([]byte{0xa5, 0x01, 0xff}, 500)
	s, err := Encode("age1pq", data)
	if err != nil {
		t.Fatal(err)
	}
	hrp, got, err := Decode(s)
	if err != nil || hrp != "age1pq" || !bytes.Equal(got, data) {
		t.Fatalf("round trip failed: hrp %q, err %v", hrp, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")
	f.Add("A12UEL5L")
	f.Fuzz(func(t *testing.T, s string) {
		hrp, data, err := Decode(s)
		if err != nil {
			return
		}
		if _, err := Encode(hrp, data); err != nil {
			t.Fatalf("decoded %q but cannot re-encode: %v", s, err)
		}
	})
}
