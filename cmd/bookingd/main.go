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
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/logctx"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/ratelimit"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/shards"
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
		if errors.Is(err, flag.ErrHelp) { // -h: the usage is printed, and that is all
			return nil
		}
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
		for _, sh := range d.shards {
			if sh.projector, err = projectorPool(ctx, sh.url); err != nil {
				return fmt.Errorf("%sprojector pool: %w", d.label(sh), err)
			}
		}
	}
	d.registry.MustRegister(newPoolCollector(d.pools()))

	var wg sync.WaitGroup
	// On every way out: stop the roles, then wait for them, before the
	// pools (closed by the defers above) go away.
	defer func() { cancel(); wg.Wait() }()
	errs := make(chan error, 1)
	for _, sh := range d.shards {
		wg.Go(func() { sh.announcer.Run(ctx) })
		wg.Go(func() { sh.listener.Run(ctx) }) // wakes the consumers of the shard's stream and the live feeds
		// One command side per shard and process: its show cache and group
		// commit serve the API and the workers alike.
		if sh.ledger, err = newLedger(cfg, d, sh); err != nil {
			return err
		}
	}
	if cfg.has("projector") {
		for _, sh := range d.shards {
			p := projections.NewProjector(sh.projector, projections.ProjectorConfig{PollInterval: cfg.PollInterval,
				Wake: sh.listener.Wake(), OnBatch: d.batches.projected}, d.logger(sh))
			wg.Go(func() { supervise(ctx, d.label(sh)+"projector", p.Run, logger) })
			if len(d.shards) > 1 {
				// "My bookings" pages from the home database's index of
				// every shard's bookings.
				x := projections.NewUserIndex(d.home, eventstore.New(sh.projector), sh.k, projections.UserIndexConfig{
					PollInterval: cfg.PollInterval, Wake: sh.listener.Wake()}, d.logger(sh))
				wg.Go(func() { supervise(ctx, d.label(sh)+"user index", x.Run, logger) })
			}
		}
		wg.Go(func() { sampleLag(ctx, d, logger) })
	}
	if cfg.has("worker") {
		if err := startWorkers(ctx, &wg, cfg, d, logger); err != nil {
			return err
		}
	}
	var handler http.Handler
	if cfg.has("api") {
		if handler, err = newAPI(ctx, &wg, cfg, d, logger); err != nil {
			return err
		}
	} else {
		handler = api.Probes(d.databases(), d.registry) // probes and scrapes
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
	logger.Info("bookingd started", "roles", cfg.Roles, "http_addr", cfg.HTTPAddr, "shards", len(d.shards),
		"replicas", cfg.replicaCount(), "redis", cfg.RedisURL != "")

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
	home       *pgxpool.Pool         // DATABASE_URL: users, idempotency keys
	shards     []*shard              // shard k at index k
	redis      redis.UniversalClient // nil without REDIS_URL
	registry   *prometheus.Registry
	conflicts  prometheus.Counter // version-conflict retries of every ledger in the process
	batches    batchMetrics
	rootLogger *slog.Logger
}

// shard is one database of the ledger and what the process runs on it.
type shard struct {
	k         int
	url       string
	primary   *pgxpool.Pool // the home pool when the shard is the home database
	projector *pgxpool.Pool // the projector's own, with a lock_timeout; nil without the role
	replicas  []*pgxpool.Pool
	// announcer tells every process's consumers of the shard's stream that
	// this one appended; listener wakes this process's consumers.
	announcer *eventstore.Announcer
	listener  *eventstore.Listener
	ledger    *ledger.Service
}

// label prefixes a shard's names in logs and errors when there are several.
func (d *deps) label(sh *shard) string {
	if len(d.shards) == 1 {
		return ""
	}
	return fmt.Sprintf("shard %d: ", sh.k)
}

// logger is the process's logger, naming the shard when there are several.
func (d *deps) logger(sh *shard) *slog.Logger {
	if len(d.shards) == 1 {
		return d.rootLogger
	}
	return d.rootLogger.With("shard", sh.k)
}

// registerer registers a shard's metrics, labelled by shard when there
// are several.
func (d *deps) registerer(sh *shard) prometheus.Registerer {
	if len(d.shards) == 1 {
		return d.registry
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"shard": strconv.Itoa(sh.k)}, d.registry)
}

