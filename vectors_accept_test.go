package veil_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/bech32"
	"github.com/veilchat/veil/internal/testrand"
)

// acceptVector is an input every reader must accept, at an edge of a rule
// of docs/PROTOCOL.md that its comment names: the counterpart of
// rejections.json. Fingerprints are those of the cards the input yields,
// in order (one for a card, one per card of a chain, one per generation
// of an export).
type acceptVector struct {
	Construction string   `json:"construction"` // card, chain, export
	Comment      string   `json:"comment"`
	Input        string   `json:"input,omitempty"`      // card: hex
	InputText    string   `json:"input_text,omitempty"` // export
	Padding      int      `json:"padding,omitempty"`    // export: bytes of one comment line put before input_text
	Cards        []string `json:"cards,omitempty"`      // chain: hex, in order
	Fingerprints []string `json:"fingerprints"`
}

func acceptVectors(t *testing.T, k *vectorKeys) []acceptVector {
	var out []acceptVector
	bob0 := k.bobCards[0]
	card := func(comment string, f cardFields) {
		b := buildCard(f)
		c, err := identity.ParseCard(b)
		if err != nil {
			t.Fatalf("%s: %v", comment, err)
		}
		out = append(out, acceptVector{Construction: "card", Comment: comment, Input: hex.EncodeToString(b), Fingerprints: []string{c.Fingerprint()}})
	}
	gen0 := cardFields{version: 1, kind: 2, generation: 0, created: uint64(bob0.Created().Unix()), user: "bob", seed: k.bobSeed0, recipient: rawRecipient(t, bob0)}
	f := gen0
	f.created = 253402300799
	card("§4.2: created 253402300799 (9999-12-31T23:59:59Z), the largest valid value", f)
	f = gen0
	f.created = 0
	card("§4.2: created 0", f)
	f = gen0
	f.user = "bob\u0085\u00a0é"
	card("§4.2: a user ID with U+0085 (a C1 control), U+00A0 and é: only U+0000–U+001F and U+007F are refused", f)
	f = gen0
	f.user = strings.Repeat("b", 255)
	card("§4.2: a user ID of 255 bytes", f)

	// A chain whose kind changes, with equal creation times.
	next := cardFields{version: 1, kind: 1, generation: 1, created: uint64(bob0.Created().Unix()), user: "bob",
		seed: k.aliceSeed, recipient: k.aliceRecip, prevSeed: k.bobSeed0}
	nb := buildCard(next)
	nc, err := identity.ParseCard(nb)
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.VerifyChain([]*identity.Card{bob0, nc}); err != nil {
		t.Fatal(err)
	}
	out = append(out, acceptVector{Construction: "chain", Comment: "§4.2: an x25519 generation 0 followed by a hybrid generation 1 created the same second: the kind may change, created may stay",
		Cards: []string{hex.EncodeToString(bob0.Marshal()), hex.EncodeToString(nb)}, Fingerprints: []string{bob0.Fingerprint(), nc.Fingerprint()}})

	// The export grammar's edges (§4.5), on bob's export.
	text := k.bobExport
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var g0 int
	for i, l := range lines {
		if strings.HasPrefix(l, "# veil-generation: 0 ") {
			g0 = i
		}
	}
	join := func(ls []string, sep string) string { return strings.Join(ls, sep) }
	between := append(append(append([]string(nil), lines[:g0+1]...), "", "#", "# a comment between a generation line and its key"), lines[g0+1:]...)
	fps := []string{k.bobCards[0].Fingerprint(), k.bobCards[1].Fingerprint()}
	exports := []struct{ comment, text string }{
		{"§4.5: CR LF line ends", join(lines, "\r\n") + "\r\n"},
		{"§4.5: CR LF line ends, the last line unterminated (neither CR nor LF)", join(lines, "\r\n")},
		{"§4.5: the last line unterminated", join(lines, "\n")},
		{"§4.5: empty lines and comments (\"#\" alone too) between a generation line and its key line", join(between, "\n") + "\n"},
		{"§4.5: #veil-extra: 1, a comment (no space after #), where # veil-extra: 1 would be invalid", strings.Replace(text, "# veil-identity: v1\n", "# veil-identity: v1\n#veil-extra: 1\n", 1)},
		{"§4.5: comment lines with trailing spaces and tabs", strings.Replace(text, "# veil-identity: v1\n", "# trailing spaces  \n#\t\n# veil-identity: v1\n", 1)},
		{"§4.5: comments before the header and after the last key line", "# before\n" + text + "# after\n"},
	}
	for _, e := range exports {
		if e.text == text {
			t.Fatalf("%s: the edit changed nothing", e.comment)
		}
		out = append(out, acceptVector{Construction: "export", Comment: e.comment, InputText: e.text, Fingerprints: fps})
	}
	out = append(out, acceptVector{Construction: "export", Comment: "§4.5: a valid export made exactly 4 MiB (4,194,304 bytes) long by a comment line before it",
		InputText: text, Padding: identity.MaxExportSize - len(text), Fingerprints: fps})

	for _, v := range out {
		if err := acceptCheck(t, v); err != nil {
			t.Fatalf("%s: %v", v.Comment, err)
		}
	}
	return out
}

