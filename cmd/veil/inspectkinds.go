package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"filippo.io/age/armor"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

// decodeHexOrBase64 decodes t as hex, else as base64 in any of its four
// variants, strictly.
func decodeHexOrBase64(t string) ([]byte, bool) {
	if len(t)%2 == 0 && strings.Trim(t, "0123456789abcdefABCDEF") == "" {
		b, err := hex.DecodeString(t)
		return b, err == nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(t); err == nil {
			return b, true
		}
	}
	return nil, false
}

// Envelope header fields that session.Header leaves out, by offset
// (docs/PROTOCOL.md §6.1).
const (
	envOffCommitment = 1 + session.IDSize + 4 + 4
	envCommitSize    = 32
	envOffNonce      = envOffCommitment + envCommitSize
	envNonceSize     = 24
)

// The header is these fields and nothing else: a change of layout fails to
// compile here.
var _ = [1]struct{}{}[envOffNonce+envNonceSize-session.HeaderSize]

// inspectEnvelope reports an envelope's header; textLen is the length of
// its text form, or -1 for binary input, which must also have the size of
// some envelope.
func inspectEnvelope(env []byte, textLen int) (*report, error) {
	h, err := session.ParseHeader(env)
	switch {
	case errors.Is(err, session.ErrUnknownVersion):
		return nil, fmt.Errorf("not an envelope of version %d: version %d is not implemented", session.Version, env[0])
	case err != nil:
		return nil, fmt.Errorf("not an envelope: %d bytes, fewer than the smallest envelope's %d", len(env), session.SealedSize(0))
	}
	lo, hi, sizeOK := plaintextRange(len(env))
	if !sizeOK && textLen < 0 {
		return nil, fmt.Errorf("not an envelope: no envelope is %d bytes long (the padding makes sizes discrete)", len(env))
	}
	r := &report{title: "envelope (binary)"}
	if textLen >= 0 {
		r.title = fmt.Sprintf("envelope (text form, %d characters)", textLen)
	}
	r.add("version", "%d", h.Version)
	r.add("session ID", "%s", h.SessionID)
	r.add("epoch", "%d", h.Epoch)
	r.add("sender generation", "%d", h.SenderGeneration)
	r.add("key commitment", "%x", env[envOffCommitment:envOffCommitment+envCommitSize])
	r.add("nonce", "%x", env[envOffNonce:envOffNonce+envNonceSize])
	r.add("size", "%d bytes: %d of header, %d of padded plaintext, signature and tag", len(env), session.HeaderSize, len(env)-session.HeaderSize)
	if sizeOK {
		r.add("plaintext", "%d to %d bytes (the padding hides the exact length)", lo, hi)
	} else {
		r.note("no envelope is %d bytes long: it cannot open", len(env))
	}
	if h.SessionID.IsZero() {
		r.note("the session ID is zero, which no session has")
	}
	r.note("the header is not authenticated until a member opens the envelope; the message and the sender's signature are inside the encryption")
	return r, nil
}

// plaintextRange returns the plaintext lengths whose envelope is size bytes
// long.
func plaintextRange(size int) (lo, hi int, ok bool) {
	first := func(pred func(n int) bool) int { // the least n in [0, max+1] with pred
		a, b := 0, session.MaxPlaintextSize+1
		for a < b {
			m := int(uint(a+b) >> 1)
			if pred(m) {
				b = m
			} else {
				a = m + 1
			}
		}
		return a
	}
	lo = first(func(n int) bool { return session.SealedSize(n) >= size })
	if lo > session.MaxPlaintextSize || session.SealedSize(lo) != size {
		return 0, 0, false
	}
	hi = first(func(n int) bool { return session.SealedSize(n) > size }) - 1
	return lo, hi, true
}

// cardRows adds a card's public fields to r, each name prefixed; the user
// only without a prefix (a prefixed card is of a user already shown).
func cardRows(r *report, prefix string, c *identity.Card, full bool) {
	if prefix == "" {
		r.add("user", "%q", c.UserID())
	}
	r.add(prefix+"generation", "%d", c.Generation())
	r.add(prefix+"kind", "%s", c.Kind())
	r.add(prefix+"created", "%s", c.Created().Format(time.RFC3339))
	r.add(prefix+"fingerprint", "%s", c.Fingerprint())
	r.add(prefix+"signing key", "%x (Ed25519)", []byte(c.SigningKey()))
	r.add(prefix+"age recipient", "%s", abbreviate(c.RecipientString(), full))
}

