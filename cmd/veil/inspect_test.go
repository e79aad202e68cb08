package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/veilchat/veil/session"
)

// vectorSecrets are the fields of testdata/vectors whose values inspect
// must never print: keys, seeds, passphrases and plaintexts.
var vectorSecrets = map[string]bool{
	"epoch_key": true, "message_key": true, "file_key": true, "ed25519_seed": true,
	"age_secret_key": true, "plaintext_hex": true, "passphrase": true, "epoch_keys": true,
}

// vectorCorpus is every string of every vector file: the inputs to feed
// inspect, and the secrets it must not print (in every encoding a program
// might print bytes in).
type vectorCorpus struct {
	inputs  []vectorInput
	secrets map[string]string // printed form → where it comes from
	// expect maps an input's name to a public value its report must show.
	expect map[string]string
}

type vectorInput struct {
	name string
	data []byte
}

func loadVectorCorpus(t *testing.T) *vectorCorpus {
	t.Helper()
	files, err := filepath.Glob("../../testdata/vectors/*.json")
	if err != nil || len(files) < 8 {
		t.Fatalf("vector files: %v, %v", files, err)
	}
	c := &vectorCorpus{secrets: map[string]string{}, expect: map[string]string{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c.walk(filepath.Base(f), "", v, false)
	}
	return c
}

func (c *vectorCorpus) walk(path, key string, v any, secret bool) {
	switch v := v.(type) {
	case map[string]any:
		c.object(path, v)
		for k, x := range v {
			c.walk(path+"."+k, k, x, secret || vectorSecrets[k])
		}
	case []any:
		for i, x := range v {
			c.walk(fmt.Sprintf("%s[%d]", path, i), key, x, secret)
		}
	case string:
		if secret {
			c.addSecret(path, v)
			return
		}
		if strings.Contains(v, "# veil-generation: ") {
			c.exportSecrets(path, v)
		}
		c.inputs = append(c.inputs, vectorInput{path, []byte(v)})
		if b, err := hex.DecodeString(v); err == nil && len(b) > 0 {
			c.inputs = append(c.inputs, vectorInput{path + " (bytes)", b})
		}
	}
}

// object records what the report of some inputs must show, and the
// plaintext of attachment vectors.
func (c *vectorCorpus) object(path string, o map[string]any) {
	str := func(k string) string { s, _ := o[k].(string); return s }
	if card, fp := str("card"), str("fingerprint"); card != "" && fp != "" {
		c.expect[path+".card (bytes)"] = fp
	}
	if env, sid := str("envelope"), str("session_id"); env != "" && sid != "" {
		c.expect[path+".envelope (bytes)"] = sid
		c.expect[path+".text"] = sid
	}
	if str("grant") != "" {
		c.expect[path+".grant (bytes)"] = "grant (age file"
	}
	if str("record") != "" && str("hash") != "" {
		c.expect[path+".record (bytes)"] = str("hash")
	}
	if str("ciphertext") != "" {
		c.expect[path+".ciphertext (bytes)"] = fmt.Sprintf("%v bytes", o["plaintext_length"])
	}
	if seed, n := str("plaintext_seed"), o["plaintext_length"]; seed != "" {
		// The attachment plaintext: SHA-256(seed ‖ u64(i)) blocks.
		length := int(n.(float64))
		var p []byte
		for i := uint64(0); len(p) < length; i++ {
			h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(seed), i))
			p = append(p, h[:]...)
		}
		if length >= 8 {
			c.addSecretBytes(path+" plaintext", p[:min(length, 64)])
		}
	}
}

// exportSecrets adds the seeds and age secret keys of an export's text.
func (c *vectorCorpus) exportSecrets(path, text string) {
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "AGE-SECRET-KEY") {
			c.addSecret(path+" key line", line)
		}
		if rest, ok := strings.CutPrefix(line, "# veil-generation: "); ok {
			if f := strings.Split(rest, " "); len(f) >= 2 && len(f[1]) >= 16 {
				c.secrets[f[1]] = path + " seed"
				if b, err := base64.RawURLEncoding.DecodeString(f[1]); err == nil {
					c.addSecretBytes(path+" seed", b)
				}
			}
		}
	}
}

