package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/streamadapter/streamtest"
)

// TestRun runs the quickstart on the emulator, as `go run` does with
// nothing configured, and checks the story its transcript tells.
func TestRun(t *testing.T) {
	out := runStory(t, config{})
	checkTranscript(t, out)
	if !strings.Contains(out, "Stream's whole store") {
		t.Errorf("on the emulator, the transcript does not say that Stream's whole store was searched:\n%s", out)
	}
}

// TestRunOnStreamAPI runs the quickstart as it runs on a real Stream app
// (STREAM_KEY and STREAM_SECRET set), against an emulator reached only
// through Stream's API: what Stream stores is what the API serves, and
// the run's channel is deleted at the end. Every message Stream received
// is searched for the story's plaintexts.
func TestRunOnStreamAPI(t *testing.T) {
	var mu sync.Mutex
	var received [][]byte // every message as Stream received it
	srv := streamtest.NewTestServer(t, streamtest.Config{BeforeMessageSend: func(m map[string]any) (map[string]any, error) {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		received = append(received, b)
		return nil, nil
	}})
	out := runStory(t, config{StreamKey: srv.APIKey(), StreamSecret: srv.APISecret(), StreamURL: srv.URL})
	checkTranscript(t, out)
	if !strings.Contains(out, "What Stream's API serves") {
		t.Errorf("on a Stream app, the transcript does not say that the API's answers were searched:\n%s", out)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(received) != 5 {
		t.Errorf("Stream received %d messages, want 5", len(received))
	}
	for _, m := range received {
		for _, pt := range []string{lunch, reply, menuNote, menuName, thanks, party, "ramen"} {
			if bytes.Contains(m, []byte(pt)) {
				t.Errorf("Stream received the plaintext %q in %s", pt, m)
			}
		}
		if !bytes.Contains(m, []byte(`"veil1:`)) {
			t.Errorf("Stream received a message that is not an envelope: %s", m)
		}
	}
	snap := srv.Snapshot()
	if len(snap.Channels) != 0 || len(snap.Messages) != 0 {
		t.Errorf("the run left %d channels and %d messages on Stream, want none", len(snap.Channels), len(snap.Messages))
	}
}

// TestReadmeTranscript checks that the transcript README.md shows (its
// first text block) is what the quickstart prints, but for the parts that
// change with every run: ciphertexts, their lengths and the files' sizes.
func TestReadmeTranscript(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "```text\n")
	if !ok {
		t.Fatal("README.md has no text block")
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("README.md: the text block is not closed")
	}
	variable := regexp.MustCompile(`veil1:[A-Za-z0-9_-]{8}…[A-Za-z0-9_-]{4} \(\d+ chars\)|\d+ opaque bytes| +`)
	var pattern strings.Builder
	pattern.WriteString(`(?m)`)
	for l := range strings.SplitSeq(strings.TrimSuffix(block, "\n"), "\n") {
		pattern.WriteString("^")
		last := 0
		for _, m := range variable.FindAllStringIndex(l, -1) {
			pattern.WriteString(regexp.QuoteMeta(l[last:m[0]]))
			switch v := l[m[0]:m[1]]; {
			case strings.HasPrefix(v, "veil1:"):
				pattern.WriteString(`veil1:[A-Za-z0-9_-]{8}…[A-Za-z0-9_-]{4} \(\d+ chars\)`)
			case strings.HasSuffix(v, "opaque bytes"):
				pattern.WriteString(`\d+ opaque bytes`)
			default:
				pattern.WriteString(` +`)
			}
			last = m[1]
		}
		pattern.WriteString(regexp.QuoteMeta(l[last:]) + "\n")
	}
	out := runStory(t, config{})
	if !regexp.MustCompile(pattern.String()).MatchString(out) {
		t.Errorf("README.md's transcript:\n%s\nis not in the quickstart's output:\n%s", block, out)
	}
}

func runStory(t *testing.T, cfg config) string {
	t.Helper()
	var out bytes.Buffer
	start := time.Now()
	if err := run(context.Background(), &out, cfg); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("the story took %v", time.Since(start))
	return out.String()
}

// row is a line of one of the transcript's side-by-side tables.
type row struct{ stream, members string }

