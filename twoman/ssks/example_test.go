package ssks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/veilchat/veil/twoman/ssks"
)

func ExampleNewHandler() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ssks")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// SQLite by default; a postgres:// DSN for several replicas.
	store, err := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	h, err := ssks.NewHandler(ssks.Config{
		Store:   store,
		AppKeys: []ssks.Secret{ssks.NewSecret([]byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a"))}, // one per app backend
		HashKey: ssks.NewSecret(bytes.Repeat([]byte{7}, 32)),                               // from a secret manager, not the database
		Sender: &ssks.SMTPSender{
			Addr: "smtp.example.com:587", From: "codes@example.com", AppName: "Example Chat",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// Starting a challenge needs an app backend's key.
	resp, err := http.Post(srv.URL+"/v1/challenges", "application/json", strings.NewReader(`{}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode)
	// Output: 401
}

func ExampleWebhookSignature() {
	// What a webhook receiver (an SMS gateway adapter) checks before it
	// sends the code it received.
	secret := []byte("a webhook secret of 32 bytes or more")
	body := []byte(`{"user_id":"alice","factor":{"type":"sms","value":"+15550100"},"code":"12345678"}`)
	timestamp := "1767323045"

	// The SSKS sends these headers with the body.
	header := http.Header{}
	header.Set("X-Veil-Timestamp", timestamp)
	header.Set("X-Veil-Signature", ssks.WebhookSignature(secret, timestamp, body))

	// The receiver recomputes the signature, compares it in constant time,
	// and refuses stale timestamps.
	got, err := hex.DecodeString(header.Get("X-Veil-Signature"))
	if err != nil {
		log.Fatal(err)
	}
	want, err := hex.DecodeString(ssks.WebhookSignature(secret, header.Get("X-Veil-Timestamp"), body))
	if err != nil {
		log.Fatal(err)
	}
	unix, err := strconv.ParseInt(header.Get("X-Veil-Timestamp"), 10, 64)
	if err != nil {
		log.Fatal(err)
	}
	now := time.Unix(1767323100, 0) // the receiver's clock
	fresh := now.Sub(time.Unix(unix, 0)).Abs() < 5*time.Minute
	fmt.Println(hmac.Equal(got, want), fresh)
	// Output: true true
}
