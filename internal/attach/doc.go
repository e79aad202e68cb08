// Package attach implements the wire format of Veil's encrypted
// attachments: a header with a key commitment, then the STREAM construction
// over ChaCha20-Poly1305 in 64 KiB chunks (docs/PROTOCOL.md §8).
package attach
