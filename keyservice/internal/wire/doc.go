// Package wire holds the JSON bodies of the key service's /v1 API, shared by
// the client (package keyservice) and the server (package keyservice/server).
// Byte strings are standard base64 (as encoding/json writes []byte); session
// IDs are 32 lower-case hex digits.
package wire
