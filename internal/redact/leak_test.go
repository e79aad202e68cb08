package redact_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/redact"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/streamadapter/streamtest"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

// Test secrets are printable, so that %s and %q would show them as they
// are, and each is unlike any other text the values print.
var (
	epochKey   = []byte("EPOCHKEY-0123456789abcdefghijklm")
	fileKey    = []byte("FILEKEY-0123456789abcdefghijklmn")
	ruleKey    = []byte("RULEKEY-0123456789abcdefghijklmn")
	stateKey   = []byte("STATEKEY-0123456789abcdefghijklm")
	signSeed   = []byte("SIGNSEED-0123456789abcdefghijklm")
	encSeed    = []byte("ENCSEED-0123456789abcdefghijklmn")
	appKey     = []byte("APPKEY-0123456789abcdefghijklmno")
	hashKey    = []byte("HASHKEY-0123456789abcdefghijklmn")
	hs256      = []byte("HS256KEY-0123456789abcdefghijklm")
	streamKey  = []byte("STREAMSECRET-0123456789abcdefghi")
	smtpPass   = []byte("SMTPPASSWORD-0123456789")
	hookSecret = []byte("WEBHOOKSECRET-0123456789abcdefgh")
	apiSecret  = []byte("APISECRET-0123456789abcdefghijkl")
	token      = []byte("TOKEN-eyJhbGciOiJIUzI1NiJ9.0123456789")
	plaintext  = []byte("PLAINTEXT-of-an-attachment-0123456789")
	otp        = "90210873"
)

// Every position a value can take in a program: fmt calls its methods only
// in some of them, and prints the others by reflection.
type (
	exported[T any]   struct{ Field T }
	unexported[T any] struct{ field T }
)

type position struct {
	name string
	v    any
}

func positions[T any](v T) []position {
	return []position{
		{"value", v},
		{"pointer", &v},
		{"exported field", exported[T]{v}},
		{"pointer to exported field", &exported[T]{v}},
		{"unexported field", unexported[T]{v}},
		{"pointer to unexported field", &unexported[T]{v}},
		{"pointer in unexported field", unexported[*T]{&v}},
		{"interface in unexported field", unexported[any]{v}},
		{"slice element", []T{v}},
		{"slice in unexported field", unexported[[]T]{[]T{v}}},
		{"map value", map[string]T{"k": v}},
		{"map in unexported field", unexported[map[string]T]{map[string]T{"k": v}}},
	}
}

// forms returns the encodings under which secret could show in fmt, slog
// or encoding/json output.
func forms(secret []byte) map[string]string {
	f := map[string]string{
		"raw":     string(secret),
		"quoted":  strings.Trim(strconv.Quote(string(secret)), `"`),
		"hex":     hex.EncodeToString(secret),
		"HEX":     strings.ToUpper(hex.EncodeToString(secret)),
		"decimal": strings.Trim(fmt.Sprint(secret), "[]"),
		"Go hex":  strings.Trim(fmt.Sprintf("%#v", secret), "[]byte{}"),
	}
	// base64 of a buffer that holds secret at any offset: one of these
	// three encodings, without its last group (which mixes in what follows).
	for i := range 3 {
		for name, enc := range map[string]*base64.Encoding{"base64": base64.RawStdEncoding, "base64url": base64.RawURLEncoding} {
			e := enc.EncodeToString(secret[i:])
			f[fmt.Sprintf("%s+%d", name, i)] = e[:len(e)-4]
		}
	}
	return f
}

// leaks returns a description of every form of every secret in out.
func leaks(out string, secrets [][]byte) []string {
	var found []string
	for _, s := range secrets {
		for name, form := range forms(s) {
			if strings.Contains(out, form) {
				found = append(found, fmt.Sprintf("%.12q... as %s", s, name))
			}
		}
	}
	return found
}

// outputs prints v every way the tree's code and its callers do.
func outputs(v any) map[string]string {
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out["fmt "+verb] = fmt.Sprintf(verb, v)
	}
	out["fmt Sprint"] = fmt.Sprint(v)
	out["fmt Sprintln"] = fmt.Sprintln(v)
	for name, h := range map[string]func(io.Writer) slog.Handler{
		"text": func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
		"json": func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	} {
		var b bytes.Buffer
		l := slog.New(h(&b))
		l.Info("m", "v", v, slog.Any("any", v), slog.Group("g", "v", v))
		l.With("with", v).WithGroup("wg").Info("m", "v", v)
		out["slog "+name] = b.String()
	}
	b, err := json.Marshal(v)
	out["encoding/json"] = string(b)
	if err != nil {
		out["encoding/json"] = "error: " + err.Error()
	}
	return out
}

type secretCase struct {
	name, reason string
	positions    []position
	secrets      [][]byte
}

func check(t *testing.T, c secretCase) {
	t.Helper()
	for _, p := range c.positions {
		for how, out := range outputs(p.v) {
			if out == "" {
				t.Errorf("%s, %s, %s: printed nothing (%s)", c.name, p.name, how, c.reason)
			}
			if found := leaks(out, c.secrets); len(found) > 0 {
				t.Errorf("%s, %s, %s: prints %s: %.400s (%s)", c.name, p.name, how, strings.Join(found, ", "), out, c.reason)
			}
		}
	}
}

