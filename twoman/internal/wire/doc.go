// Package wire holds the JSON bodies of the SSKS's /v1 API and the one HTTP
// call shape that the device client (package twoman) and the app backend's
// half (package twoman/backend) make to it.
package wire