// acceptCheck runs v through the reader of its construction and compares
// what it yields with v's fingerprints.
func acceptCheck(t *testing.T, v acceptVector) error {
	var cards []*identity.Card
	switch v.Construction {
	case "card":
		c, err := identity.ParseCard(unhex(t, v.Input))
		if err != nil {
			return err
		}
		cards = []*identity.Card{c}
	case "chain":
		for _, h := range v.Cards {
			c, err := identity.ParseCard(unhex(t, h))
			if err != nil {
				return err
			}
			cards = append(cards, c)
		}
		if err := identity.VerifyChain(cards); err != nil {
			return err
		}
	case "export":
		id, err := identity.Import(paddedExport(v.InputText, v.Padding))
		if err != nil {
			return err
		}
		cards = id.Cards()
	default:
		t.Fatalf("unknown construction %q", v.Construction)
	}
	if len(cards) != len(v.Fingerprints) {
		return fmt.Errorf("%d cards, want %d", len(cards), len(v.Fingerprints))
	}
	for i, c := range cards {
		if c.Fingerprint() != v.Fingerprints[i] {
			return fmt.Errorf("card %d: fingerprint %s, want %s", i, c.Fingerprint(), v.Fingerprints[i])
		}
	}
	return nil
}

// TestVectorsAccept checks that every stored accept vector is accepted and
// yields its cards.
func TestVectorsAccept(t *testing.T) {
	var av []acceptVector
	readVectors(t, "accepts.json", &av)
	if len(av) == 0 {
		t.Fatal("accepts.json is empty")
	}
	for i, v := range av {
		if err := acceptCheck(t, v); err != nil {
			t.Errorf("accepts[%d] (%s: %s): %v", i, v.Construction, v.Comment, err)
		}
	}
}