// abbreviate shortens s to its ends unless full.
func abbreviate(s string, full bool) string {
	if full || len(s) <= 80 {
		return s
	}
	return fmt.Sprintf("%s…%s (%d characters; --full prints it whole)", s[:40], s[len(s)-16:], len(s))
}

func inspectCard(b []byte, full bool) (*report, error) {
	if len(b) > identity.MaxCardSize {
		return nil, fmt.Errorf("not a card: %d bytes, more than the largest card's %d", len(b), identity.MaxCardSize)
	}
	c, err := identity.ParseCard(b)
	if err != nil {
		return nil, errors.New("not a valid card (layout, version, kind, user ID, keys or self-signature)")
	}
	r := &report{title: fmt.Sprintf("card (%d bytes)", len(b))}
	cardRows(r, "", c, full)
	r.add("self-signature", "valid")
	if c.Generation() > 0 {
		r.add("previous generation's signature", "present; checking it needs generation %d's card", c.Generation()-1)
	}
	return r, nil
}

// maxListed bounds the members and operations printed without --full.
const maxListed = 20

func inspectRecord(b []byte, full bool) (*report, error) {
	rec, err := memberlog.Parse(b)
	if err != nil {
		var le *memberlog.Error
		if errors.As(err, &le) {
			return nil, fmt.Errorf("not a valid membership-log record: %s", le.Reason)
		}
		return nil, errors.New("not a valid membership-log record")
	}
	r := &report{}
	signed := func(who string, gen uint32, t uint64) {
		r.add("signer", "%q, card generation %d", who, gen)
		r.add("time", "%s (the signer's clock, shown, never checked)", unixTime(t))
	}
	if g := rec.Genesis; g != nil {
		r.title = fmt.Sprintf("membership-log record: genesis (%d bytes)", len(b))
		r.add("session ID", "%x", memberlog.SessionIDOf(b))
		r.add("hash", "%x", rec.Hash)
		r.add("sequence number", "0")
		r.add("channel", "%q", g.ChannelCID)
		signed(g.Creator, g.CreatorGen, g.Time)
		r.add("policy", "%s", policyText(g.Policy))
		r.add("epoch", "0")
		r.add("key commitment", "%x", g.Commitment)
		r.add("members", "%d", len(g.Members))
		for i, m := range g.Members {
			if i == maxListed && !full {
				r.add("", "… %d more (--full lists them)", len(g.Members)-i)
				break
			}
			r.add("  "+strconv.Quote(m.UserID), "%s, anchor: generation %d, fingerprint %x", m.Role, m.Anchor.Generation, m.Anchor.Fingerprint)
		}
	} else {
		c := rec.Change
		r.title = fmt.Sprintf("membership-log record: change (%d bytes)", len(b))
		r.add("session ID", "%x", c.SessionID)
		r.add("hash", "%x", rec.Hash)
		r.add("sequence number", "%d", c.Seq)
		r.add("previous hash", "%x", c.Prev)
		signed(c.Actor, c.ActorGen, c.Time)
		if c.NewEpoch {
			r.add("epoch", "%d (new)", c.Epoch)
			r.add("key commitment", "%x", c.Commitment)
		} else {
			r.add("epoch", "%d (unchanged)", c.Epoch)
		}
		r.add("operations", "%d", len(c.Ops))
		for i, op := range c.Ops {
			if i == maxListed && !full {
				r.add("", "… %d more (--full lists them)", len(c.Ops)-i)
				break
			}
			switch op.Kind {
			case memberlog.OpAdd:
				r.add("  add", "%q as %s, anchor: generation %d, fingerprint %x", op.Member.UserID, op.Member.Role, op.Member.Anchor.Generation, op.Member.Anchor.Fingerprint)
			case memberlog.OpRemove:
				r.add("  remove", "%q", op.Member.UserID)
			case memberlog.OpRole:
				r.add("  set role", "%q to %s", op.Member.UserID, op.Member.Role)
			}
		}
		r.add("roster digest", "%x", c.RosterDigest)
	}
	r.note("the signature is not checked: that needs the signer's card and the log before the record")
	return r, nil
}

