package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/veilchat/veil/internal/bech32"
)

// MaxExportSize bounds the size of an exported identity that [Import] and
// [ImportWithPassphrase] read.
const MaxExportSize = 4 << 20

// Bounds on the age scrypt work factor (log2 of N) of passphrase-protected
// exports. scrypt needs 2^(work factor) KiB of memory: 256 MiB at 18.
const (
	// DefaultWorkFactor is used by ExportWithPassphrase when given 0: about
	// one second on a laptop, as age's own default.
	DefaultWorkFactor = 18
	// MaxWorkFactor is the largest work factor [ExportWithPassphrase] writes
	// and [ImportWithPassphrase] accepts: 256 MiB of memory, what a phone
	// survives, so that a hostile file cannot exhaust the memory of the
	// process that opens it (22, age's own bound, asks for 4 GiB).
	MaxWorkFactor = 18
	// MinWorkFactor is the smallest work factor [ExportWithPassphrase]
	// writes: 32 MiB and tens of milliseconds per guess. Below it, guessing
	// a passphrase offline costs next to nothing.
	MinWorkFactor = 15
)

// ErrInvalidExport is returned by [Import] for text that is not a well-formed
// exported identity whose keys match its cards.
var ErrInvalidExport = errors.New("identity: invalid exported identity")

// ErrWrongPassphrase is returned by [ImportWithPassphrase] when the passphrase
// does not open the file (or the file was not made for a passphrase).
var ErrWrongPassphrase = errors.New("identity: wrong passphrase")

const (
	exportHeader  = "# veil-identity: v1"
	exportUser    = "# veil-user: "
	exportGenLine = "# veil-generation: "
)

// b64 encodes the export's fields; decoding is strict (canonical trailing
// bits) so that an export has one encoding. Fields never hold CR or LF,
// which encoding/base64 would skip: lines are split at LF, and a line that
// still holds a CR is refused, before decoding.
var b64 = base64.RawURLEncoding.Strict()

