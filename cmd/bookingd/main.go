// Command bookingd runs the booking ledger: the HTTP API, the projector that
// keeps the read tables up to date, and the workers (simulated payments, hold
// expiry and, with NATS_URL, forwarding the stream to NATS JetStream).
// BOOKINGD_ROLES (or --roles) selects which of them this process runs, so
// each can be scaled on its own. Every role answers /healthz, /readyz and
// /metrics on HTTP_ADDR; ADMIN_ADDR adds a listener for operators with the
// profiler (/debug/pprof/). `bookingd healthcheck [--url URL]` asks a
// running bookingd whether it is ready, for container health checks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/logctx"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/ratelimit"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/users"
	"github.com/bookingledger/ledger/web"
	"github.com/bookingledger/ledger/workers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookingd:", err)
		os.Exit(1)
	}
}

// run starts the configured roles and blocks until ctx ends. When ready is
// not nil, the API's listening address is sent on it once it accepts.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], getenv, stderr)
	}
	fs := flag.NewFlagSet("bookingd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	roles := fs.String("roles", "", "comma-separated roles to run: api, projector, worker (default: all; env BOOKINGD_ROLES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv, *roles)
	if err != nil {
		return err
	}
	logger := slog.New(logctx.Handler{Handler: slog.NewJSONHandler(stderr, nil)})
	if cfg.Dev && getenv("JWT_SECRET") == "" {
		logger.Warn("BOOKINGD_ENV=dev without JWT_SECRET: using a random secret; tokens end with this process")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()
	if cfg.has("projector") {
		if d.projector, err = projectorPool(ctx, cfg); err != nil {
			return fmt.Errorf("projector pool: %w", err)
		}
	}
	d.registry.MustRegister(newPoolCollector(d.pools()))

	var wg sync.WaitGroup
	// On every way out: stop the roles, then wait for them, before the
	// pools (closed by the defers above) go away.
	defer func() { cancel(); wg.Wait() }()
	errs := make(chan error, 1)
	wg.Go(func() { d.announcer.Run(ctx) })
	wg.Go(func() { d.listener.Run(ctx) }) // wakes the consumers of the stream and the live feeds
	if cfg.has("projector") {
		p := projections.NewProjector(d.projector, projections.ProjectorConfig{PollInterval: cfg.PollInterval,
			Wake: d.listener.Wake(), OnBatch: d.batches.projected}, logger)
		wg.Go(func() { supervise(ctx, "projector", p.Run, logger) })
		wg.Go(func() { sampleLag(ctx, d.primary, d.registry, logger) })
	}
	// One command side per process: its show cache and group commit serve
	// the API and the workers alike.
	svc, err := newLedger(cfg, d)
	if err != nil {
		return err
	}
	if cfg.has("worker") {
		if err := startWorkers(ctx, &wg, cfg, d, svc, logger); err != nil {
			return err
		}
	}
	var handler http.Handler
	if cfg.has("api") {
		if handler, err = newAPI(ctx, &wg, cfg, d, svc, logger); err != nil {
			return err
		}
	} else {
		// Processes without the API still answer probes and scrapes.
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
		})
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "application/json")
			if err := d.primary.Ping(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"status":"database unreachable"}` + "\n"))
				return
			}
			if pending, err := migrations.Pending(ctx, d.primary); err != nil || pending > 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"status":"database schema is not migrated (run bookingctl migrate)"}` + "\n"))
				return
			}
			_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
		})
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
		handler = mux
	}
	wg.Go(func() { errs <- serve(ctx, cfg.HTTPAddr, handler, 30*time.Second, logger, ready) })
	if cfg.AdminAddr != "" {
		wg.Go(func() {
			if err := serve(ctx, cfg.AdminAddr, adminHandler(d.registry), 2*time.Minute, logger, nil); err != nil {
				select {
				case errs <- fmt.Errorf("admin listener: %w", err):
				default:
				}
			}
		})
	}
	logger.Info("bookingd started", "roles", cfg.Roles, "http_addr", cfg.HTTPAddr,
		"replicas", len(cfg.ReplicaURLs), "redis", cfg.RedisURL != "")

	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel() // a failed role stops the others
	wg.Wait()
	logger.Info("bookingd stopped")
	return err
}

// announceEvery bounds the NOTIFYs a busy process sends to wake consumers.
const announceEvery = 5 * time.Millisecond

