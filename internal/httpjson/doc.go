// Package httpjson holds the JSON-over-HTTP plumbing Veil's services share:
// strict bounded decoding, responses, and the error body
// {"error": {"code": "...", "message": "..."}}.
package httpjson
