package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
)

// digitsOf returns the 60 digits of verify's output.
func digitsOf(out string) string {
	_, after, _ := strings.Cut(out, "safety number:\n")
	lines := strings.SplitN(after, "\n", 3)
	if len(lines) < 2 {
		return ""
	}
	return strings.ReplaceAll(lines[0]+lines[1], " ", "")
}

// TestVerifyVectors: the safety number of the vectors' two cards, given in
// hex files, is the vector's.
func TestVerifyVectors(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte(loadVectorField(t, "safety_numbers.json", "card_a")), 0o600)
	os.WriteFile(b, []byte(loadVectorField(t, "safety_numbers.json", "card_b")+"\n"), 0o600)
	for _, args := range [][]string{{"verify", a, b}, {"verify", b, a}} {
		code, out, errOut := runVeil(args...)
		if code != 0 || digitsOf(out) != loadVectorField(t, "safety_numbers.json", "digits") ||
			!strings.Contains(out, "scannable payload (hex): "+loadVectorField(t, "safety_numbers.json", "payload")) {
			t.Errorf("veil %v: exit %d, digits %q\n%s%s", args, code, digitsOf(out), out, errOut)
		}
	}
	// An identity export stands for its current card; a file that is no
	// card is refused by name, without its content.
	exp := filepath.Join(dir, "alice.veil-identity")
	os.WriteFile(exp, []byte(loadVectorField(t, "identities.json", "export")), 0o600)
	if code, out, errOut := runVeil("verify", exp, b); code != 0 || !strings.Contains(out, "generation 1") {
		t.Errorf("an export as a card: exit %d\n%s%s", code, out, errOut)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not a card at all"), 0o600)
	if code, _, errOut := runVeil("verify", junk, b); code != 1 || !strings.Contains(errOut, junk+": not a valid card") || strings.Contains(errOut, "at all") {
		t.Errorf("a junk card: exit %d, %q", code, errOut)
	}
}

// TestVerifyKeyService: the safety number of a local card with a user's
// directory card, the chain from a pinned card, and the local card's own
// state in the directory.
func TestVerifyKeyService(t *testing.T) {
	ctx := context.Background()
	secret := []byte(strings.Repeat("k", 32))
	store, err := server.OpenStore(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(secret)}}}})
	if err != nil {
		t.Fatal(err)
	}
	ks := httptest.NewServer(h)
	defer ks.Close()

	gen := func(seed, user string) *identity.Identity {
		id, err := identity.Generate(testrand.New(seed), user, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	publish := func(cards ...*identity.Card) {
		tok, _ := server.UserToken(secret, "", cards[0].UserID(), time.Hour)
		c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: ks.URL, Token: keyservice.StaticToken(tok)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PublishHistory(ctx, cards); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob0 := gen("alice", "alice"), gen("bob", "bob")
	bob1, err := bob0.Rotate(testrand.New("bob1"), identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	publish(alice.Card())
	publish(bob1.Cards()...)

	dir := t.TempDir()
	write := func(name string, c *identity.Card) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, cardFileText(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	aliceCard, bob0Card := write("alice.card", alice.Card()), write("bob0.card", bob0.Card())
	impostor := write("impostor.card", gen("impostor", "bob").Card())
	otherAlice := write("other-alice.card", gen("other", "alice").Card())
	want := strings.ReplaceAll(identity.ComputeSafetyNumber(alice.Card(), bob1.Card()).String(), " ", "")

	tok, _ := server.UserToken(secret, "", "alice", time.Hour)
	t.Setenv("VEIL_KEYSERVICE_TOKEN", tok)
	t.Setenv("VEIL_KEYSERVICE_URL", ks.URL)
	tests := []struct {
		name   string
		args   []string
		code   int
		want   []string
		reason string
	}{
		{"newest card", []string{"--user", "bob", aliceCard}, 0,
			[]string{"2 card generation(s)", "holds your card (generation 0) unchanged"}, "bob rotated once"},
		{"pinned generation 0", []string{"--user", "bob", "--pinned", bob0Card, aliceCard}, 0,
			[]string{"chains from the pinned generation 0"}, "generation 1 is signed by generation 0"},
		{"pinned impostor", []string{"--user", "bob", "--pinned", impostor, aliceCard}, 1,
			[]string{"key change", "does not chain from the pinned card"}, "a pin no chain reaches is a key change"},
		{"pinned card of another user", []string{"--user", "bob", "--pinned", aliceCard, aliceCard}, 1,
			[]string{"not of \"bob\""}, "a pin is of the user compared"},
		{"substituted own card", []string{"--user", "bob", otherAlice}, 1,
			[]string{"WARNING: the directory holds OTHER keys", "safety number"}, "the directory serves others another alice: the safety number is shown, and the exit status says the check failed"},
		{"unknown user", []string{"--user", "nobody", aliceCard}, 1,
			[]string{"\"nobody\"", "has no card"}, "no card, no safety number"},
		{"flag for the URL", []string{"--keyservice", ks.URL + "/", "--user", "bob", aliceCard}, 0,
			[]string{"2 card generation(s)"}, "--keyservice with a trailing slash"},
	}
	for _, tc := range tests {
		code, out, errOut := runVeil(append([]string{"verify"}, tc.args...)...)
		ok := code == tc.code
		for _, w := range tc.want {
			ok = ok && strings.Contains(out+errOut, w)
		}
		if tc.code == 0 && digitsOf(out) == "" {
			ok = false
		}
		if tc.code == 0 && tc.name != "substituted own card" && digitsOf(out) != want {
			ok = false
		}
		if !ok {
			t.Errorf("%s (%s): exit %d\n%s%s", tc.name, tc.reason, code, out, errOut)
		}
		if strings.Contains(out+errOut, tok) {
			t.Errorf("%s: the token was printed", tc.name)
		}
	}

	t.Setenv("VEIL_KEYSERVICE_TOKEN", "not-a-token")
	if code, _, errOut := runVeil("verify", "--user", "bob", aliceCard); code != 1 || !strings.Contains(errOut, "unauthenticated") {
		t.Errorf("a bad token: exit %d, %q", code, errOut)
	}
}
