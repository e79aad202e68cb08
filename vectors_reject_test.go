package veil_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/bech32"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

// rejectVector is an input every reader must reject. Most are well formed
// in every respect a forger could not reproduce — validly signed, with valid
// AEAD tags — and break exactly one rule of docs/PROTOCOL.md, which the
// comment names.
type rejectVector struct {
	Construction string           `json:"construction"` // card, chain, export, passphrase_export, envelope, text, grant, attachment
	Comment      string           `json:"comment"`
	Input        string           `json:"input,omitempty"`      // hex, for binary inputs
	InputText    string           `json:"input_text,omitempty"` // for text inputs
	Padding      int              `json:"padding,omitempty"`    // export: bytes of one comment line put before input_text
	Cards        []string         `json:"cards,omitempty"`      // chain: a card history, hex, in order
	Envelope     *envelopeContext `json:"envelope_context,omitempty"`
	Grant        *grantContext    `json:"grant_context,omitempty"`
	FileKey      string           `json:"file_key,omitempty"`
	Passphrase   string           `json:"passphrase,omitempty"`
}

// envelopeContext is what a reader holds when it opens an envelope: the
// session's key for the epoch, the sender's trusted card and the context.
type envelopeContext struct {
	SessionID  string `json:"session_id"`
	ChannelCID string `json:"channel_cid"`
	Epoch      uint32 `json:"epoch"`
	EpochKey   string `json:"epoch_key"`
	SenderCard string `json:"sender_card"`
	MessageID  string `json:"message_id"`
	SenderID   string `json:"sender_id"`
	ParentID   string `json:"parent_id"`
	QuotedID   string `json:"quoted_id"`
	Revision   uint32 `json:"revision"`
	// SessionChannelCID is the channel the session's genesis names, when
	// it is not ChannelCID (the message's).
	SessionChannelCID string `json:"session_channel_cid,omitempty"`
	// MinSenderGeneration is the oldest generation of the sender that may
	// sign envelopes of the epoch, as the reader's verified log says
	// (§10.4: the newest generation the sender had signed a record with
	// when the epoch began).
	MinSenderGeneration uint32 `json:"min_sender_generation,omitempty"`
}

// grantContext is what a grantee holds when it opens a grant: its identity,
// the granter's trusted cards, and what it asked for.
type grantContext struct {
	GranteeExport string   `json:"grantee_export"`
	GranterCards  []string `json:"granter_cards"`
	SessionID     string   `json:"session_id"`
	Epoch         uint32   `json:"epoch"`
	ChannelCID    string   `json:"channel_cid"`
	// MinGranterGeneration is the oldest generation of the granter that
	// may sign grants of the epoch, as the reader's verified log says
	// (§10.4).
	MinGranterGeneration uint32 `json:"min_granter_generation,omitempty"`
}

// vectorKeys are the key materials of the vector identities (alice is
// hybrid, bob x25519; generation 1 of each comes from Rotate).
type vectorKeys struct {
	ids                    map[string]*identity.Identity
	aliceSeed, bobSeed     []byte // generation 1 Ed25519 seeds
	aliceSeed0, bobSeed0   []byte // generation 0
	aliceRecip, bobRecip   []byte // raw generation 1 recipients
	aliceCards, bobCards   []*identity.Card
	aliceExport, bobExport string
}

func loadVectorKeys(t *testing.T) *vectorKeys {
	_, ids := identityVectors(t)
	k := &vectorKeys{ids: ids}
	k.aliceSeed0, _ = genMaterial("vector/alice/hybrid")
	k.bobSeed0, _ = genMaterial("vector/bob/x25519")
	k.aliceSeed, _ = genMaterial("vector/alice/rotated")
	k.bobSeed, _ = genMaterial("vector/bob/rotated")
	k.aliceCards, k.bobCards = ids["alice"].Cards(), ids["bob"].Cards()
	k.aliceRecip = rawRecipient(t, k.aliceCards[1])
	k.bobRecip = rawRecipient(t, k.bobCards[1])
	k.aliceExport, k.bobExport = string(ids["alice"].Export()), string(ids["bob"].Export())
	return k
}

func rawRecipient(t *testing.T, c *identity.Card) []byte {
	_, raw, err := bech32.Decode(c.RecipientString())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func labeled(label string, msg []byte) []byte {
	return append(append([]byte(label), 0), msg...)
}

// cardFields are the fields of a card, to be encoded by buildCard as
// PROTOCOL.md §4.2 says, whatever their values.
type cardFields struct {
	version, kind byte
	generation    uint32
	created       uint64
	user          string
	seed          []byte // signs the card
	recipient     []byte
	prevSeed      []byte // signs as the previous generation; nil: no prev_sig
	selfLabel     string // "" means veil/v1/card
}

func buildCard(f cardFields) []byte {
	b := []byte{f.version, f.kind}
	b = binary.BigEndian.AppendUint32(b, f.generation)
	b = binary.BigEndian.AppendUint64(b, f.created)
	b = append(b, byte(len(f.user)))
	b = append(b, f.user...)
	b = append(b, ed25519.NewKeyFromSeed(f.seed).Public().(ed25519.PublicKey)...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.recipient)))
	b = append(b, f.recipient...)
	label := f.selfLabel
	if label == "" {
		label = "veil/v1/card"
	}
	out := append(bytes.Clone(b), ed25519.Sign(ed25519.NewKeyFromSeed(f.seed), labeled(label, b))...)
	if f.prevSeed != nil {
		out = append(out, ed25519.Sign(ed25519.NewKeyFromSeed(f.prevSeed), labeled("veil/v1/card-successor", b))...)
	}
	return out
}

// weakKey returns an edit of a generation-0 card of a user ID of n bytes:
// its signing key replaced by key (hex), and its self-signature by
// R = identity, S = 0, which ZIP 215 accepts for every message under a key
// of small order.
func weakKey(n int, key string) func(b []byte) []byte {
	return func(b []byte) []byte {
		k, _ := hex.DecodeString(key)
		b = bytes.Clone(b)
		copy(b[15+n:], k)
		sig := b[len(b)-ed25519.SignatureSize:]
		clear(sig)
		sig[0] = 1 // R: the identity point, (0, 1); S: 0
		return b
	}
}

