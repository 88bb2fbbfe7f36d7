// Package ratelimit limits requests per key (a user, or an IP when anonymous)
// to a number per minute, with one budget shared by every process through
// Redis (DESIGN.md "Rate limits": bookings 10/min, show reads 100/min, auth
// 5/min; the API answers 429 with Retry-After).
//
// Redis decides with GCRA (github.com/go-redis/redis_rate), so a budget of N
// per minute allows a burst of N and then one request every minute/N. The
// decisions of concurrent requests share round trips: they go through the
// client's autopipeliner (go-redis), which sends whatever arrived while a
// batch was in flight as the next pipeline; each script still runs on its
// own, atomically, and a lone request is sent at once. (go-redis marks its
// autopipeliner experimental: on an upgrade, this package's tests of a
// stalled, a stopped and a clustered Redis are the ones to watch.) When
// Redis fails, Allow does not: the Limiter falls back to in-process token
// buckets (golang.org/x/time/rate, at most Config.MaxLocalKeys keys, least
// recently used evicted) and marks its decisions Degraded. While degraded, one
// request per Config.ProbeInterval tries Redis again; the first one that
// succeeds brings every request back to Redis. During an outage each process
// enforces the budget on its own, so N processes together allow up to N times
// the budget: the limit loosens, it never locks users out.
//
// A decision waits for Redis at most Config.RedisTimeout, and no longer than
// the caller's context: a batch of the autopipeliner is not cut short by
// its callers' contexts, and one that hangs holds back the batch gathered
// behind it. Past the timeout the fallback decides and Redis counts as
// failed; the call itself ends when the client's own limits (ReadTimeout,
// WriteTimeout, MaxRetries) end its batch. Only the requests waiting when
// Redis stops answering, and then one probe per ProbeInterval, pay that
// wait.
package ratelimit

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultPrefix        = "bookingledger:"
	DefaultMaxLocalKeys  = 10_000
	DefaultProbeInterval = time.Second
	DefaultRedisTimeout  = 250 * time.Millisecond
)

// Config tunes a Limiter. The zero value is usable.
type Config struct {
	// Prefix is put in front of every Redis key (redis_rate adds its own
	// "rate:" before it): keys are "rate:<Prefix><class>:<key>". Processes
	// that share a budget use the same Prefix. Default DefaultPrefix.
	Prefix string
	// Logger receives the switches to and from the fallback. Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// MaxLocalKeys bounds the keys the in-process fallback remembers; the
	// least recently used are forgotten first. Default DefaultMaxLocalKeys.
	MaxLocalKeys int
	// ProbeInterval is how often, while degraded, one request tries Redis
	// again. Default DefaultProbeInterval.
	ProbeInterval time.Duration
	// RedisTimeout is the longest a decision waits for Redis before the
	// fallback takes it. Default DefaultRedisTimeout.
	RedisTimeout time.Duration
}

// Decision is the answer to one request.
type Decision struct {
	// Allowed says whether the request may proceed.
	Allowed bool
	// Remaining is how many more requests the key may make right now.
	Remaining int
	// RetryAfter is how long to wait before the next request can be
	// allowed; > 0 when !Allowed, 0 otherwise.
	RetryAfter time.Duration
	// Degraded says the in-process fallback decided, because Redis failed.
	Degraded bool
}

// Limiter decides whether a request fits its key's budget. It is safe for
// concurrent use.
type Limiter struct {
	redis         *redis_rate.Limiter // nil: in-process only
	prefix        string
	log           *slog.Logger
	probeInterval time.Duration
	redisTimeout  time.Duration

	degraded  atomic.Bool
	nextProbe atomic.Int64 // unix nanoseconds; while degraded, when to try Redis again

	local *localLimiters

	rejections *prometheus.CounterVec
	fallbacks  *prometheus.CounterVec
	degradedG  prometheus.Gauge
}

