package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/twoman"
)

func main() {
	cfg, err := configFromEnv()
	if err == nil {
		err = run(context.Background(), os.Stdout, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// config says which Stream the story runs on.
type config struct {
	// StreamKey and StreamSecret are a Stream app's credentials; empty
	// means the emulator.
	StreamKey, StreamSecret string
	// StreamURL is the Stream API's base URL; empty means stream-chat-go's
	// choice.
	StreamURL string
}

func configFromEnv() (config, error) {
	c := config{StreamKey: os.Getenv("STREAM_KEY"), StreamSecret: os.Getenv("STREAM_SECRET"), StreamURL: os.Getenv("STREAM_CHAT_URL")}
	if (c.StreamKey == "") != (c.StreamSecret == "") {
		return config{}, errors.New("set both STREAM_KEY and STREAM_SECRET to run on your Stream app, or neither to run on the emulator")
	}
	return c, nil
}

// What the members write: the story checks that none of it reaches Stream.
const (
	lunch    = "Lunch at noon? 🍜"
	reply    = "Yes! The ramen place on 5th"
	menuNote = "Here's their menu"
	menuName = "ramen-menu.txt"
	thanks   = "Perfect, see you there"
	party    = "Surprise party for bob, Friday 7pm 🎉"
	menuLine = "shoyu 12 · miso 13 · tantanmen 14 · gyoza 6\n"
)

var menu = strings.Repeat(menuLine, 40)

// leftWidth is the width, in characters, of the "what Stream stores"
// column.
const leftWidth = 38

// run tells the story on out: sign-up and two-man-rule backup, an encrypted
// channel, messages, a thread reply and a file shown as Stream stores them
// and as the members read them, a member added with the history, a member
// removed and locked out, and recovery on a new device. It checks each step
// and returns an error if one does not do what the story says.
func run(ctx context.Context, out io.Writer, cfg config) error {
	start := time.Now()
	s, err := startStack(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.stop()
	p := &printer{w: out}

	p.printf("Veil quickstart: an end-to-end encrypted chat on Stream, every service in this process.\n")
	p.say("Stream        %s", s.where)
	if s.emulator != nil {
		p.say("              (set STREAM_KEY and STREAM_SECRET to use your Stream app)")
	}
	p.say("key service   %s, on SQLite in a temporary directory", s.keysURL)
	p.say("SSKS          %s, on SQLite; it hands its codes to this program", s.ssksURL)
	p.say("app backend   issues Stream and key-service tokens, keeps twoManRuleKeys")

	// 1. Sign-up, and alice's identity saved under the two-man rule.
	p.step("1. alice, bob and carol sign up: each device makes an identity, publishes its card.")
	devices := map[string]*device{}
	for _, name := range []string{"alice", "bob", "carol"} {
		if _, err := s.app.signUp(ctx, s.prefix+name, name); err != nil { // the token is for Stream's UI SDKs
			return err
		}
		d, err := s.newDevice(ctx, name, nil)
		if err != nil {
			return err
		}
		devices[name] = d
		card := d.Veil().Identity().Card()
		p.say("%-5s  %s identity, fingerprint %s", name, card.Kind(), short(card.Fingerprint()))
	}
	alice, bob, carol := devices["alice"], devices["bob"], devices["carol"]
	email := twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}
	challenge, err := s.app.startRecovery(ctx, alice.UserID(), email)
	if err != nil {
		return fmt.Errorf("starting alice's challenge: %w", err)
	}
	code, err := s.outbox.read(alice.UserID()) // alice reads her email
	if err != nil {
		return err
	}
	recovery, err := twoman.NewClient(twoman.ClientConfig{BaseURL: s.ssksURL})
	if err != nil {
		return err
	}
	if err := recovery.SaveIdentity(ctx, challenge, code, alice.Veil().Identity()); err != nil {
		return fmt.Errorf("saving alice's identity: %w", err)
	}
	p.say("alice turns on recovery: the SSKS emails a one-time code to %s;", email.Value)
	p.say("she types it, and her device stores her identity on the SSKS, encrypted under a")
	p.say("key from the backend's twoManRuleKey. The SSKS never sees that key, the backend")
	p.say("never sees the code: neither can recover her identity alone.")

	// 2. The encrypted channel.
	p.step("2. alice creates an encrypted channel with bob.")
	chanID := s.prefix + "lunch"
	ach, err := alice.CreateChannel(ctx, "messaging", chanID, []string{bob.UserID()})
	if err != nil {
		return fmt.Errorf("creating the channel: %w", err)
	}
	bch, err := bob.Channel(ctx, "messaging", chanID)
	if err != nil {
		return fmt.Errorf("bob opening the channel: %w", err)
	}
	defer s.cleanUp(context.WithoutCancel(ctx), ach.CID())
	p.say("Stream channel %s, session_id = %s:", ach.CID(), ach.SessionID())
	p.say("the Veil session, whose members and epochs are a log signed by members. bob")
	p.say("opens the channel by its session_id, checking that the session's genesis names it.")

	// 3. Messages, a reply, a file: what Stream stores, what members read.
	p.step("3. They talk, reply in a thread and share a file.")
	m1, err := ach.SendMessage(ctx, &stream.Message{Text: lunch})
	if err != nil {
		return err
	}
	m2, err := bch.SendMessage(ctx, &stream.Message{Text: reply, ParentID: m1.ID})
	if err != nil {
		return err
	}
	file, err := ach.UploadFile(ctx, strings.NewReader(menu), menuName, "")
	if err != nil {
		return err
	}
	m3, err := ach.SendMessage(ctx, &stream.Message{Text: menuNote}, streamadapter.Attach(file))
	if err != nil {
		return err
	}
	m4, err := bch.SendMessage(ctx, &stream.Message{Text: thanks, QuotedMessageID: m3.ID})
	if err != nil {
		return err
	}
	p.say("")
	p.row("what Stream stores", "what the other member reads")
	p.row(strings.Repeat("─", leftWidth), strings.Repeat("─", 36))
	for _, m := range []struct {
		id, want string
		reader   *streamadapter.Channel
	}{{m1.ID, lunch, bch}, {m2.ID, reply, ach}, {m3.ID, menuNote, bch}, {m4.ID, thanks, ach}} {
		if err := sideBySide(ctx, p, s, m.id, m.reader, m.want); err != nil {
			return err
		}
	}
	ids := []string{m1.ID, m2.ID, m3.ID, m4.ID}
	if err := noPlaintext(ctx, p, s, ach, ids, m1.ID); err != nil {
		return err
	}

	// 4. carol joins with the history.
	p.step("4. alice adds carol, with the history: carol gets the current epoch's key.")
	if err := ach.AddMembers(ctx, []string{carol.UserID()}); err != nil {
		return fmt.Errorf("adding carol: %w", err)
	}
	cch, err := carol.Channel(ctx, "messaging", chanID)
	if err != nil {
		return fmt.Errorf("carol opening the channel: %w", err)
	}
	if err := readAll(ctx, p, s, "carol", cch, []string{lunch, menuNote, thanks}); err != nil {
		return err
	}

	// 5. bob is removed, and locked out of what follows.
	p.step("5. alice removes bob. The session moves to a new epoch whose key bob never gets.")
	if err := ach.RemoveMembers(ctx, []string{bob.UserID()}); err != nil {
		return fmt.Errorf("removing bob: %w", err)
	}
	m5, err := ach.SendMessage(ctx, &stream.Message{Text: party})
	if err != nil {
		return err
	}
	p.say("")
	p.row("what Stream stores", "what the members read")
	p.row(strings.Repeat("─", leftWidth), strings.Repeat("─", 36))
	if err := sideBySide(ctx, p, s, m5.ID, cch, party); err != nil {
		return err
	}
	// bob tries with the channel he had open, and every key his device kept.
	got, err := bch.GetMessages(ctx, []string{m5.ID})
	if err != nil {
		return err
	}
	if len(got) != 1 || got[0].Status == streamadapter.StatusDecrypted {
		return errors.New("bob read a message sent after his removal")
	}
	p.row("", "bob reads ✗ "+strings.TrimPrefix(got[0].Reason().Error(), "streamadapter: "))
	p.say("")
	if _, err := bob.Channel(ctx, "messaging", chanID); !errors.Is(err, streamadapter.ErrRemoved) {
		return fmt.Errorf("bob opening the channel after his removal: got %v, want ErrRemoved", err)
	}
	p.say("bob opens the channel again: refused, he is no longer a member of its session.")
	old, err := bch.GetMessages(ctx, []string{m1.ID})
	if err != nil {
		return err
	}
	if len(old) != 1 || old[0].Text != lunch {
		return errors.New("bob no longer reads what was sent while he was a member")
	}
	p.say("What was sent while he was a member he still reads: his device kept those keys.")

	// 6. alice loses her device and recovers on a new one.
	p.step("6. alice loses her device and recovers her identity on a new one.")
	fingerprint := alice.Veil().Identity().Card().Fingerprint()
	if err := os.RemoveAll(alice.dir); err != nil {
		return err
	}
	alice, ach = nil, nil
	p.say("Her device is gone, with its state (identity, keys) and the state's key.")
	challenge, err = s.app.startRecovery(ctx, s.prefix+"alice", email) // she logs in to the app
	if err != nil {
		return fmt.Errorf("starting alice's recovery: %w", err)
	}
	if code, err = s.outbox.read(s.prefix + "alice"); err != nil {
		return err
	}
	newDevice, err := twoman.NewClient(twoman.ClientConfig{BaseURL: s.ssksURL})
	if err != nil {
		return err
	}
	id, err := newDevice.RetrieveIdentity(ctx, challenge, code)
	if err != nil {
		return fmt.Errorf("recovering alice's identity: %w", err)
	}
	if id.Card().Fingerprint() != fingerprint {
		return errors.New("the recovered identity is not alice's")
	}
	p.say("On a new device she logs in to the app, which has the SSKS email her a code;")
	p.say("she types it, and the device gets her encrypted identity back and decrypts it")
	p.say("with the backend's twoManRuleKey: fingerprint %s, as before.", short(fingerprint))
	again, err := s.newDevice(ctx, "alice", id) // a new state, under a new state key
	if err != nil {
		return err
	}
	nch, err := again.Channel(ctx, "messaging", chanID)
	if err != nil {
		return fmt.Errorf("alice's new device opening the channel: %w", err)
	}
	p.say("With a new state under a new key, the device fetches her grants from the key")
	p.say("service and reads the history:")
	if err := readAll(ctx, p, s, "alice", nch, []string{lunch, menuNote, thanks, party}); err != nil {
		return err
	}
	if err := readReplies(ctx, p, s, "alice", nch, m1.ID, []string{reply}); err != nil {
		return err
	}

	p.printf("\nDone in %.1f s. Next: README.md, docs/STREAM.md, examples/recovery.\n", time.Since(start).Seconds())
	return p.err
}

// sideBySide prints a message as Stream stores it, next to what a member
// reads of it, and checks that the member reads want (and the menu for a
// file).
func sideBySide(ctx context.Context, p *printer, s *stack, msgID string, reader *streamadapter.Channel, want string) error {
	stored, err := s.stored(ctx, msgID)
	if err != nil {
		return err
	}
	got, err := reader.GetMessages(ctx, []string{msgID})
	if err != nil {
		return err
	}
	if len(got) != 1 {
		return fmt.Errorf("message %s: Stream returned %d messages", msgID, len(got))
	}
	m := got[0]
	if m.Status != streamadapter.StatusDecrypted || m.Text != want {
		return fmt.Errorf("%s read %q (%v) instead of %q", s.name(reader.Client().UserID()), m.Text, m.Err, want)
	}
	reads := s.name(reader.Client().UserID()) + " reads "
	p.row(fmt.Sprintf("%-5s  %s", s.name(m.User.ID), abbreviate(stored.text)), reads+quoted(m))
	if len(stored.files) != len(m.Attachments) {
		return fmt.Errorf("message %s: Stream stores %d files, the message names %d", msgID, len(stored.files), len(m.Attachments))
	}
	for i, a := range m.Attachments {
		body, err := open(ctx, reader.Client(), a)
		if err != nil {
			return err
		}
		p.row(fmt.Sprintf("       + a file, %d opaque bytes", len(stored.files[i])),
			fmt.Sprintf("%*s+ %s, %d bytes", len(reads), "", a.Name, a.Size))
		if body != menu {
			return fmt.Errorf("%s: the file does not read back as sent", a.Name)
		}
	}
	return nil
}

// noPlaintext searches Stream for every plaintext of the story, and for the
// stored text of one message so that the search is seen to work.
func noPlaintext(ctx context.Context, p *printer, s *stack, ch *streamadapter.Channel, ids []string, control string) error {
	stored, err := s.stored(ctx, control)
	if err != nil {
		return err
	}
	if found, err := s.find(ctx, ch, ids, []byte(stored.text)); err != nil {
		return err
	} else if len(found) == 0 {
		return errors.New("the search of Stream's store does not find a stored ciphertext: it would find no plaintext either")
	}
	plaintexts := []string{lunch, reply, menuNote, menuName, thanks, menuLine, "ramen"}
	for _, pt := range plaintexts {
		found, err := s.find(ctx, ch, ids, []byte(pt))
		if err != nil {
			return err
		}
		if len(found) > 0 {
			return fmt.Errorf("the plaintext %q is on Stream, at %v", pt, found)
		}
	}
	where := "Stream's whole store (every version of every message, files, webhooks)"
	if s.emulator == nil {
		where = "What Stream's API serves of the channel, its messages and its files"
	}
	p.say("")
	p.say("%s", where)
	p.say("searched for the %d plaintexts above: none found. (It finds the ciphertexts.)", len(plaintexts))
	return nil
}

// readAll prints a channel's messages as a member reads them, and checks
// that they are want, oldest first.
func readAll(ctx context.Context, p *printer, s *stack, who string, ch *streamadapter.Channel, want []string) error {
	page, err := ch.Query(ctx, nil)
	if err != nil {
		return err
	}
	return check(ctx, p, s, who, ch, page.Messages, want)
}

// readReplies prints a thread's replies as a member reads them, and checks
// that they are want.
func readReplies(ctx context.Context, p *printer, s *stack, who string, ch *streamadapter.Channel, parentID string, want []string) error {
	replies, err := ch.GetReplies(ctx, parentID, nil)
	if err != nil {
		return err
	}
	return check(ctx, p, s, who, ch, replies, want)
}

func check(ctx context.Context, p *printer, s *stack, who string, ch *streamadapter.Channel, msgs []*streamadapter.Message, want []string) error {
	var got []string
	for _, m := range msgs {
		p.say("%s reads  %s", who, render(s, m))
		for _, a := range m.Attachments {
			body, err := open(ctx, ch.Client(), a)
			if err != nil {
				return err
			}
			if body != menu {
				return fmt.Errorf("%s: %s does not read back as sent", who, a.Name)
			}
			p.say("%s reads  + %s, %d bytes, intact", who, a.Name, a.Size)
		}
		got = append(got, m.Text)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		return fmt.Errorf("%s read %q, want %q", who, got, want)
	}
	return nil
}

// quoted is a decrypted message's text, quoted, with its place in the
// conversation.
func quoted(m *streamadapter.Message) string {
	text := fmt.Sprintf("%q", m.Text)
	switch {
	case m.ParentID != "":
		text += " (a reply)"
	case m.QuotedMessageID != "":
		text += " (a quote)"
	}
	return text
}

// render is a message as a member's UI shows it.
func render(s *stack, m *streamadapter.Message) string {
	if m.Status != streamadapter.StatusDecrypted {
		return "✗ " + m.Reason().Error()
	}
	return s.name(m.User.ID) + ": " + quoted(m)
}

// open downloads and decrypts an attachment.
func open(ctx context.Context, c *streamadapter.Client, a streamadapter.Attachment) (string, error) {
	r, err := c.OpenAttachment(ctx, a)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("%s: %w", a.Name, err)
	}
	return string(b), nil
}

// abbreviate shortens an envelope's text form to fit the column.
func abbreviate(text string) string {
	if len(text) <= 24 {
		return text
	}
	return fmt.Sprintf("%s…%s (%d chars)", text[:14], text[len(text)-4:], len(text))
}

// short is the start of a fingerprint, in groups of four.
func short(fp string) string {
	if len(fp) < 16 {
		return fp
	}
	return fp[0:4] + " " + fp[4:8] + " " + fp[8:12] + " " + fp[12:16] + "…"
}

// printer writes the transcript, keeping the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, a ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, a...)
	}
}

// step starts a part of the story.
func (p *printer) step(title string) { p.printf("\n%s\n", title) }

// say prints a line of narration.
func (p *printer) say(format string, a ...any) {
	if format == "" {
		p.printf("\n")
		return
	}
	p.printf("   "+format+"\n", a...)
}

// row prints a line of a two-column table.
func (p *printer) row(left, right string) { p.printf("   %-*s  %s\n", leftWidth, left, right) }
