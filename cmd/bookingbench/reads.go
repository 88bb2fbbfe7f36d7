package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/ratelimit"
)

// readSeats is the size of the show whose seat map the read measurement
// fetches.
const readSeats = 100

// readWarmup is how long each API instance serves reads before its timed
// phase: connections open, the cache fills.
const readWarmup = 500 * time.Millisecond

// readStats compares GET /api/shows/{id} served through the Redis cache with
// the same API without one.
type readStats struct {
	show             domain.ShowID
	cached, uncached float64 // requests/s of clients that accept gzip
	cachedPlain      float64 // requests/s of clients that do not
	ceiling          float64 // requests/s of a bare server writing the cached answer's bytes
	ratio            float64 // cached / uncached
	ratioPlain       float64 // cachedPlain / uncached
	plainBytes       int     // the seat map's JSON
	gzipBytes        int     // the cached gzip of it

	// The same APIs with bookingd's rate limiter on Redis (every read
	// decided there) instead of in process.
	cachedRedisLimits, uncachedRedisLimits float64
	ratioRedisLimits                       float64
}

// measureReads serves a second API instance with the show cache on Redis
// (and its invalidation listener, as bookingd runs it) next to the target's
// own, which has none, and has n clients read the 100-seat show from each,
// from a bare server writing the cached bytes, and from both APIs again
// with the rate limiter on Redis, taking turns, for d each. Both APIs must
// answer the same seat map. The cache's and the limiter's keys are deleted
// afterwards.
func (h *httpTarget) measureReads(ctx context.Context, redisURL string, n int, d time.Duration) (st readStats, err error) {
	st.show = h.readShow
	// As many connections as clients, as the database pool has.
	rdb, prefix, err := openRedis(ctx, redisURL, n)
	if err != nil {
		return st, err
	}
	defer func() { err = errors.Join(err, closeRedis(ctx, rdb, prefix)) }()

	c := cache.New(rdb, cache.Config{Prefix: prefix})
	listenCtx, stopListen := context.WithCancel(ctx)
	var listening sync.WaitGroup
	defer func() {
		stopListen()
		listening.Wait()
	}()
	ready := make(chan struct{})
	listening.Go(func() {
		c.Listen(listenCtx, func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, h.pools[0].Config().ConnConfig)
		}, ready)
	})
	select {
	case <-ready:
	case <-ctx.Done():
		return st, ctx.Err()
	case <-time.After(10 * time.Second):
		return st, errors.New("the cache's invalidation listener did not start")
	}

	deps := h.deps
	deps.Cache = c
	cachedBase, stop, err := serveAPI(ctx, deps)
	if err != nil {
		return st, err
	}
	defer stop()

	// Both again with the rate limiter bookingd runs when it has Redis.
	limits := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix})
	var limitedBase [2]string // without the cache, with it
	for i, withCache := range []*cache.Cache{h.deps.Cache, c} {
		d := h.deps
		d.Cache, d.Limiter = withCache, limits
		base, stopLimited, err := serveAPI(ctx, d)
		if err != nil {
			return st, err
		}
		defer stopLimited()
		limitedBase[i] = base
	}

	path := fmt.Sprintf("/api/shows/%d", h.readShow)
	uncachedURL, cachedURL := h.base+path, cachedBase+path
	gzipped, err := h.sameSeatMap(ctx, uncachedURL, cachedURL, &st)
	if err != nil {
		return st, err
	}
	bareBase, stopBare, err := serveLocal(ctx, bareHandler(gzipped))
	if err != nil {
		return st, err
	}
	defer stopBare()

	phases := []*readPhase{
		{url: uncachedURL, gzip: true, dst: &st.uncached},
		{url: cachedURL, gzip: true, dst: &st.cached},
		{url: cachedURL, gzip: false, dst: &st.cachedPlain},
		{url: bareBase + "/", gzip: true, dst: &st.ceiling},
		{url: limitedBase[0] + path, gzip: true, dst: &st.uncachedRedisLimits},
		{url: limitedBase[1] + path, gzip: true, dst: &st.cachedRedisLimits},
	}
	for _, p := range phases {
		if _, err := readLoad(ctx, p.url, p.gzip, n, readWarmup); err != nil {
			return st, err
		}
	}
	// The phases take turns, readRounds times: whatever else the machine
	// does for a second or two (a checkpoint, autovacuum, a neighbour)
	// falls on every phase alike instead of on one.
	for range readRounds {
		for _, p := range phases {
			c, err := readLoad(ctx, p.url, p.gzip, n, d/readRounds)
			if err != nil {
				return st, err
			}
			p.add(c)
		}
	}
	for _, p := range phases {
		*p.dst = p.rate()
	}
	if st.uncached > 0 {
		st.ratio, st.ratioPlain = st.cached/st.uncached, st.cachedPlain/st.uncached
	}
	if st.uncachedRedisLimits > 0 {
		st.ratioRedisLimits = st.cachedRedisLimits / st.uncachedRedisLimits
	}
	return st, nil
}