// deps are the connections every role shares.
type deps struct {
	primary   *pgxpool.Pool
	projector *pgxpool.Pool // the projector's own, with a lock_timeout; nil without the role
	replicas  []*pgxpool.Pool
	redis     *redis.Client
	registry  *prometheus.Registry
	conflicts prometheus.Counter // version-conflict retries of every ledger in the process
	batches   batchMetrics
	// announcer tells every process's consumers of the stream that this
	// one appended; listener wakes this process's consumers.
	announcer *eventstore.Announcer
	listener  *eventstore.Listener
}

// pools are the process's connection pools by name, for metrics.
func (d *deps) pools() map[string]*pgxpool.Pool {
	out := map[string]*pgxpool.Pool{"primary": d.primary}
	if d.projector != nil {
		out["projector"] = d.projector
	}
	for i, p := range d.replicas {
		out[fmt.Sprintf("replica-%d", i+1)] = p
	}
	return out
}

func (d *deps) close() {
	if d.projector != nil {
		d.projector.Close()
	}
	for _, p := range d.replicas {
		p.Close()
	}
	if d.redis != nil {
		_ = d.redis.Close()
	}
	d.primary.Close()
}

func connect(ctx context.Context, cfg config, logger *slog.Logger) (*deps, error) {
	d := &deps{registry: prometheus.NewRegistry(), conflicts: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bookingledger_version_conflict_retries_total",
		Help: "Commands decided again because another writer appended to the show first.",
	})}
	d.registry.MustRegister(d.conflicts, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.batches = newBatchMetrics(d.registry)
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if d.primary, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := d.primary.Ping(ctx); err != nil {
		d.primary.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	// After a logical restore into another cluster the stream cannot be
	// read until its transaction ids are rebased: refuse to start.
	if err := eventstore.New(d.primary).CheckTransactionIDs(ctx); err != nil {
		d.primary.Close()
		return nil, err
	}
	d.announcer = eventstore.NewAnnouncer(d.primary, announceEvery, logger)
	d.listener = eventstore.NewListener(func(ctx context.Context) (*pgx.Conn, error) {
		return pgx.ConnectConfig(ctx, d.primary.Config().ConnConfig)
	}, logger)
	for _, u := range cfg.ReplicaURLs {
		p, err := pgxpool.New(ctx, u) // connects lazily; a replica that is down is skipped
		if err != nil {
			d.close()
			return nil, fmt.Errorf("DATABASE_REPLICA_URLS: %w", err)
		}
		d.replicas = append(d.replicas, p)
	}
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			d.close()
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		// Fail fast while Redis is down: the limiter and cache fall back.
		opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 1, time.Second, time.Second, time.Second
		d.redis = redis.NewClient(opts)
		if err := d.redis.Ping(ctx).Err(); err != nil {
			logger.Warn("redis unreachable at start; rate limits are per process and the cache is off until it answers", "err", err)
		}
	}
	return d, nil
}

// projectorPool is the projector's own small pool. Its lock_timeout bounds
// how long the projector waits for its consumer group's checkpoint row (held
// by another projector or by bookingctl replay), so it can always stop.
func projectorPool(ctx context.Context, cfg config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = 4
	pcfg.ConnConfig.RuntimeParams["lock_timeout"] = "5s"
	pcfg.ConnConfig.RuntimeParams["application_name"] = "bookingd-projector"
	return pgxpool.NewWithConfig(ctx, pcfg)
}

func newAPI(ctx context.Context, wg *sync.WaitGroup, cfg config, d *deps, svc *ledger.Service, logger *slog.Logger) (http.Handler, error) {
	var rdb redis.UniversalClient
	if d.redis != nil {
		rdb = d.redis
	}
	reads := readpath.New(d.primary, d.replicas, logger)
	hub := live.NewHub(svc.Store(), d.listener.Wake(), 0)
	wg.Go(func() { supervise(ctx, "live hub", hub.Run, logger) })
	showCache := cache.New(rdb, cache.Config{Prefix: cfg.RedisPrefix, TTL: cfg.CacheTTL, Logger: logger, Registerer: d.registry})
	wg.Go(func() { reads.Watch(ctx, 2*time.Second) })
	wg.Go(func() {
		showCache.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, d.primary.Config().ConnConfig)
		}, nil)
	})
	return api.New(api.Deps{
		Config:   cfg.API,
		Ledger:   svc,
		Users:    users.NewStore(d.primary),
		Primary:  d.primary,
		Reads:    reads,
		Tokens:   readpath.NewTokens(rdb, cfg.RedisPrefix, 2*time.Minute),
		Cache:    showCache,
		Live:     hub,
		Web:      web.Handler(nil),
		Limiter:  ratelimit.New(rdb, ratelimit.Config{Prefix: cfg.RedisPrefix, Logger: logger, Registerer: d.registry}),
		Logger:   logger,
		Registry: d.registry,
	})
}

