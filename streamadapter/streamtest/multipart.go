package streamtest

import (
	"bytes"
	"mime"
	"mime/multipart"
	"net/http"
)

func multipartReader(r *http.Request, body []byte) (*multipart.Reader, error) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return nil, http.ErrNotMultipart
	}
	return multipart.NewReader(bytes.NewReader(body), params["boundary"]), nil
}