// New returns a Limiter on rdb. A nil rdb limits in-process only, by
// configuration: each process has its own budget and decisions are not
// Degraded.
func New(rdb redis.UniversalClient, cfg Config) *Limiter {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxLocalKeys <= 0 {
		cfg.MaxLocalKeys = DefaultMaxLocalKeys
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.RedisTimeout <= 0 {
		cfg.RedisTimeout = DefaultRedisTimeout
	}
	l := &Limiter{
		prefix:        cfg.Prefix,
		log:           cfg.Logger,
		probeInterval: cfg.ProbeInterval,
		redisTimeout:  cfg.RedisTimeout,
		local:         newLocalLimiters(cfg.MaxLocalKeys),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bookingledger_ratelimit_rejections_total",
			Help: "Requests refused by the rate limiter, by class.",
		}, []string{"class"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bookingledger_ratelimit_fallback_decisions_total",
			Help: "Rate limit decisions taken in-process because Redis failed, by class.",
		}, []string{"class"}),
		degradedG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bookingledger_ratelimit_degraded",
			Help: "1 while rate limiting falls back to in-process limits because Redis is unavailable.",
		}),
	}
	if rdb != nil {
		// Concurrent decisions share a round trip: the client's
		// autopipeliner sends the scripts of requests that arrive while one
		// batch is in flight as the next pipeline. A lone request is sent at
		// once; each is still decided on its own, atomically, by Redis. The
		// autopipeliner is the client's, shared with whoever else asks for
		// it, and closed with the client; nothing else may close it.
		if ap, err := rdb.AutoPipeline(); err == nil {
			l.redis = redis_rate.NewLimiter(ap)
		} else {
			l.redis = redis_rate.NewLimiter(rdb)
		}
	}
	if cfg.Registerer != nil {
		l.rejections = register(cfg.Registerer, l.rejections, l.log)
		l.fallbacks = register(cfg.Registerer, l.fallbacks, l.log)
		l.degradedG = register(cfg.Registerer, l.degradedG, l.log)
	}
	return l
}

// register registers c, or returns the collector already registered under
// its name (a second Limiter on the same registry then shares the metrics).
func register[C prometheus.Collector](r prometheus.Registerer, c C, log *slog.Logger) C {
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
	case errors.As(err, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
		log.Warn("rate limit metrics not registered", "err", err)
	default:
		log.Warn("rate limit metrics not registered", "err", err)
	}
	return c
}

// Allow takes one request under key from a budget of perMinute requests per
// minute. class ("auth", "bookings", "reads") labels the metrics and
// separates budgets: the same key has one budget per class. perMinute <= 0
// refuses every request (fail closed: validate configuration upstream).
//
// Allow never fails: when Redis does, the in-process fallback decides.
func (l *Limiter) Allow(ctx context.Context, class, key string, perMinute int) Decision {
	var d Decision
	switch {
	case perMinute <= 0:
		d = Decision{RetryAfter: time.Minute}
	case l.redis == nil:
		d = l.local.allow(class, key, perMinute, time.Now())
	default:
		var ok bool
		if d, ok = l.allowRedis(ctx, class, key, perMinute); !ok {
			d = l.local.allow(class, key, perMinute, time.Now())
			d.Degraded = true
			l.fallbacks.WithLabelValues(class).Inc()
		}
	}
	if !d.Allowed {
		l.rejections.WithLabelValues(class).Inc()
	}
	return d
}

