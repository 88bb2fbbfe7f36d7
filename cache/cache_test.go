package cache_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/redistest"
)

// pollDeadline bounds every wait for something asynchronous (a NOTIFY
// reaching the listener, a restarted Redis); it is a failure deadline, not a
// timing assertion.
const pollDeadline = 15 * time.Second

// loader counts the calls of a load func and returns whatever value holds.
type loader struct {
	calls atomic.Int64
	value atomic.Value // []byte
	err   error
}

func newLoader(v string) *loader {
	l := &loader{}
	l.value.Store([]byte(v))
	return l
}

func (l *loader) load() ([]byte, error) {
	l.calls.Add(1)
	if l.err != nil {
		return nil, l.err
	}
	return l.value.Load().([]byte), nil
}

func (l *loader) set(v string) { l.value.Store([]byte(v)) }

// newCache returns a cache on the shared Redis under a unique prefix, and the
// registry its metrics are registered with.
func newCache(t testing.TB) (*cache.Cache, *prometheus.Registry) {
	t.Helper()
	rdb, prefix := redistest.New(t)
	reg := prometheus.NewRegistry()
	return cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute, Registerer: reg}), reg
}

// assertCounters checks the hit and miss counters exposed on reg.
func assertCounters(t testing.TB, reg prometheus.Gatherer, hits, misses int) {
	t.Helper()
	expected := fmt.Sprintf(`
# HELP bookingledger_cache_hits_total Show reads answered from Redis.
# TYPE bookingledger_cache_hits_total counter
bookingledger_cache_hits_total %d
# HELP bookingledger_cache_misses_total Show reads loaded from the database.
# TYPE bookingledger_cache_misses_total counter
bookingledger_cache_misses_total %d
`, hits, misses)
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"bookingledger_cache_hits_total", "bookingledger_cache_misses_total"))
}

// counterValue reads one counter from reg (0 when it is not there).
func counterValue(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// read abstracts over Show and List so the same tests cover both.
type read struct {
	name string
	do   func(ctx context.Context, c *cache.Cache, load func() ([]byte, error)) ([]byte, error)
}

var reads = []read{
	{"Show", func(ctx context.Context, c *cache.Cache, load func() ([]byte, error)) ([]byte, error) {
		return c.Show(ctx, 1, load)
	}},
	{"List", func(ctx context.Context, c *cache.Cache, load func() ([]byte, error)) ([]byte, error) {
		return c.List(ctx, "type=movie&limit=20", load)
	}},
}

func TestReadLoadsOnceThenHits(t *testing.T) {
	t.Parallel()
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c, reg := newCache(t)
			l := newLoader(`{"id":1}`)

			v, err := r.do(ctx, c, l.load)
			require.NoError(t, err)
			assert.Equal(t, `{"id":1}`, string(v))
			assertCounters(t, reg, 0, 1)

			l.set(`{"id":1,"changed":true}`) // the cache must not look
			for range 3 {
				v, err = r.do(ctx, c, l.load)
				require.NoError(t, err)
				assert.Equal(t, `{"id":1}`, string(v))
			}
			assert.EqualValues(t, 1, l.calls.Load(), "loaded once")
			assertCounters(t, reg, 3, 1)
			assert.Zero(t, counterValue(t, reg, "bookingledger_cache_errors_total"))
		})
	}
}

func TestEntriesAreSeparate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, reg := newCache(t)

	show1, show2 := newLoader("show 1"), newLoader("show 2")
	movies, buses := newLoader("movies"), newLoader("buses")
	for range 2 {
		v, err := c.Show(ctx, 1, show1.load)
		require.NoError(t, err)
		assert.Equal(t, "show 1", string(v))
		v, err = c.Show(ctx, 2, show2.load)
		require.NoError(t, err)
		assert.Equal(t, "show 2", string(v))
		v, err = c.List(ctx, "type=movie", movies.load)
		require.NoError(t, err)
		assert.Equal(t, "movies", string(v))
		v, err = c.List(ctx, "type=bus", buses.load)
		require.NoError(t, err)
		assert.Equal(t, "buses", string(v))
	}
	for _, l := range []*loader{show1, show2, movies, buses} {
		assert.EqualValues(t, 1, l.calls.Load())
	}
	assertCounters(t, reg, 4, 4)
}