// TestLeakDetector runs the check on types that hold their secret the way
// no Veil type may, so that TestNoSecretLeaks cannot pass by printing
// nothing or searching for the wrong thing.
func TestLeakDetector(t *testing.T) {
	t.Parallel()
	type leaky struct{ Key []byte }
	type pointerOnly struct{ key *[32]byte }
	type digits struct{ code string }
	for _, tc := range []struct {
		name, reason string
		positions    []position
		secret       []byte
		leakIn       []string // positions where the check must find the secret
	}{
		{"[]byte field", "fmt, slog and encoding/json print a []byte field", positions(leaky{ruleKey}), ruleKey,
			[]string{"value", "pointer", "exported field", "unexported field", "slice element", "map value"}},
		{"single pointer", "fmt dereferences a pointer once under %s, so one pointer is not enough", positions(pointerOnly{(*[32]byte)(ruleKey)}), ruleKey,
			[]string{"value", "unexported field", "slice in unexported field", "map in unexported field"}},
		{"string field", "fmt prints an unexported string field as it is", positions(digits{otp}), []byte(otp),
			[]string{"value", "unexported field", "slice element", "map value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.positions {
				if !slices.Contains(tc.leakIn, p.name) {
					continue
				}
				leaked := false
				for _, out := range outputs(p.v) {
					leaked = leaked || len(leaks(out, [][]byte{tc.secret})) > 0
				}
				if !leaked {
					t.Errorf("%s: the check finds no leak in a type that leaks (%s)", p.name, tc.reason)
				}
			}
		})
	}
}

