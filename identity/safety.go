package identity

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"strings"
)

const (
	labelSafetyNumber = "veil/v1/safety-number"
	// safetyIterations is the number of SHA-512 iterations per party, as in
	// Signal's safety numbers: it makes a search for a colliding key cost
	// 5,200 hashes per attempt.
	safetyIterations     = 5200
	safetyPayloadVersion = 1
)

// SafetyNumber is the value two users compare out of band (read aloud, or
// one scans the other's code) to confirm that each holds the other's real
// keys. It is the same whichever user computes it. The zero value is not a
// valid safety number.
type SafetyNumber struct {
	digits  string // 60 decimal digits
	payload []byte
}

// ComputeSafetyNumber returns the safety number of the cards of two users. It
// is stable under argument order and changes when either user's keys change.
func ComputeSafetyNumber(a, b *Card) SafetyNumber {
	da, db := safetyDigest(a), safetyDigest(b)
	sa, sb := safetyDigits(da), safetyDigits(db)
	if sb < sa {
		sa, sb = sb, sa
		da, db = db, da
	}
	payload := make([]byte, 0, 1+2*len(da))
	payload = append(payload, safetyPayloadVersion)
	payload = append(append(payload, da...), db...)
	return SafetyNumber{digits: sa + sb, payload: payload}
}

// safetyDigest is 5,200 iterations of SHA-512 over one party's user ID and
// key material, truncated to 30 bytes.
func safetyDigest(c *Card) []byte {
	key := make([]byte, 0, len(c.signingKey)+len(c.recipRaw))
	key = append(append(key, c.signingKey...), c.recipRaw...)
	h := sha512.New()
	h.Write([]byte(labelSafetyNumber))
	h.Write([]byte{0, byte(len(c.userID))})
	h.Write([]byte(c.userID))
	h.Write(key)
	d := h.Sum(nil)
	for i := 1; i < safetyIterations; i++ {
		h.Reset()
		h.Write(d)
		h.Write(key)
		d = h.Sum(d[:0])
	}
	return d[:30]
}

// safetyDigits renders 30 bytes as 30 digits: six 5-byte big-endian chunks,
// each reduced modulo 100,000.
func safetyDigits(d []byte) string {
	var b strings.Builder
	for i := 0; i < 30; i += 5 {
		var chunk [8]byte
		copy(chunk[3:], d[i:i+5])
		fmt.Fprintf(&b, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return b.String()
}

// Digits returns the 60 digits without separators.
func (s SafetyNumber) Digits() string { return s.digits }

// String returns the 60 digits in twelve groups of five separated by spaces,
// the form to read aloud.
func (s SafetyNumber) String() string {
	var b strings.Builder
	for i := 0; i+5 <= len(s.digits); i += 5 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.digits[i : i+5])
	}
	return b.String()
}

// Payload returns the scannable form (for a QR code): a version byte and the
// two parties' 30-byte digests in the same order as the digits. It is a copy.
func (s SafetyNumber) Payload() []byte { return bytes.Clone(s.payload) }

// MatchPayload reports, in constant time, whether a scanned payload is this
// safety number's. An empty or malformed payload never matches.
func (s SafetyNumber) MatchPayload(scanned []byte) bool {
	return len(s.payload) > 0 && subtle.ConstantTimeCompare(s.payload, scanned) == 1
}

// Equal reports whether two safety numbers are the same.
func (s SafetyNumber) Equal(other SafetyNumber) bool {
	return s.digits != "" && subtle.ConstantTimeCompare(s.payload, other.payload) == 1
}