func TestLoadErrorIsReturnedAndNotCached(t *testing.T) {
	t.Parallel()
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c, _ := newCache(t)
			errDB := errors.New("database is down")
			l := newLoader("value")
			l.err = errDB

			_, err := r.do(ctx, c, l.load)
			require.ErrorIs(t, err, errDB)

			l.err = nil
			v, err := r.do(ctx, c, l.load)
			require.NoError(t, err)
			assert.Equal(t, "value", string(v))
			assert.EqualValues(t, 2, l.calls.Load(), "the failed load was not cached")
		})
	}
}

func TestInvalidateMakesTheNextReadReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, reg := newCache(t)

	show1, show2, list := newLoader("show 1 v1"), newLoader("show 2 v1"), newLoader("list v1")
	warm := func() {
		t.Helper()
		_, err := c.Show(ctx, 1, show1.load)
		require.NoError(t, err)
		_, err = c.Show(ctx, 2, show2.load)
		require.NoError(t, err)
		_, err = c.List(ctx, "", list.load)
		require.NoError(t, err)
	}
	warm()
	warm()
	assertCounters(t, reg, 3, 3)

	show1.set("show 1 v2")
	list.set("list v2")
	require.NoError(t, c.Invalidate(ctx, 1))

	v, err := c.Show(ctx, 1, show1.load)
	require.NoError(t, err)
	assert.Equal(t, "show 1 v2", string(v))
	v, err = c.List(ctx, "", list.load)
	require.NoError(t, err)
	assert.Equal(t, "list v2", string(v), "every list page is dropped")
	v, err = c.Show(ctx, 2, show2.load)
	require.NoError(t, err)
	assert.Equal(t, "show 2 v1", string(v), "another show stays cached")

	assert.EqualValues(t, 2, show1.calls.Load())
	assert.EqualValues(t, 2, list.calls.Load())
	assert.EqualValues(t, 1, show2.calls.Load())
	assertCounters(t, reg, 4, 5)

	// The reloaded values are cached again.
	warm()
	assert.EqualValues(t, 2, show1.calls.Load())
	assert.EqualValues(t, 2, list.calls.Load())
	assertCounters(t, reg, 7, 5)
}

// A process of an older version invalidates by moving the show's
// generation and deleting only the name it keeps the show under: a value
// under the current name, loaded before, is not answered again.
func TestAGenerationMovedElsewhereEndsTheValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	c := cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute})
	show := newLoader("v1")
	for range 2 {
		v, err := c.Show(ctx, 1, show.load)
		require.NoError(t, err)
		assert.Equal(t, "v1", string(v))
	}
	require.EqualValues(t, 1, show.calls.Load(), "cached")

	show.set("v2")
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, prefix+"{show:1}:gen")
		p.Del(ctx, prefix+"{show:1}")
		return nil
	})
	require.NoError(t, err)
	v, err := c.Show(ctx, 1, show.load)
	require.NoError(t, err)
	assert.Equal(t, "v2", string(v))
	v, err = c.Show(ctx, 1, show.load)
	require.NoError(t, err)
	assert.Equal(t, "v2", string(v))
	assert.EqualValues(t, 2, show.calls.Load(), "loaded once more, then cached again")
}

// A read that loaded its value before an invalidation landed (between the
// read of the generation and the SET) must not put that stale value back.
func TestInvalidateDuringLoadIsNotOverwritten(t *testing.T) {
	t.Parallel()
	for _, r := range layered(reads) {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := r.newCache(t)
			for _, warm := range []bool{false, true} {
				name := "cold"
				if warm {
					name = "after an earlier invalidation"
					// Move the generations past "" so both the missing and the
					// existing generation key are covered.
					require.NoError(t, c.Invalidate(ctx, 1))
				}
				t.Run(name, func(t *testing.T) {
					var calls atomic.Int64
					racing := func() ([]byte, error) {
						calls.Add(1)
						// The projector commits and invalidates while this
						// read is loading the old row.
						require.NoError(t, c.Invalidate(ctx, 1))
						return []byte("stale"), nil
					}
					v, err := r.do(ctx, c, racing)
					require.NoError(t, err)
					assert.Equal(t, "stale", string(v), "the caller still gets what it loaded")

					fresh := newLoader("fresh")
					v, err = r.do(ctx, c, fresh.load)
					require.NoError(t, err)
					assert.Equal(t, "fresh", string(v), "the stale value was not stored")
					assert.EqualValues(t, 1, fresh.calls.Load())

					v, err = r.do(ctx, c, fresh.load)
					require.NoError(t, err)
					assert.Equal(t, "fresh", string(v))
					assert.EqualValues(t, 1, fresh.calls.Load(), "the fresh value is cached")
				})
			}
		})
	}
}

