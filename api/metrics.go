package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	inFlight prometheus.Gauge
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bookings *prometheus.CounterVec

	// series are the requests' and latency's series by route, method and
	// status, found once: a label lookup hashes and compares its values.
	series sync.Map // seriesKey → requestSeries
}

type seriesKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// request counts one request and observes its latency. route and method
// come from bounded sets (route patterns, metricMethod), so the series
// remembered are as few as those exported.
func (m *metrics) request(route, method string, status int, elapsed time.Duration) {
	k := seriesKey{route, method, status}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, requestSeries{
			requests: m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
			latency:  m.latency.WithLabelValues(route, method),
		})
	}
	s := v.(requestSeries)
	s.requests.Inc()
	s.latency.Observe(elapsed.Seconds())
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
		s.metrics.request(route, metricMethod(r.Method), status, elapsed)
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

// metricMethod is a request method as a metric label: the methods of RFC
// 9110 and PATCH, and "other" for whatever else a client sends, which
// would otherwise make a new time series per invented method.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// outcome counts the result of a booking command.
func (s *server) outcome(command, outcome string) {
	s.metrics.bookings.WithLabelValues(command, outcome).Inc()
}