func unixTime(t uint64) string {
	if t > 253402300799 {
		return strconv.FormatUint(t, 10) + " (after year 9999)"
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}

func policyText(p memberlog.Policy) string {
	var parts []string
	if p&memberlog.MembersAdd != 0 {
		parts = append(parts, "members add")
	}
	if p&memberlog.MembersRemove != 0 {
		parts = append(parts, "members remove")
	}
	if len(parts) == 0 {
		parts = append(parts, "admins only")
	}
	return fmt.Sprintf("0x%02x (%s)", uint8(p), strings.Join(parts, ", "))
}

// Attachment layout (docs/PROTOCOL.md §8).
const (
	attachMagic      = "VEILATT1"
	attachNonceSize  = 16
	attachCommitSize = 32
	attachHeaderSize = len(attachMagic) + attachNonceSize + attachCommitSize
	attachTagSize    = 16
	attachChunk      = session.AttachmentChunkSize
)

func inspectAttachment(b []byte) (*report, error) {
	if len(b) < attachHeaderSize+attachTagSize {
		return nil, fmt.Errorf("not an attachment: %d bytes, fewer than the smallest attachment's %d", len(b), attachHeaderSize+attachTagSize)
	}
	body := int64(len(b) - attachHeaderSize)
	chunks := (body + attachChunk + attachTagSize - 1) / (attachChunk + attachTagSize)
	n := body - attachTagSize*chunks
	r := &report{title: fmt.Sprintf("encrypted attachment (%d bytes)", len(b))}
	r.add("nonce", "%x", b[len(attachMagic):len(attachMagic)+attachNonceSize])
	r.add("key commitment", "%x", b[len(attachMagic)+attachNonceSize:attachHeaderSize])
	if n < 0 || session.EncryptedSize(n) != int64(len(b)) {
		r.note("no attachment is %d bytes long: its last chunk is cut short", len(b))
	} else {
		r.add("chunks", "%d of up to %d bytes", chunks, attachChunk)
		r.add("plaintext", "%d bytes", n)
	}
	r.note("this is the stored ciphertext; the file key, name and type travel inside the encrypted message")
	return r, nil
}

// age files (c2sp.org/age): grants, and passphrase-protected exports.
const (
	ageMagic    = "age-encryption.org/v1\n"
	armorHeader = armor.Header
	// maxAgeHeader bounds the header inspect reads: a hybrid stanza is
	// about 1.5 KB.
	maxAgeHeader  = 64 << 10
	maxAgeStanzas = 64
)

// ageStanza is the public part of an age recipient stanza.
type ageStanza struct {
	typ  string
	args []string
	body int // bytes of the wrapped file key
}

// parseAgeHeader reads the header of a binary age file: its stanzas, and
// the size of the header (after which the payload starts).
func parseAgeHeader(b []byte) ([]ageStanza, int, error) {
	bad := errors.New("not an age file: malformed header")
	if !bytes.HasPrefix(b, []byte(ageMagic)) {
		return nil, 0, bad
	}
	off := len(ageMagic)
	next := func() (string, bool) {
		i := bytes.IndexByte(b[off:min(len(b), maxAgeHeader)], '\n')
		if i < 0 {
			return "", false
		}
		line := string(b[off : off+i])
		off += i + 1
		return line, true
	}
	var stanzas []ageStanza
	for {
		line, ok := next()
		if !ok {
			return nil, 0, bad
		}
		if mac, ok := strings.CutPrefix(line, "--- "); ok {
			if m, err := base64.RawStdEncoding.Strict().DecodeString(mac); err != nil || len(m) != 32 {
				return nil, 0, bad
			}
			return stanzas, off, nil
		}
		rest, ok := strings.CutPrefix(line, "-> ")
		if !ok || len(stanzas) == maxAgeStanzas {
			return nil, 0, bad
		}
		args := strings.Split(rest, " ")
		for _, a := range args {
			if a == "" {
				return nil, 0, bad
			}
		}
		st := ageStanza{typ: args[0], args: args[1:]}
		for {
			l, ok := next()
			if !ok || len(l) > 64 {
				return nil, 0, bad
			}
			d, err := base64.RawStdEncoding.Strict().DecodeString(l)
			if err != nil {
				return nil, 0, bad
			}
			st.body += len(d)
			if len(l) < 64 {
				break
			}
		}
		stanzas = append(stanzas, st)
	}
}

// stanzaText names an age stanza type for people.
func stanzaText(typ string) string {
	switch typ {
	case "mlkem768x25519":
		return "mlkem768x25519 (hybrid ML-KEM-768 + X25519, a Veil identity of kind hybrid)"
	case "X25519":
		return "X25519 (a Veil identity of kind x25519)"
	case "scrypt":
		return "scrypt (a passphrase)"
	}
	return strconv.Quote(typ) + " (not a stanza Veil writes)"
}

// inspectAge reports a binary age file: a passphrase-protected export (one
// scrypt stanza) or a grant.
func inspectAge(b []byte, kind string) (*report, error) {
	stanzas, hdr, err := parseAgeHeader(b)
	if err != nil {
		return nil, err
	}
	if len(stanzas) == 1 && stanzas[0].typ == "scrypt" {
		if kind == "grant" {
			return nil, errors.New("not a grant: a passphrase-protected age file (an identity export?)")
		}
		return passphraseExport(stanzas[0], len(b), "binary")
	}
	if kind == "export" {
		return nil, errors.New("not a passphrase-protected export: an age file for a recipient (a grant?)")
	}
	r := &report{title: fmt.Sprintf("grant (age file, %d bytes)", len(b))}
	r.add("recipient stanzas", "%d", len(stanzas))
	for _, s := range stanzas {
		r.add("  stanza", "%s", stanzaText(s.typ))
	}
	payload := len(b) - hdr
	r.add("header", "%d bytes", hdr)
	// The payload is a 16-byte nonce, then the body in 64 KiB chunks of
	// ciphertext with a 16-byte tag each; a grant's body is one chunk.
	if body := payload - 16 - 16; body >= 0 {
		r.add("encrypted payload", "%d bytes (a grant body of %d bytes)", payload, body)
	} else {
		r.add("encrypted payload", "%d bytes, too short for any age payload", payload)
	}
	if len(stanzas) != 1 {
		r.note("receivers refuse a grant with %d stanzas: a grant is for one member", len(stanzas))
	}
	if len(b) > session.MaxGrantSize {
		r.note("receivers refuse a grant over %d bytes", session.MaxGrantSize)
	}
	r.note("the session ID, epoch, channel, grantee, granter and epoch key are inside the encryption: only the grantee's identity opens it")
	return r, nil
}

// inspectArmored reports an ASCII-armored age file.
func inspectArmored(text, kind string) (*report, error) {
	b, err := io.ReadAll(io.LimitReader(armor.NewReader(strings.NewReader(text)), identity.MaxExportSize+1))
	if err != nil || len(b) > identity.MaxExportSize {
		return nil, errors.New("not a valid armored age file")
	}
	stanzas, _, err := parseAgeHeader(b)
	if err != nil {
		return nil, err
	}
	if len(stanzas) == 1 && stanzas[0].typ == "scrypt" && kind != "grant" {
		return passphraseExport(stanzas[0], len(text), "armored")
	}
	if kind == "export" {
		return nil, errors.New("not a passphrase-protected export: an age file for a recipient")
	}
	return inspectAge(b, kind)
}

func passphraseExport(s ageStanza, size int, form string) (*report, error) {
	r := &report{title: fmt.Sprintf("passphrase-protected identity export (%s age file, %d bytes)", form, size)}
	r.add("encryption", "age scrypt")
	if len(s.args) != 2 {
		r.note("the scrypt stanza does not have its two arguments: age refuses it")
		return r, nil
	}
	wf, err := strconv.Atoi(s.args[1])
	if err != nil || wf < 1 || wf > 30 || s.args[1] != strconv.Itoa(wf) {
		r.note("the scrypt work factor is not a number age accepts")
		return r, nil
	}
	r.add("work factor", "%d (scrypt N = 2^%d: %d MiB of memory per passphrase guess)", wf, wf, 1<<wf>>10)
	switch {
	case wf > identity.MaxWorkFactor:
		r.note("veil refuses to open exports above work factor %d (memory exhaustion)", identity.MaxWorkFactor)
	case wf < identity.MinWorkFactor:
		r.note("below work factor %d a passphrase is cheap to guess offline; veil writes none", identity.MinWorkFactor)
	}
	r.note("the user ID, cards and private keys are inside the encryption")
	return r, nil
}

// Export lines (docs/PROTOCOL.md §4.5).
const (
	exportHeaderLine = "# veil-identity: "
	exportUserLine   = "# veil-user: "
	exportGenLine    = "# veil-generation: "
)

// looksLikeExport reports whether text has a "# veil-" line of an export.
func looksLikeExport(text string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, exportHeaderLine) || strings.HasPrefix(line, exportUserLine) || strings.HasPrefix(line, exportGenLine) {
			return true
		}
	}
	return false
}

