// Command recovery shows Veil's two ways back to a lost identity, with
// nothing to install or configure:
//
//	go run ./examples/recovery
//
// Two-man rule: the app backend (package twoman/backend) holds a random
// twoManRuleKey per user; the SSKS (package twoman/ssks) holds the
// identity encrypted under a key derived from it, and releases it only to
// whoever answers a one-time code it emails to the user; the device
// (package twoman) encrypts and decrypts. The program shows that the
// backend without the code is refused, that a mistyped code is refused
// with attempts left, that the code without the backend's key decrypts
// nothing, and that both together give the identity back.
//
// Password backup: the identity encrypted under a key derived from a
// passphrase (Argon2id) that only the user knows; a wrong passphrase is
// refused, and counted by the SSKS.
//
// The SSKS runs in the process on SQLite in a temporary directory, served
// over loopback HTTP, and hands its codes to the program instead of
// emailing them. docs/RECOVERY.md describes the protocol and what an
// attacker can achieve against it. The program prints no code, key or
// passphrase.
package main
