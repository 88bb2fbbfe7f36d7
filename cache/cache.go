// Package cache keeps rendered show reads (the show list and a show with
// its seat map) in Redis, and drops them when the projector changes a show.
//
// Invalidation is driven by PostgreSQL: a trigger on the shows table sends
// NOTIFY projection_changed with the show id, delivered only when the
// projector's transaction commits. Listen receives it and bumps the show's
// generation counter (and the list's), then deletes the cached entry. Fill
// stores a value only if the generation it read before loading from the
// database is still current, so a read that raced a commit can never put a
// stale value back after its invalidation. A TTL bounds anything missed while
// the listener reconnects.
//
// In front of Redis each process keeps the hottest entries in memory (an LRU
// of Config.LocalEntries, each kept at most Config.LocalTTL), so a popular
// show is served without a network round trip. The same notifications drive
// it: an invalidation moves the show's (and the list's) local generation,
// which is part of every local key, so what was cached before is never found
// again, and a fill that raced the invalidation stores under the old
// generation, where nobody looks. The local layer is used only while the
// listener is connected; a reconnect starts a new local epoch, as
// notifications may have been missed in between. Reads of one value that
// miss together there share one load (singleflight), so a popular show's
// change costs one database read per process, not one per waiting request.
//
// Redis is optional: a nil client, or Redis being down, turns the cache into
// a pass-through that always loads from the database.
package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/bookingledger/ledger/internal/pglisten"
)

// Channel is the NOTIFY channel the shows trigger uses.
const Channel = "projection_changed"

// Config tunes a Cache.
type Config struct {
	Prefix string        // key prefix, e.g. "bookingledger:"
	TTL    time.Duration // backstop expiry (default 30s)
	// LocalEntries bounds the in-process layer (default 10,000; negative
	// turns it off). LocalTTL bounds how long it keeps an entry (default 5s).
	LocalEntries int
	LocalTTL     time.Duration
	// Listeners is how many databases announce changes, one Listen each
	// (a ledger's shards; default 1): the in-process layer answers only
	// while that many listen.
	Listeners  int
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// Cache is safe for concurrent use.
type Cache struct {
	rdb    redis.UniversalClient
	cfg    Config
	logger *slog.Logger
	down   atomic.Bool

	// The in-process layer; nil when off. It answers only while every
	// listener (one per shard's database) is listening.
	local     *lru.Cache[localKey, localEntry]
	listeners atomic.Int32  // Listen calls running
	deaf      atomic.Int32  // of those, the ones not listening now
	epoch     atomic.Uint64 // moves on every (re)connect of the listener
	showGens  sync.Map      // show id (int64) -> *atomic.Uint64, moved by Invalidate
	listGen   atomic.Uint64 // the list's, moved by every Invalidate
	flights   singleflight.Group

	hits, localHits, misses, errors prometheus.Counter
}

type localEntry struct {
	value   []byte
	expires time.Time
}

// item names a cached value: a show's, or a page of the list for a query.
type item struct {
	show  int64
	list  bool
	query string
}

// localKey is where the in-process layer keeps an item: under the epoch
// and the item's generation read before it was loaded.
type localKey struct {
	epoch, gen uint64
	item
}

// String is the key's text, for the singleflight group.
func (k localKey) String() string {
	return fmt.Sprintf("%d/%d/%d/%t/%s", k.epoch, k.gen, k.show, k.list, k.query)
}

// New returns a cache on rdb; rdb may be nil (no caching).
func New(rdb redis.UniversalClient, cfg Config) *Cache {
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.LocalEntries == 0 {
		cfg.LocalEntries = 10_000
	}
	if cfg.Listeners <= 0 {
		cfg.Listeners = 1
	}
	if cfg.LocalTTL <= 0 {
		cfg.LocalTTL = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		rdb: rdb, cfg: cfg, logger: cfg.Logger,
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_cache_hits_total", Help: "Show reads answered from Redis."}),
		localHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_cache_local_hits_total",
			Help: "Show reads answered from this process's memory."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_cache_misses_total", Help: "Show reads loaded from the database."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_cache_errors_total", Help: "Redis errors; the read went to the database."}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(c.hits, c.localHits, c.misses, c.errors)
	}
	if rdb != nil && cfg.LocalEntries > 0 {
		c.local, _ = lru.New[localKey, localEntry](cfg.LocalEntries) // errors only for a size <= 0
	}
	return c
}

