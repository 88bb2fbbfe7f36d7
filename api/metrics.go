package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bookingledger/ledger/internal/logctx"
)

type metrics struct {
	inFlight prometheus.Gauge
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bookings *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bookingledger_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bookingledger_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bookingledger_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		bookings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bookingledger_booking_outcomes_total", Help: "Outcomes of booking commands (held, confirmed, cancelled, refused reasons).",
		}, []string{"command", "outcome"}),
	}
	reg.MustRegister(m.inFlight, m.requests, m.latency, m.bookings)
	return m
}

// logContext starts the request's log context (request id, later user id)
// and echoes the request id to the client.
func (s *server) logContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := middleware.GetReqID(r.Context())
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(logctx.Start(r.Context(), id)))
	})
}

// instrument counts and times every request by its route pattern, and logs
// one access line for it.
func (s *server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		} else if s.Web != nil && r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
			route = "web" // the app's pages and assets, one label for all
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		s.metrics.latency.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
		// Probes and scrapes arrive every few seconds from machines: they
		// are logged at debug level unless they fail.
		level := slog.LevelInfo
		if (route == "/healthz" || route == "/readyz" || route == "/metrics") && status < 400 {
			level = slog.LevelDebug
		}
		if s.Logger.Enabled(r.Context(), level) { // spares boxing the attributes of a line nobody keeps
			s.Logger.Log(r.Context(), level, "request", "method", r.Method, "route", route, "status", status,
				"duration_ms", float64(elapsed.Microseconds())/1000, "bytes", ww.BytesWritten())
		}
	})
}

// outcome counts the result of a booking command.
func (s *server) outcome(command, outcome string) {
	s.metrics.bookings.WithLabelValues(command, outcome).Inc()
}