// Readers racing a writer that changes the data and then invalidates: once
// the writer is done, a read sees its last value, never an older one.
func TestConcurrentReadsNeverKeepAStaleValue(t *testing.T) {
	t.Parallel()
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%v", local), func(t *testing.T) {
			t.Parallel()
			c, _ := newCache(t)
			if local {
				_, url := pgtest.NewDB(t)
				listen(t, c, url)
			}
			concurrentReadsNeverKeepAStaleValue(t, c)
		})
	}
}

func concurrentReadsNeverKeepAStaleValue(t *testing.T, c *cache.Cache) {
	ctx := context.Background()

	var version atomic.Int64 // the "database"
	load := func() ([]byte, error) { return []byte(strconv.FormatInt(version.Load(), 10)), nil }
	const writes = 50

	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := c.Show(ctx, 7, load); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.List(ctx, "q", load); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range writes {
		version.Add(1)
		require.NoError(t, c.Invalidate(ctx, 7))
	}
	close(done)
	wg.Wait()

	want := strconv.Itoa(writes)
	for range 3 {
		v, err := c.Show(ctx, 7, load)
		require.NoError(t, err)
		assert.Equal(t, want, string(v))
		v, err = c.List(ctx, "q", load)
		require.NoError(t, err)
		assert.Equal(t, want, string(v))
	}
}

func TestNilClientPassesThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c := cache.New(nil, cache.Config{Registerer: reg})

	for _, r := range reads {
		l := newLoader("value")
		for range 3 {
			v, err := r.do(ctx, c, l.load)
			require.NoError(t, err)
			assert.Equal(t, "value", string(v))
		}
		assert.EqualValues(t, 3, l.calls.Load(), "%s loads every time", r.name)
	}
	errDB := errors.New("boom")
	_, err := c.Show(ctx, 1, func() ([]byte, error) { return nil, errDB })
	require.ErrorIs(t, err, errDB)

	require.NoError(t, c.Invalidate(ctx, 1))
	assertCounters(t, reg, 0, 0)
	assert.False(t, c.Keeps())

	// Listen has nothing to do: it reports ready and returns.
	ready := make(chan struct{})
	c.Listen(ctx, func(context.Context) (*pgx.Conn, error) {
		t.Error("Listen without Redis must not connect")
		return nil, errors.New("unexpected")
	}, ready)
	select {
	case <-ready:
	default:
		t.Error("ready is closed")
	}
}

func TestRedisDownLoadsFromTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	addr, stop := redistest.StartServer(t)
	rdb := redistest.FailFastClient(t, addr)
	reg := prometheus.NewRegistry()
	c := cache.New(rdb, cache.Config{Prefix: "down:", TTL: time.Minute, Registerer: reg})

	show, list := newLoader("show"), newLoader("list")
	readBoth := func() {
		t.Helper()
		v, err := c.Show(ctx, 1, show.load)
		require.NoError(t, err)
		assert.Equal(t, "show", string(v))
		v, err = c.List(ctx, "", list.load)
		require.NoError(t, err)
		assert.Equal(t, "list", string(v))
	}
	readBoth()
	readBoth()
	require.EqualValues(t, 1, show.calls.Load(), "cached while Redis is up")
	require.EqualValues(t, 1, list.calls.Load())
	assert.Zero(t, counterValue(t, reg, "bookingledger_cache_errors_total"))
	assert.True(t, c.Keeps())

	stop()
	readBoth()
	readBoth()
	assert.False(t, c.Keeps(), "nothing is kept while Redis is down and no listener runs")
	assert.EqualValues(t, 3, show.calls.Load(), "every read goes to the database")
	assert.EqualValues(t, 3, list.calls.Load())
	assert.Error(t, c.Invalidate(ctx, 1))
	assert.GreaterOrEqual(t, counterValue(t, reg, "bookingledger_cache_errors_total"), 5.0)

	// Redis comes back (empty): reads are cached again.
	redistest.StartServerAt(t, addr)
	deadline := time.Now().Add(pollDeadline)
	for {
		readBoth()
		before := show.calls.Load()
		readBoth()
		if show.calls.Load() == before {
			break
		}
		require.False(t, time.Now().After(deadline), "reads are not cached again after Redis came back")
		time.Sleep(20 * time.Millisecond)
	}
	assert.True(t, c.Keeps())
}