// allowRedis asks Redis, unless a recent failure says not to try yet. It
// reports false when the fallback must decide.
func (l *Limiter) allowRedis(ctx context.Context, class, key string, perMinute int) (Decision, bool) {
	if l.degraded.Load() {
		next := l.nextProbe.Load()
		now := time.Now().UnixNano()
		// One request per interval probes Redis; the others go straight to
		// the fallback instead of waiting on a dead server.
		if now < next || !l.nextProbe.CompareAndSwap(next, now+int64(l.probeInterval)) {
			return Decision{}, false
		}
	}
	res, err := l.askRedis(ctx, l.prefix+class+":"+key, perMinute)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up, which says nothing about Redis.
			return Decision{}, false
		}
		l.nextProbe.Store(time.Now().Add(l.probeInterval).UnixNano())
		if l.degraded.CompareAndSwap(false, true) {
			l.degradedG.Set(1)
			l.log.Warn("rate limiting falls back to in-process limits: redis unavailable", "err", err)
		}
		return Decision{}, false
	}
	if l.degraded.CompareAndSwap(true, false) {
		l.degradedG.Set(0)
		l.log.Info("rate limiting is back on redis")
	}
	d := Decision{Allowed: res.Allowed > 0, Remaining: max(res.Remaining, 0)}
	if !d.Allowed {
		d.RetryAfter = max(res.RetryAfter, time.Millisecond)
	}
	return d, true
}

// errRedisTimeout is a decision Redis did not answer within RedisTimeout.
var errRedisTimeout = errors.New("no answer from redis within the rate limiter's timeout")

// askRedis runs the GCRA script for key and waits for its answer at most
// RedisTimeout, or until ctx ends (the autopipeliner waits for a batch
// whatever its callers' contexts say). An abandoned call ends with its
// batch, and may still take its request's token in Redis: a timeout errs on
// the strict side.
func (l *Limiter) askRedis(ctx context.Context, key string, perMinute int) (*redis_rate.Result, error) {
	type answer struct {
		res *redis_rate.Result
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := l.redis.Allow(ctx, key, redis_rate.PerMinute(perMinute))
		answered <- answer{res, err}
	}()
	timeout := time.NewTimer(l.redisTimeout)
	defer timeout.Stop()
	select {
	case a := <-answered:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timeout.C:
		return nil, errRedisTimeout
	}
}

// localLimiters are the in-process token buckets, one per class and key, at
// most max of them, least recently used evicted first. A forgotten key starts
// again with a full budget.
type localLimiters struct {
	mu      sync.Mutex
	max     int
	byKey   map[localKey]*list.Element
	recency *list.List // of *localEntry, most recently used first
}

type localKey struct{ class, key string }

type localEntry struct {
	k         localKey
	perMinute int
	lim       *rate.Limiter
}

func newLocalLimiters(maxKeys int) *localLimiters {
	return &localLimiters{max: maxKeys, byKey: make(map[localKey]*list.Element), recency: list.New()}
}

func (ll *localLimiters) allow(class, key string, perMinute int, now time.Time) Decision {
	lim := ll.get(localKey{class, key}, perMinute, now)
	if lim.AllowN(now, 1) {
		return Decision{Allowed: true, Remaining: int(math.Max(0, math.Floor(lim.TokensAt(now))))}
	}
	missing := 1 - lim.TokensAt(now)
	retry := time.Duration(math.Ceil(missing * float64(time.Minute) / float64(perMinute)))
	return Decision{RetryAfter: max(retry, time.Millisecond)}
}

func (ll *localLimiters) get(k localKey, perMinute int, now time.Time) *rate.Limiter {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if el, ok := ll.byKey[k]; ok {
		ll.recency.MoveToFront(el)
		e := el.Value.(*localEntry)
		if e.perMinute != perMinute {
			e.perMinute = perMinute
			e.lim.SetLimitAt(now, perMinuteLimit(perMinute))
			e.lim.SetBurstAt(now, perMinute)
		}
		return e.lim
	}
	e := &localEntry{k: k, perMinute: perMinute, lim: rate.NewLimiter(perMinuteLimit(perMinute), perMinute)}
	ll.byKey[k] = ll.recency.PushFront(e)
	for ll.recency.Len() > ll.max {
		oldest := ll.recency.Back()
		ll.recency.Remove(oldest)
		delete(ll.byKey, oldest.Value.(*localEntry).k)
	}
	return e.lim
}

func perMinuteLimit(n int) rate.Limit { return rate.Limit(float64(n) / 60) }