func cardRejections(t *testing.T, k *vectorKeys) []rejectVector {
	bob1 := k.bobCards[1]
	base := cardFields{
		version: 1, kind: 2, generation: 1, created: uint64(bob1.Created().Unix()), user: "bob",
		seed: k.bobSeed, recipient: k.bobRecip, prevSeed: k.bobSeed0,
	}
	if got := buildCard(base); !bytes.Equal(got, bob1.Marshal()) {
		t.Fatal("buildCard does not reproduce bob's generation-1 card")
	}
	badMLKEM := bytes.Clone(k.aliceRecip)
	badMLKEM[0], badMLKEM[1] = 0xff, 0x0f // the first 12-bit coefficient is 4095 ≥ q
	cases := []struct {
		comment string
		edit    func(f *cardFields)
		after   func(b []byte) []byte
	}{
		{"§1: version 2", func(f *cardFields) { f.version = 2 }, nil},
		{"§4.2: unknown kind 3", func(f *cardFields) { f.kind = 3 }, nil},
		{"§4.2: kind x25519 with a 1,216-byte (hybrid) recipient", func(f *cardFields) { f.recipient = k.aliceRecip }, nil},
		{"§4.2: kind hybrid with a 32-byte recipient", func(f *cardFields) { f.kind = 1 }, nil},
		{"§4.2: hybrid recipient whose ML-KEM-768 key fails the FIPS 203 modulus check", func(f *cardFields) { f.kind, f.recipient = 1, badMLKEM }, nil},
		{"§4.2: user ID with a line feed", func(f *cardFields) { f.user = "bo\nb" }, nil},
		{"§4.2: user ID with DEL", func(f *cardFields) { f.user = "bo\x7fb" }, nil},
		{"§4.2: user ID that is not UTF-8", func(f *cardFields) { f.user = "bo\xffb" }, nil},
		{"§4.2: empty user ID", func(f *cardFields) { f.user = "" }, nil},
		{"§4.2: created after 9999-12-31T23:59:59Z", func(f *cardFields) { f.created = 253402300800 }, nil},
		{"§4.2: generation 1,024", func(f *cardFields) { f.generation = 1024 }, nil},
		{"§4.2: generation 1 without prev_sig", func(f *cardFields) { f.prevSeed = nil }, nil},
		{"§4.2: generation 0 with a prev_sig", func(f *cardFields) { f.generation = 0 }, nil},
		{"§4.2: self-signature under veil/v1/card-successor", func(f *cardFields) { f.selfLabel = "veil/v1/card-successor" }, nil},
		{"§4.2: self-signature by another key", nil, func(b []byte) []byte {
			body := b[:len(b)-128]
			copy(b[len(body):], ed25519.Sign(ed25519.NewKeyFromSeed(k.aliceSeed), labeled("veil/v1/card", body)))
			return b
		}},
		{"§4.2: signing key of small order (the identity point), self-signed with R = identity, S = 0, a signature it verifies for every message",
			func(f *cardFields) { f.generation, f.prevSeed = 0, nil }, weakKey(len(base.user), "0100000000000000000000000000000000000000000000000000000000000000")},
		{"§4.2: signing key of small order (order 8), self-signed with R = identity, S = 0, a signature it verifies for every message",
			func(f *cardFields) { f.generation, f.prevSeed = 0, nil }, weakKey(len(base.user), "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")},
		{"§4.2: signing key non-canonically encoded (the identity point with y = p + 1), self-signed with R = identity, S = 0",
			func(f *cardFields) { f.generation, f.prevSeed = 0, nil }, weakKey(len(base.user), "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")},
		{"§4.2: a trailing byte", nil, func(b []byte) []byte { return append(b, 0) }},
		{"§4.2: truncated by one byte", nil, func(b []byte) []byte { return b[:len(b)-1] }},
	}
	var out []rejectVector
	for _, c := range cases {
		f := base
		if c.edit != nil {
			c.edit(&f)
		}
		b := buildCard(f)
		if c.after != nil {
			b = c.after(b)
		}
		out = append(out, rejectVector{Construction: "card", Comment: c.comment, Input: hex.EncodeToString(b)})
	}
	return out
}

