package httpserve

import "crypto/rand"

// maxRequestIDLen bounds an X-Request-ID taken from a request.
const maxRequestIDLen = 128

// requestID returns the ID of a request: the X-Request-ID it came with if
// that is 1 to 128 characters of letters, digits and "-_.:/+=" (what
// proxies and tracing systems send), or else a new random one, so that
// whatever is logged and echoed is bounded and cannot forge a log line.
func requestID(given string) string {
	if validRequestID(given) {
		return given
	}
	return rand.Text() // 26 base32 characters, 128 bits
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '=') {
			return false
		}
	}
	return true
}