// databases are the home database and every shard that is not it.
func (d *deps) databases() []*pgxpool.Pool {
	out := []*pgxpool.Pool{d.home}
	for _, sh := range d.shards {
		if sh.primary != d.home {
			out = append(out, sh.primary)
		}
	}
	return out
}

// pools are the process's connection pools by name, for metrics.
func (d *deps) pools() map[string]*pgxpool.Pool {
	out := map[string]*pgxpool.Pool{"primary": d.home}
	for _, sh := range d.shards {
		prefix := ""
		if len(d.shards) > 1 {
			prefix = fmt.Sprintf("shard-%d-", sh.k)
		}
		if sh.primary != d.home {
			out[fmt.Sprintf("shard-%d-primary", sh.k)] = sh.primary
		}
		if sh.projector != nil {
			out[prefix+"projector"] = sh.projector
		}
		for i, p := range sh.replicas {
			out[fmt.Sprintf("%sreplica-%d", prefix, i+1)] = p
		}
	}
	return out
}

func (d *deps) close() {
	for _, sh := range d.shards {
		if sh.projector != nil {
			sh.projector.Close()
		}
		for _, p := range sh.replicas {
			p.Close()
		}
		if sh.primary != d.home {
			sh.primary.Close()
		}
	}
	if d.redis != nil {
		_ = d.redis.Close()
	}
	d.home.Close()
}

// openPrimary opens and checks a ledger database: it answers, and its
// stream's transaction ids are this server's (after a logical restore into
// another cluster the stream cannot be read until they are rebased).
func openPrimary(ctx context.Context, url, name string, checkStream bool) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err == nil {
		err = pool.Ping(ctx)
		if err == nil && checkStream {
			err = eventstore.New(pool).CheckTransactionIDs(ctx)
		}
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pool, nil
}

func connect(ctx context.Context, cfg config, logger *slog.Logger) (*deps, error) {
	d := &deps{rootLogger: logger, registry: prometheus.NewRegistry(), conflicts: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bookingledger_version_conflict_retries_total",
		Help: "Commands decided again because another writer appended to the show first.",
	})}
	d.registry.MustRegister(d.conflicts, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.batches = newBatchMetrics(d.registry)
	var err error
	homeIsShard := slices.Contains(cfg.ShardURLs, cfg.DatabaseURL)
	if d.home, err = openPrimary(ctx, cfg.DatabaseURL, "database", homeIsShard); err != nil {
		return nil, err
	}
	fail := func(err error) (*deps, error) {
		d.close()
		return nil, err
	}
	for k, u := range cfg.ShardURLs {
		sh := &shard{k: k, url: u, primary: d.home}
		if u != cfg.DatabaseURL {
			if sh.primary, err = openPrimary(ctx, u, fmt.Sprintf("DATABASE_SHARD_URLS, shard %d", k), true); err != nil {
				return fail(err)
			}
		}
		d.shards = append(d.shards, sh)
		if err := shards.CheckIDs(ctx, sh.primary, k, len(cfg.ShardURLs)); err != nil {
			return fail(err)
		}
		sh.announcer = eventstore.NewAnnouncer(sh.primary, announceEvery, d.logger(sh))
		sh.listener = eventstore.NewListener(func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, sh.primary.Config().ConnConfig)
		}, d.logger(sh))
		for _, u := range cfg.ReplicaURLs[k] {
			p, err := pgxpool.New(ctx, u) // connects lazily; a replica that is down is skipped
			if err != nil {
				return fail(fmt.Errorf("DATABASE_REPLICA_URLS (shard %d): %w", k, err))
			}
			sh.replicas = append(sh.replicas, p)
			if err := checkReplica(ctx, p, k, len(cfg.ShardURLs), d.logger(sh)); err != nil {
				return fail(fmt.Errorf("DATABASE_REPLICA_URLS, replica %d of shard %d: %w", len(sh.replicas), k, err))
			}
		}
	}
	if cfg.RedisURL != "" {
		if d.redis, err = redisClient(cfg); err != nil {
			return fail(err)
		}
		if err := d.redis.Ping(ctx).Err(); err != nil {
			logger.Warn("redis unreachable at start; rate limits are per process and the cache is off until it answers", "err", err)
		}
	}
	return d, nil
}