func exportRejections(t *testing.T, k *vectorKeys) []rejectVector {
	text := k.bobExport
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	genLine := func(g int) int {
		for i, l := range lines {
			if strings.HasPrefix(l, "# veil-generation: "+string(rune('0'+g))+" ") {
				return i
			}
		}
		t.Fatalf("no generation %d line", g)
		return 0
	}
	g0, g1 := genLine(0), genLine(1)
	join := func(ls ...[]string) string {
		var all []string
		for _, l := range ls {
			all = append(all, l...)
		}
		return strings.Join(all, "\n") + "\n"
	}
	seed0 := base64.RawURLEncoding.EncodeToString(k.bobSeed0)
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", seed0[42])
	nonCanonical := seed0[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
	_, ageKey0, _ := bech32.Decode(lines[g0+1])
	pqHRP, _ := bech32.Encode("AGE-SECRET-KEY-PQ-", ageKey0)
	aliceSeed := base64.RawURLEncoding.EncodeToString(k.aliceSeed0)
	bob1 := k.bobCards[1]
	userLine := "# veil-user: " + base64.RawURLEncoding.EncodeToString([]byte("bob"))
	unchained := buildCard(cardFields{version: 1, kind: 2, generation: 1, created: uint64(bob1.Created().Unix()), user: "bob",
		seed: k.bobSeed, recipient: k.bobRecip, prevSeed: k.aliceSeed0})
	cases := []struct{ comment, text string }{
		{"§4.5: no veil-identity line", join(lines[:g0-2], lines[g0-1:])},
		{"§4.5: veil-identity v2", strings.Replace(text, "# veil-identity: v1", "# veil-identity: v2", 1)},
		{"§4.5: an unknown # veil- line", strings.Replace(text, "# veil-user:", "# veil-extra: 1\n# veil-user:", 1)},
		{"§4.5: two spaces between fields", strings.Replace(text, "# veil-generation: 0 ", "# veil-generation: 0  ", 1)},
		{"§4.5: a tab between fields", strings.Replace(text, "# veil-generation: 0 ", "# veil-generation: 0\t", 1)},
		{"§4.5: generation number with a leading zero", strings.Replace(text, "# veil-generation: 1 ", "# veil-generation: 01 ", 1)},
		{"§4.5: non-canonical base64url (unused bits set)", strings.Replace(text, seed0, nonCanonical, 1)},
		{"§4.5: a CR inside a field (base64 decoders skip it)", strings.Replace(text, seed0, seed0[:10]+"\r"+seed0[10:], 1)},
		{"§4.5: a bare CR ending the unterminated last line (a CR is allowed only before an LF)", strings.TrimSuffix(text, "\n") + "\r"},
		{"§4.5: generations out of order", join(lines[:g0], lines[g1:g1+2], lines[g0:g0+2])},
		{"§4.5: generation 1 missing its key line", join(lines[:g1+1])},
		{"§4.5: an extra key line", join(lines, lines[g1+1:g1+2])},
		{"§4.5: age key in lower case", strings.Replace(text, lines[g0+1], strings.ToLower(lines[g0+1]), 1)},
		{"§4.5: age key with the HRP of the other kind", strings.Replace(text, lines[g0+1], pqHRP, 1)},
		{"§4.5: seed that does not derive the card's signing key", strings.Replace(text, seed0, aliceSeed, 1)},
		{"§4.5: user line naming another user", strings.Replace(text, "# veil-user: "+base64.RawURLEncoding.EncodeToString([]byte("bob")), "# veil-user: "+base64.RawURLEncoding.EncodeToString([]byte("bobby")), 1)},
		{"§4.5: a trailing space after the header line", strings.Replace(text, "# veil-identity: v1\n", "# veil-identity: v1 \n", 1)},
		{"§4.5: a trailing space after a generation line", strings.Replace(text, lines[g0]+"\n", lines[g0]+" \n", 1)},
		{"§4.5: a trailing space after a key line", strings.Replace(text, lines[g0+1]+"\n", lines[g0+1]+" \n", 1)},
		{"§4.5: CR CR LF ends a line (one CR stays in the line)", strings.Replace(text, "# veil-identity: v1\n", "# veil-identity: v1\r\r\n", 1)},
		{"§4.5: a second header line", strings.Replace(text, "# veil-identity: v1\n", "# veil-identity: v1\n# veil-identity: v1\n", 1)},
		{"§4.1, §4.5: age key in mixed case", strings.Replace(text, lines[g0+1], mixedCase(lines[g0+1]), 1)},
		{"§4.5: generation 0's age key line holds generation 1's key, which does not derive the card's recipient", strings.Replace(text, lines[g0+1]+"\n", lines[g1+1]+"\n", 1)},
		{"§4.5: generation 1's card is valid but its prev_sig is not by generation 0's key: the cards do not chain", strings.Replace(text, strings.Fields(lines[g1])[4], base64.RawURLEncoding.EncodeToString(unchained), 1)},
		{"§4.5: a second user line", strings.Replace(text, userLine+"\n", userLine+"\n"+userLine+"\n", 1)},
		{"§4.5: the user line's base64url with padding (=)", strings.Replace(text, userLine+"\n", userLine+"=\n", 1)},
		{"§4.5: the generation-0 line carries generation 1's seed and card (and its key line generation 1's key)", join(lines[:g0], []string{"# veil-generation: 0 " + strings.SplitN(lines[g1], " ", 4)[3], lines[g1+1]}, lines[g1:])},
		{"§2, §4.5: an age key with a bad Bech32 checksum", strings.Replace(text, lines[g0+1], badChecksum(lines[g0+1]), 1)},
		{"§2, §4.5: an age key whose 4 padding bits are not zero (a valid checksum)", strings.Replace(text, lines[g0+1], paddingBitsSet(t, lines[g0+1]), 1)},
	}
	var out []rejectVector
	for _, c := range cases {
		if c.text == text {
			t.Fatalf("%s: the edit changed nothing", c.comment)
		}
		out = append(out, rejectVector{Construction: "export", Comment: c.comment, InputText: c.text})
	}
	out = append(out, rejectVector{Construction: "export", Comment: "§4.5: a valid export made 4 MiB + 1 byte long by a comment line before it (readers bound the input at 4,194,304 bytes)",
		InputText: text, Padding: identity.MaxExportSize + 1 - len(text)})

	// A passphrase export whose scrypt work factor (log2 N = 19) is above
	// the reader's bound: refused before scrypt runs.
	enc, err := k.ids["bob"].ExportWithPassphrase("correct horse", identity.MinWorkFactor)
	if err != nil {
		t.Fatal(err)
	}
	raw := dearmor(t, enc)
	raw = bytes.Replace(raw, fmt.Appendf(nil, " %d\n", identity.MinWorkFactor), []byte(" 19\n"), 1)
	out = append(out, rejectVector{
		Construction: "passphrase_export", Comment: "§4.5: scrypt work factor 19, above the bound of 18",
		InputText: string(armorBytes(t, raw)), Passphrase: "correct horse",
	})
	// The same file with an X25519 stanza beside the scrypt one: a
	// passphrase file has exactly one stanza.
	two := dearmor(t, enc)
	x := []byte("-> X25519 " + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)) + "\n" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	at := bytes.Index(two, []byte("\n---")) + 1
	two = append(append(append([]byte(nil), two[:at]...), x...), two[at:]...)
	out = append(out, rejectVector{
		Construction: "passphrase_export", Comment: "§4.5: an X25519 stanza beside the scrypt stanza",
		InputText: string(armorBytes(t, two)), Passphrase: "correct horse",
	})
	return out
}

// bech32Charset is Bech32's alphabet (BIP 173).
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// badChecksum changes the last character of a Bech32 string (its
// checksum's) to another of the same case.
func badChecksum(s string) string {
	last := strings.IndexByte(bech32Charset, strings.ToLower(s[len(s)-1:])[0])
	return s[:len(s)-1] + strings.ToUpper(string(bech32Charset[(last+1)%32]))
}