// Keys carry Redis Cluster hash tags: a show's value and its generation
// share the tag {show:<id>}, the list's generation and pages share
// {shows}, so each script and transaction touches one slot.
//
// A show's value is named with its layout ("v2": the api keeps a gzip of the
// JSON beside it), so during a rolling upgrade processes of two versions
// never read each other's values, and it begins with the generation it was
// loaded under, so a change announced by a process that deletes only the
// older name (moving the generation all the same) is not missed.
func (c *Cache) showKey(id int64) string {
	return c.cfg.Prefix + "{show:" + strconv.FormatInt(id, 10) + "}:v2"
}

// legacyShowKey is where versions before the "v2" layout keep a show.
func (c *Cache) legacyShowKey(id int64) string {
	return c.cfg.Prefix + "{show:" + strconv.FormatInt(id, 10) + "}"
}
func (c *Cache) showGenKey(id int64) string {
	return c.cfg.Prefix + "{show:" + strconv.FormatInt(id, 10) + "}:gen"
}
func (c *Cache) listGenKey() string { return c.cfg.Prefix + "{shows}:gen" }

// fillScript sets KEYS[2] to ARGV[2] for ARGV[3] ms only if KEYS[1] (the
// generation) still holds ARGV[1] ("" when it did not exist).
var fillScript = redis.NewScript(`
local gen = redis.call('GET', KEYS[1]) or ''
if gen == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`)

// Show returns the cached value for a show, or loads and caches it.
func (c *Cache) Show(ctx context.Context, id int64, load func() ([]byte, error)) ([]byte, error) {
	return c.fill(ctx, item{show: id}, load)
}

// List returns a cached page of the show list for the query q (the
// normalized filter and cursor), or loads and caches it. Every change to any
// show moves the list to a new generation, which orphans the old pages.
func (c *Cache) List(ctx context.Context, q string, load func() ([]byte, error)) ([]byte, error) {
	return c.fill(ctx, item{list: true, query: q}, load)
}

// Enabled reports whether values are kept at all (a Redis client was
// given). A value loaded for a cache that keeps it must come from the
// primary: a lagging replica's rows, stored after the invalidation that
// announced a newer version, would stay until the next change or the TTL.
func (c *Cache) Enabled() bool { return c.rdb != nil }

// Keeps reports whether a value loaded now is likely to be kept, in Redis
// or in this process's memory: false without Redis, and while Redis fails
// and the in-process layer does not answer (every read is then a load). A
// loader may skip work that only a kept value repays.
func (c *Cache) Keeps() bool {
	return c.rdb != nil && (!c.down.Load() || (c.local != nil && c.hearsAll()))
}

// localGen is an item's local generation counter.
func (c *Cache) localGen(it item) *atomic.Uint64 {
	if it.list {
		return &c.listGen
	}
	if g, ok := c.showGens.Load(it.show); ok {
		return g.(*atomic.Uint64)
	}
	g, _ := c.showGens.LoadOrStore(it.show, new(atomic.Uint64))
	return g.(*atomic.Uint64)
}

func (c *Cache) fill(ctx context.Context, it item, load func() ([]byte, error)) ([]byte, error) {
	if c.rdb == nil {
		return load()
	}
	if c.local == nil || !c.hearsAll() {
		return c.fillShared(ctx, it, load)
	}
	// The key names the epoch and generation read before anything is
	// loaded: a value loaded across an invalidation is stored where no
	// later read looks.
	lk := localKey{epoch: c.epoch.Load(), gen: c.localGen(it).Load(), item: it}
	now := time.Now()
	if e, ok := c.local.Get(lk); ok && now.Before(e.expires) {
		c.localHits.Inc()
		return e.value, nil
	}
	// Reads that miss together share one load (a popular show right after
	// a change): they read the same epoch and generation before it, as if
	// each had loaded. A shared load that failed (its request may have been
	// cancelled) is not this read's answer: it loads for itself.
	led := false // whether this read's own load ran
	shared, err, _ := c.flights.Do(lk.String(), func() (any, error) {
		led = true
		return c.fillShared(ctx, it, load)
	})
	if err != nil && !led {
		shared, err = c.fillShared(ctx, it, load)
	}
	if err != nil {
		return nil, err
	}
	v := shared.([]byte)
	c.local.Add(lk, localEntry{value: v, expires: now.Add(c.cfg.LocalTTL)})
	return v, nil
}

