package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/veilchat/veil/session"
)

const inspectUsage = `Usage: veil inspect [--kind KIND] [--full] [FILE | - | veil1:…]

Decodes a Veil object and prints its public fields: what anyone who stores
or carries it (Stream, the key service, a backup) already sees. It never
decrypts, never prints a private key, an epoch key or a message, and never
echoes its input: an identity export is read for its cards only.

  envelope    a message envelope ("veil1:…" as in Stream's text field, or
              binary): version, session ID, epoch, sender generation, key
              commitment, nonce, sizes and the plaintext length range the
              padding allows
  grant       an epoch key wrapped for one member (an age file): its
              recipient stanza and sizes; the session, epoch, channel and
              users are inside the encryption, for the grantee only
  card        a user's public card: user, generation, kind, creation time,
              fingerprint, signing key and age recipient
  record      a membership-log record: genesis or change, session ID, hash,
              sequence number, signer and generation, time, policy, epoch,
              key commitment, members or operations (signature not checked:
              that needs the signer's card and the log before it)
  export      an identity export: its user and the public card of each
              generation (keep the file secret: it holds private keys), or
              a passphrase-protected export: its scrypt work factor
  attachment  an encrypted attachment: nonce, key commitment, chunks and
              plaintext size

Input: FILE, or standard input when FILE is "-" or absent, or an envelope's
text given as the argument. Binary input, hex and base64 (standard or URL,
padded or not) are accepted, as are lines starting with '#' around a hex or
base64 card (what 'veil keygen' writes). Input over 16 MiB is refused.

The kind is detected unless --kind names it. Exit status: 0 when decoded,
1 when the input is not the object (the reason, never the input, on
standard error), 2 for a usage error.

Flags:
`

// maxInspectInput bounds what inspect reads: a genesis may be 4 MiB, 8 in
// hex.
const maxInspectInput = 16 << 20

// Object kinds inspect knows, in the order auto-detection tries them.
var inspectKinds = []string{"envelope", "grant", "card", "record", "export", "attachment"}

func inspectCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "", "the object's kind: "+strings.Join(inspectKinds, ", ")+" (detected when empty)")
	full := fs.Bool("full", false, "print long values whole (age recipients, every member and operation)")
	fs.Usage = func() {
		fmt.Fprint(stderr, inspectUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *kind != "" && !slices.Contains(inspectKinds, *kind) {
		return usagef("inspect", "--kind must be one of %s", strings.Join(inspectKinds, ", "))
	}
	if len(rest) > 1 {
		return usagef("inspect", "inspect takes one input (a file, - for standard input, or an envelope's text), not %d", len(rest))
	}
	var data []byte
	switch {
	case len(rest) == 0 || rest[0] == "-":
		data, err = readBounded(os.Stdin, maxInspectInput)
	case session.IsText(rest[0]):
		data = []byte(rest[0])
	default:
		data, err = readFileBounded(rest[0], maxInspectInput)
	}
	if err != nil {
		return err
	}
	r, err := inspect(data, *kind, *full)
	if err != nil {
		return err
	}
	r.write(stdout)
	return nil
}

// readFileBounded reads at most limit bytes of a file, and fails beyond.
// Its errors name the file, never its content.
func readFileBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readBounded(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// readBounded reads r to its end, failing past limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		if limit >= 1<<20 {
			return nil, fmt.Errorf("larger than %d MiB, more than any Veil object", limit>>20)
		}
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// errNotRecognised is inspect's answer to input of no kind it knows.
var errNotRecognised = errors.New("not recognised as an envelope, grant, card, membership-log record, identity export or attachment (try --kind to see why)")

// inspect decodes data as an object of kind (any kind when empty) and
// returns its public fields. Its errors say why the input is not that
// object; they never quote the input.
func inspect(data []byte, kind string, full bool) (*report, error) {
	text := strings.TrimSpace(string(data))

	// Text forms, recognised by their first bytes.
	if session.IsText(text) && (kind == "" || kind == "envelope") {
		env, err := session.DecodeText(text)
		switch {
		case errors.Is(err, session.ErrUnknownVersion):
			return nil, errors.New("an envelope of a version this veil does not implement (see veil version)")
		case err != nil:
			return nil, errors.New("not a valid envelope text: not canonical base64url of an envelope")
		}
		return inspectEnvelope(env, len(text))
	}
	if looksLikeExport(text) && (kind == "" || kind == "export") {
		return inspectExport(text, full)
	}
	if strings.HasPrefix(text, armorHeader) && (kind == "" || kind == "export" || kind == "grant") {
		return inspectArmored(text, kind)
	}

	// Binary forms, raw or in hex or base64.
	var firstErr error
	for _, b := range decodings(data) {
		r, err := inspectBinary(b, kind, full)
		if err == nil {
			return r, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if kind == "" || firstErr == nil {
		return nil, errNotRecognised
	}
	return nil, firstErr
}

// inspectBinary tries the binary kinds on b: those with a magic first, then
// the strict parsers (card, record), the loosely checked envelope last.
func inspectBinary(b []byte, kind string, full bool) (*report, error) {
	switch {
	case strings.HasPrefix(string(b), ageMagic) && (kind == "" || kind == "grant" || kind == "export"):
		return inspectAge(b, kind)
	case strings.HasPrefix(string(b), attachMagic) && (kind == "" || kind == "attachment"):
		return inspectAttachment(b)
	}
	var err error
	for _, k := range []string{"card", "record", "envelope"} {
		if kind != "" && kind != k {
			continue
		}
		var r *report
		switch k {
		case "card":
			r, err = inspectCard(b, full)
		case "record":
			r, err = inspectRecord(b, full)
		case "envelope":
			r, err = inspectEnvelope(b, -1)
		}
		if err == nil {
			return r, nil
		}
	}
	switch kind {
	case "grant":
		return nil, errors.New("not a grant: grants are binary age files (age-encryption.org/v1)")
	case "attachment":
		return nil, errors.New("not an attachment: attachments start with VEILATT1")
	case "export":
		return nil, errors.New("not an identity export: no '# veil-identity' line and not an age file")
	case "":
		return nil, errNotRecognised
	}
	return nil, err
}

// decodings returns the readings of data to try: hex or base64 text decoded
// (around '#' comment lines), then data itself.
func decodings(data []byte) [][]byte {
	var out [][]byte
	if t, ok := textPayload(data); ok {
		if b, ok := decodeHexOrBase64(t); ok {
			out = append(out, b)
		}
	}
	return append(out, data)
}

// textPayload returns data without '#' comment lines and whitespace, if
// data is printable ASCII text.
func textPayload(data []byte) (string, bool) {
	var b strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 || c > 0x7e {
				return "", false
			}
		}
		b.WriteString(line)
	}
	return b.String(), b.Len() > 0
}

// report is what inspect prints: a title, then aligned name-value rows.
type report struct {
	title string
	rows  [][2]string
	notes []string
}

func (r *report) add(name, format string, args ...any) {
	r.rows = append(r.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *report) write(w io.Writer) {
	width := 0
	for _, row := range r.rows {
		width = max(width, len(row[0]))
	}
	fmt.Fprintln(w, r.title)
	for _, row := range r.rows {
		name := row[0] + ":"
		if row[0] == "" { // a continuation of the rows above
			name = ""
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width+1, name, row[1])
	}
	for _, n := range r.notes {
		fmt.Fprintln(w, "  note: "+n)
	}
}