// paddingBitsSet returns the upper-case Bech32 string s (of 32 bytes of
// data) with the low bit of its last data character set — a padding bit,
// as 52 characters carry 260 bits — and the checksum computed again.
func paddingBitsSet(t *testing.T, s string) string {
	lower := strings.ToLower(s)
	pos := strings.LastIndexByte(lower, '1')
	hrp, data := lower[:pos], lower[pos+1:len(lower)-6]
	values := make([]byte, len(data))
	for i := range data {
		values[i] = byte(strings.IndexByte(bech32Charset, data[i]))
	}
	if len(values) != 52 {
		t.Fatalf("%d data characters, want 52", len(values))
	}
	values[51] |= 1
	polymod := func(vs []byte) uint32 {
		gen := []uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
		chk := uint32(1)
		for _, v := range vs {
			top := chk >> 25
			chk = (chk&0x1ffffff)<<5 ^ uint32(v)
			for i := range 5 {
				if (top>>i)&1 == 1 {
					chk ^= gen[i]
				}
			}
		}
		return chk
	}
	var exp []byte
	for _, c := range []byte(hrp) {
		exp = append(exp, c>>5)
	}
	exp = append(exp, 0)
	for _, c := range []byte(hrp) {
		exp = append(exp, c&31)
	}
	mod := polymod(append(append(exp, values...), 0, 0, 0, 0, 0, 0)) ^ 1
	out := []byte(hrp + "1")
	for _, v := range values {
		out = append(out, bech32Charset[v])
	}
	for i := range 6 {
		out = append(out, bech32Charset[(mod>>(5*(5-i)))&31])
	}
	return strings.ToUpper(string(out))
}

// mixedCase lower-cases every other letter of s.
func mixedCase(s string) string {
	b := []byte(s)
	n := 0
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			if n%2 == 1 {
				b[i] = c + 'a' - 'A'
			}
			n++
		}
	}
	return string(b)
}

// chainRejections are card histories that break §4.2's chain rule: every
// card valid alone.
func chainRejections(t *testing.T, k *vectorKeys) []rejectVector {
	bob0, bob1 := k.bobCards[0], k.bobCards[1]
	base := cardFields{version: 1, kind: 2, generation: 1, created: uint64(bob1.Created().Unix()), user: "bob",
		seed: k.bobSeed, recipient: k.bobRecip, prevSeed: k.bobSeed0}
	if !bytes.Equal(buildCard(base), bob1.Marshal()) {
		t.Fatal("buildCard does not reproduce bob's generation-1 card")
	}
	h0 := hex.EncodeToString(bob0.Marshal())
	cases := []struct {
		comment string
		edit    func(f *cardFields)
	}{
		{"§4.2: generation 2 after generation 0", func(f *cardFields) { f.generation = 2 }},
		{"§4.2: the successor was created one second before its predecessor", func(f *cardFields) { f.created = uint64(bob0.Created().Unix()) - 1 }},
		{"§4.2: prev_sig by another key than the predecessor's", func(f *cardFields) { f.prevSeed = k.aliceSeed0 }},
		{"§4.2: the successor names another user (bobby)", func(f *cardFields) { f.user = "bobby" }},
	}
	var out []rejectVector
	for _, c := range cases {
		f := base
		c.edit(&f)
		b := buildCard(f)
		if _, err := identity.ParseCard(b); err != nil {
			t.Fatalf("%s: the successor is not a valid card alone: %v", c.comment, err)
		}
		out = append(out, rejectVector{Construction: "chain", Comment: c.comment, Cards: []string{h0, hex.EncodeToString(b)}})
	}
	// A successor card signed under veil/v1/card-successor but over the
	// predecessor's body, not its own.
	b := buildCard(base)
	copy(b[len(b)-64:], ed25519.Sign(ed25519.NewKeyFromSeed(k.bobSeed0), labeled("veil/v1/card-successor", bob0.Marshal()[:len(bob0.Marshal())-64])))
	out = append(out, rejectVector{Construction: "chain", Comment: "§4.2: prev_sig covers the predecessor's body, not the successor's", Cards: []string{h0, hex.EncodeToString(b)}})
	return out
}

func dearmor(t *testing.T, text []byte) []byte {
	t.Helper()
	s := strings.TrimSpace(string(text))
	s = strings.TrimPrefix(s, "-----BEGIN AGE ENCRYPTED FILE-----")
	s = strings.TrimSuffix(s, "-----END AGE ENCRYPTED FILE-----")
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func armorBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	e := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	out.WriteString("-----BEGIN AGE ENCRYPTED FILE-----\n")
	for len(e) > 64 {
		out.WriteString(e[:64] + "\n")
		e = e[64:]
	}
	out.WriteString(e + "\n-----END AGE ENCRYPTED FILE-----\n")
	return []byte(out.String())
}

// envelopeFields are the parts of an envelope, sealed by sealEnvelope as
// PROTOCOL.md §6 says, whatever their values.
type envelopeFields struct {
	version       byte
	sid           []byte
	epoch, gen    uint32
	key           []byte // the epoch key: message key and commitment derive from it
	commitKey     []byte // nil: key
	nonce         []byte
	ctx           session.Binding
	signedCtx     *session.Binding // nil: ctx
	padded        []byte
	seed          []byte
	label         string // "" means veil/v1/envelope
	withoutSigned bool   // seal without a signature
}

// contextBytes encodes a binding as PROTOCOL.md §6.2's context.
func contextBytes(c session.Binding) []byte {
	var b []byte
	for _, f := range []string{c.ChannelCID, c.MessageID, c.SenderID, c.ParentID, c.QuotedID} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint32(b, c.Revision)
}

func sealEnvelope(t *testing.T, f envelopeFields) []byte {
	mk, _ := hkdf.Key(sha256.New, f.key, nil, "veil/v1/envelope/key", 32)
	ck := f.commitKey
	if ck == nil {
		ck = f.key
	}
	commit, _ := hkdf.Key(sha256.New, ck, nil, "veil/v1/envelope/commitment", 32)
	h := []byte{f.version}
	h = append(h, f.sid...)
	h = binary.BigEndian.AppendUint32(h, f.epoch)
	h = binary.BigEndian.AppendUint32(h, f.gen)
	h = append(h, commit...)
	h = append(h, f.nonce...)
	ad := append(bytes.Clone(h), contextBytes(f.ctx)...)
	sctx := f.ctx
	if f.signedCtx != nil {
		sctx = *f.signedCtx
	}
	label := f.label
	if label == "" {
		label = "veil/v1/envelope"
	}
	signedAD := append(bytes.Clone(h), contextBytes(sctx)...)
	body := bytes.Clone(f.padded)
	if !f.withoutSigned {
		body = append(body, ed25519.Sign(ed25519.NewKeyFromSeed(f.seed), labeled(label, append(signedAD, f.padded...)))...)
	}
	aead, err := chacha20poly1305.NewX(mk)
	if err != nil {
		t.Fatal(err)
	}
	return aead.Seal(h, f.nonce, body, ad)
}

func padded(plain []byte, n int) []byte {
	b := append(bytes.Clone(plain), 0x80)
	return append(b, make([]byte, n-len(b))...)
}