// newLedger is the process's command side, shared by every role.
func newLedger(cfg config, d *deps) (*ledger.Service, error) {
	lcfg := ledger.DefaultConfig()
	lcfg.HoldTTL = cfg.HoldTTL
	return ledger.New(d.primary, lcfg, ledger.WithConflictHook(d.conflicts.Inc),
		ledger.WithAnnouncer(d.announcer), ledger.WithBatchHook(d.batches.appended))
}

// startWorkers runs the simulated payments (unless CONFIRM_DELAY is 0), the
// expiry sweep and, when NATS_URL is set, the forwarding of the stream to
// NATS JetStream, each restarted after a failure.
func startWorkers(ctx context.Context, wg *sync.WaitGroup, cfg config, d *deps, svc *ledger.Service, logger *slog.Logger) error {
	if cfg.ConfirmDelay > 0 {
		pay, err := workers.NewPayments(d.primary, svc, workers.PaymentsConfig{Delay: cfg.ConfirmDelay,
			Wake: d.listener.Wake(), Logger: logger, Registerer: d.registry})
		if err != nil {
			return err
		}
		wg.Go(func() { supervise(ctx, "payments", pay.Run, logger) })
	}
	expiry := workers.NewExpiry(d.primary, svc, workers.ExpiryConfig{Interval: cfg.ExpiryEvery,
		IdempotencyTTL: cfg.API.IdempotencyTTL, Logger: logger, Registerer: d.registry})
	wg.Go(func() { supervise(ctx, "expiry", expiry.Run, logger) })
	if cfg.NATSURL != "" {
		ncfg := workers.NATSConfig{URL: cfg.NATSURL, Topic: cfg.NATSTopic, Poll: cfg.PollInterval, Wake: d.listener.Wake(), Logger: logger}
		wg.Go(func() {
			supervise(ctx, "nats forwarder", func(ctx context.Context) error { return workers.ForwardToNATS(ctx, d.primary, ncfg) }, logger)
		})
	}
	return nil
}

// supervise runs a background role and restarts it after a failure, backing
// off up to 30s (from 1s again after a run that lasted a minute), until ctx
// ends.
func supervise(ctx context.Context, name string, run func(context.Context) error, logger *slog.Logger) {
	backoff := time.Second
	for {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		logger.Error(name+" stopped; restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// sampleLag exports every consumer group's lag (the projector, payments,
// the NATS forwarder, analytics jobs …) every few seconds.
func sampleLag(ctx context.Context, pool *pgxpool.Pool, reg prometheus.Registerer, logger *slog.Logger) {
	events := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bookingledger_consumer_lag_events",
		Help: "Committed events a consumer group has not consumed."}, []string{"group"})
	seconds := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bookingledger_consumer_lag_seconds",
		Help: "Age of the oldest event a consumer group has not consumed."}, []string{"group"})
	reg.MustRegister(events, seconds)
	store := eventstore.New(pool)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		groups, err := store.ConsumerGroups(ctx)
		for _, g := range groups {
			n, behind, lerr := store.Lag(ctx, g)
			if lerr != nil {
				err = lerr
				continue
			}
			events.WithLabelValues(g).Set(float64(n))
			seconds.WithLabelValues(g).Set(behind.Seconds())
		}
		if err != nil && ctx.Err() == nil {
			logger.Warn("measuring consumer lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serve serves handler on addr until ctx ends; writeTimeout bounds a
// response (the admin listener's profiles take longer than API calls).
func serve(ctx context.Context, addr string, handler http.Handler, writeTimeout time.Duration, logger *slog.Logger, ready chan<- string) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Finish in-flight requests, then close.
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			logger.Warn("shutdown", "err", err)
		}
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Serve returns as soon as Shutdown starts; the connections to the
	// database must outlive the requests still running.
	<-stopped
	return nil
}