// checkReplica refuses a replica that is a copy of another shard (its show
// id sequence is another shard's); one that does not answer now is let be:
// the read path skips it until it does.
func checkReplica(ctx context.Context, p *pgxpool.Pool, k, n int, logger *slog.Logger) error {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := p.Ping(pctx); err != nil {
		logger.Warn("a replica does not answer at start; reads skip it until it does", "err", err)
		return nil
	}
	err := shards.CheckIDs(pctx, p, k, n)
	if err != nil && !errors.Is(err, shards.ErrLayout) {
		logger.Warn("could not check a replica's shard at start; reads use it once it answers", "err", err)
		return nil
	}
	return err
}

// redisClient connects to REDIS_URL: one server, or with REDIS_CLUSTER a
// Redis Cluster (the URL names one node, addr= parameters more). Both fail
// fast while Redis is down: the limiter and cache fall back.
func redisClient(cfg config) (redis.UniversalClient, error) {
	if cfg.RedisCluster {
		opts, err := redis.ParseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (a cluster): %w", err)
		}
		opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 1, time.Second, time.Second, time.Second
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 1, time.Second, time.Second, time.Second
	return redis.NewClient(opts), nil
}

// projectorPool is a shard's projector's own small pool. Its lock_timeout
// bounds how long the projector waits for its consumer group's checkpoint
// row (held by another projector or by bookingctl replay), so it can
// always stop.
func projectorPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 4
	pcfg.ConnConfig.RuntimeParams["lock_timeout"] = "5s"
	pcfg.ConnConfig.RuntimeParams["application_name"] = "bookingd-projector"
	return pgxpool.NewWithConfig(ctx, pcfg)
}

func newAPI(ctx context.Context, wg *sync.WaitGroup, cfg config, d *deps, logger *slog.Logger) (http.Handler, error) {
	rdb := d.redis
	showCache := cache.New(rdb, cache.Config{Prefix: cfg.RedisPrefix, TTL: cfg.CacheTTL, Listeners: len(d.shards),
		Logger: logger, Registerer: d.registry})
	var apiShards []api.Shard
	for _, sh := range d.shards {
		reads := readpath.New(sh.primary, sh.replicas, d.logger(sh))
		hub := live.NewHub(sh.ledger.Store(), sh.listener.Wake(), live.Config{Coalesce: cfg.LiveCoalesce, Logger: d.logger(sh)})
		wg.Go(func() { supervise(ctx, d.label(sh)+"live hub", hub.Run, logger) })
		wg.Go(func() { reads.Watch(ctx, 2*time.Second) })
		// The cache hears of changes on every shard.
		wg.Go(func() {
			showCache.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) {
				return pgx.ConnectConfig(ctx, sh.primary.Config().ConnConfig)
			}, nil)
		})
		apiShards = append(apiShards, api.Shard{Ledger: sh.ledger, Primary: sh.primary, Reads: reads, Live: hub})
	}
	return api.New(api.Deps{
		Config:   cfg.API,
		Shards:   apiShards,
		Users:    users.NewStore(d.home),
		Primary:  d.home,
		Tokens:   readpath.NewTokens(rdb, cfg.RedisPrefix, 2*time.Minute),
		Cache:    showCache,
		Web:      web.Handler(nil),
		Limiter:  ratelimit.New(rdb, ratelimit.Config{Prefix: cfg.RedisPrefix, Logger: logger, Registerer: d.registry}),
		Logger:   logger,
		Registry: d.registry,
	})
}

// newLedger is the command side of a shard, shared by every role.
func newLedger(cfg config, d *deps, sh *shard) (*ledger.Service, error) {
	lcfg := ledger.DefaultConfig()
	lcfg.HoldTTL = cfg.HoldTTL
	opts := []ledger.Option{ledger.WithConflictHook(d.conflicts.Inc),
		ledger.WithAnnouncer(sh.announcer), ledger.WithBatchHook(d.batches.appended), ledger.WithGroupHook(d.batches.grouped)}
	if len(d.shards) > 1 {
		opts = append(opts, ledger.WithShard(sh.k)) // booking ids name their shard
	}
	return ledger.New(sh.primary, lcfg, opts...)
}