func envelopeRejections(t *testing.T, k *vectorKeys) []rejectVector {
	s, err := session.New(testrand.New("vector/reject/session"), "messaging:vectors")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := s.Key(0)
	other, _ := session.New(testrand.New("vector/reject/other"), "messaging:vectors")
	otherKey, _ := other.Key(0)
	nonce := make([]byte, 24)
	testrand.New("vector/reject/nonce").Read(nonce)
	ctx := session.Binding{ChannelCID: "messaging:vectors", MessageID: "msg-r", SenderID: "alice"}
	sid := s.ID()
	plain := []byte("hello")
	base := envelopeFields{
		version: 1, sid: sid[:], epoch: 0, gen: 1, key: key.Bytes(), nonce: nonce,
		ctx: ctx, padded: padded(plain, 32), seed: k.aliceSeed,
	}
	// The builder must agree with Seal before its variants mean anything.
	sealed := sealEnvelope(t, base)
	if got, err := s.Open(sealed, ctx, k.aliceCards[1]); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("sealEnvelope's control envelope does not open: %v", err)
	}
	otherCtx := ctx
	otherCtx.MessageID = "msg-other"
	laterCtx := ctx
	laterCtx.Revision = 1
	envCtx := &envelopeContext{
		SessionID: sid.String(), ChannelCID: ctx.ChannelCID, Epoch: 0, EpochKey: hex.EncodeToString(key.Bytes()),
		SenderCard: hex.EncodeToString(k.aliceCards[1].Marshal()), MessageID: ctx.MessageID, SenderID: ctx.SenderID,
	}
	cases := []struct {
		comment string
		edit    func(f *envelopeFields)
	}{
		{"§1, §6.5: version 2", func(f *envelopeFields) { f.version = 2 }},
		{"§6.3: padding without the 0x80 marker", func(f *envelopeFields) { f.padded = append(bytes.Clone(plain), make([]byte, 27)...) }},
		{"§6.3: a non-zero byte after the 0x80 marker", func(f *envelopeFields) { f.padded[len(plain)+2] = 1 }},
		{"§6.3: padded to 64 bytes where P(6) = 32", func(f *envelopeFields) { f.padded = padded(plain, 64) }},
		{"§6.3: padded to 34 bytes for a 32-byte plaintext, where P(33) = 36", func(f *envelopeFields) { f.padded = padded(bytes.Repeat([]byte("x"), 32), 34) }},
		{"§6.4: signed by another key than the sender card's", func(f *envelopeFields) { f.seed = k.bobSeed }},
		{"§6.4: signed under veil/v1/grant", func(f *envelopeFields) { f.label = "veil/v1/grant" }},
		{"§6.4: the signature covers another message ID than the AD", func(f *envelopeFields) { f.signedCtx = &otherCtx }},
		{"§6.4: the signature covers revision 1, the AD revision 0", func(f *envelopeFields) { f.signedCtx = &laterCtx }},
		{"§6.4: no signature", func(f *envelopeFields) { f.withoutSigned = true }},
		{"§6.5: commitment of another epoch key", func(f *envelopeFields) { f.commitKey = otherKey.Bytes() }},
		{"§6.5: header names another session", func(f *envelopeFields) { o := other.ID(); f.sid = o[:] }},
		{"§6.5: header names epoch 1, which the reader does not hold", func(f *envelopeFields) { f.epoch = 1 }},
		{"§6.5: header names sender generation 0 (the card given is generation 1)", func(f *envelopeFields) { f.gen = 0 }},
		{"§6.2: sealed for parent ID msg-0, opened as a top-level message", func(f *envelopeFields) { f.ctx.ParentID = "msg-0" }},
		{"§6.2: sealed quoting msg-0, opened as quoting nothing", func(f *envelopeFields) { f.ctx.QuotedID = "msg-0" }},
		{"§6.2: sealed as revision 1, opened as revision 0", func(f *envelopeFields) { f.ctx.Revision = 1 }},
	}
	var out []rejectVector
	for _, c := range cases {
		f := base
		f.padded = bytes.Clone(base.padded)
		c.edit(&f)
		out = append(out, rejectVector{Construction: "envelope", Comment: c.comment, Input: hex.EncodeToString(sealEnvelope(t, f)), Envelope: envCtx})
	}
	// Cases whose context is not the control's: the envelope is sealed,
	// signed and opened under the same context, which breaks a rule on
	// its own.
	long := strings.Repeat("m", session.MaxBindingFieldLen+1)
	ctxCases := []struct {
		comment string
		edit    func(f *envelopeFields, e *envelopeContext)
	}{
		{"§6.2: a message ID of 1,025 bytes", func(f *envelopeFields, e *envelopeContext) { f.ctx.MessageID, e.MessageID = long, long }},
		{"§6.2: a quoted ID of 1,025 bytes", func(f *envelopeFields, e *envelopeContext) { f.ctx.QuotedID, e.QuotedID = long, long }},
		{"§6.2: a parent ID of 1,025 bytes", func(f *envelopeFields, e *envelopeContext) { f.ctx.ParentID, e.ParentID = long, long }},
		{"§6.2: an empty message ID", func(f *envelopeFields, e *envelopeContext) { f.ctx.MessageID, e.MessageID = "", "" }},
		{"§6.5: the context's channel CID is not the session's (messaging:other)", func(f *envelopeFields, e *envelopeContext) {
			f.ctx.ChannelCID, e.ChannelCID, e.SessionChannelCID = "messaging:other", "messaging:other", "messaging:vectors"
		}},
		{"§6.5: the context's sender is bob; the trusted card given is alice's", func(f *envelopeFields, e *envelopeContext) { f.ctx.SenderID, e.SenderID = "bob", "bob" }},
		{"§6.5, §10.4: sealed by the sender's generation 0 under an epoch that began after the sender signed the log with generation 1", func(f *envelopeFields, e *envelopeContext) {
			f.gen, f.seed = 0, k.aliceSeed0
			e.SenderCard, e.MinSenderGeneration = hex.EncodeToString(k.aliceCards[0].Marshal()), 1
		}},
	}
	for _, c := range ctxCases {
		f := base
		f.padded = bytes.Clone(base.padded)
		e := *envCtx
		c.edit(&f, &e)
		out = append(out, rejectVector{Construction: "envelope", Comment: c.comment, Input: hex.EncodeToString(sealEnvelope(t, f)), Envelope: &e})
	}
	out = append(out, rejectVector{Construction: "envelope", Comment: "§6.5: shorter than 161 + 32 bytes", Input: hex.EncodeToString(sealed[:192]), Envelope: envCtx})

	text := session.EncodeText(sealed)
	enc := strings.TrimPrefix(text, session.TextPrefix)
	std := base64.StdEncoding.EncodeToString(sealed)
	if !strings.ContainsAny(std, "+/") {
		t.Fatal("the control envelope's standard base64 has no + or /; pick another nonce")
	}
	// 193 bytes: 258 characters whose last carries 4 unused bits.
	if len(sealed)%3 != 1 {
		t.Fatalf("the control envelope is %d bytes; its text form must end with unused bits", len(sealed))
	}
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	lastIdx := strings.IndexByte(alphabet, enc[len(enc)-1])
	texts := []struct{ comment, text string }{
		{"§6.6: prefix veil2:", "veil2:" + enc},
		{"§6.6: padding characters", text + "=="},
		{"§6.6: a line feed inside", session.TextPrefix + enc[:40] + "\n" + enc[40:]},
		{"§6.6: standard base64 alphabet", session.TextPrefix + strings.TrimRight(std, "=")},
		{"§6.6: non-canonical (an unused bit set)", session.TextPrefix + enc[:len(enc)-1] + string(alphabet[lastIdx|1])},
	}
	for _, c := range texts {
		out = append(out, rejectVector{Construction: "text", Comment: c.comment, InputText: c.text, Envelope: envCtx})
	}
	return out
}