func (c *vectorCorpus) addSecret(path, v string) {
	if b, err := hex.DecodeString(v); err == nil {
		c.addSecretBytes(path, b)
		if utf8.Valid(b) && len(b) >= 8 {
			c.secrets[string(b)] = path + " (text)"
		}
		return
	}
	if len(v) >= 8 {
		c.secrets[v] = path
		c.secrets[strings.ToLower(v)] = path
	}
}

// addSecretBytes adds the forms a program might print b in.
func (c *vectorCorpus) addSecretBytes(path string, b []byte) {
	if len(b) < 4 {
		return
	}
	for _, s := range []string{
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		fmt.Sprint(b), fmt.Sprintf("%q", b),
	} {
		if len(s) >= 8 {
			c.secrets[s] = path
		}
	}
}

// leaks returns where the secrets out holds come from.
func (c *vectorCorpus) leaks(out string) []string {
	var found []string
	for s, where := range c.secrets {
		if strings.Contains(out, s) {
			found = append(found, where)
		}
	}
	return found
}

// TestInspectVectors feeds inspect every string of every test vector, as
// text and as the bytes its hex stands for, under auto-detection and under
// each --kind, through the command line: it must never print a key, seed,
// passphrase or plaintext of the vectors, and must decode what it should.
func TestInspectVectors(t *testing.T) {
	c := loadVectorCorpus(t)
	if len(c.secrets) < 100 || len(c.inputs) < 300 || len(c.expect) < 20 {
		t.Fatalf("only %d secrets, %d inputs, %d expectations: the vectors were not read", len(c.secrets), len(c.inputs), len(c.expect))
	}
	// The scan sees an export's keys and an envelope's plaintext, whatever
	// the encoding: else it would prove nothing.
	for _, probe := range []string{loadVectorField(t, "identities.json", "export"), "Hello, world \U0001F44B",
		hex.EncodeToString([]byte("quoting msg-1")), base64.StdEncoding.EncodeToString(mustHex(t, loadVectorField(t, "envelopes.json", "epoch_key")))} {
		if len(c.leaks(probe)) == 0 {
			t.Fatalf("the scan does not see the secret in %.40q", probe)
		}
	}
	dir := t.TempDir()
	recognised := map[string]int{}
	expected := 0
	for i, in := range c.inputs {
		file := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(file, in.data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, kind := range append([]string{""}, inspectKinds...) {
			args := []string{"inspect", "--full", file}
			if kind != "" {
				args = append(args, "--kind", kind)
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != 0 && code != 1 {
				t.Errorf("veil %v on %s: exit %d:\n%s", args, in.name, code, all)
			}
			if code == 1 && (out.Len() != 0 || strings.Count(errOut.String(), "\n") != 1) {
				t.Errorf("veil %v on %s: a refusal is one line on stderr and nothing on stdout; got %q, %q", args, in.name, out.String(), errOut.String())
			}
			if l := c.leaks(all); len(l) > 0 {
				t.Errorf("veil %v on %s printed secrets of %v:\n%s", args, in.name, l, all)
			}
			if kind != "" {
				continue
			}
			if code == 0 {
				title, _, _ := strings.Cut(out.String(), " ")
				recognised[title]++
			}
			if want, ok := c.expect[in.name]; ok {
				expected++
				if code != 0 || !strings.Contains(out.String(), want) {
					t.Errorf("veil inspect on %s: exit %d, want %q in:\n%s", in.name, code, want, all)
				}
			}
		}
	}
	t.Logf("%d inputs, %d secret forms, recognised: %v", len(c.inputs), len(c.secrets), recognised)
	for _, k := range []string{"envelope", "grant", "card", "membership-log", "identity", "passphrase-protected", "encrypted"} {
		if recognised[k] == 0 {
			t.Errorf("no vector was recognised as %s: %v", k, recognised)
		}
	}
	if expected != len(c.expect) {
		t.Errorf("%d of %d expectations were checked", expected, len(c.expect))
	}
}

// TestInspectGarbage: malformed input of every kind is refused with one
// line, never a panic, and the refusal never quotes the input.
func TestInspectGarbage(t *testing.T) {
	card := mustHex(t, loadVectorField(t, "identities.json", "card"))
	env := mustHex(t, loadVectorField(t, "envelopes.json", "envelope"))
	text := loadVectorField(t, "envelopes.json", "text")
	grant := mustHex(t, loadVectorField(t, "grants.json", "grant"))
	tests := []struct {
		name   string
		data   []byte
		kind   string
		reason string
	}{
		{"empty", nil, "", "nothing to decode"},
		{"spaces", []byte(" \n\t\n"), "", "whitespace only"},
		{"NULs", make([]byte, 300), "", "zeros are no object"},
		{"random text", []byte("the quick brown fox jumps over the lazy dog"), "", "prose"},
		{"invalid UTF-8", []byte{0xff, 0xfe, 0xfd, 0x80, 0x81}, "", "bytes that are not text"},
		{"prefix only", []byte("veil1:"), "", "an empty envelope text"},
		{"bad base64", []byte("veil1:!!!!not-base64!!!!"), "", "not base64url"},
		{"padded base64", []byte(text + "="), "", "a text form is unpadded"},
		{"future version", []byte("veil2:AAAA"), "", "versions are never guessed"},
		{"envelope cut", env[:len(env)-1], "envelope", "not the size of any envelope"},
		{"envelope too short", env[:100], "", "shorter than the smallest envelope"},
		{"envelope version 2", append([]byte{2}, env[1:]...), "envelope", "unknown version"},
		{"card cut", card[:len(card)-1], "card", "a card has an exact size"},
		{"card flipped", flip(card, 40), "card", "the self-signature breaks"},
		{"card huge", bytes.Repeat(card, 3), "card", "larger than any card"},
		{"age magic only", []byte("age-encryption.org/v1\n"), "", "an age header without stanzas or MAC"},
		{"age stanza without body", []byte("age-encryption.org/v1\n-> X25519 abc\n"), "grant", "a stanza needs a body line"},
		{"age header cut", grant[:60], "grant", "a truncated grant"},
		{"age long line", append([]byte("age-encryption.org/v1\n-> X25519 "), bytes.Repeat([]byte("A"), 70<<10)...), "grant", "a header past its bound"},
		{"age many stanzas", append([]byte("age-encryption.org/v1\n"), bytes.Repeat([]byte("-> X\n\n"), 100)...), "", "more stanzas than allowed"},
		{"armor unterminated", []byte("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"), "", "an armor without its end line"},
		{"armor garbage", []byte("-----BEGIN AGE ENCRYPTED FILE-----\n!!!!\n-----END AGE ENCRYPTED FILE-----\n"), "export", "not base64"},
		{"export header only", []byte("# veil-identity: v1\n"), "", "no user, no generation"},
		{"export two headers", []byte("# veil-identity: v1\n# veil-identity: v1\n"), "export", "a second header"},
		{"export bad user", []byte("# veil-identity: v1\n# veil-user: !!\n"), "export", "the user is not base64url"},
		{"export bad generation", []byte("# veil-identity: v1\n# veil-user: YWxpY2U\n# veil-generation: 7 AAAA BBBB\nAGE-SECRET-KEY-1XYZ\n"), "export", "generations are numbered from 0"},
		{"odd hex", []byte("abc"), "", "hex of an odd length is no bytes"},
		{"hex garbage", []byte(strings.Repeat("0102", 100)), "", "bytes that start like a card, and are not one"},
		{"record header", []byte{1, 1, 0, 0}, "record", "a truncated genesis"},
		{"record type 3", append([]byte{1, 3}, make([]byte, 200)...), "record", "unknown record type"},
		{"attachment magic only", []byte("VEILATT1"), "", "shorter than the smallest attachment"},
		{"comment only", []byte("# just a comment\n"), "card", "a card file without its card"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		file := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(file, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"inspect", file}
		if tc.kind != "" {
			args = append(args, "--kind", tc.kind)
		}
		code := run(context.Background(), args, &out, &errOut)
		if code != 1 || out.Len() != 0 || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("%s (%s): exit %d, stdout %q, stderr %q; want exit 1 and one line on stderr", tc.name, tc.reason, code, out.String(), errOut.String())
		}
		if s := strings.TrimSpace(string(tc.data)); len(s) >= 8 && strings.Contains(errOut.String(), s[:8]) {
			t.Errorf("%s (%s): the refusal quotes the input: %q", tc.name, tc.reason, errOut.String())
		}
	}
}

// TestInspectInputs: the input comes from a file, standard input, or the
// argument for an envelope's text, in any of the encodings.
func TestInspectInputs(t *testing.T) {
	text := loadVectorField(t, "envelopes.json", "text")
	sid := loadVectorField(t, "envelopes.json", "session_id")
	cardHex := loadVectorField(t, "identities.json", "card")
	fp := loadVectorField(t, "identities.json", "fingerprint")
	card := mustHex(t, cardHex)
	for _, tc := range []struct {
		name string
		arg  string // "" for a file holding data
		data []byte
		want string
	}{
		{"argument", text, nil, sid},
		{"text file with newline", "", []byte(text + "\n"), sid},
		{"binary card", "", card, fp},
		{"hex card", "", []byte(cardHex), fp},
		{"upper-case hex card", "", []byte(strings.ToUpper(cardHex)), fp},
		{"base64 card", "", []byte(base64.StdEncoding.EncodeToString(card)), fp},
		{"raw base64url card", "", []byte(base64.RawURLEncoding.EncodeToString(card)), fp},
		{"card file with comments", "", []byte("# a card\n" + base64.StdEncoding.EncodeToString(card) + "\n"), fp},
	} {
		arg := tc.arg
		if arg == "" {
			arg = filepath.Join(t.TempDir(), "in")
			if err := os.WriteFile(arg, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"inspect", arg}, &out, &errOut); code != 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d, want %q in %q (stderr %q)", tc.name, code, tc.want, out.String(), errOut.String())
		}
	}
	// Standard input, as "-" and as no argument.
	for _, args := range [][]string{{"inspect", "-"}, {"inspect"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { w.Write([]byte(text)); w.Close() }()
		stdin := os.Stdin
		os.Stdin = r
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, &out, &errOut)
		os.Stdin = stdin
		r.Close()
		if code != 0 || !strings.Contains(out.String(), sid) {
			t.Errorf("veil %v from standard input: exit %d, %q %q", args, code, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"inspect", filepath.Join(t.TempDir(), "missing")}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no such file") {
		t.Errorf("a missing file: exit %d, %q", code, errOut.String())
	}
}

// TestInspectEnvelopeRange: the plaintext range inspect prints holds the
// plaintext length, and its bounds are where the envelope's size changes.
func TestInspectEnvelopeRange(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 100, 3583, 70000, session.MaxPlaintextSize} {
		size := session.SealedSize(n)
		lo, hi, ok := plaintextRange(size)
		if !ok || lo > n || hi < n {
			t.Errorf("plaintextRange(%d) = %d, %d, %v; want a range holding %d", size, lo, hi, ok, n)
			continue
		}
		if lo > 0 && session.SealedSize(lo-1) == size || hi < session.MaxPlaintextSize && session.SealedSize(hi+1) == size {
			t.Errorf("plaintextRange(%d) = %d, %d: not the whole range", size, lo, hi)
		}
	}
	if _, _, ok := plaintextRange(session.SealedSize(100) + 1); ok {
		t.Error("a size between two envelope sizes was accepted")
	}
}

func loadVectorField(t *testing.T, file, field string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/vectors", file))
	if err != nil {
		t.Fatal(err)
	}
	var v []map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	// The last vector holding the field: envelopes' first has an empty
	// plaintext, identities' last a rotated generation.
	for _, o := range slices.Backward(v) {
		if s, ok := o[field].(string); ok && s != "" {
			return s
		}
	}
	t.Fatalf("%s has no %s", file, field)
	return ""
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// FuzzInspect: no input makes inspect panic, and a refusal never quotes
// the input.
func FuzzInspect(f *testing.F) {
	for _, file := range []string{"identities.json", "envelopes.json", "grants.json"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/vectors", file))
		if err != nil {
			f.Fatal(err)
		}
		var v []map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			f.Fatal(err)
		}
		for _, o := range v {
			for _, x := range o {
				if s, ok := x.(string); ok {
					f.Add([]byte(s), "")
					if h, err := hex.DecodeString(s); err == nil {
						f.Add(h, "")
					}
				}
			}
		}
	}
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\nAAAA\n--- AAAA\n"), "grant")
	f.Add([]byte("# veil-identity: v1\n# veil-user: YQ\n"), "export")
	f.Fuzz(func(t *testing.T, data []byte, kind string) {
		if kind != "" && !slices.Contains(inspectKinds, kind) {
			kind = ""
		}
		r, err := inspect(data, kind, true)
		if err != nil {
			if r != nil {
				t.Fatal("a report with an error")
			}
			if s := strings.TrimSpace(string(data)); len(s) >= 12 && strings.Contains(err.Error(), s) {
				t.Fatalf("the refusal quotes the input: %v", err)
			}
			return
		}
		var out bytes.Buffer
		r.write(&out)
	})
}
