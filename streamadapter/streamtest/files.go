package streamtest

import (
	"io"
	"net/http"
	"strings"
)

func (s *Server) uploadFile(r *http.Request, body []byte) (any, error) {
	s.mu.Lock()
	_, err := s.lookupChannel(r)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	mr, err := multipartReader(r, body)
	if err != nil {
		return nil, fail(http.StatusBadRequest, codeInputError, "expected a multipart form with a file")
	}
	var data []byte
	found := false
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.FormName() == "file" {
			data, err = io.ReadAll(p)
			if err != nil {
				return nil, fail(http.StatusBadRequest, codeInputError, "cannot read the file")
			}
			found = true
		}
	}
	if !found {
		return nil, fail(http.StatusBadRequest, codeInputError, "the form has no file")
	}
	name := randomHex(16)
	s.mu.Lock()
	s.files[name] = data
	base := s.URL
	s.mu.Unlock()
	return map[string]any{"file": base + "/files/" + name}, nil
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

// deleteFile is DELETE /channels/{type}/{id}/file?url=…
func (s *Server) deleteFile(r *http.Request, body []byte) (any, error) {
	u := r.URL.Query().Get("url")
	name := u[strings.LastIndexByte(u, '/')+1:]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[name]; !ok {
		return nil, notFound("file", u)
	}
	delete(s.files, name)
	return map[string]any{}, nil
}