// layeredRead is a read on a cache with or without its local layer in use
// (the layer answers only while the listener listens).
type layeredRead struct {
	read
	newCache func(t *testing.T) *cache.Cache
}

func layered(rs []read) []layeredRead {
	var out []layeredRead
	for _, r := range rs {
		out = append(out, layeredRead{r, func(t *testing.T) *cache.Cache { c, _ := newCache(t); return c }})
		local := r
		local.name += "/local"
		out = append(out, layeredRead{local, func(t *testing.T) *cache.Cache {
			c, _ := newCache(t)
			_, url := pgtest.NewDB(t)
			listen(t, c, url)
			return c
		}})
	}
	return out
}

// While its listener listens, a cache answers repeated reads from memory:
// they go on even with the Redis entry gone. An invalidation, or the
// listener's connection dropping, ends that.
func TestLocalLayerAnswersWhileListening(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := pgtest.NewDB(t)
	rdb, prefix := redistest.New(t)
	reg := prometheus.NewRegistry()
	c := cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute, Registerer: reg})
	l := newLoader("v1")

	// Not listening yet: Redis only.
	_, err := c.Show(ctx, 1, l.load)
	require.NoError(t, err)
	require.NoError(t, redistest.DeleteKeys(ctx, rdb, prefix))
	_, err = c.Show(ctx, 1, l.load)
	require.NoError(t, err)
	assert.EqualValues(t, 2, l.calls.Load(), "without a listener nothing is kept in memory")

	pid, connects := listen(t, c, url)
	_, err = c.Show(ctx, 1, l.load) // from Redis, kept in memory
	require.NoError(t, err)
	require.EqualValues(t, 2, l.calls.Load())
	require.NoError(t, redistest.DeleteKeys(ctx, rdb, prefix))
	l.set("v2")
	for range 3 {
		v, err := c.Show(ctx, 1, l.load)
		require.NoError(t, err)
		assert.Equal(t, "v1", string(v))
	}
	assert.EqualValues(t, 2, l.calls.Load(), "served from memory")
	assert.EqualValues(t, 3, counterValue(t, reg, "bookingledger_cache_local_hits_total"))

	require.NoError(t, c.Invalidate(ctx, 1))
	v, err := c.Show(ctx, 1, l.load)
	require.NoError(t, err)
	assert.Equal(t, "v2", string(v), "an invalidation ends the memory's answer")

	// A lost connection may lose notifications: nothing from before it is
	// answered from memory again.
	l.set("v3")
	_, err = rdb.Del(ctx, prefix+"{show:1}:v2").Result()
	require.NoError(t, err)
	var killed bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid())).Scan(&killed))
	require.True(t, killed)
	deadline := time.Now().Add(pollDeadline)
	for connects() < 2 {
		require.False(t, time.Now().After(deadline), "the listener did not reconnect")
		time.Sleep(10 * time.Millisecond)
	}
	v, err = c.Show(ctx, 1, l.load)
	require.NoError(t, err)
	assert.Equal(t, "v3", string(v), "after a reconnect the memory starts empty")
}