// grantFields are the payload fields of a grant, built and wrapped by
// buildGrant as PROTOCOL.md §7 says, whatever their values.
type grantFields struct {
	version    byte
	sid        []byte
	epoch      uint32
	key        []byte
	cid        string
	grantee    string
	granteeGen uint32
	granter    string
	granterGen uint32
	seed       []byte
	label      string // "" means veil/v1/grant
	trailing   []byte // appended after the signature
	padTo      int    // > 0: zero bytes after the payload, to make the age file this long
	recipients []age.Recipient
}

func buildGrant(t *testing.T, f grantFields) []byte {
	b := []byte{f.version}
	b = append(b, f.sid...)
	b = binary.BigEndian.AppendUint32(b, f.epoch)
	b = append(b, f.key...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.cid)))
	b = append(b, f.cid...)
	b = append(b, byte(len(f.grantee)))
	b = append(b, f.grantee...)
	b = binary.BigEndian.AppendUint32(b, f.granteeGen)
	b = append(b, byte(len(f.granter)))
	b = append(b, f.granter...)
	b = binary.BigEndian.AppendUint32(b, f.granterGen)
	label := f.label
	if label == "" {
		label = "veil/v1/grant"
	}
	b = append(b, ed25519.Sign(ed25519.NewKeyFromSeed(f.seed), labeled(label, b))...)
	b = append(b, f.trailing...)
	seal := func(payload []byte) []byte {
		var out bytes.Buffer
		w, err := age.Encrypt(&out, f.recipients...)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(payload)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	out := seal(b)
	if f.padTo > 0 {
		// The file's size grows by the payload's, in one chunk.
		out = seal(append(b, make([]byte, f.padTo-len(out))...))
		if len(out) != f.padTo {
			t.Fatalf("padded grant of %d bytes, want %d", len(out), f.padTo)
		}
	}
	return out
}

