package wire_test

import (
	"encoding/json"
	"fmt"
	"log"

	"github.com/veilchat/veil/keyservice/internal/wire"
)

// An append on the wire: byte strings are standard base64.
func ExampleAppendRequest() {
	b, err := json.Marshal(wire.AppendRequest{Record: []byte("record"), Grants: []wire.Grant{{Grantee: "bob", Epoch: 3, Grant: []byte("age file")}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output: {"record":"cmVjb3Jk","grants":[{"grantee":"bob","epoch":3,"grant":"YWdlIGZpbGU="}]}
}
