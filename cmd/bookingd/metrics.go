package main

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// poolCollector exports the connection pools' usage, read from pgxpool's
// statistics at each scrape, labelled by pool (primary, projector,
// replica-1 …).
type poolCollector struct {
	pools                                  map[string]*pgxpool.Pool
	acquired, idle, total, max, waitedSecs *prometheus.Desc
	acquires, emptyAcquires                *prometheus.Desc
}

func newPoolCollector(pools map[string]*pgxpool.Pool) *poolCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("bookingledger_db_pool_"+name, help, []string{"pool"}, nil)
	}
	return &poolCollector{
		pools:         pools,
		acquired:      desc("acquired_conns", "Connections in use."),
		idle:          desc("idle_conns", "Idle connections."),
		total:         desc("total_conns", "Open connections."),
		max:           desc("max_conns", "The pool's connection limit."),
		waitedSecs:    desc("acquire_wait_seconds_total", "Time spent waiting for a connection."),
		acquires:      desc("acquires_total", "Connections handed out."),
		emptyAcquires: desc("empty_acquires_total", "Acquires that had to wait because no connection was idle."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.waitedSecs, c.acquires, c.emptyAcquires} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, p := range c.pools {
		s := p.Stat()
		ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()), name)
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()), name)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()), name)
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()), name)
		ch <- prometheus.MustNewConstMetric(c.waitedSecs, prometheus.CounterValue, s.AcquireDuration().Seconds(), name)
		ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(c.emptyAcquires, prometheus.CounterValue, float64(s.EmptyAcquireCount()), name)
	}
}

// batchMetrics are the write path's and the projector's batch sizes.
type batchMetrics struct {
	appendCommands prometheus.Histogram
	appendShows    prometheus.Histogram
	projectorSize  prometheus.Histogram
	projectorTime  prometheus.Histogram
}

func newBatchMetrics(reg prometheus.Registerer) batchMetrics {
	sizes := prometheus.ExponentialBuckets(1, 2, 11) // 1 … 1024
	m := batchMetrics{
		appendCommands: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bookingledger_append_batch_commands",
			Help: "Commands of one show decided together and appended at once (group commit).", Buckets: sizes}),
		appendShows: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bookingledger_append_statement_shows",
			Help: "Shows whose commands one append statement carried (group commit across shows; a show decided again after a conflict is appended on its own, not counted).", Buckets: sizes}),
		projectorSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bookingledger_projector_batch_events",
			Help: "Events the projector applied in one transaction.", Buckets: sizes}),
		projectorTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bookingledger_projector_batch_seconds",
			Help: "Time the projector took to apply a batch.", Buckets: prometheus.DefBuckets}),
	}
	reg.MustRegister(m.appendCommands, m.appendShows, m.projectorSize, m.projectorTime)
	return m
}

func (m batchMetrics) appended(commands int) { m.appendCommands.Observe(float64(commands)) }

func (m batchMetrics) grouped(shows int) { m.appendShows.Observe(float64(shows)) }

func (m batchMetrics) projected(events int, took time.Duration) {
	m.projectorSize.Observe(float64(events))
	m.projectorTime.Observe(took.Seconds())
}

// adminHandler is what ADMIN_ADDR serves: the profiler and the metrics. It
// is meant for a port that only operators reach (localhost, or a pod port
// that no Service exposes), never the public listener.
func adminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol) // go tool pprof posts addresses
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
