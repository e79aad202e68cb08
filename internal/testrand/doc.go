// Package testrand provides deterministic byte streams for tests, examples and
// test vectors. Never use it for real keys.
package testrand
