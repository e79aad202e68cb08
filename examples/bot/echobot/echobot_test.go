package echobot

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReply(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxEcho+10)
	tests := []struct {
		name, text string
		want       string // a substring of the answer
		reason     string
	}{
		{name: "echo", text: "hello", want: "you said: hello", reason: "anything that is not a command is echoed"},
		{name: "help", text: "/help", want: "Commands: /help, /fingerprint", reason: "the command list"},
		{name: "help with spaces", text: "  /help\n", want: "Commands:", reason: "a command typed with surrounding spaces"},
		{name: "fingerprint", text: "/fingerprint", want: "fingerprint: ab12 cd34.", reason: "the bot's fingerprint, to compare out of band"},
		{name: "unknown command", text: "/launch", want: "you said: /launch", reason: "an unknown command is echoed"},
		{name: "long", text: long, want: "you said: " + strings.Repeat("é", maxEcho) + "…", reason: "the echo is cut to fit a Stream message once sealed"},
	}
	for _, tt := range tests {
		got := Reply(tt.text, "ab12 cd34")
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: Reply(%.20q) = %.80q, want it to contain %.80q: %s", tt.name, tt.text, got, tt.want, tt.reason)
		}
	}
	if n := utf8.RuneCountInString(Reply(long, "")); n > maxEcho+20 {
		t.Errorf("the answer to a long text has %d characters", n)
	}
}

func TestRecent(t *testing.T) {
	t.Parallel()
	r := newRecent(3)
	for _, step := range []struct {
		id     string
		want   bool
		reason string
	}{
		{"a", true, "first time"},
		{"a", false, "a retry of the same call"},
		{"", true, "a call without an ID cannot be told from another"},
		{"", true, "nor can a second one"},
		{"b", true, "first time"},
		{"c", true, "first time; the set is full"},
		{"a", false, "still remembered"},
		{"d", true, "first time: a, the oldest, is forgotten"},
		{"a", true, "forgotten, so new again"},
		{"c", false, "still remembered"},
	} {
		if got := r.add(step.id); got != step.want {
			t.Fatalf("add(%q) = %v: %s", step.id, got, step.reason)
		}
	}
	if len(r.ids) > 3 {
		t.Fatalf("the set holds %d IDs, more than its bound", len(r.ids))
	}
}