// exportCards reads an identity export for its public parts: the user and
// the cards of its generations. It never decodes a seed or an age secret
// key, and its errors never quote a line.
func exportCards(text string) (string, []*identity.Card, error) {
	if len(text) > identity.MaxExportSize {
		return "", nil, errors.New("not a valid identity export: larger than 4 MiB")
	}
	b64 := base64.RawURLEncoding.Strict()
	var (
		user     string
		haveUser bool
		version  bool
		cards    []*identity.Card
		keyLines int
	)
	bad := func(why string) (string, []*identity.Card, error) {
		return "", nil, errors.New("not a valid identity export: " + why)
	}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, exportHeaderLine):
			if version || line != exportHeaderLine+"v1" {
				return bad("a second header, or an export version other than v1")
			}
			version = true
		case strings.HasPrefix(line, exportUserLine):
			u, err := b64.DecodeString(strings.TrimPrefix(line, exportUserLine))
			if haveUser || err != nil || identity.CheckUserID(string(u)) != nil {
				return bad("the veil-user line is repeated or does not hold a valid user ID")
			}
			user, haveUser = string(u), true
		case strings.HasPrefix(line, exportGenLine):
			fields := strings.Split(strings.TrimPrefix(line, exportGenLine), " ")
			if len(fields) != 3 || fields[0] != strconv.Itoa(len(cards)) {
				return bad(fmt.Sprintf("generation line %d is not \"number seed card\" numbered in order", len(cards)))
			}
			raw, err := b64.DecodeString(fields[2]) // fields[1], the seed, is never read
			if err != nil || len(raw) > identity.MaxCardSize {
				return bad(fmt.Sprintf("the card of generation %d is not base64url", len(cards)))
			}
			c, err := identity.ParseCard(raw)
			if err != nil {
				return bad(fmt.Sprintf("the card of generation %d is not valid", len(cards)))
			}
			if len(cards) == identity.MaxGenerations {
				return bad("more generations than an identity may have")
			}
			cards = append(cards, c)
		case strings.HasPrefix(line, "# veil-"):
			return bad("an unknown '# veil-' line")
		case strings.HasPrefix(line, "#"):
		default:
			keyLines++ // an age secret key: counted, never read
		}
	}
	switch {
	case !version:
		return bad("no '# veil-identity: v1' line")
	case !haveUser:
		return bad("no veil-user line")
	case len(cards) == 0:
		return bad("no generation")
	case keyLines != len(cards):
		return bad(fmt.Sprintf("%d key lines for %d generations", keyLines, len(cards)))
	}
	for i, c := range cards {
		if c.UserID() != user || c.Generation() != uint32(i) {
			return bad(fmt.Sprintf("the card of generation %d names another user or generation", i))
		}
	}
	if err := identity.VerifyChain(cards); err != nil {
		return bad("its cards do not form a signed chain from generation 0")
	}
	return user, cards, nil
}

func inspectExport(text string, full bool) (*report, error) {
	user, cards, err := exportCards(text)
	if err != nil {
		return nil, err
	}
	r := &report{title: fmt.Sprintf("identity export (SECRET: it holds the private keys of %d generation(s))", len(cards))}
	r.add("user", "%q", user)
	r.add("generations", "%d", len(cards))
	for _, c := range cards[:len(cards)-1] {
		r.add(fmt.Sprintf("generation %d", c.Generation()), "%s, created %s, fingerprint %s", c.Kind(), c.Created().Format(time.RFC3339), c.Fingerprint())
	}
	cardRows(r, "current ", cards[len(cards)-1], full)
	r.note("cards chain from generation 0; the private keys were not read (importing checks them)")
	r.note("keep this file private (mode 0600); identities made with 'veil keygen --passphrase-file' are protected by a passphrase")
	return r, nil
}