// openRedis connects to redisURL with room for poolSize connections and
// makes a key prefix of the run's own; closeRedis deletes the keys.
func openRedis(ctx context.Context, redisURL string, poolSize int) (rdb *redis.Client, prefix string, err error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, "", fmt.Errorf("redis URL: %w", err)
	}
	opts.PoolSize = max(opts.PoolSize, poolSize)
	rdb = redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, "", fmt.Errorf("redis at %s (is redis-server running? `make services` starts it): %w", opts.Addr, err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	return rdb, "bookingbench:" + hex.EncodeToString(suffix[:]) + ":", nil
}

// closeRedis deletes every key with the prefix in it — a cache's, and a
// limiter's, which redis_rate names "rate:<prefix>…" — even when ctx has
// ended, and closes the client.
func closeRedis(ctx context.Context, rdb *redis.Client, prefix string) error {
	err := redistest.DeleteKeys(context.WithoutCancel(ctx), rdb, prefix)
	return errors.Join(err, rdb.Close())
}

// readRounds is how many turns the read phases take.
const readRounds = 3

// readPhase is one kind of read measured: the clients and server it names,
// and the requests answered and time taken over its turns.
type readPhase struct {
	url  string
	gzip bool
	dst  *float64

	total readCount
}

func (p *readPhase) add(c readCount) {
	p.total.ok += c.ok
	p.total.elapsed += c.elapsed
}

func (p *readPhase) rate() float64 {
	if p.total.elapsed <= 0 {
		return 0
	}
	return float64(p.total.ok) / p.total.elapsed.Seconds()
}

// bareHandler is the machine's HTTP ceiling for the cached answer: a bare
// net/http handler that writes the same gzipped body with the same
// Content-Type, Content-Encoding and Content-Length, with no routing,
// middleware or lookup, loaded by the same clients. No cache can serve
// this response faster here; it puts cache_ratio in proportion.
func bareHandler(gzipped []byte) http.Handler {
	length := strconv.Itoa(len(gzipped))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", length)
		_, _ = w.Write(gzipped)
	})
}

// sameSeatMap asks both URLs for the show as a client that accepts gzip
// does: the API without cache must answer plain JSON, the one with it gzip,
// and both the same seat map of readSeats seats. It returns the gzipped
// body and notes both sizes in st.
func (h *httpTarget) sameSeatMap(ctx context.Context, uncachedURL, cachedURL string, st *readStats) (gzipped []byte, err error) {
	plain, encoding, err := h.getRaw(ctx, uncachedURL)
	if err != nil {
		return nil, err
	}
	if encoding != "" {
		return nil, fmt.Errorf("GET %s: Content-Encoding %q from the API without cache, want none", uncachedURL, encoding)
	}
	gzipped, encoding, err = h.getRaw(ctx, cachedURL)
	if err != nil {
		return nil, err
	}
	if encoding != "gzip" {
		return nil, fmt.Errorf("GET %s: Content-Encoding %q from the cached API, want gzip", cachedURL, encoding)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gzipped))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", cachedURL, err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", cachedURL, err)
	}
	var show projections.ShowDetail
	if err := json.Unmarshal(plain, &show); err != nil {
		return nil, fmt.Errorf("GET %s: %w", uncachedURL, err)
	}
	if len(show.Seats) != readSeats {
		return nil, fmt.Errorf("GET %s: %d seats, want %d", uncachedURL, len(show.Seats), readSeats)
	}
	if !bytes.Equal(plain, unzipped) {
		return nil, fmt.Errorf("GET %s: the cached seat map differs from the database's", cachedURL)
	}
	st.plainBytes, st.gzipBytes = len(plain), len(gzipped)
	return gzipped, nil
}