func grantRejections(t *testing.T, k *vectorKeys) []rejectVector {
	s, err := session.New(testrand.New("vector/reject/grant-session"), "messaging:vectors")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := s.Key(0)
	sid := s.ID()
	bobRecip := k.bobCards[1].Recipient()
	base := grantFields{
		version: 1, sid: sid[:], epoch: 0, key: key.Bytes(), cid: "messaging:vectors",
		grantee: "bob", granteeGen: 1, granter: "alice", granterGen: 1, seed: k.aliceSeed,
		recipients: []age.Recipient{bobRecip},
	}
	gc := &grantContext{
		GranteeExport: k.bobExport,
		GranterCards:  []string{hex.EncodeToString(k.aliceCards[0].Marshal()), hex.EncodeToString(k.aliceCards[1].Marshal())},
		SessionID:     sid.String(), Epoch: 0, ChannelCID: "messaging:vectors",
	}
	if _, err := openGrantVector(t, buildGrant(t, base), gc); err != nil {
		t.Fatalf("buildGrant's control grant does not open: %v", err)
	}
	// Where a case breaks a field the reader also compares with what it
	// asked for, it asks for the broken value, so that only the rule named
	// in the comment rejects the grant.
	cases := []struct {
		comment string
		edit    func(f *grantFields)
		asked   func(g *grantContext)
	}{
		{"§7: two recipient stanzas (bob's generations 1 and 0)", func(f *grantFields) { f.recipients = append(f.recipients, k.bobCards[0].Recipient()) }, nil},
		{"§7: payload version 2", func(f *grantFields) { f.version = 2 }, nil},
		{"§7: a byte after the signature", func(f *grantFields) { f.trailing = []byte{0} }, nil},
		{"§7: zero session ID", func(f *grantFields) { f.sid = make([]byte, 16) }, func(g *grantContext) { g.SessionID = strings.Repeat("0", 32) }},
		{"§7: empty channel CID", func(f *grantFields) { f.cid = "" }, func(g *grantContext) { g.ChannelCID = "" }},
		{"§7: channel CID that is not UTF-8", func(f *grantFields) { f.cid = "messaging:\xff" }, func(g *grantContext) { g.ChannelCID = "messaging:\xff" }},
		{"§7: channel CID of 1,025 bytes", func(f *grantFields) { f.cid = "messaging:" + strings.Repeat("v", 1015) }, func(g *grantContext) { g.ChannelCID = "messaging:" + strings.Repeat("v", 1015) }},
		{"§7: empty granter", func(f *grantFields) { f.granter = "" }, nil},
		{"§7: grantee is another user", func(f *grantFields) { f.grantee = "mallory" }, nil},
		{"§7: grantee generation 2, newer than the reader's newest (1)", func(f *grantFields) { f.granteeGen = 2 }, nil},
		{"§7: signed under veil/v1/envelope", func(f *grantFields) { f.label = "veil/v1/envelope" }, nil},
		{"§7: signed by the grantee, not the granter", func(f *grantFields) { f.seed = k.bobSeed }, nil},
		{"§7: names granter generation 0 but signed by generation 1", func(f *grantFields) { f.granterGen = 0 }, nil},
		{"§7: a grant for epoch 1 where epoch 0 was asked for", func(f *grantFields) { f.epoch = 1 }, nil},
		{"§7: a grant for another channel than asked for", func(f *grantFields) { f.cid = "messaging:elsewhere" }, nil},
		{"§7: empty grantee", func(f *grantFields) { f.grantee = "" }, nil},
		{"§7: a grant for another session than asked for", func(f *grantFields) { f.sid = bytes.Repeat([]byte{0x5a}, 16) }, nil},
		{"§7: a scrypt (passphrase) stanza instead of a recipient stanza", func(f *grantFields) { f.recipients = []age.Recipient{scryptRecipient(t)} }, nil},
		{"§7, §10.4: signed by the granter's generation 0 for an epoch that began after the granter signed the log with generation 1",
			func(f *grantFields) { f.granterGen, f.seed = 0, k.aliceSeed0 }, func(g *grantContext) { g.MinGranterGeneration = 1 }},
		{"§7: an age file of 4,097 bytes, one more than the bound: a valid grant whose payload is followed by zero bytes", func(f *grantFields) { f.padTo = session.MaxGrantSize + 1 }, nil},
	}
	var out []rejectVector
	for _, c := range cases {
		f := base
		c.edit(&f)
		ctx := gc
		if c.asked != nil {
			cp := *gc
			c.asked(&cp)
			ctx = &cp
		}
		out = append(out, rejectVector{Construction: "grant", Comment: c.comment, Input: hex.EncodeToString(buildGrant(t, f)), Grant: ctx})
	}
	// A grant from bob to alice, whose hybrid key holds an X25519 key,
	// wrapped with an X25519 stanza to that half: a hybrid key opens only
	// mlkem768x25519 stanzas.
	aliceRecip := k.aliceCards[1].Recipient()
	half, err := bech32.Encode("age", k.aliceRecip[len(k.aliceRecip)-32:])
	if err != nil {
		t.Fatal(err)
	}
	x, err := age.ParseX25519Recipient(half)
	if err != nil {
		t.Fatal(err)
	}
	toAlice := grantFields{version: 1, sid: sid[:], epoch: 0, key: key.Bytes(), cid: "messaging:vectors",
		grantee: "alice", granteeGen: 1, granter: "bob", granterGen: 1, seed: k.bobSeed, recipients: []age.Recipient{aliceRecip}}
	aliceCtx := &grantContext{GranteeExport: k.aliceExport, GranterCards: []string{hex.EncodeToString(k.bobCards[0].Marshal()), hex.EncodeToString(k.bobCards[1].Marshal())},
		SessionID: sid.String(), Epoch: 0, ChannelCID: "messaging:vectors"}
	if _, err := openGrantVector(t, buildGrant(t, toAlice), aliceCtx); err != nil {
		t.Fatalf("the control grant to alice does not open: %v", err)
	}
	toAlice.recipients = []age.Recipient{x}
	out = append(out, rejectVector{Construction: "grant", Comment: "§7: an X25519 stanza wrapped to the X25519 half of a hybrid grantee's key",
		Input: hex.EncodeToString(buildGrant(t, toAlice)), Grant: aliceCtx})
	return out
}

// scryptRecipient is a passphrase recipient of the lowest work factor.
func scryptRecipient(t *testing.T) age.Recipient {
	r, err := age.NewScryptRecipient("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(10)
	return r
}

// openGrantVector opens a grant as the grant context's reader would,
// including the check that it is the grant that was asked for.
func openGrantVector(t *testing.T, grant []byte, gc *grantContext) (*session.Grant, error) {
	me, err := identity.Import([]byte(gc.GranteeExport))
	if err != nil {
		t.Fatal(err)
	}
	var cards []*identity.Card
	for _, h := range gc.GranterCards {
		c, err := identity.ParseCard(unhex(t, h))
		if err != nil {
			t.Fatal(err)
		}
		cards = append(cards, c)
	}
	g, err := session.OpenGrant(grant, me, func(user string, gen uint32) (*identity.Card, error) {
		for _, c := range cards {
			if c.UserID() == user && c.Generation() == gen {
				return c, nil
			}
		}
		return nil, session.ErrUnknownUser
	})
	if err != nil {
		return nil, err
	}
	if g.SessionID.String() != gc.SessionID || g.Epoch != gc.Epoch || g.ChannelCID != gc.ChannelCID {
		return nil, errors.New("not the grant asked for")
	}
	// What session.Manager checks after it opens (with the log's
	// State.MinGeneration): a generation the log retired.
	if g.GranterGeneration < gc.MinGranterGeneration {
		return nil, errors.New("the granter's generation is retired for the epoch")
	}
	return g, nil
}

// paddedExport is an export vector's input: a comment line of padding
// bytes ("#", then "x"s, then LF), then text.
func paddedExport(text string, padding int) []byte {
	if padding <= 0 {
		return []byte(text)
	}
	b := make([]byte, 0, padding+len(text))
	b = append(b, '#')
	b = append(b, bytes.Repeat([]byte("x"), padding-2)...)
	b = append(b, '\n')
	return append(b, text...)
}

type chunk struct {
	plain []byte
	last  bool
	at    uint64 // counter in the nonce
}

// buildAttachment encrypts chunks as PROTOCOL.md §8 says, whatever their
// sizes, flags and counters.
func buildAttachment(t *testing.T, key, n []byte, magic string, commitN []byte, chunks []chunk) []byte {
	p, _ := hkdf.Key(sha256.New, key, n, "veil/v1/attachment/payload-key", 32)
	if commitN == nil {
		commitN = n
	}
	c, _ := hkdf.Key(sha256.New, key, commitN, "veil/v1/attachment/commitment", 32)
	out := append([]byte(magic), n...)
	out = append(out, c...)
	aead, err := chacha20poly1305.New(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chunks {
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], ch.at)
		if ch.last {
			nonce[11] = 1
		}
		out = aead.Seal(out, nonce, ch.plain, nil)
	}
	return out
}