// startWorkers runs, on every shard, the simulated payments (unless
// CONFIRM_DELAY is 0), the expiry sweep and, when NATS_URL is set, the
// forwarding of the shard's stream to NATS JetStream, each restarted after
// a failure. Idempotency keys, in the home database, are purged by shard
// 0's sweep.
func startWorkers(ctx context.Context, wg *sync.WaitGroup, cfg config, d *deps, logger *slog.Logger) error {
	for _, sh := range d.shards {
		name, lg, reg := d.label(sh), d.logger(sh), d.registerer(sh)
		if cfg.ConfirmDelay > 0 {
			pay, err := workers.NewPayments(sh.primary, sh.ledger, workers.PaymentsConfig{Delay: cfg.ConfirmDelay,
				Wake: sh.listener.Wake(), Logger: lg, Registerer: reg})
			if err != nil {
				return err
			}
			wg.Go(func() { supervise(ctx, name+"payments", pay.Run, logger) })
		}
		xcfg := workers.ExpiryConfig{Interval: cfg.ExpiryEvery, Logger: lg, Registerer: reg}
		if sh.k == 0 {
			xcfg.IdempotencyTTL, xcfg.Keys = cfg.API.IdempotencyTTL, d.home
		}
		expiry := workers.NewExpiry(sh.primary, sh.ledger, xcfg)
		wg.Go(func() { supervise(ctx, name+"expiry", expiry.Run, logger) })
		if cfg.NATSURL != "" {
			ncfg := workers.NATSConfig{URL: cfg.NATSURL, Topic: cfg.NATSTopic, Poll: cfg.PollInterval, Wake: sh.listener.Wake(), Logger: lg}
			if len(d.shards) > 1 {
				ncfg.Shard = strconv.Itoa(sh.k)
			}
			wg.Go(func() {
				supervise(ctx, name+"nats forwarder", func(ctx context.Context) error { return workers.ForwardToNATS(ctx, sh.primary, ncfg) }, logger)
			})
		}
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
// the NATS forwarder, analytics jobs …) on every shard every few seconds.
func sampleLag(ctx context.Context, d *deps, logger *slog.Logger) {
	events := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bookingledger_consumer_lag_events",
		Help: "Committed events a consumer group has not consumed."}, []string{"group", "shard"})
	seconds := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bookingledger_consumer_lag_seconds",
		Help: "Age of the oldest event a consumer group has not consumed."}, []string{"group", "shard"})
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bookingledger_shard_up",
		Help: "1 when the shard's database answers, 0 when not (its consumers' lag is then not measured)."}, []string{"shard"})
	d.registry.MustRegister(events, seconds, up)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		var indexed map[int]projections.IndexPosition
		if len(d.shards) > 1 {
			var err error
			if indexed, err = projections.UserIndexPositions(ctx, d.home); err != nil && ctx.Err() == nil {
				logger.Warn("measuring the user index's lag", "err", err)
			}
		}
		for _, sh := range d.shards {
			label := strconv.Itoa(sh.k)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := sh.primary.Ping(pctx)
			cancel()
			if err != nil {
				up.WithLabelValues(label).Set(0)
				continue
			}
			up.WithLabelValues(label).Set(1)
			// One shard that hangs must not freeze every shard's figures.
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			store := eventstore.New(sh.primary)
			if at, ok := indexed[sh.k]; ok {
				if n, behind, err := projections.UserIndexLag(sctx, store, at.Checkpoint); err == nil {
					events.WithLabelValues("user-index", label).Set(float64(n))
					seconds.WithLabelValues("user-index", label).Set(behind.Seconds())
				}
			}
			groups, err := store.ConsumerGroups(sctx)
			for _, g := range groups {
				n, behind, lerr := store.Lag(sctx, g)
				if lerr != nil {
					err = lerr
					continue
				}
				events.WithLabelValues(g, label).Set(float64(n))
				seconds.WithLabelValues(g, label).Set(behind.Seconds())
			}
			cancel()
			if err != nil && ctx.Err() == nil {
				logger.Warn("measuring consumer lag", "shard", sh.k, "err", err)
			}
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
