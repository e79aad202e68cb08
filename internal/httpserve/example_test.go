package httpserve_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veilchat/veil/internal/httpserve"
)

// A service's routes behind a Frontend: a wrong method gets 405 with
// Allow, an unknown path a JSON 404, and every answer a request ID.
func Example() {
	f, err := httpserve.New(httpserve.Config{Namespace: "example", Metrics: prometheus.NewRegistry(), MaxInFlightPerClient: 64})
	if err != nil {
		log.Fatal(err)
	}
	f.Handle("GET /v1/things", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"things":[]}`)
	}))
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, req := range []struct{ method, path string }{{"GET", "/v1/things"}, {"DELETE", "/v1/things"}, {"GET", "/v1/nothing"}} {
		r, _ := http.NewRequest(req.method, srv.URL+req.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(req.method, req.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("X-Request-ID") != "")
	}
	// Output:
	// GET /v1/things 200  true
	// DELETE /v1/things 405 GET, HEAD true
	// GET /v1/nothing 404  true
}