func attachmentRejections(t *testing.T) []rejectVector {
	key := make([]byte, 32)
	n := make([]byte, 16)
	testrand.New("vector/reject/file-key").Read(key)
	testrand.New("vector/reject/file-nonce").Read(n)
	full := make([]byte, 65536)
	testrand.New("vector/reject/file").Read(full)
	small := full[:100]
	control := buildAttachment(t, key, n, "VEILATT1", nil, []chunk{{full, false, 0}, {small, true, 1}})
	fk, _ := session.ParseFileKey(key)
	if r, err := session.DecryptStream(bytes.NewReader(control), fk); err != nil {
		t.Fatal(err)
	} else if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, append(bytes.Clone(full), small...)) {
		t.Fatalf("buildAttachment's control file does not decrypt: %v", err)
	}
	otherN := bytes.Clone(n)
	otherN[0] ^= 1
	cases := []struct {
		comment        string
		magic          string
		commitN        []byte
		chunks         []chunk
		truncateBy     int
		headerOnlyFile bool
	}{
		{comment: "§8: magic VEILATT2", magic: "VEILATT2", chunks: []chunk{{small, true, 0}}},
		{comment: "§8: commitment computed with another nonce", commitN: otherN, chunks: []chunk{{small, true, 0}}},
		{comment: "§8: a full chunk and an empty last chunk (a 65,536-byte file is one chunk flagged last)", chunks: []chunk{{full, false, 0}, {nil, true, 1}}},
		{comment: "§8: the only chunk is not flagged last (truncation)", chunks: []chunk{{small, false, 0}}},
		{comment: "§8: a full chunk flagged last, then another chunk (extension)", chunks: []chunk{{full, true, 0}, {small, true, 1}}},
		{comment: "§8: chunks in the wrong order", chunks: []chunk{{small, true, 1}, {full, false, 0}}},
		{comment: "§8: a chunk shorter than a tag", chunks: []chunk{{small, true, 0}}, truncateBy: len(small) + 16 - 10},
		{comment: "§8: header only, no chunk", headerOnlyFile: true},
	}
	var out []rejectVector
	for _, c := range cases {
		magic := c.magic
		if magic == "" {
			magic = "VEILATT1"
		}
		b := buildAttachment(t, key, n, magic, c.commitN, c.chunks)
		b = b[:len(b)-c.truncateBy]
		if c.headerOnlyFile {
			b = b[:56]
		}
		out = append(out, rejectVector{Construction: "attachment", Comment: c.comment, Input: hex.EncodeToString(b), FileKey: hex.EncodeToString(key)})
	}
	return out
}

func init() {
	extraVectors = append(extraVectors, func(t *testing.T) (string, any) {
		k := loadVectorKeys(t)
		var out []rejectVector
		out = append(out, cardRejections(t, k)...)
		out = append(out, chainRejections(t, k)...)
		out = append(out, exportRejections(t, k)...)
		out = append(out, envelopeRejections(t, k)...)
		out = append(out, grantRejections(t, k)...)
		out = append(out, attachmentRejections(t)...)
		return "rejections.json", out
	}, func(t *testing.T) (string, any) {
		return "accepts.json", acceptVectors(t, loadVectorKeys(t))
	}, func(t *testing.T) (string, any) {
		return "stanzas.json", stanzaVectors(t)
	})
}

// TestVectorsReject checks that every stored rejection vector is rejected.
func TestVectorsReject(t *testing.T) {
	var rv []rejectVector
	readVectors(t, "rejections.json", &rv)
	seen := map[string]int{}
	for i, v := range rv {
		seen[v.Construction]++
		if err := rejectErr(t, v); err == nil {
			t.Errorf("rejections[%d] (%s: %s) was accepted", i, v.Construction, v.Comment)
		}
	}
	for _, c := range []string{"card", "chain", "export", "passphrase_export", "envelope", "text", "grant", "attachment"} {
		if seen[c] == 0 {
			t.Errorf("no rejection vector for %s", c)
		}
	}
}

// rejectErr runs v through the reader of its construction and returns its
// error (nil if the input was accepted).
func rejectErr(t *testing.T, v rejectVector) error {
	switch v.Construction {
	case "card":
		_, err := identity.ParseCard(unhex(t, v.Input))
		return err
	case "chain":
		var cards []*identity.Card
		for _, h := range v.Cards {
			c, err := identity.ParseCard(unhex(t, h))
			if err != nil {
				t.Fatalf("a card of a chain vector does not parse: %v", err)
			}
			cards = append(cards, c)
		}
		return identity.VerifyChain(cards)
	case "export":
		_, err := identity.Import(paddedExport(v.InputText, v.Padding))
		return err
	case "passphrase_export":
		_, err := identity.ImportWithPassphrase([]byte(v.InputText), v.Passphrase, 0)
		return err
	case "envelope", "text":
		e := v.Envelope
		id, _ := session.ParseID(e.SessionID)
		key, _ := session.ParseEpochKey(unhex(t, e.EpochKey))
		scid := e.ChannelCID
		if e.SessionChannelCID != "" {
			scid = e.SessionChannelCID
		}
		s, err := session.FromKeys(nil, id, scid, map[uint32]session.EpochKey{e.Epoch: key})
		if err != nil {
			t.Fatal(err)
		}
		card, err := identity.ParseCard(unhex(t, e.SenderCard))
		if err != nil {
			t.Fatal(err)
		}
		mc := session.Binding{ChannelCID: e.ChannelCID, MessageID: e.MessageID, SenderID: e.SenderID, ParentID: e.ParentID, QuotedID: e.QuotedID, Revision: e.Revision}
		// What session.Manager checks before it opens (with the log's
		// State.MinGeneration): a generation the log retired.
		if v.Construction == "envelope" {
			if h, err := session.ParseHeader(unhex(t, v.Input)); err == nil && h.SenderGeneration < e.MinSenderGeneration {
				return errors.New("the sender's generation is retired for the epoch")
			}
		}
		if v.Construction == "text" {
			_, err = s.OpenText(v.InputText, mc, card)
		} else {
			_, err = s.Open(unhex(t, v.Input), mc, card)
		}
		return err
	case "grant":
		_, err := openGrantVector(t, unhex(t, v.Input), v.Grant)
		return err
	case "attachment":
		key, err := session.ParseFileKey(unhex(t, v.FileKey))
		if err != nil {
			t.Fatal(err)
		}
		r, err := session.DecryptStream(bytes.NewReader(unhex(t, v.Input)), key)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(r)
		return err
	}
	t.Fatalf("unknown construction %q", v.Construction)
	return nil
}