// The in-process layer keeps each show and each list page apart, and an
// invalidation of a show ends that show's entry and every list page's, not
// another show's.
func TestLocalLayerKeepsEntriesApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, rdb, prefix := listeningCache(t)

	type entry struct {
		name string
		read func(load func() ([]byte, error)) ([]byte, error)
		l    *loader
	}
	show := func(id int64) func(func() ([]byte, error)) ([]byte, error) {
		return func(load func() ([]byte, error)) ([]byte, error) { return c.Show(ctx, id, load) }
	}
	list := func(q string) func(func() ([]byte, error)) ([]byte, error) {
		return func(load func() ([]byte, error)) ([]byte, error) { return c.List(ctx, q, load) }
	}
	entries := []entry{
		{"show 1", show(1), newLoader("show 1")},
		{"show 2", show(2), newLoader("show 2")},
		{"movies", list("type=movie"), newLoader("movies")},
		{"all", list(""), newLoader("all")},
	}
	readAll := func() {
		t.Helper()
		for _, e := range entries {
			v, err := e.read(e.l.load)
			require.NoError(t, err)
			assert.Equal(t, e.name, string(v), "%s answered another entry's value", e.name)
		}
	}
	readAll()
	// What Redis holds is gone: from here on only the memory answers, or
	// the loaders.
	require.NoError(t, redistest.DeleteKeys(ctx, rdb, prefix))
	readAll()
	for _, e := range entries {
		assert.EqualValues(t, 1, e.l.calls.Load(), "%s loaded once, then answered from memory", e.name)
	}

	require.NoError(t, c.Invalidate(ctx, 1))
	readAll()
	want := map[string]int64{"show 1": 2, "show 2": 1, "movies": 2, "all": 2}
	for _, e := range entries {
		assert.Equal(t, want[e.name], e.l.calls.Load(), "%s loads after show 1's invalidation", e.name)
	}
}

// listeningCache is a cache on a private Redis prefix whose listener
// listens to a fresh database, so its in-process layer answers. It returns
// the Redis client and prefix too.
func listeningCache(t *testing.T) (*cache.Cache, redis.UniversalClient, string) {
	t.Helper()
	_, url := pgtest.NewDB(t)
	rdb, prefix := redistest.New(t)
	c := cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute})
	listen(t, c, url)
	return c, rdb, prefix
}

// listen starts c.Listen on the database at url and waits until it listens.
// It returns the backend pid of the listener's latest connection and the
// number of connections it made.
func listen(t *testing.T, c *cache.Cache, url string) (pid func() uint32, connects func() int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var lastPID atomic.Uint32
	var n atomic.Int64
	ready := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) {
			n.Add(1)
			conn, err := pgx.Connect(ctx, url)
			if err == nil {
				lastPID.Store(conn.PgConn().PID())
			}
			return conn, err
		}, ready)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	select {
	case <-ready:
	case <-time.After(pollDeadline):
		t.Fatal("Listen did not report ready")
	}
	return lastPID.Load, n.Load
}

// insertShow inserts a shows row (the projector's job) through db.
func insertShow(t testing.TB, db *pgxpool.Pool, id int64) {
	t.Helper()
	_, err := db.Exec(context.Background(), `INSERT INTO shows
		(id, name, show_type, start_time, total_seats, available_seats, version, created_at, updated_at)
		VALUES ($1, $2, 'movie', now() + interval '1 day', 10, 10, 1, now(), now())`, id, fmt.Sprintf("show %d", id))
	require.NoError(t, err)
}

// cached warms the cache entry of show id and returns a func that reports
// whether it is still cached (a read that does not call the loader); once it
// reports false the entry has been reloaded.
func cached(t testing.TB, c *cache.Cache, id int64) func() bool {
	t.Helper()
	ctx := context.Background()
	l := newLoader("show " + strconv.FormatInt(id, 10))
	_, err := c.Show(ctx, id, l.load) // loads unless already cached
	require.NoError(t, err)
	loaded := l.calls.Load()
	_, err = c.Show(ctx, id, l.load)
	require.NoError(t, err)
	require.Equal(t, loaded, l.calls.Load(), "show %d is cached", id)
	return func() bool {
		before := l.calls.Load()
		_, err := c.Show(ctx, id, l.load)
		require.NoError(t, err)
		return l.calls.Load() == before
	}
}

