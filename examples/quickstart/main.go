package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"sync"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

const channel = "messaging:veil-demo"

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	ctx := context.Background()
	var dir session.MemoryDirectory               // where cards are published
	svc := session.MemoryService{Directory: &dir} // where membership logs and grants are stored
	// The channel's members as the application knows them (Stream's member
	// list in a real deployment): the managers check the key service's
	// view of membership against it.
	var appMu sync.Mutex
	appMembers := []string{"alice", "bob", "carol"}
	members := func(context.Context, string) ([]string, error) {
		appMu.Lock()
		defer appMu.Unlock()
		return slices.Clone(appMembers), nil
	}
	users := map[string]*session.Manager{}
	for _, name := range []string{"alice", "bob", "carol"} {
		id, err := identity.Generate(nil, name, identity.Options{})
		if err != nil {
			return err
		}
		if err := dir.Publish(id.Card()); err != nil {
			return err
		}
		m, err := session.NewManager(session.Config{Identity: id, Service: svc.As(name), Directory: &dir, Members: members})
		if err != nil {
			return err
		}
		users[name] = m
		fmt.Fprintf(out, "%-5s identity: %s key, fingerprint %s…\n", name, id.Card().Kind(), id.Card().Fingerprint()[:16])
	}
	alice, bob, carol := users["alice"], users["bob"], users["carol"]

	sn := identity.ComputeSafetyNumber(alice.Identity().Card(), bob.Identity().Card())
	fmt.Fprintf(out, "alice and bob compare their safety number out of band:\n  %s\n", sn)

	s, err := alice.Create(ctx, channel, []string{"bob", "carol"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "alice created session %s for %s (stored in the channel's session_id)\n", s.ID(), channel)

	send := func(from *session.Manager, msgID, text string) (string, error) {
		mc := session.Binding{ChannelCID: channel, MessageID: msgID, SenderID: from.Identity().UserID()}
		return from.SealText(ctx, s.ID(), mc, []byte(text), 5000)
	}
	read := func(to *session.Manager, sender, msgID, sealed string) (string, error) {
		mc := session.Binding{ChannelCID: channel, MessageID: msgID, SenderID: sender}
		b, err := to.OpenText(ctx, sealed, mc)
		return string(b), err
	}

	m1, err := send(alice, "msg-1", "Lunch at noon? 🍜")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "alice sends msg-1; Stream stores only %d characters of ciphertext: %.40s…\n", len(m1), m1)
	for _, name := range []string{"bob", "carol"} {
		text, err := read(users[name], "alice", "msg-1", m1)
		if err != nil {
			return fmt.Errorf("%s reads msg-1: %w", name, err)
		}
		fmt.Fprintf(out, "  %s reads: %q\n", name, text)
	}

	// An attachment: encrypted in 64 KiB chunks under a per-file key; the
	// key travels inside an encrypted message.
	photo := bytes.Repeat([]byte("pixels"), 50_000)
	fileKey, err := session.NewFileKey(nil)
	if err != nil {
		return err
	}
	var upload bytes.Buffer
	w, err := session.EncryptStream(&upload, fileKey)
	if err != nil {
		return err
	}
	if _, err := w.Write(photo); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	r, err := session.DecryptStream(bytes.NewReader(upload.Bytes()), fileKey)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("attachment round trip failed: %w", err)
	}
	if !bytes.Equal(got, photo) {
		return errors.New("attachment round trip changed the bytes")
	}
	fmt.Fprintf(out, "a %d-byte attachment uploads as %d opaque bytes and decrypts intact\n", len(photo), upload.Len())

	// A forged claim: bob's envelope presented as alice's fails.
	m2, err := send(bob, "msg-2", "I am bob")
	if err != nil {
		return err
	}
	if _, err := read(carol, "alice", "msg-2", m2); err == nil {
		return errors.New("a forged sender was not detected")
	} else if !errors.Is(err, session.ErrDecrypt) {
		return fmt.Errorf("a forged sender failed for another reason: %w", err)
	}
	fmt.Fprintln(out, "bob's message relabelled as alice's is rejected: signatures bind the sender")

	appMu.Lock()
	appMembers = slices.DeleteFunc(appMembers, func(u string) bool { return u == "carol" }) // removed from the channel
	appMu.Unlock()
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		return err
	}
	fmt.Fprintln(out, "alice removes carol: the session rotates to a new epoch")
	m3, err := send(bob, "msg-3", "Carol can't read this")
	if err != nil {
		return err
	}
	text, err := read(alice, "bob", "msg-3", m3)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  alice reads msg-3: %q\n", text)
	if _, err := read(carol, "bob", "msg-3", m3); err == nil {
		return errors.New("carol read a message sent after her removal")
	} else {
		fmt.Fprintf(out, "  carol is locked out: %v\n", err)
	}
	fmt.Fprintln(out, "done")
	return nil
}
