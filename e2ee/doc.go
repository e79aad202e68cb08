// Package e2ee is Veil's entry point for an application or a bot acting as
// one user: a Client holds the user's identity, a session.Manager over the
// key service, the trust pins, and a local state store that keeps the
// identity and pins between runs, encrypted at rest under a StateKey.
//
// A Client is what a Stream integration needs: Encrypt seals a message for a
// channel's session and returns the text for Stream's text field; Decrypt
// opens a received one. The streamadapter package builds on it.
//
// On first use New generates the identity (post-quantum hybrid by default),
// saves it and publishes its card; afterwards it loads the saved identity.
// Losing the state (and the StateKey) loses the identity: back it up with
// identity.Identity.ExportWithPassphrase or the two-man-rule recovery.
package e2ee