// waitInvalidated polls until show id's cache entry has been dropped.
func waitInvalidated(t testing.TB, stillCached func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for stillCached() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the cache was not invalidated within %s", what, pollDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// barrier commits a change of a fresh show and waits until the listener has
// acted on it. Notifications reach the single listener connection in commit
// order, so anything committed before the barrier has been handled after it.
func barrier(t testing.TB, c *cache.Cache, pool *pgxpool.Pool, id int64) {
	t.Helper()
	still := cached(t, c, id)
	insertShow(t, pool, id)
	waitInvalidated(t, still, "barrier")
}

func TestListenInvalidatesOnCommitOnly(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	c, _ := newCache(t)
	listen(t, c, url)
	ctx := context.Background()
	insertShow(t, pool, 1) // exists for the update case
	barrier(t, c, pool, 999)

	tests := []struct {
		name   string
		id     int64
		change string
		commit bool
	}{
		{"update committed", 1, `UPDATE shows SET available_seats = available_seats - 1, version = version + 1 WHERE id = 1`, true},
		{"insert committed", 2, `INSERT INTO shows (id, name, show_type, start_time, total_seats, available_seats, version, created_at, updated_at)
			VALUES (2, 'bus 2', 'bus', now(), 40, 40, 1, now(), now())`, true},
		{"update rolled back", 1, `UPDATE shows SET name = 'renamed' WHERE id = 1`, false},
		{"insert rolled back", 3, `INSERT INTO shows (id, name, show_type, start_time, total_seats, available_seats, version, created_at, updated_at)
			VALUES (3, 'doctor 3', 'doctor', now(), 1, 1, 1, now(), now())`, false},
	}
	nextBarrier := int64(1000)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			showCached := cached(t, c, tt.id)

			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			tag, err := tx.Exec(ctx, tt.change)
			require.NoError(t, err)
			require.EqualValues(t, 1, tag.RowsAffected())

			nextBarrier++
			barrier(t, c, pool, nextBarrier)
			assert.True(t, showCached(), "before commit the cached entry stays")

			if tt.commit {
				require.NoError(t, tx.Commit(ctx))
				waitInvalidated(t, showCached, "after commit")
			} else {
				require.NoError(t, tx.Rollback(ctx))
				nextBarrier++
				barrier(t, c, pool, nextBarrier)
				assert.True(t, showCached(), "a rolled back change invalidates nothing")
			}
		})
	}
}

func TestListenReconnects(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	c, _ := newCache(t)
	pid, connects := listen(t, c, url)
	ctx := context.Background()

	barrier(t, c, pool, 1)
	require.EqualValues(t, 1, connects())

	var killed bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int64(pid())).Scan(&killed))
	require.True(t, killed)

	// Changes made while the listener reconnects can be missed (the TTL is
	// the backstop); once it listens again, every change invalidates. Each
	// attempt uses a new show, so a late notification of an earlier attempt
	// cannot be mistaken for this one's.
	deadline := time.Now().Add(pollDeadline)
	for id := int64(2); ; id++ {
		require.False(t, time.Now().After(deadline), "no invalidation after the listener's connection was killed")
		if connects() < 2 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		still := cached(t, c, id)
		insertShow(t, pool, id)
		if waitOr(still, time.Now().Add(time.Second)) {
			break
		}
	}
	assert.NotEqual(t, pid(), uint32(0))
}

// waitOr polls until stillCached reports false or the deadline passes, and
// reports whether the entry was invalidated.
func waitOr(stillCached func() bool, deadline time.Time) bool {
	for time.Now().Before(deadline) {
		if !stillCached() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// A ledger on several shards runs one listener per shard's database: the
// in-process layer answers only while every one of them listens, and a
// notification from any shard invalidates.
func TestLocalLayerNeedsEveryShardsListener(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url1 := pgtest.NewDB(t)
	pool2, url2 := pgtest.NewDB(t)
	rdb, prefix := redistest.New(t)
	c := cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute, Listeners: 2})
	l := newLoader("v1")
	listen(t, c, url1)
	for range 2 {
		_, err := c.Show(ctx, 1, l.load)
		require.NoError(t, err)
		require.NoError(t, redistest.DeleteKeys(ctx, rdb, prefix))
	}
	assert.EqualValues(t, 2, l.calls.Load(), "one of two listeners started: nothing is answered from memory")

	// Shard 2's listener starts but cannot connect yet.
	var reachable atomic.Bool
	lctx, cancel := context.WithCancel(ctx)
	ready, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		c.Listen(lctx, func(ctx context.Context) (*pgx.Conn, error) {
			if !reachable.Load() {
				return nil, errors.New("shard 2 is down")
			}
			return pgx.Connect(ctx, url2)
		}, ready)
	}()
	t.Cleanup(func() { cancel(); <-stopped })

	for range 2 {
		_, err := c.Show(ctx, 1, l.load)
		require.NoError(t, err)
		require.NoError(t, redistest.DeleteKeys(ctx, rdb, prefix))
	}
	assert.EqualValues(t, 4, l.calls.Load(), "with one shard's listener deaf nothing is answered from memory")

	reachable.Store(true)
	select {
	case <-ready:
	case <-time.After(pollDeadline):
		t.Fatal("shard 2's listener did not start")
	}
	_, err := c.Show(ctx, 1, l.load)
	require.NoError(t, err)
	require.NoError(t, redistest.DeleteKeys(ctx, rdb, prefix))
	l.set("v2")
	v, err := c.Show(ctx, 1, l.load)
	require.NoError(t, err)
	assert.Equal(t, "v1", string(v), "both listening: served from memory")

	// A change announced on shard 2's database reaches the cache.
	_, err = pool2.Exec(ctx, `SELECT pg_notify($1, '1')`, cache.Channel)
	require.NoError(t, err)
	deadline := time.Now().Add(pollDeadline)
	for {
		v, err = c.Show(ctx, 1, l.load)
		require.NoError(t, err)
		if string(v) == "v2" {
			break
		}
		require.False(t, time.Now().After(deadline), "shard 2's notification did not invalidate")
		time.Sleep(10 * time.Millisecond)
	}
}

