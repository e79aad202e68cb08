// Package protosign signs under the purposes reserved to the Veil protocol
// (those starting with "veil/v1/"), which identity.Identity.Sign refuses to
// applications: an application that signed attacker-chosen data under such
// a purpose would mint grants, envelopes or log records. Only Veil's own
// packages can import it.
package protosign