// Export returns the identity as text: every generation's keys and card. The
// text is a secret. It is also an age identity file: its non-comment lines
// are the age secret keys of every generation, so a grant made for this user
// opens with the age command line tool:
//
//	age --decrypt -i alice.veil-identity grant.age
func (id *Identity) Export() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Veil identity of user %q, %d generation(s). This file is a secret key.\n", id.userID, len(id.gens))
	b.WriteString("# It is also an age identity file: age --decrypt -i <this file> <grant>\n")
	b.WriteString(exportHeader + "\n")
	b.WriteString(exportUser + b64.EncodeToString([]byte(id.userID)) + "\n")
	for i, g := range id.gens {
		fmt.Fprintf(&b, "%s%d %s %s\n", exportGenLine, i, b64.EncodeToString(g.signSeed[:]), b64.EncodeToString(g.card.raw))
		b.WriteString(g.ageSecret())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Import parses text made by Export. It checks that every key matches its
// card and that the cards form a chain from generation 0. Any defect returns
// [ErrInvalidExport], whose text never quotes the input.
func Import(text []byte) (*Identity, error) {
	if len(text) > MaxExportSize {
		return nil, ErrInvalidExport
	}
	id, err := parseExport(text)
	if err != nil {
		return nil, ErrInvalidExport
	}
	return id, nil
}

func parseExport(text []byte) (*Identity, error) {
	var lines []string
	all := strings.Split(string(text), "\n")
	for i, line := range all {
		// A CR may only end a line that an LF ends: the last line has
		// none, so a CR there is a bare CR.
		if i < len(all)-1 {
			line = strings.TrimSuffix(line, "\r")
		}
		if strings.IndexByte(line, '\r') >= 0 {
			// encoding/base64 would skip it inside a field: refuse it, so
			// that an export has one encoding.
			return nil, ErrInvalidExport
		}
		if line == "" || (strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "# veil-")) {
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) < 4 || lines[0] != exportHeader || !strings.HasPrefix(lines[1], exportUser) {
		return nil, ErrInvalidExport
	}
	user, err := b64.DecodeString(strings.TrimPrefix(lines[1], exportUser))
	if err != nil || CheckUserID(string(user)) != nil {
		return nil, ErrInvalidExport
	}
	id := &Identity{userID: string(user)}
	rest := lines[2:]
	if len(rest)%2 != 0 || len(rest)/2 > MaxGenerations {
		return nil, ErrInvalidExport
	}
	for i := 0; i < len(rest); i += 2 {
		g, err := parseGeneration(id.userID, uint32(i/2), rest[i], rest[i+1])
		if err != nil {
			return nil, err
		}
		if n := len(id.gens); n > 0 && !g.card.IsSuccessorOf(id.gens[n-1].card) {
			return nil, ErrInvalidExport
		}
		id.gens = append(id.gens, g)
	}
	return id, nil
}

func parseGeneration(userID string, want uint32, genLine, ageLine string) (*generation, error) {
	fields := strings.Split(strings.TrimPrefix(genLine, exportGenLine), " ")
	if !strings.HasPrefix(genLine, exportGenLine) || len(fields) != 3 {
		return nil, ErrInvalidExport
	}
	n, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil || uint32(n) != want || fields[0] != strconv.FormatUint(n, 10) {
		return nil, ErrInvalidExport
	}
	seed, err1 := b64.DecodeString(fields[1])
	cardBytes, err2 := b64.DecodeString(fields[2])
	if err1 != nil || err2 != nil || len(seed) != ed25519.SeedSize {
		return nil, ErrInvalidExport
	}
	card, err := ParseCard(cardBytes)
	if err != nil || card.UserID() != userID || card.Generation() != want {
		return nil, ErrInvalidExport
	}
	hrp, encKey, err := bech32.Decode(ageLine)
	if err != nil || len(encKey) != 32 {
		return nil, ErrInvalidExport
	}
	if (card.kind == KindHybrid && hrp != "AGE-SECRET-KEY-PQ-") || (card.kind == KindX25519 && hrp != "AGE-SECRET-KEY-") {
		return nil, ErrInvalidExport
	}
	g, err := newGeneration(card.kind, (*[32]byte)(seed), (*[32]byte)(encKey))
	clear(seed)
	clear(encKey)
	if err != nil {
		return nil, ErrInvalidExport
	}
	recip, err := recipientBytes(card.kind, g.recipient())
	pub := g.sign.Public().(ed25519.PublicKey)
	if err != nil || subtle.ConstantTimeCompare(recip, card.recipRaw) != 1 || subtle.ConstantTimeCompare(pub, card.signingKey) != 1 {
		return nil, ErrInvalidExport
	}
	g.card = card
	return g, nil
}

// ExportWithPassphrase returns the exported identity encrypted to an age
// scrypt recipient derived from passphrase, ASCII-armored. workFactor is
// log2 of scrypt's N; 0 means [DefaultWorkFactor], and values outside
// [[MinWorkFactor], [MaxWorkFactor]] are refused. The age command line opens it:
//
//	age --decrypt -o alice.veil-identity alice.veil-identity.age
func (id *Identity) ExportWithPassphrase(passphrase string, workFactor int) ([]byte, error) {
	if passphrase == "" {
		return nil, errors.New("identity: empty passphrase")
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	if workFactor < MinWorkFactor || workFactor > MaxWorkFactor {
		return nil, fmt.Errorf("identity: scrypt work factor %d outside [%d, %d]", workFactor, MinWorkFactor, MaxWorkFactor)
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	r.SetWorkFactor(workFactor)
	var out bytes.Buffer
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	plain := id.Export()
	defer clear(plain)
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// ImportWithPassphrase opens a file made by ExportWithPassphrase (armored or
// binary age). maxWorkFactor bounds the scrypt cost the file may demand; 0
// means [MaxWorkFactor], and a bound outside [1, MaxWorkFactor] is an error.
// A wrong passphrase returns [ErrWrongPassphrase]; a malformed file, or one
// demanding too much work, [ErrInvalidExport].
func ImportWithPassphrase(data []byte, passphrase string, maxWorkFactor int) (*Identity, error) {
	if len(data) > 2*MaxExportSize {
		return nil, ErrInvalidExport
	}
	if maxWorkFactor == 0 {
		maxWorkFactor = MaxWorkFactor
	}
	if maxWorkFactor < 1 || maxWorkFactor > MaxWorkFactor {
		return nil, fmt.Errorf("identity: maximum work factor %d outside [1, %d]", maxWorkFactor, MaxWorkFactor)
	}
	sid, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	sid.SetMaxWorkFactor(maxWorkFactor)
	var src io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
		src = armor.NewReader(bytes.NewReader(data))
	}
	r, err := age.Decrypt(src, sid)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) || errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, ErrWrongPassphrase
		}
		return nil, ErrInvalidExport
	}
	plain, err := io.ReadAll(io.LimitReader(r, MaxExportSize+1))
	defer clear(plain)
	if err != nil {
		return nil, ErrInvalidExport
	}
	return Import(plain)
}