// stanzaVector is one recipient stanza of an age file (§2, §7), with every
// intermediate value of opening it.
type stanzaVector struct {
	Comment   string `json:"comment"`
	Type      string `json:"type"`       // mlkem768x25519 or X25519
	SecretKey string `json:"secret_key"` // the recipient's age secret key (§4.1)
	Recipient string `json:"recipient"`  // its age recipient (Bech32)
	Stanza    string `json:"stanza"`     // the stanza as the file's header holds it
	FileKey   string `json:"file_key"`   // what opening it yields
	// Hybrid (mlkem768x25519) only.
	Expanded           string `json:"expanded,omitempty"`             // SHAKE256(seed, 96 bytes)
	MLKEMPublicKey     string `json:"mlkem_public_key,omitempty"`     // from expanded[0:64] (d ‖ z)
	X25519PublicKey    string `json:"x25519_public_key,omitempty"`    // from expanded[64:96]
	Enc                string `json:"enc,omitempty"`                  // the stanza's argument: ct_mlkem ‖ ct_x25519
	SharedMLKEM        string `json:"shared_mlkem,omitempty"`         // ML-KEM-768 decapsulation of ct_mlkem
	SharedX25519       string `json:"shared_x25519,omitempty"`        // X25519(expanded[64:96], ct_x25519)
	SharedSecret       string `json:"shared_secret,omitempty"`        // the X-Wing combiner
	SuiteID            string `json:"suite_id,omitempty"`             // HPKE suite_id
	KeyScheduleContext string `json:"key_schedule_context,omitempty"` // mode ‖ psk_id_hash ‖ info_hash
	Secret             string `json:"secret,omitempty"`
	Key                string `json:"key,omitempty"`
	BaseNonce          string `json:"base_nonce,omitempty"`
	Body               string `json:"body"` // the stanza's body: the wrapped file key
	// X25519 only.
	Share   string `json:"share,omitempty"`    // the stanza's argument: the ephemeral share
	Shared  string `json:"shared,omitempty"`   // X25519(secret, share)
	WrapKey string `json:"wrap_key,omitempty"` // HKDF(shared, share ‖ recipient, "age-encryption.org/v1/X25519")
	Payload string `json:"payload"`            // what the age file's payload opens to
	AgeFile string `json:"age_file"`           // the whole file, in which Stanza is the only stanza
}

// xwingLabel is X-Wing's combiner label, the ASCII art \./ /^\.
var xwingLabel = []byte("\\.//^\\")

// hpkeSuite is the HPKE suite_id of the hybrid stanza: "HPKE" ‖ KEM
// 0x647a (MLKEM768-X25519) ‖ KDF 0x0001 (HKDF-SHA256) ‖ AEAD 0x0003
// (ChaCha20-Poly1305).
var hpkeSuite = []byte("HPKE\x64\x7a\x00\x01\x00\x03")

func labeledExtract(salt []byte, label string, ikm []byte) []byte {
	b := append(append(append([]byte("HPKE-v1"), hpkeSuite...), label...), ikm...)
	prk, err := hkdf.Extract(sha256.New, b, salt)
	if err != nil {
		panic(err)
	}
	return prk
}

func labeledExpand(prk []byte, label string, info []byte, n int) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(n))
	b = append(append(append(append(b, "HPKE-v1"...), hpkeSuite...), label...), info...)
	out, err := hkdf.Expand(sha256.New, prk, string(b), n)
	if err != nil {
		panic(err)
	}
	return out
}

// firstStanza returns an age file's first stanza: its type, arguments,
// body and text.
func firstStanza(t *testing.T, file []byte) (typ string, args []string, body []byte, text string) {
	hdr, _, ok := bytes.Cut(file, []byte("\n---"))
	if !ok {
		t.Fatal("no age header")
	}
	lines := strings.Split(string(hdr), "\n")
	if lines[0] != "age-encryption.org/v1" || !strings.HasPrefix(lines[1], "-> ") {
		t.Fatal("not an age v1 file with a stanza")
	}
	f := strings.Fields(strings.TrimPrefix(lines[1], "-> "))
	var b64 strings.Builder
	n := 2
	for ; n < len(lines); n++ {
		b64.WriteString(lines[n])
		if len(lines[n]) < 64 {
			break
		}
	}
	body, err := base64.RawStdEncoding.DecodeString(b64.String())
	if err != nil {
		t.Fatal(err)
	}
	return f[0], f[1:], body, strings.Join(lines[1:n+1], "\n") + "\n"
}