// On a Redis Cluster every script and transaction of the cache touches keys
// of one slot (hash tags): reads fill and hit, invalidations land, and no
// Redis error sends a read to the database.
func TestCacheOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.StartCluster(t, 3)
	reg := prometheus.NewRegistry()
	c := cache.New(rdb, cache.Config{Prefix: "bookingledger:", TTL: time.Minute, LocalEntries: -1, Registerer: reg})
	for id := int64(1); id <= 20; id++ { // shows on every node
		l := newLoader(fmt.Sprint("show ", id))
		for range 2 {
			v, err := c.Show(ctx, id, l.load)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprint("show ", id), string(v))
		}
		assert.EqualValues(t, 1, l.calls.Load(), "show %d: the second read hits Redis", id)
		require.NoError(t, c.Invalidate(ctx, id))
		l.set("changed")
		v, err := c.Show(ctx, id, l.load)
		require.NoError(t, err)
		assert.Equal(t, "changed", string(v), "show %d: invalidated", id)
	}
	pages := newLoader("page 1")
	for range 2 {
		_, err := c.List(ctx, "type=bus", pages.load)
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, pages.calls.Load(), "list pages are cached")
	require.NoError(t, c.Invalidate(ctx, 3))
	pages.set("page 1 again")
	v, err := c.List(ctx, "type=bus", pages.load)
	require.NoError(t, err)
	assert.Equal(t, "page 1 again", string(v), "any show's change orphans the list pages")
	assert.Zero(t, counterValue(t, reg, "bookingledger_cache_errors_total"), "no CROSSSLOT or other Redis error")
}

// Reads of one show that miss together share one load; when a shared load
// fails (its request may have been cancelled), the reads that joined it load
// for themselves.
func TestReadsThatMissTogetherShareOneLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, _ := listeningCache(t)

	read := func(id int64, load func() ([]byte, error)) (answers []string, errs int) {
		t.Helper()
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for range 8 {
			wg.Go(func() {
				v, err := c.Show(ctx, id, load)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs++
					return
				}
				answers = append(answers, string(v))
			})
		}
		wg.Wait()
		return answers, errs
	}

	// The first load waits until every reader has started; readers that
	// come after it ended find the value cached.
	var calls atomic.Int64
	gate := make(chan struct{})
	go func() {
		for deadline := time.Now().Add(pollDeadline); calls.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		for range 100 {
			runtime.Gosched() // let the other readers reach the load
		}
		close(gate)
	}()
	answers, errs := read(1, func() ([]byte, error) {
		calls.Add(1)
		<-gate
		return []byte("v"), nil
	})
	assert.Zero(t, errs)
	assert.Equal(t, slices.Repeat([]string{"v"}, 8), answers)
	assert.EqualValues(t, 1, calls.Load(), "one load for all")

	boom := errors.New("request cancelled")
	var failing atomic.Int64
	answers, errs = read(2, func() ([]byte, error) {
		if failing.Add(1) == 1 {
			return nil, boom
		}
		return []byte("w"), nil
	})
	assert.Equal(t, 1, errs, "only the read whose load failed gets its error")
	assert.Equal(t, slices.Repeat([]string{"w"}, 7), answers)
}
