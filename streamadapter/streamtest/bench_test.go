package streamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
)

// BenchmarkSendMessage sends messages through the real client to the
// emulator, next to the same client against a bare net/http handler that
// decodes the request and answers a canned message of the same shape, in
// the same run. Metrics: msgs/s, bare-msgs/s and x-bare (ratio).
func BenchmarkSendMessage(b *testing.B) {
	ctx := context.Background()
	s := NewServer(Config{})
	defer s.Close()
	c := s.Client()
	c.UpsertUser(ctx, &stream.User{ID: "alice"})
	created, err := c.CreateChannelWithMembers(ctx, "messaging", "bench", "alice", "alice")
	if err != nil {
		b.Fatal(err)
	}
	ch := created.Channel
	canned, _ := json.Marshal(map[string]any{"message": map[string]any{"id": "x", "text": "veil1:AAAA", "html": "<p>veil1:AAAA</p>\n", "type": "regular", "user": map[string]any{"id": "alice"}}})
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		w.Write(canned)
	}))
	defer bare.Close()
	bc, _ := stream.NewClient(s.APIKey(), s.APISecret())
	bc.BaseURL = bare.URL
	bch := bc.Channel("messaging", "bench")
	var ours, raw time.Duration
	i := 0
	for b.Loop() {
		i++
		t := time.Now()
		if _, err := bch.SendMessage(ctx, &stream.Message{Text: "veil1:AAAA"}, "alice"); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(t)
		t = time.Now()
		if _, err := ch.SendMessage(ctx, &stream.Message{Text: "veil1:AAAA", ExtraData: map[string]any{"id": fmt.Sprint("m", i)}}, "alice"); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t)
	}
	n := float64(b.N)
	b.ReportMetric(n/ours.Seconds(), "msgs/s")
	b.ReportMetric(n/raw.Seconds(), "bare-msgs/s")
	b.ReportMetric(raw.Seconds()/ours.Seconds(), "x-bare")
}
