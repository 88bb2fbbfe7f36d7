package api

import (
	"context"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bookingledger/ledger/migrations"
)

// Probes is what a bookingd process without the API serves (a projector or
// worker): /healthz, /readyz — ready when every database answers and is
// migrated, else a problem+json 503 saying which is wrong — and /metrics
// from reg. Everything else is a problem+json 404.
func Probes(databases []*pgxpool.Pool, reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, db := range databases {
			if err := db.Ping(ctx); err != nil {
				writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Title: "Not ready", Detail: "database unreachable"})
				return
			}
			if pending, err := migrations.Pending(ctx, db); err != nil || pending > 0 {
				writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Title: "Not ready",
					Detail: "schema is not migrated (run bookingctl migrate)"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Status: http.StatusNotFound, Title: "Not found",
			Detail: "this process serves GET /healthz, /readyz and /metrics only (it has no api role)"})
	})
	return mux
}
