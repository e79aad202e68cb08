package httpserve

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/veilchat/veil/internal/httpjson"
)

// Live is the handler of /healthz: the process is up and serving. It
// touches nothing else, so that an orchestrator restarts a process that
// stopped answering, not one whose database is down (see [Ready]).
func Live(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Store is what [Ready] checks: a database that answers Ping, and, if it
// has one, a Ready method that also checks its schema.
type Store interface {
	Ping(ctx context.Context) error
}

// ReadyTimeout bounds a readiness check: a store slower than this is not
// ready.
const ReadyTimeout = 2 * time.Second

// Ready returns the handler of /readyz: 200 if store answers within
// ReadyTimeout (its Ready method if it has one, else Ping), else 503 with
// code unavailable; the cause goes to the log, not to the client.
func Ready(store Store) http.Handler {
	check := store.Ping
	if r, ok := store.(interface{ Ready(context.Context) error }); ok {
		check = r.Ready
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		if err := check(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = errors.New("the store did not answer within " + ReadyTimeout.String())
			}
			SetError(r.Context(), err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, httpjson.CodeUnavailable, "the store is not ready")
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// RegisterRuntime registers the Go runtime's collector (go_*: goroutines,
// heap, GC) and the process's (process_*: CPU, resident memory, open file
// descriptors) in reg.
func RegisterRuntime(reg prometheus.Registerer) error {
	return errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	)
}
