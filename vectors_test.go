package veil_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/bech32"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors from the current code")

const vectorDir = "testdata/vectors"

// Vector files. Every byte string is lower-case hex; texts are UTF-8.

type identityVector struct {
	Comment      string `json:"comment"`
	UserID       string `json:"user_id"`
	Kind         string `json:"kind"`
	Generation   uint32 `json:"generation"`
	Created      string `json:"created"`
	Ed25519Seed  string `json:"ed25519_seed"`
	AgeSecretKey string `json:"age_secret_key"`
	SigningKey   string `json:"signing_public_key"`
	Recipient    string `json:"recipient"`
	Card         string `json:"card"`
	Fingerprint  string `json:"fingerprint"`
	Export       string `json:"export,omitempty"`
}

type grantVector struct {
	Comment           string `json:"comment"`
	GranterCard       string `json:"granter_card"`
	GranteeExport     string `json:"grantee_export"`
	SessionID         string `json:"session_id"`
	Epoch             uint32 `json:"epoch"`
	ChannelCID        string `json:"channel_cid"`
	EpochKey          string `json:"epoch_key"`
	Grantee           string `json:"grantee"`
	GranteeGeneration uint32 `json:"grantee_generation"`
	Granter           string `json:"granter"`
	GranterGeneration uint32 `json:"granter_generation"`
	Grant             string `json:"grant"`
}

type envelopeVector struct {
	Comment    string `json:"comment"`
	SessionID  string `json:"session_id"`
	ChannelCID string `json:"channel_cid"`
	Epoch      uint32 `json:"epoch"`
	EpochKey   string `json:"epoch_key"`
	MessageKey string `json:"message_key"`
	Commitment string `json:"commitment"`
	SenderCard string `json:"sender_card"`
	MessageID  string `json:"message_id"`
	SenderID   string `json:"sender_id"`
	ParentID   string `json:"parent_id"`
	QuotedID   string `json:"quoted_id"`
	Revision   uint32 `json:"revision"`
	AD         string `json:"associated_data"` // header ‖ context (§6.2)
	Plaintext  string `json:"plaintext_hex"`
	PaddedLen  int    `json:"padded_length"`
	Nonce      string `json:"nonce"`
	Envelope   string `json:"envelope"`
	Text       string `json:"text"`
}

type safetyVector struct {
	Comment string `json:"comment"`
	CardA   string `json:"card_a"`
	CardB   string `json:"card_b"`
	Digits  string `json:"digits"`
	Payload string `json:"payload"`
}

var vectorTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustGenerate(t *testing.T, user string, kind identity.Kind) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(testrand.New("vector/"+user+"/"+kind.String()), user, identity.Options{Kind: kind, Created: vectorTime})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// genMaterial re-reads the 64 bytes Generate consumed: the Ed25519 seed, then
// the age key.
func genMaterial(seed string) (ed, ageKey []byte) {
	b := make([]byte, 64)
	testrand.New(seed).Read(b)
	return b[:32], b[32:]
}