// tables returns the rows of the transcript's side-by-side tables, cut at
// the column the transcript prints them with.
func tables(t *testing.T, out string) [][]row {
	t.Helper()
	var all [][]row
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(strings.TrimSpace(lines[i]), "what Stream stores") {
			continue
		}
		var rows []row
		for i += 2; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			r := []rune(lines[i])
			cut := 3 + leftWidth + 2
			if len(r) < cut {
				t.Fatalf("a table row is shorter than its first column: %q", lines[i])
			}
			rows = append(rows, row{stream: strings.TrimSpace(string(r[:cut])), members: strings.TrimSpace(string(r[cut:]))})
		}
		all = append(all, rows)
	}
	return all
}

// checkTranscript checks the story from the transcript: ciphertext on
// Stream's side of each table and plaintext on the members' side, bob's
// failure to read after his removal, alice's history read on her new
// device, and no token.
func checkTranscript(t *testing.T, out string) {
	t.Helper()
	tabs := tables(t, out)
	if len(tabs) != 2 {
		t.Fatalf("the transcript has %d side-by-side tables, want 2:\n%s", len(tabs), out)
	}
	plaintexts := []string{lunch, reply, menuNote, menuName, thanks, party, "ramen", "shoyu"}
	envelopes := 0
	for _, rows := range tabs {
		for _, r := range rows {
			for _, pt := range plaintexts {
				if strings.Contains(r.stream, pt) {
					t.Errorf("Stream's side shows the plaintext %q: %q", pt, r.stream)
				}
			}
			switch {
			case r.stream == "":
			case strings.Contains(r.stream, " veil1:"):
				envelopes++
			case strings.HasPrefix(r.stream, "+ a file,") && strings.HasSuffix(r.stream, "opaque bytes"):
			default:
				t.Errorf("Stream's side shows neither an envelope nor an opaque file: %q", r.stream)
			}
		}
	}
	if envelopes != 5 {
		t.Errorf("Stream's side shows %d envelopes, want one per message (5):\n%s", envelopes, out)
	}

	members := func(rows []row) string {
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintln(&b, r.members)
		}
		return b.String()
	}
	talk, afterRemoval := members(tabs[0]), members(tabs[1])
	for _, want := range []string{
		fmt.Sprintf("bob reads %q", lunch),
		fmt.Sprintf("alice reads %q (a reply)", reply),
		fmt.Sprintf("bob reads %q", menuNote),
		"+ " + menuName + ", 1880 bytes",
		fmt.Sprintf("alice reads %q (a quote)", thanks),
	} {
		if !strings.Contains(talk, want) {
			t.Errorf("the members' side lacks %s:\n%s", want, talk)
		}
	}
	if want := fmt.Sprintf("carol reads %q", party); !strings.Contains(afterRemoval, want) {
		t.Errorf("after bob's removal, the members' side lacks %s:\n%s", want, afterRemoval)
	}
	if !strings.Contains(afterRemoval, "bob reads ✗ not (or no longer) a member of the session") {
		t.Errorf("after his removal, bob's failure to read is missing:\n%s", afterRemoval)
	}
	if strings.Contains(afterRemoval, "bob reads \"") || strings.Count(out, party) != 2 {
		t.Errorf("bob reads what was sent after his removal:\n%s", out)
	}

	_, recovery, ok := strings.Cut(out, "\n6. ")
	if !ok {
		t.Fatalf("the transcript has no recovery step:\n%s", out)
	}
	if !strings.Contains(recovery, "as before") {
		t.Errorf("the recovered identity is not said to be alice's:\n%s", recovery)
	}
	var history []string
	for _, l := range strings.Split(recovery, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "alice reads  "); ok {
			history = append(history, s)
		}
	}
	want := []string{
		fmt.Sprintf("alice: %q", lunch),
		fmt.Sprintf("alice: %q", menuNote),
		"+ " + menuName + ", 1880 bytes, intact",
		fmt.Sprintf("bob: %q (a quote)", thanks),
		fmt.Sprintf("alice: %q", party),
		fmt.Sprintf("bob: %q (a reply)", reply),
	}
	if strings.Join(history, "\n") != strings.Join(want, "\n") {
		t.Errorf("alice's history on her new device:\n%s\nwant:\n%s", strings.Join(history, "\n"), strings.Join(want, "\n"))
	}

	if strings.Contains(out, "eyJ") {
		t.Errorf("the transcript shows a token:\n%s", out)
	}
}