// TestNoSecretLeaks prints every secret-holding type of the tree, in every
// position, through fmt, slog and encoding/json, and demands that no form
// of any of its secrets appears.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seeds := func() io.Reader { return bytes.NewReader(append(bytes.Clone(signSeed), encSeed...)) }

	ek, err := session.ParseEpochKey(epochKey)
	must(t, err)
	msgKey, err := hkdf.Key(sha256.New, epochKey, nil, "veil/v1/envelope/key", 32)
	must(t, err)
	sess, err := session.FromKeys(nil, session.ID{1}, "messaging:leaks", map[uint32]session.EpochKey{0: ek})
	must(t, err)
	fk, err := session.ParseFileKey(fileKey)
	must(t, err)
	var ciphertext bytes.Buffer
	w, err := session.EncryptStream(&ciphertext, fk)
	must(t, err)
	_, err = w.Write(plaintext) // less than a chunk: pending in the writer
	must(t, err)
	must(t, w.Close())
	r, err := session.DecryptStream(bytes.NewReader(ciphertext.Bytes()), fk)
	must(t, err)
	_, err = r.Read(make([]byte, 1)) // the rest of the chunk waits in the reader
	must(t, err)

	hybrid, err := identity.Generate(seeds(), "alice", identity.Options{Created: created})
	must(t, err)
	x25519, err := identity.Generate(seeds(), "alice", identity.Options{Created: created, Kind: identity.KindX25519})
	must(t, err)
	idSecrets := [][]byte{signSeed, encSeed, []byte("AGE-SECRET-KEY")}

	rk, err := twoman.ParseRuleKey(ruleKey)
	must(t, err)
	tmSession := twoman.Session{UserID: "alice", Factor: twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}, SessionID: "s1", RuleKey: rk, MustAuthenticate: true}
	keys := &backend.MemoryKeyStore{}
	must(t, keys.PutRuleKey(ctx, "alice", rk))
	bcfg := backend.Config{Keys: keys, SSKSURL: "https://ssks.example.com", AppKey: backend.NewSecret(appKey)}
	be, err := backend.New(bcfg)
	must(t, err)

	code := ssks.NewCode(otp)
	challenge := ssks.Challenge{UserID: "alice", Factor: tmSession.Factor, Code: code, Issued: created, Expires: created.Add(time.Minute)}
	smtpSender := ssks.SMTPSender{Addr: "smtp.example.com:587", From: "veil@example.com", Username: "veil", Password: ssks.NewSecret(smtpPass)}
	hook := ssks.WebhookSender{URL: "https://hooks.example.com", Secret: ssks.NewSecret(hookSecret)}
	scfg := ssks.Config{Store: stubSSKSStore{}, AppKeys: []ssks.Secret{ssks.NewSecret(appKey)}, HashKey: ssks.NewSecret(hashKey), Sender: &hook}
	sh, err := ssks.NewHandler(scfg)
	must(t, err)
	scfg.Sender = &smtpSender

	key := server.Key{ID: "k1", HS256: server.NewSecret(hs256)}
	auth := server.Auth{Keys: []server.Key{key}, StreamSecret: server.NewSecret(streamKey)}
	kcfg := server.Config{Store: stubKeyStore{}, Auth: auth}
	kh, err := server.NewHandler(kcfg)
	must(t, err)
	ccfg := keyservice.ClientConfig{BaseURL: "https://keys.example.com", Token: keyservice.StaticToken(string(token))}
	kc, err := keyservice.NewClient(ccfg)
	must(t, err)

	sk, err := e2ee.ParseStateKey(stateKey)
	must(t, err)
	var dir session.MemoryDirectory
	var svc session.MemoryService
	ecfg := e2ee.Config{UserID: "alice", Service: svc.As("alice"), Directory: &dir, Publisher: &dir,
		State: &e2ee.MemoryStore{}, StateKey: sk, Identity: x25519}
	client, err := e2ee.New(ctx, ecfg)
	must(t, err)

	stcfg := streamtest.Config{APIKey: "stream-key", APISecret: streamtest.NewSecret(apiSecret)}
	st := streamtest.NewTestServer(t, stcfg)

	cases := []secretCase{
		{"session.EpochKey", "a message key, kept in managers, grants and callers' structs", positions(ek), [][]byte{epochKey}},
		{"session.FileKey", "an attachment key, carried in callers' message structs", positions(fk), [][]byte{fileKey}},
		{"session.Grant", "an opened grant carries its epoch key in an exported field", positions(session.Grant{SessionID: session.ID{1}, ChannelCID: "messaging:leaks", Grantee: "bob", Granter: "alice", Key: ek}), [][]byte{epochKey}},
		{"*session.Session", "a session holds its epoch keys and the AEADs derived from them", positions(sess), [][]byte{epochKey, msgKey}},
		{"session.Session", "a dereferenced session must redact too", positions(*sess), [][]byte{epochKey, msgKey}},
		{"attachment writer", "an encrypting stream holds its key and the pending plaintext", positions(w), [][]byte{fileKey, plaintext[1:]}},
		{"attachment reader", "a decrypting stream holds its key and plaintext not yet read", positions(r), [][]byte{fileKey, plaintext[1:]}},
		{"*identity.Identity hybrid", "an identity holds every generation's private keys", positions(hybrid), idSecrets},
		{"identity.Identity x25519", "a dereferenced identity, with the classic key kind", positions(*x25519), idSecrets},
		{"twoman.RuleKey", "the backend's half of the two-man rule", positions(rk), [][]byte{ruleKey}},
		{"twoman.Session", "what the backend hands a device holds the RuleKey in an exported field", positions(tmSession), [][]byte{ruleKey}},
		{"backend.MemoryKeyStore", "the backend's store of every user's RuleKey", positions(keys), [][]byte{ruleKey}},
		{"backend.Config", "the app's SSKS API key", positions(bcfg), [][]byte{appKey, ruleKey}},
		{"*backend.Backend", "the backend keeps its Config", positions(be), [][]byte{appKey, ruleKey}},
		{"ssks.Code", "a one-time code on its way to the user", positions(code), [][]byte{[]byte(otp)}},
		{"ssks.Challenge", "what a Sender receives holds the code in an exported field", positions(challenge), [][]byte{[]byte(otp)}},
		{"ssks.SMTPSender", "an SMTP password", positions(smtpSender), [][]byte{smtpPass}},
		{"ssks.WebhookSender", "a webhook HMAC secret", positions(hook), [][]byte{hookSecret}},
		{"ssks.Config", "app keys, the hash key and a sender's password", positions(scfg), [][]byte{appKey, hashKey, smtpPass}},
		{"*ssks.Handler", "the SSKS keeps its Config", positions(sh), [][]byte{appKey, hashKey, hookSecret}},
		{"server.Key", "an HS256 key of the key service", positions(key), [][]byte{hs256}},
		{"server.Auth", "HS256 keys and the Stream API secret", positions(auth), [][]byte{hs256, streamKey}},
		{"server.Config", "the key service's Config holds its Auth", positions(kcfg), [][]byte{hs256, streamKey}},
		{"*server.Handler", "the key service keeps its Config", positions(kh), [][]byte{hs256, streamKey}},
		{"keyservice.ClientConfig", "the client's bearer token, behind a func", positions(ccfg), [][]byte{token}},
		{"*keyservice.Client", "the client keeps its ClientConfig", positions(kc), [][]byte{token}},
		{"e2ee.StateKey", "the key of the local state at rest", positions(sk), [][]byte{stateKey}},
		{"e2ee.Config", "the SDK's Config holds the StateKey and an identity", positions(ecfg), append([][]byte{stateKey}, idSecrets...)},
		{"*e2ee.Client", "the SDK's client holds the StateKey, the identity and session keys", positions(client), append([][]byte{stateKey}, idSecrets...)},
		{"e2ee.Client", "a dereferenced client must redact too", positions(*client), append([][]byte{stateKey}, idSecrets...)},
		{"streamtest.Config", "the emulated app's API secret", positions(stcfg), [][]byte{apiSecret}},
		{"*streamtest.Server", "the emulator keeps its Config", positions(st), [][]byte{apiSecret}},
		{"redact.Secret", "the configuration field type itself", positions(redact.New(apiSecret)), [][]byte{apiSecret}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { check(t, c) })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The handlers need a store; printing them calls none of its methods.
type (
	stubSSKSStore struct{ ssks.Store }
	stubKeyStore  struct{ server.Store }
)