func stanzaVectors(t *testing.T) []stanzaVector {
	payload := []byte("a stanza vector's payload")
	var out []stanzaVector
	for _, c := range []struct {
		name, hrp, comment string
		parse              func(string) (age.Recipient, error)
	}{
		{"hybrid", "AGE-SECRET-KEY-PQ-", "an mlkem768x25519 stanza of a file age encrypted (crypto/rand replaced by testing/cryptotest), opened step by step",
			func(sk string) (age.Recipient, error) {
				id, err := age.ParseHybridIdentity(sk)
				if err != nil {
					return nil, err
				}
				return id.Recipient(), nil
			}},
		{"x25519", "AGE-SECRET-KEY-", "an X25519 stanza of a file age encrypted (crypto/rand replaced by testing/cryptotest), opened step by step",
			func(sk string) (age.Recipient, error) {
				id, err := age.ParseX25519Identity(sk)
				if err != nil {
					return nil, err
				}
				return id.Recipient(), nil
			}},
	} {
		seed := make([]byte, 32)
		testrand.New("vector/stanza/" + c.name).Read(seed)
		sk, err := bech32.Encode(c.hrp, seed)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.parse(sk)
		if err != nil {
			t.Fatal(err)
		}
		file := ageEncrypt(t, r, payload)
		v := openStanza(t, c.name, sk, file)
		if v.Recipient != fmt.Sprint(r) {
			t.Fatalf("%s: the vector's recipient %s is not age's %s", c.name, v.Recipient, r)
		}
		v.Comment = c.comment
		out = append(out, v)
	}
	return out
}

// openStanza opens the only stanza of file step by step, as §2 and age's
// specification say, with the age secret key sk, and returns every value
// it computed. name is hybrid or x25519.
func openStanza(t *testing.T, name, sk string, file []byte) stanzaVector {
	t.Helper()
	_, seed, err := bech32.Decode(sk)
	if err != nil {
		t.Fatal(err)
	}
	typ, args, body, text := firstStanza(t, file)
	v := stanzaVector{Type: typ, SecretKey: sk, Stanza: text, Body: hex.EncodeToString(body)}
	var fileKey []byte
	switch name {
	case "hybrid":
		enc, err := base64.RawStdEncoding.DecodeString(args[0])
		if err != nil || typ != "mlkem768x25519" || len(args) != 1 || len(enc) != 1120 || len(body) != 32 {
			t.Fatalf("not an mlkem768x25519 stanza: %q", text)
		}
		expanded := sha3.SumSHAKE256(seed, 96)
		dk, err := mlkem.NewDecapsulationKey768(expanded[:64])
		if err != nil {
			t.Fatal(err)
		}
		xsk, err := ecdh.X25519().NewPrivateKey(expanded[64:96])
		if err != nil {
			t.Fatal(err)
		}
		pkX := xsk.PublicKey().Bytes()
		ssM, err := dk.Decapsulate(enc[:1088])
		if err != nil {
			t.Fatal(err)
		}
		ctX, err := ecdh.X25519().NewPublicKey(enc[1088:])
		if err != nil {
			t.Fatal(err)
		}
		ssX, err := xsk.ECDH(ctX)
		if err != nil {
			t.Fatal(err)
		}
		shared := sha3.Sum256(bytes.Join([][]byte{ssM, ssX, enc[1088:], pkX, xwingLabel}, nil))
		info := []byte("age-encryption.org/mlkem768x25519")
		ksc := append(append([]byte{0}, labeledExtract(nil, "psk_id_hash", nil)...), labeledExtract(nil, "info_hash", info)...)
		secret := labeledExtract(shared[:], "secret", nil)
		key := labeledExpand(secret, "key", ksc, 32)
		nonce := labeledExpand(secret, "base_nonce", ksc, 12)
		aead, err := chacha20poly1305.New(key)
		if err != nil {
			t.Fatal(err)
		}
		if fileKey, err = aead.Open(nil, nonce, body, nil); err != nil {
			t.Fatalf("the hybrid stanza does not open: %v", err)
		}
		recip := append(dk.EncapsulationKey().Bytes(), pkX...)
		v.Recipient, _ = bech32.Encode("age1pq", recip)
		v.Expanded, v.MLKEMPublicKey, v.X25519PublicKey = hex.EncodeToString(expanded), hex.EncodeToString(dk.EncapsulationKey().Bytes()), hex.EncodeToString(pkX)
		v.Enc, v.SharedMLKEM, v.SharedX25519, v.SharedSecret = hex.EncodeToString(enc), hex.EncodeToString(ssM), hex.EncodeToString(ssX), hex.EncodeToString(shared[:])
		v.SuiteID, v.KeyScheduleContext, v.Secret = hex.EncodeToString(hpkeSuite), hex.EncodeToString(ksc), hex.EncodeToString(secret)
		v.Key, v.BaseNonce = hex.EncodeToString(key), hex.EncodeToString(nonce)
	case "x25519":
		share, err := base64.RawStdEncoding.DecodeString(args[0])
		if err != nil || typ != "X25519" || len(args) != 1 || len(share) != 32 || len(body) != 32 {
			t.Fatalf("not an X25519 stanza: %q", text)
		}
		priv, err := ecdh.X25519().NewPrivateKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ecdh.X25519().NewPublicKey(share)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := priv.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		wrap, err := hkdf.Key(sha256.New, sh, append(bytes.Clone(share), priv.PublicKey().Bytes()...), "age-encryption.org/v1/X25519", 32)
		if err != nil {
			t.Fatal(err)
		}
		a, err := chacha20poly1305.New(wrap)
		if err != nil {
			t.Fatal(err)
		}
		if fileKey, err = a.Open(nil, make([]byte, 12), body, nil); err != nil {
			t.Fatalf("the X25519 stanza does not open: %v", err)
		}
		v.Recipient, _ = bech32.Encode("age", priv.PublicKey().Bytes())
		v.Share, v.Shared, v.WrapKey = hex.EncodeToString(share), hex.EncodeToString(sh), hex.EncodeToString(wrap)
	default:
		t.Fatalf("unknown stanza kind %q", name)
	}
	checkFileKey(t, file, fileKey)
	v.FileKey = hex.EncodeToString(fileKey)
	ids, err := age.ParseIdentities(strings.NewReader(sk))
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(file), ids...)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	v.Payload, v.AgeFile = hex.EncodeToString(payload), hex.EncodeToString(file)
	return v
}