// getRaw GETs url as a client that accepts gzip and returns the body as
// sent and its Content-Encoding.
func (h *httpTarget) getRaw(ctx context.Context, url string) (body []byte, encoding string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: net/http leaves the body as sent
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body, resp.Header.Get("Content-Encoding"), nil
}

// readLoad has n clients GET url one request after another for d and
// returns how many were answered 200, and in how long; acceptGzip adds
// Accept-Encoding: gzip to the request, as browsers, curl --compressed and
// Go's http.Client send.
//
// Each client is one keep-alive connection that writes a request and reads
// its response with a minimal HTTP/1.1 reader (status line, Content-Length,
// the body counted, not decoded), as wrk does: net/http's Transport hands
// every request between goroutines, and http.ReadResponse builds a header
// map per response, which together cost about as much CPU as the cached
// handler itself, and the load generator shares the machine with the
// server. Every phase uses the same client.
func readLoad(ctx context.Context, rawURL string, acceptGzip bool, n int, d time.Duration) (readCount, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return readCount{}, err
	}
	head := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: bookingbench\r\n"
	if acceptGzip {
		head += "Accept-Encoding: gzip\r\n"
	}
	request := []byte(head + "\r\n")
	var (
		ok       atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = fmt.Errorf("GET %s: %w", rawURL, err) }) }
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Go(func() {
			var dialer net.Dialer
			conn, err := dialer.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				fail(err)
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(deadline.Add(10 * time.Second)) // a stuck server fails the run
			r := responseReader{conn: conn, buf: make([]byte, 64<<10)}
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if _, err := conn.Write(request); err != nil {
					fail(err)
					return
				}
				if err := r.read200(); err != nil {
					fail(err)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return readCount{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return readCount{}, err
	}
	return readCount{ok: ok.Load(), elapsed: time.Since(start)}, nil
}

// readCount is what a read load achieved: requests answered 200, and in
// how long.
type readCount struct {
	ok      int64
	elapsed time.Duration
}

// responseReader reads HTTP/1.1 responses of one keep-alive connection, one
// request at a time (no pipelining).
type responseReader struct {
	conn net.Conn
	buf  []byte
}

// read200 reads one whole response and fails unless it is a 200 with a
// Content-Length (every answer readLoad asks for has one).
func (r *responseReader) read200() error {
	have, end := 0, -1
	for end < 0 {
		if have == len(r.buf) {
			return errors.New("response header larger than 64 KiB")
		}
		m, err := r.conn.Read(r.buf[have:])
		if err != nil {
			return err
		}
		have += m
		end = bytes.Index(r.buf[:have], []byte("\r\n\r\n"))
	}
	head := r.buf[:end+2]
	status, fields, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("answered %q", status)
	}
	length := -1
	for len(fields) > 0 {
		var field []byte
		field, fields, _ = bytes.Cut(fields, []byte("\r\n"))
		name, value, _ := bytes.Cut(field, []byte(":"))
		if string(name) == "Content-Length" { // net/http's canonical spelling
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			if err != nil || n < 0 {
				return fmt.Errorf("Content-Length %q", value)
			}
			length = n
		}
	}
	if length < 0 {
		return errors.New("a response without Content-Length")
	}
	left := length - (have - (end + 4))
	if left < 0 {
		return errors.New("more bytes than the response's Content-Length (no request was pipelined)")
	}
	for left > 0 {
		m, err := r.conn.Read(r.buf[:min(left, len(r.buf))])
		if err != nil {
			return err
		}
		left -= m
	}
	return nil
}

// serveAPI serves the API on deps as serveLocal does.
func serveAPI(ctx context.Context, deps api.Deps) (base string, stop func(), err error) {
	handler, err := api.New(deps)
	if err != nil {
		return "", nil, err
	}
	return serveLocal(ctx, handler)
}

// serveLocal serves handler on a free 127.0.0.1 port and returns its base
// URL and a func that shuts it down (waiting up to 10 s for requests).
func serveLocal(ctx context.Context, handler http.Handler) (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}, nil
}
