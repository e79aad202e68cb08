package httpserve

import (
	"context"
	"errors"
	"net/http"
	"sync"
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
//
// Anyone may call /readyz, outside the rate limits and the cap of
// requests in flight, so that a load balancer's checks are never refused:
// probes that arrive while a check runs wait for it and share its
// verdict, and the store sees one check at a time, however many probes a
// client sends. A verdict is not kept past its check.
func Ready(store Store) http.Handler {
	check := store.Ping
	if r, ok := store.(interface{ Ready(context.Context) error }); ok {
		check = r.Ready
	}
	var (
		mu      sync.Mutex
		running *readyRun // the check in progress, if any
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		run := running
		if run == nil {
			run = &readyRun{done: make(chan struct{})}
			running = run
			// The check is every waiting probe's: the first one's
			// client leaving does not cut it short.
			ctx := context.WithoutCancel(r.Context())
			go func() {
				ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
				defer cancel()
				run.err = check(ctx)
				if errors.Is(run.err, context.DeadlineExceeded) {
					run.err = errors.New("the store did not answer within " + ReadyTimeout.String())
				}
				mu.Lock()
				running = nil
				mu.Unlock()
				close(run.done)
			}()
		}
		mu.Unlock()
		select {
		case <-run.done:
		case <-r.Context().Done():
			return // the prober left
		}
		if run.err != nil {
			SetError(r.Context(), run.err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, httpjson.CodeUnavailable, "the store is not ready")
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// readyRun is one readiness check, shared by the probes that wait for it;
// err is set before done is closed.
type readyRun struct {
	done chan struct{}
	err  error
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