func ageEncrypt(t *testing.T, r age.Recipient, payload []byte) []byte {
	var b bytes.Buffer
	w, err := age.Encrypt(&b, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkFileKey checks that fileKey authenticates file's header (age's
// header MAC), which only the file's real key does.
func checkFileKey(t *testing.T, file, fileKey []byte) {
	hdr, rest, _ := bytes.Cut(file, []byte("\n--- "))
	macKey, err := hkdf.Key(sha256.New, fileKey, nil, "header", 32)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	mac, err := base64.RawStdEncoding.DecodeString(string(line))
	if err != nil {
		t.Fatal(err)
	}
	m := hmacSHA256(macKey, append(bytes.Clone(hdr), "\n---"...))
	if !bytes.Equal(m, mac) {
		t.Fatal("the file key does not authenticate the header")
	}
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// TestVectorsStanzas opens every stored stanza vector's file with age and
// the vector's secret key, and recomputes the vector from the secret key
// and the stanza alone.
func TestVectorsStanzas(t *testing.T) {
	var sv []stanzaVector
	readVectors(t, "stanzas.json", &sv)
	if len(sv) != 2 {
		t.Fatalf("stanzas.json has %d vectors, want 2", len(sv))
	}
	for _, v := range sv {
		ids, err := age.ParseIdentities(strings.NewReader(v.SecretKey))
		if err != nil {
			t.Fatal(err)
		}
		r, err := age.Decrypt(bytes.NewReader(unhex(t, v.AgeFile)), ids...)
		if err != nil {
			t.Fatalf("%s: %v", v.Type, err)
		}
		if got, _ := io.ReadAll(r); hex.EncodeToString(got) != v.Payload {
			t.Errorf("%s: payload differs", v.Type)
		}
		_, _, _, text := firstStanza(t, unhex(t, v.AgeFile))
		if text != v.Stanza {
			t.Errorf("%s: the file's stanza is not the vector's", v.Type)
		}
		name := "hybrid"
		if v.Type == "X25519" {
			name = "x25519"
		}
		got := openStanza(t, name, v.SecretKey, unhex(t, v.AgeFile))
		got.Comment = v.Comment
		if got != v {
			t.Errorf("%s: recomputed (-vector +recomputed):\n%s", v.Type, cmp.Diff(v, got))
		}
	}
}
