package bech32

import (
	"errors"
	"strings"
)

const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

var generator = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (top>>uint(i))&1 == 1 {
				chk ^= generator[i]
			}
		}
	}
	return chk
}

func hrpExpand(hrp string) []byte {
	h := []byte(strings.ToLower(hrp))
	ret := make([]byte, 0, len(h)*2+1)
	for _, c := range h {
		ret = append(ret, c>>5)
	}
	ret = append(ret, 0)
	for _, c := range h {
		ret = append(ret, c&31)
	}
	return ret
}

// convertBits regroups data from frombits-wide to tobits-wide groups.
func convertBits(data []byte, frombits, tobits uint, pad bool) ([]byte, error) {
	var ret []byte
	acc, bits := uint32(0), uint(0)
	maxv := byte(1<<tobits - 1)
	for _, value := range data {
		if value>>frombits != 0 {
			return nil, errors.New("bech32: invalid data range")
		}
		acc = acc<<frombits | uint32(value)
		bits += frombits
		for bits >= tobits {
			bits -= tobits
			ret = append(ret, byte(acc>>bits)&maxv)
		}
	}
	if pad {
		if bits > 0 {
			ret = append(ret, byte(acc<<(tobits-bits))&maxv)
		}
	} else if bits >= frombits {
		return nil, errors.New("bech32: illegal zero padding")
	} else if byte(acc<<(tobits-bits))&maxv != 0 {
		return nil, errors.New("bech32: non-zero padding")
	}
	return ret, nil
}

// Encode returns the Bech32 encoding of data under the human-readable part
// hrp. The result is lower case if hrp is, and upper case otherwise.
func Encode(hrp string, data []byte) (string, error) {
	if len(hrp) < 1 {
		return "", errors.New("bech32: empty human-readable part")
	}
	for _, c := range []byte(hrp) {
		if c < 33 || c > 126 {
			return "", errors.New("bech32: invalid human-readable part")
		}
	}
	lower := strings.ToLower(hrp) == hrp
	if !lower && strings.ToUpper(hrp) != hrp {
		return "", errors.New("bech32: mixed case human-readable part")
	}
	values, err := convertBits(data, 8, 5, true)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(hrp) + 1 + len(values) + 6)
	b.WriteString(strings.ToLower(hrp))
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(charset[v])
	}
	chk := append(hrpExpand(hrp), values...)
	chk = append(chk, 0, 0, 0, 0, 0, 0)
	mod := polymod(chk) ^ 1
	for i := 0; i < 6; i++ {
		b.WriteByte(charset[(mod>>uint(5*(5-i)))&31])
	}
	if lower {
		return b.String(), nil
	}
	return strings.ToUpper(b.String()), nil
}

// Decode parses a Bech32 string and returns its human-readable part (in the
// case it was written in) and data. Mixed-case strings are rejected.
func Decode(s string) (hrp string, data []byte, err error) {
	if strings.ToLower(s) != s && strings.ToUpper(s) != s {
		return "", nil, errors.New("bech32: mixed case")
	}
	pos := strings.LastIndexByte(s, '1')
	if pos < 1 || pos+7 > len(s) {
		return "", nil, errors.New("bech32: separator in the wrong position")
	}
	hrp = s[:pos]
	for _, c := range []byte(hrp) {
		if c < 33 || c > 126 {
			return "", nil, errors.New("bech32: invalid character in human-readable part")
		}
	}
	lowered := strings.ToLower(s)
	values := make([]byte, 0, len(s)-pos-1)
	for _, c := range []byte(lowered[pos+1:]) {
		d := strings.IndexByte(charset, c)
		if d < 0 {
			return "", nil, errors.New("bech32: invalid character in data part")
		}
		values = append(values, byte(d))
	}
	if polymod(append(hrpExpand(hrp), values...)) != 1 {
		return "", nil, errors.New("bech32: invalid checksum")
	}
	data, err = convertBits(values[:len(values)-6], 5, 8, false)
	if err != nil {
		return "", nil, err
	}
	return hrp, data, nil
}
