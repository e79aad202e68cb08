package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun runs the demo and checks the story it tells: both members read
// the first message, the forged sender is caught, and the removed member is
// locked out of what follows.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`bob reads: "Lunch at noon? 🍜"`,
		`carol reads: "Lunch at noon? 🍜"`,
		"decrypts intact",
		"is rejected",
		`alice reads msg-3: "Carol can't read this"`,
		"carol is locked out",
		"done",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
}