// fillShared is fill through Redis.
func (c *Cache) fillShared(ctx context.Context, it item, load func() ([]byte, error)) ([]byte, error) {
	key, genKey := "", c.listGenKey()
	if !it.list {
		key, genKey = c.showKey(it.show), c.showGenKey(it.show)
	}
	gen, err := c.rdb.Get(ctx, genKey).Result()
	if errors.Is(err, redis.Nil) {
		gen, err = "", nil
	}
	if err != nil {
		c.fail(err)
		return load()
	}
	// A show's value is stamped with its generation (see showKey); a list
	// page's key names it.
	stamped := !it.list
	if it.list {
		key = c.cfg.Prefix + "{shows}:" + gen + ":" + it.query
	}
	if v, err := c.rdb.Get(ctx, key).Bytes(); err == nil {
		c.ok()
		if !stamped {
			c.hits.Inc()
			return v, nil
		}
		if g, rest, ok := bytes.Cut(v, []byte("\n")); ok && string(g) == gen {
			c.hits.Inc()
			return rest, nil
		}
		// Loaded under another generation: a change was announced since.
	} else if !errors.Is(err, redis.Nil) {
		c.fail(err)
		return load()
	}
	c.misses.Inc()
	v, err := load()
	if err != nil {
		return nil, err
	}
	stored := v
	if stamped {
		stored = append(append(make([]byte, 0, len(gen)+1+len(v)), gen...), '\n')
		stored = append(stored, v...)
	}
	if err := fillScript.Run(ctx, c.rdb, []string{genKey, key}, gen, stored, c.cfg.TTL.Milliseconds()).Err(); err != nil {
		c.fail(err)
	}
	return v, nil
}

// Invalidate forgets what is cached for a show and every list page.
func (c *Cache) Invalidate(ctx context.Context, id int64) error {
	if c.rdb == nil {
		return nil
	}
	// Local before Redis too: this process stops serving the old value at
	// once, even while Redis is slow or down.
	c.localGen(item{show: id}).Add(1)
	c.listGen.Add(1)
	// Two transactions, one per slot (the show's, the list's): each
	// generation guards only its own values, so they need not move together.
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, c.showGenKey(id))
		p.Expire(ctx, c.showGenKey(id), 24*time.Hour)
		p.Del(ctx, c.showKey(id), c.legacyShowKey(id)) // the older name for processes of older versions
		return nil
	})
	if err == nil {
		err = c.rdb.Incr(ctx, c.listGenKey()).Err()
	}
	// Local after Redis: a read under the new generation must not find the
	// old value in Redis and keep it here. (A read under the old one may;
	// it stores where no later read looks.)
	c.localGen(item{show: id}).Add(1)
	c.listGen.Add(1)
	if err != nil {
		c.fail(err)
		return fmt.Errorf("invalidate show %d: %w", id, err)
	}
	return nil
}

func (c *Cache) fail(err error) {
	c.errors.Inc()
	if !c.down.Swap(true) {
		c.logger.Warn("show cache unavailable, reading from the database", "err", err)
	}
}

func (c *Cache) ok() {
	if c.down.Swap(false) {
		c.logger.Info("show cache available again")
	}
}

// hearsAll reports whether every listener is listening, so that nothing
// the in-process layer holds can have missed an invalidation.
func (c *Cache) hearsAll() bool {
	return c.listeners.Load() >= int32(c.cfg.Listeners) && c.deaf.Load() == 0
}

// Listen invalidates the cache on every committed projection change of
// one database until ctx ends, reconnecting with connect after failures.
// A ledger on several shards runs one Listen per shard's database; the
// in-process layer answers only while all of them listen. ready, when not
// nil, is closed once the first LISTEN is in place.
func (c *Cache) Listen(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), ready chan<- struct{}) {
	if c.rdb == nil {
		if ready != nil {
			close(ready)
		}
		return
	}
	// Counted deaf before counted at all, so no reader sees this listener
	// as listening before it is.
	c.deaf.Add(1)
	c.listeners.Add(1)
	hearing := false
	defer func() {
		if hearing {
			c.deaf.Add(1)
		}
		c.listeners.Add(-1)
		c.deaf.Add(-1)
	}()
	pglisten.Run(ctx, pglisten.Config{
		Channel: Channel,
		Connect: connect,
		Listening: func() {
			// Whatever the local layer holds may have missed notifications.
			c.epoch.Add(1)
			if c.local != nil {
				c.local.Purge()
			}
			if !hearing {
				hearing = true
				c.deaf.Add(-1)
			}
			if ready != nil {
				close(ready)
				ready = nil
			}
		},
		Stopped: func() {
			if hearing {
				hearing = false
				c.deaf.Add(1)
			}
		},
		Notify: func(ctx context.Context, payload string) {
			if id, err := strconv.ParseInt(payload, 10, 64); err == nil {
				_ = c.Invalidate(ctx, id) // logged by fail; the TTL is the backstop
			}
		},
		Logger: c.logger,
	})
}
