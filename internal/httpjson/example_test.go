package httpjson_test

import (
	"fmt"

	"github.com/veilchat/veil/internal/httpjson"
)

func ExampleDecode() {
	var v struct {
		Name string `json:"name"`
	}
	fmt.Println(httpjson.Decode([]byte(`{"name":"veil"}`), &v), v.Name)
	fmt.Println(httpjson.Decode([]byte(`{"name":"veil","admin":true}`), &v))
	// Output:
	// <nil> veil
	// invalid_request (400): malformed JSON: json: unknown field "admin"
}
