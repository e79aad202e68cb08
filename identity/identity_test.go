package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/internal/testrand"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func gen(t testing.TB, seed, user string, kind Kind) *Identity {
	t.Helper()
	id, err := Generate(testrand.New(seed), user, Options{Kind: kind, Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func rotate(t testing.TB, id *Identity, seed string) *Identity {
	t.Helper()
	next, err := id.Rotate(testrand.New(seed), Options{Created: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func TestGenerateDeterministicAndKinds(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{KindHybrid, KindX25519} {
		a, b := gen(t, "s", "alice", kind), gen(t, "s", "alice", kind)
		if !a.Equal(b) || !a.Card().Equal(b.Card()) {
			t.Errorf("%v: same seed gave different identities", kind)
		}
		if c := gen(t, "other", "alice", kind); a.Equal(c) {
			t.Errorf("%v: different seeds gave the same identity", kind)
		}
		prefix := map[Kind]string{KindHybrid: "age1pq1", KindX25519: "age1"}[kind]
		if got := a.Card().RecipientString(); !strings.HasPrefix(got, prefix) {
			t.Errorf("%v: recipient %q lacks prefix %q", kind, got[:10], prefix)
		}
	}
	def, err := Generate(nil, "carol", Options{})
	if err != nil || def.Card().Kind() != KindHybrid {
		t.Fatalf("zero Options must give a hybrid identity: %v %v", def, err)
	}
}

func TestGenerateRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, user string
		kind       Kind
		reason     string
	}{
		{"empty user", "", KindHybrid, "a card must name its user"},
		{"long user", strings.Repeat("u", MaxUserIDLen+1), KindHybrid, "the user ID length is bounded"},
		{"control char", "al\nice", KindHybrid, "control characters would forge log lines"},
		{"bad utf8", "\xff", KindHybrid, "user IDs are text"},
		{"unknown kind", "alice", 9, "unknown kinds are refused, never guessed"},
	}
	for _, tc := range tests {
		if _, err := Generate(testrand.New("x"), tc.user, Options{Kind: tc.kind}); err == nil {
			t.Errorf("%s: Generate succeeded; %s", tc.name, tc.reason)
		}
	}
	if _, err := Generate(iotestErrReader{}, "alice", Options{}); err == nil {
		t.Error("a failing random source must fail Generate")
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestCardRoundTrip(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{KindHybrid, KindX25519} {
		id := rotate(t, gen(t, "a", "alice", kind), "a2")
		for _, c := range id.Cards() {
			got, err := ParseCard(c.Marshal())
			if err != nil {
				t.Fatalf("%v gen %d: %v", kind, c.Generation(), err)
			}
			if !got.Equal(c) || got.UserID() != "alice" || got.Created() != c.Created() ||
				got.Kind() != kind || !bytes.Equal(got.SigningKey(), c.SigningKey()) ||
				got.RecipientString() != c.RecipientString() || got.Fingerprint() != c.Fingerprint() {
				t.Errorf("%v gen %d: round trip changed the card", kind, c.Generation())
			}
		}
	}
}

func TestCardTamperEveryByte(t *testing.T) {
	t.Parallel()
	id := rotate(t, gen(t, "a", "alice", KindX25519), "a2")
	prev, card := id.Cards()[0], id.Card()
	raw := card.Marshal()
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		c, err := ParseCard(b)
		if err == nil && c.IsSuccessorOf(prev) {
			t.Fatalf("flipping byte %d of %d still gives a valid successor card", i, len(raw))
		}
	}
	for _, n := range []int{0, 1, len(raw) - 1, len(raw) + 1} {
		b := append(bytes.Clone(raw), 0)[:n]
		if _, err := ParseCard(b); !errors.Is(err, ErrInvalidCard) {
			t.Errorf("length %d: err = %v, want ErrInvalidCard", n, err)
		}
	}
}

func TestRotateAndChain(t *testing.T) {
	t.Parallel()
	a0 := gen(t, "a", "alice", KindHybrid)
	a1 := rotate(t, a0, "a1")
	a2 := rotate(t, a1, "a2")
	if a0.Generation() != 0 || a2.Generation() != 2 || len(a2.Cards()) != 3 {
		t.Fatalf("generations: %d %d %d", a0.Generation(), a2.Generation(), len(a2.Cards()))
	}
	if err := VerifyChain(a2.Cards()); err != nil {
		t.Fatalf("VerifyChain(valid history) = %v", err)
	}
	other := rotate(t, gen(t, "m", "alice", KindHybrid), "m1")
	tests := []struct {
		name, reason string
		cards        []*Card
	}{
		{"empty", "nothing to verify is not success", nil},
		{"reordered", "generations must be consecutive", []*Card{a2.Cards()[1], a2.Cards()[0]}},
		{"gap", "a skipped generation breaks the chain", []*Card{a2.Cards()[0], a2.Cards()[2]}},
		{"foreign successor", "a successor signed by another key is a substitution", []*Card{a2.Cards()[0], other.Cards()[1]}},
		{"other user", "a chain never crosses users", []*Card{gen(t, "b", "bob", KindHybrid).Card(), a2.Cards()[1]}},
	}
	for _, tc := range tests {
		if err := VerifyChain(tc.cards); err == nil {
			t.Errorf("%s: VerifyChain succeeded; %s", tc.name, tc.reason)
		}
	}
	if _, err := a1.Rotate(testrand.New("x"), Options{Created: t0.Add(-time.Hour)}); err == nil {
		t.Error("a generation predating its predecessor must be refused")
	}
}

func TestUnwrapOldGenerations(t *testing.T) {
	t.Parallel()
	a0 := gen(t, "a", "alice", KindHybrid)
	a1 := rotate(t, a0, "a1")
	for _, c := range a1.Cards() {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, c.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "grant for gen "+fmt.Sprint(c.Generation()))
		w.Close()
		r, err := age.Decrypt(&buf, a1)
		if err != nil {
			t.Fatalf("gen %d file does not open with the rotated identity: %v", c.Generation(), err)
		}
		got, _ := io.ReadAll(r)
		if want := "grant for gen " + fmt.Sprint(c.Generation()); string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, gen(t, "b", "bob", KindHybrid).Card().Recipient())
	w.Close()
	if _, err := age.Decrypt(&buf, a1); err == nil {
		t.Error("a file for bob opened with alice's identity")
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	a := gen(t, "a", "alice", KindX25519)
	b := gen(t, "b", "bob", KindX25519)
	sig := a.Sign("veil/test", []byte("hello"))
	if !a.Card().Verify("veil/test", []byte("hello"), sig) {
		t.Fatal("valid signature rejected")
	}
	tests := []struct {
		name, purpose, msg, reason string
		card                       *Card
		sig                        []byte
	}{
		{"other purpose", "veil/other", "hello", "purposes are domain-separated", a.Card(), sig},
		{"other message", "veil/test", "hellO", "the message is signed", a.Card(), sig},
		{"other signer", "veil/test", "hello", "bob did not sign it", b.Card(), sig},
		{"short sig", "veil/test", "hello", "length is checked", a.Card(), sig[:10]},
	}
	for _, tc := range tests {
		if tc.card.Verify(tc.purpose, []byte(tc.msg), tc.sig) {
			t.Errorf("%s: verified; %s", tc.name, tc.reason)
		}
	}
}

func TestPins(t *testing.T) {
	t.Parallel()
	a0 := gen(t, "a", "alice", KindX25519)
	a1 := rotate(t, a0, "a1")
	a2 := rotate(t, a1, "a2")
	evil := gen(t, "evil", "alice", KindX25519)
	evil1 := rotate(t, evil, "evil1")

	var pins MemoryPins
	if err := Check(&pins, a0.Card(), nil); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := Check(&pins, a2.Card(), nil); err == nil {
		t.Fatal("a card two generations ahead without the middle card must not be accepted")
	}
	if err := pins.Pin(a1.Card()); err != nil {
		t.Fatal(err)
	}
	if p, _ := pins.Pinned("alice"); !p.Equal(a1.Card()) {
		t.Fatal("first card seen was not pinned")
	}
	if err := Check(&pins, a1.Card(), nil); err != nil {
		t.Fatalf("pinned card: %v", err)
	}
	if err := Check(&pins, a0.Card(), a2.Cards()); err != nil {
		t.Fatalf("older generation chained to the pin: %v", err)
	}
	if p, _ := pins.Pinned("alice"); !p.Equal(a1.Card()) {
		t.Fatal("an older card moved the pin")
	}
	if err := Check(&pins, a2.Card(), a2.Cards()); err != nil {
		t.Fatalf("newer chained card: %v", err)
	}
	if p, _ := pins.Pinned("alice"); !p.Equal(a2.Card()) {
		t.Fatal("the pin did not advance along a verified chain")
	}

	subs := []struct {
		name, reason string
		card         *Card
		history      []*Card
	}{
		{"fresh key", "a new generation-0 card is a substitution", evil.Card(), nil},
		{"forged history", "a history of another key proves nothing", evil1.Card(), evil1.Cards()},
		{"same gen other key", "two cards for one generation", rotate(t, rotate(t, evil, "e1"), "e2").Card(), nil},
		{"old card via forged middle", "an old card must chain to the pin through genuine cards", a0.Card(), []*Card{a0.Card(), evil1.Card(), a2.Card()}},
		{"history contradicts pin", "the directory's copy of the pinned generation differs", a0.Card(), []*Card{a0.Card(), a1.Card(), evil1.Card()}},
	}
	for _, tc := range subs {
		err := Check(&pins, tc.card, tc.history)
		var kc *KeyChangeError
		if !errors.As(err, &kc) {
			t.Errorf("%s: err = %v, want *KeyChangeError; %s", tc.name, err, tc.reason)
			continue
		}
		if kc.UserID != "alice" || !kc.Old.Equal(a2.Card()) || !kc.New.Equal(tc.card) {
			t.Errorf("%s: KeyChangeError fields wrong: %v", tc.name, kc)
		}
		if p, _ := pins.Pinned("alice"); !p.Equal(a2.Card()) {
			t.Fatalf("%s: a rejected card moved the pin", tc.name)
		}
	}
	// After out-of-band verification the caller re-pins.
	if err := pins.Pin(evil.Card()); err != nil {
		t.Fatal(err)
	}
	if err := Check(&pins, evil.Card(), nil); err != nil {
		t.Fatalf("re-verified card: %v", err)
	}
}

func TestSafetyNumber(t *testing.T) {
	t.Parallel()
	a := gen(t, "a", "alice", KindHybrid)
	b := gen(t, "b", "bob", KindX25519)
	ab, ba := ComputeSafetyNumber(a.Card(), b.Card()), ComputeSafetyNumber(b.Card(), a.Card())
	if diff := cmp.Diff(ab.Digits(), ba.Digits()); diff != "" || !ab.Equal(ba) {
		t.Fatalf("not stable under argument order (-ab +ba):\n%s", diff)
	}
	if len(ab.Digits()) != 60 || strings.Trim(ab.Digits(), "0123456789") != "" {
		t.Fatalf("digits %q: want 60 decimal digits", ab.Digits())
	}
	if s := ab.String(); len(s) != 71 || strings.Count(s, " ") != 11 {
		t.Fatalf("String %q: want 12 groups of 5", s)
	}
	if !ab.MatchPayload(ba.Payload()) || ab.MatchPayload(nil) || ab.MatchPayload(ab.Payload()[1:]) {
		t.Fatal("payload matching is wrong")
	}
	a1 := rotate(t, a, "a1")
	if ComputeSafetyNumber(a1.Card(), b.Card()).Equal(ab) {
		t.Fatal("safety number did not change with alice's keys")
	}
	if (SafetyNumber{}).Equal(SafetyNumber{}) || (SafetyNumber{}).MatchPayload(nil) {
		t.Fatal("the zero SafetyNumber must match nothing")
	}
}

func TestExportImport(t *testing.T) {
	t.Parallel()
	for _, kind := range []Kind{KindHybrid, KindX25519} {
		id := rotate(t, gen(t, "a", "alice", kind), "a1")
		text := id.Export()
		got, err := Import(text)
		if err != nil || !got.Equal(id) {
			t.Fatalf("%v: Import(Export) = %v, %v", kind, got, err)
		}
		// The export is an age identity file: what the age command line reads.
		ids, err := age.ParseIdentities(bytes.NewReader(text))
		if err != nil || len(ids) != 2 {
			t.Fatalf("%v: age.ParseIdentities: %d, %v", kind, len(ids), err)
		}
		var buf bytes.Buffer
		w, _ := age.Encrypt(&buf, id.Cards()[0].Recipient())
		io.WriteString(w, "old grant")
		w.Close()
		if _, err := age.Decrypt(&buf, ids...); err != nil {
			t.Fatalf("%v: age identities from the export do not open an old grant: %v", kind, err)
		}
	}
}

func TestImportRejects(t *testing.T) {
	t.Parallel()
	id := rotate(t, gen(t, "a", "alice", KindX25519), "a1")
	other := gen(t, "b", "bob", KindX25519)
	text := string(id.Export())
	lines := strings.Split(strings.TrimSpace(text), "\n")
	tests := []struct {
		name, text, reason string
	}{
		{"empty", "", "nothing is not an identity"},
		{"no header", strings.Join(lines[3:], "\n"), "the version line is required"},
		{"dropped key line", strings.Join(lines[:len(lines)-1], "\n"), "each generation needs its age key"},
		{"dropped generation 0", strings.Join(append(lines[:4], lines[6:]...), "\n"), "the chain must start at 0"},
		{"swapped age key", strings.Replace(text, strings.TrimSpace(lines[5]), other.gens[0].ageSecret(), 1), "keys must match the card"},
		{"other user", strings.Replace(text, b64.EncodeToString([]byte("alice")), b64.EncodeToString([]byte("bob")), 1), "cards must name the user"},
		{"oversize", strings.Repeat("#", MaxExportSize+1), "input is bounded"},
		{"two spaces", strings.Replace(text, "# veil-generation: 0 ", "# veil-generation: 0  ", 1), "fields are separated by one space"},
		{"tab", strings.Replace(text, "# veil-generation: 0 ", "# veil-generation: 0\t", 1), "fields are separated by one space"},
		{"non-canonical base64", nonCanonicalSeed(t, text), "an export has one encoding"},
		{"leading zero", strings.Replace(text, "# veil-generation: 1 ", "# veil-generation: 01 ", 1), "generation numbers are canonical decimal"},
		{"unknown veil line", strings.Replace(text, "# veil-user:", "# veil-extra: x\n# veil-user:", 1), "unknown veil lines are errors"},
		{"CR inside a field", crInSeed(text), "base64 would skip it: two encodings"},
		{"CR before a field", strings.Replace(text, "# veil-generation: 0 ", "# veil-generation: 0 \r", 1), "base64 would skip it: two encodings"},
		{"bare CR ending the last line", strings.TrimSuffix(text, "\n") + "\r", "a CR is allowed only before an LF, and the unterminated last line has none"},
	}
	if _, err := Import([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		t.Errorf("CRLF line ends: %v", err)
	}
	for _, tc := range tests {
		if _, err := Import([]byte(tc.text)); !errors.Is(err, ErrInvalidExport) {
			t.Errorf("%s: err = %v, want ErrInvalidExport; %s", tc.name, err, tc.reason)
		}
	}
}

func TestPassphraseExport(t *testing.T) {
	t.Parallel()
	id := gen(t, "a", "alice", KindHybrid)
	enc, err := id.ExportWithPassphrase("correct horse", MinWorkFactor)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatalf("not an armored age file: %.40q", enc)
	}
	got, err := ImportWithPassphrase(enc, "correct horse", 0)
	if err != nil || !got.Equal(id) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ImportWithPassphrase(enc, "wrong", 0); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: err = %v", err)
	}
	if _, err := ImportWithPassphrase(enc, "correct horse", MinWorkFactor-1); !errors.Is(err, ErrInvalidExport) {
		t.Errorf("work factor above the caller's bound: err = %v, want ErrInvalidExport", err)
	}
	for _, wf := range []int{-1, MinWorkFactor - 1, 10, MaxWorkFactor + 1, 22} {
		if _, err := id.ExportWithPassphrase("p", wf); err == nil {
			t.Errorf("work factor %d accepted on write: below %d a guess costs next to nothing, above %d readers refuse the file", wf, MinWorkFactor, MaxWorkFactor)
		}
	}
	if _, err := id.ExportWithPassphrase("", 0); err == nil {
		t.Error("empty passphrase accepted")
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	id := rotate(t, gen(t, "a", "alice", KindHybrid), "a1")
	var secrets []string
	for _, g := range id.gens {
		secrets = append(secrets, g.ageSecret(), strings.ToLower(g.ageSecret()),
			b64.EncodeToString(g.signSeed[:]), base64.StdEncoding.EncodeToString(g.signSeed[:]),
			hex.EncodeToString(g.signSeed[:]), hex.EncodeToString(g.encKey[:]), string(g.signSeed[:8]),
			strings.Trim(fmt.Sprint(g.signSeed[:6]), "[]"), strings.Trim(fmt.Sprint(g.encKey[:6]), "[]"))
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", id)
		fmt.Fprintf(&out, verb+"\n", *id)
		fmt.Fprintf(&out, verb+"\n", []any{id})
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "id", id)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "id", id)
	for _, s := range secrets {
		if bytes.Contains(out.Bytes(), []byte(s)) {
			t.Fatalf("secret material %.12q… printed in:\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), "REDACTED") {
		t.Fatalf("expected redacted output, got:\n%s", out.String())
	}
}

// nonCanonicalSeed sets the unused low bits of the last character of
// generation 0's base64url seed (32 bytes: 43 characters, 2 unused bits).
func nonCanonicalSeed(t *testing.T, text string) string {
	t.Helper()
	const prefix = "# veil-generation: 0 "
	i := strings.Index(text, prefix) + len(prefix)
	seed := text[i : i+43]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seed[42])
	if last&3 != 0 {
		t.Fatalf("the seed's last character %q is not canonical to begin with", seed[42])
	}
	return text[:i] + seed[:42] + string(alphabet[last|1]) + text[i+43:]
}

// crInSeed puts a CR inside generation 0's seed field.
func crInSeed(text string) string {
	const prefix = "# veil-generation: 0 "
	i := strings.Index(text, prefix) + len(prefix) + 10
	return text[:i] + "\r" + text[i:]
}

// TestImportWithPassphraseRefusesCostlyFiles: a file demanding more scrypt
// work than MaxWorkFactor (here 19: 512 MiB) is refused before scrypt runs,
// as malformed, whatever the passphrase.
func TestImportWithPassphraseRefusesCostlyFiles(t *testing.T) {
	t.Parallel()
	id := gen(t, "a", "alice", KindX25519)
	enc, err := id.ExportWithPassphrase("pw", MinWorkFactor)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(armor.NewReader(bytes.NewReader(enc)))
	if err != nil {
		t.Fatal(err)
	}
	stanza := fmt.Appendf(nil, " %d\n", MinWorkFactor)
	if bytes.Count(raw, stanza) != 1 {
		t.Fatalf("no single scrypt stanza ending in %q", stanza)
	}
	for _, wf := range []int{MaxWorkFactor + 1, 22} {
		costly := bytes.Replace(raw, stanza, fmt.Appendf(nil, " %d\n", wf), 1)
		if _, err := ImportWithPassphrase(costly, "pw", 0); !errors.Is(err, ErrInvalidExport) {
			t.Errorf("work factor %d: err = %v, want ErrInvalidExport before running scrypt", wf, err)
		}
	}
}

func TestImportWithPassphraseBound(t *testing.T) {
	t.Parallel()
	id := gen(t, "a", "alice", KindX25519)
	enc, err := id.ExportWithPassphrase("pw", MinWorkFactor)
	if err != nil {
		t.Fatal(err)
	}
	for _, bound := range []int{-1, MaxWorkFactor + 1, 22, 31} { // age panics outside [1, 30]
		if _, err := ImportWithPassphrase(enc, "pw", bound); err == nil || errors.Is(err, ErrInvalidExport) {
			t.Errorf("maximum work factor %d: %v, want an argument error", bound, err)
		}
	}
	if _, err := ImportWithPassphrase(enc, "pw", MinWorkFactor); err != nil {
		t.Errorf("maximum work factor %d: %v", MinWorkFactor, err)
	}
}