func identityVectors(t *testing.T) ([]identityVector, map[string]*identity.Identity) {
	ids := map[string]*identity.Identity{}
	var out []identityVector
	for _, c := range []struct {
		user string
		kind identity.Kind
	}{{"alice", identity.KindHybrid}, {"bob", identity.KindX25519}} {
		id := mustGenerate(t, c.user, c.kind)
		rot, err := id.Rotate(testrand.New("vector/"+c.user+"/rotated"), identity.Options{Created: vectorTime.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids[c.user] = rot
		for gen, card := range rot.Cards() {
			seed := "vector/" + c.user + "/" + c.kind.String()
			if gen == 1 {
				seed = "vector/" + c.user + "/rotated"
			}
			ed, ak := genMaterial(seed)
			v := identityVector{
				Comment:     "identity.Generate, then Rotate; the 64 bytes of key material are the Ed25519 seed then the age key",
				UserID:      c.user,
				Kind:        card.Kind().String(),
				Generation:  card.Generation(),
				Created:     card.Created().Format(time.RFC3339),
				Ed25519Seed: hex.EncodeToString(ed),
				SigningKey:  hex.EncodeToString(card.SigningKey()),
				Recipient:   card.RecipientString(),
				Card:        hex.EncodeToString(card.Marshal()),
				Fingerprint: card.Fingerprint(),
			}
			v.AgeSecretKey = ageSecret(c.kind, ak)
			if gen == 1 {
				v.Export = string(rot.Export())
			}
			out = append(out, v)
		}
	}
	return out, ids
}

func ageSecret(kind identity.Kind, key []byte) string {
	hrp := "AGE-SECRET-KEY-PQ-"
	if kind == identity.KindX25519 {
		hrp = "AGE-SECRET-KEY-"
	}
	s, _ := bech32.Encode(hrp, key)
	return s
}

func grantVectors(t *testing.T, ids map[string]*identity.Identity) []grantVector {
	var out []grantVector
	for _, c := range []struct{ granter, grantee string }{{"alice", "bob"}, {"bob", "alice"}} {
		s, err := session.New(testrand.New("vector/session/"+c.granter), "messaging:vectors")
		if err != nil {
			t.Fatal(err)
		}
		g, err := session.NewGrant(ids[c.granter], ids[c.grantee].Card(), s, 0)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := s.Key(0)
		out = append(out, grantVector{
			Comment:           "session.NewGrant: an age file for the grantee's current recipient; crypto/rand replaced by testing/cryptotest seed 1",
			GranterCard:       hex.EncodeToString(ids[c.granter].Card().Marshal()),
			GranteeExport:     string(ids[c.grantee].Export()),
			SessionID:         s.ID().String(),
			Epoch:             0,
			ChannelCID:        s.ChannelCID(),
			EpochKey:          hex.EncodeToString(k.Bytes()),
			Grantee:           c.grantee,
			GranteeGeneration: ids[c.grantee].Generation(),
			Granter:           c.granter,
			GranterGeneration: ids[c.granter].Generation(),
			Grant:             hex.EncodeToString(g),
		})
	}
	return out
}

func envelopeVectors(t *testing.T, ids map[string]*identity.Identity) []envelopeVector {
	var out []envelopeVector
	cases := []struct {
		comment, sender, msgID, parent, quoted string
		revision                               uint32
		text                                   string
	}{
		{"empty plaintext", "alice", "msg-0", "", "", 0, ""},
		{"short message in a thread", "bob", "msg-1", "msg-0", "", 0, "Hello, world 👋"},
		{"100 bytes: padded to 104", "alice", "msg-2", "", "", 0, string(bytes.Repeat([]byte("0123456789"), 10))},
		{"first edit (revision 1) of a message quoting msg-0", "bob", "msg-3", "", "msg-0", 1, "edited"},
		{"a quote in a thread; revision 0x01020304 shows the byte order of u32", "alice", "msg-4", "msg-0", "msg-1", 0x01020304, "quoting msg-1"},
	}
	for i, c := range cases {
		rnd := testrand.New("vector/envelope/" + c.msgID)
		s, err := session.New(rnd, "messaging:vectors")
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if s, err = s.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		mc := session.Binding{ChannelCID: "messaging:vectors", MessageID: c.msgID, SenderID: c.sender, ParentID: c.parent, QuotedID: c.quoted, Revision: c.revision}
		env, err := s.Seal(ids[c.sender], mc, []byte(c.text))
		if err != nil {
			t.Fatal(err)
		}
		// The nonce, from crypto/rand (fixed by cryptotest.SetGlobalRandom),
		// ends the header.
		nonce := env[session.HeaderSize-24 : session.HeaderSize]
		k, _ := s.Key(s.Epoch())
		mk, _ := hkdf.Key(sha256.New, k.Bytes(), nil, "veil/v1/envelope/key", 32)
		cm, _ := hkdf.Key(sha256.New, k.Bytes(), nil, "veil/v1/envelope/commitment", 32)
		out = append(out, envelopeVector{
			Comment:    c.comment,
			SessionID:  s.ID().String(),
			ChannelCID: s.ChannelCID(),
			Epoch:      s.Epoch(),
			EpochKey:   hex.EncodeToString(k.Bytes()),
			MessageKey: hex.EncodeToString(mk),
			Commitment: hex.EncodeToString(cm),
			SenderCard: hex.EncodeToString(ids[c.sender].Card().Marshal()),
			MessageID:  c.msgID,
			SenderID:   c.sender,
			ParentID:   c.parent,
			QuotedID:   c.quoted,
			Revision:   c.revision,
			AD:         hex.EncodeToString(append(env[:session.HeaderSize:session.HeaderSize], contextBytes(mc)...)),
			Plaintext:  hex.EncodeToString([]byte(c.text)),
			PaddedLen:  session.SealedSize(len(c.text)) - session.Overhead,
			Nonce:      hex.EncodeToString(nonce),
			Envelope:   hex.EncodeToString(env),
			Text:       session.EncodeText(env),
		})
	}
	return out
}

func safetyVectors(ids map[string]*identity.Identity) []safetyVector {
	a, b := ids["alice"].Card(), ids["bob"].Card()
	sn := identity.ComputeSafetyNumber(a, b)
	return []safetyVector{{
		Comment: "identity.ComputeSafetyNumber of the two generation-1 cards",
		CardA:   hex.EncodeToString(a.Marshal()),
		CardB:   hex.EncodeToString(b.Marshal()),
		Digits:  sn.Digits(),
		Payload: hex.EncodeToString(sn.Payload()),
	}}
}

// TestVectors regenerates every vector deterministically and compares it with
// testdata/vectors (rewriting the files under -update), then checks the
// stored vectors through the decoding paths.
func TestVectors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	idv, ids := identityVectors(t)
	files := map[string]any{
		"identities.json":     idv,
		"grants.json":         grantVectors(t, ids),
		"envelopes.json":      envelopeVectors(t, ids),
		"safety_numbers.json": safetyVectors(ids),
	}
	for _, extra := range extraVectors {
		name, v := extra(t)
		files[name] = v
	}
	for name, v := range files {
		got, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join(vectorDir, name)
		if *update {
			if err := os.MkdirAll(vectorDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestVectors -update . to create it)", err)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("%s drifted from the code (-file +code); if the change is intended, bump the protocol version or run with -update:\n%s", name, diff)
		}
	}
}

// extraVectors lets other files add vector files.
var extraVectors []func(t *testing.T) (string, any)

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectorsOpen checks the stored vectors through the parsing and opening
// code, independently of how they were generated.
func TestVectorsOpen(t *testing.T) {
	var idv []identityVector
	readVectors(t, "identities.json", &idv)
	for _, v := range idv {
		c, err := identity.ParseCard(unhex(t, v.Card))
		if err != nil {
			t.Fatalf("%s gen %d: %v", v.UserID, v.Generation, err)
		}
		if c.Fingerprint() != v.Fingerprint || c.RecipientString() != v.Recipient || hex.EncodeToString(c.SigningKey()) != v.SigningKey {
			t.Errorf("%s gen %d: card fields differ from the vector", v.UserID, v.Generation)
		}
		if v.Export != "" {
			id, err := identity.Import([]byte(v.Export))
			if err != nil || !id.Card().Equal(c) {
				t.Errorf("%s: export does not import to the card: %v", v.UserID, err)
			}
		}
		if v.Export != "" && !bytes.Contains([]byte(v.Export), []byte(v.AgeSecretKey)) {
			t.Errorf("%s gen %d: the export lacks the age secret key of the vector", v.UserID, v.Generation)
		}
	}

	var gv []grantVector
	readVectors(t, "grants.json", &gv)
	for _, v := range gv {
		me, err := identity.Import([]byte(v.GranteeExport))
		if err != nil {
			t.Fatal(err)
		}
		granter, _ := identity.ParseCard(unhex(t, v.GranterCard))
		g, err := session.OpenGrant(unhex(t, v.Grant), me, func(string, uint32) (*identity.Card, error) { return granter, nil })
		if err != nil {
			t.Fatalf("grant %s→%s: %v", v.Granter, v.Grantee, err)
		}
		if g.SessionID.String() != v.SessionID || g.Epoch != v.Epoch || g.ChannelCID != v.ChannelCID ||
			hex.EncodeToString(g.Key.Bytes()) != v.EpochKey || g.Grantee != v.Grantee || g.Granter != v.Granter {
			t.Errorf("grant %s→%s: opened fields differ from the vector", v.Granter, v.Grantee)
		}
	}

	var ev []envelopeVector
	readVectors(t, "envelopes.json", &ev)
	for _, v := range ev {
		id, _ := session.ParseID(v.SessionID)
		k, _ := session.ParseEpochKey(unhex(t, v.EpochKey))
		s, err := session.FromKeys(nil, id, v.ChannelCID, map[uint32]session.EpochKey{v.Epoch: k})
		if err != nil {
			t.Fatal(err)
		}
		sender, _ := identity.ParseCard(unhex(t, v.SenderCard))
		mc := session.Binding{ChannelCID: v.ChannelCID, MessageID: v.MessageID, SenderID: v.SenderID, ParentID: v.ParentID, QuotedID: v.QuotedID, Revision: v.Revision}
		got, err := s.OpenText(v.Text, mc, sender)
		if err != nil || hex.EncodeToString(got) != v.Plaintext {
			t.Errorf("envelope %s: %x, %v", v.MessageID, got, err)
		}
		if session.EncodeText(unhex(t, v.Envelope)) != v.Text {
			t.Errorf("envelope %s: text form differs", v.MessageID)
		}
		// The stored associated data is what the AEAD authenticates.
		env := unhex(t, v.Envelope)
		aead, err := chacha20poly1305.NewX(unhex(t, v.MessageKey))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := aead.Open(nil, env[session.HeaderSize-24:session.HeaderSize], env[session.HeaderSize:], unhex(t, v.AD)); err != nil {
			t.Errorf("envelope %s: the associated data does not open the AEAD: %v", v.MessageID, err)
		}
	}

	var sv []safetyVector
	readVectors(t, "safety_numbers.json", &sv)
	for _, v := range sv {
		a, _ := identity.ParseCard(unhex(t, v.CardA))
		b, _ := identity.ParseCard(unhex(t, v.CardB))
		sn := identity.ComputeSafetyNumber(b, a)
		if sn.Digits() != v.Digits || !sn.MatchPayload(unhex(t, v.Payload)) {
			t.Errorf("safety number differs from the vector")
		}
	}
}
