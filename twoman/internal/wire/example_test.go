package wire_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/veilchat/veil/twoman/internal/wire"
)

type apiError struct {
	status      int
	code, reply string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d): %s", e.code, e.status, e.reply) }

// An SSKS's error answer becomes the caller's error type.
func ExamplePostJSON() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		fmt.Fprint(w, `{"error":{"code":"session_dead","message":"start a new challenge"}}`)
	}))
	defer srv.Close()

	newErr := func(status int, code, message string) error { return &apiError{status, code, message} }
	var out wire.RetrieveResponse
	err := wire.PostJSON(context.Background(), srv.Client(), srv.URL+"/v1/identity/retrieve", "",
		wire.SessionAnswer{SessionID: "00112233445566778899aabbccddeeff", Code: "12345678"}, &out, "internal", newErr)
	if err == nil {
		log.Fatal("an error answer was taken for a success")
	}
	fmt.Println(err)
	// Output: session_dead (410): start a new challenge
}

func ExampleValidAppKey() {
	fmt.Println(wire.ValidAppKey([]byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a")), wire.ValidAppKey([]byte("too short")))
	// Output: true false
}
