package wire_test

import (
	"encoding/json"
	"fmt"
	"log"

	"github.com/veilchat/veil/keyservice/internal/wire"
)

// A grant on the wire: byte strings are standard base64.
func ExampleGrant() {
	b, err := json.Marshal(wire.ExtendRequest{Epoch: 3, Grants: []wire.Grant{{Grantee: "bob", Epoch: 3, Grant: []byte("age file")}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output: {"epoch":3,"grants":[{"grantee":"bob","epoch":3,"grant":"YWdlIGZpbGU="}]}
}
