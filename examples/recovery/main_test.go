package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestRun runs the example and checks its transcript: every attempt that
// lacks a half of the two-man rule, or the passphrase, is refused, and
// both recoveries give back the identity the device made (the program
// itself checks the keys and a signature; the transcript shows the
// fingerprints).
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"the backend alone (its key, no code): refused\n      twoman: code_required",
		"a mistyped code: refused\n      twoman: wrong_code",
		"the code without the backend's key (what the SSKS could try): nothing\n      twoman: the encrypted identity cannot be decrypted",
		"a wrong passphrase: refused, and counted\n      twoman: wrong_passphrase",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, got)
		}
	}
	made := regexp.MustCompile(`made her identity: fingerprint ([0-9a-f ]+)…`).FindStringSubmatch(got)
	if made == nil {
		t.Fatalf("the transcript shows no fingerprint:\n%s", got)
	}
	recovered := regexp.MustCompile(`recovered, fingerprint ([0-9a-f ]+)…`).FindAllStringSubmatch(got, -1)
	if len(recovered) != 2 {
		t.Fatalf("the transcript shows %d recoveries, want 2:\n%s", len(recovered), got)
	}
	for _, r := range recovered {
		if r[1] != made[1] {
			t.Errorf("recovered fingerprint %s, want %s", r[1], made[1])
		}
	}
	if strings.Contains(got, "correct horse") {
		t.Errorf("the transcript shows the passphrase:\n%s", got)
	}
}
