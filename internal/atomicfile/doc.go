// Package atomicfile replaces a file's content in one step (a temporary
// file in the same directory, synced, then renamed over the file), for the
// local files Veil's programs keep: an app's encrypted state, identity
// files, a backend's account list.
package atomicfile
