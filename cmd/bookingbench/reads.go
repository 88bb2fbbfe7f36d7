package main

import (
	"bufio"
	"bytes"
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
	cached, uncached float64 // requests/s
	ceiling          float64 // requests/s of a bare server writing the same bytes
	ratio            float64 // cached / uncached
}

// measureReads serves a second API instance with the show cache on Redis
// (and its invalidation listener, as bookingd runs it) next to the target's
// own, which has none, and has n clients read the 100-seat show from each in
// turn for d. Both must answer the same seat map. The cache's keys are
// deleted afterwards.
func (h *httpTarget) measureReads(ctx context.Context, redisURL string, n int, d time.Duration) (st readStats, err error) {
	st.show = h.readShow
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return st, fmt.Errorf("redis URL: %w", err)
	}
	// As many connections as clients, as the database pool has.
	opts.PoolSize = max(opts.PoolSize, n)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return st, fmt.Errorf("redis at %s (is redis-server running? `make services` starts it): %w", opts.Addr, err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	prefix := "bookingbench:" + hex.EncodeToString(suffix[:]) + ":"
	defer func() {
		if derr := redistest.DeleteKeys(context.WithoutCancel(ctx), rdb, prefix); derr != nil {
			err = errors.Join(err, derr)
		}
	}()

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
	handler, err := api.New(deps)
	if err != nil {
		return st, err
	}
	cachedBase, stop, err := serveLocal(ctx, handler)
	if err != nil {
		return st, err
	}
	defer stop()

	path := fmt.Sprintf("/api/shows/%d", h.readShow)
	uncachedURL, cachedURL := h.base+path, cachedBase+path
	if err := h.sameSeatMap(ctx, uncachedURL, cachedURL); err != nil {
		return st, err
	}
	for _, phase := range []struct {
		url string
		dst *float64
	}{{uncachedURL, &st.uncached}, {cachedURL, &st.cached}} {
		if _, err := h.readLoad(ctx, phase.url, n, readWarmup); err != nil {
			return st, err
		}
		if *phase.dst, err = h.readLoad(ctx, phase.url, n, d); err != nil {
			return st, err
		}
	}
	if st.ceiling, err = h.ceiling(ctx, cachedURL, n, d); err != nil {
		return st, err
	}
	if st.uncached > 0 {
		st.ratio = st.cached / st.uncached
	}
	return st, nil
}

// ceiling is the machine's HTTP ceiling for the same response: a bare
// net/http server that writes the show's bytes (as read from url) with no
// routing, middleware or lookup, loaded by the same clients. No cache can
// serve this response faster here; it puts cache_ratio in proportion.
func (h *httpTarget) ceiling(ctx context.Context, url string, n int, d time.Duration) (float64, error) {
	body, err := h.get(ctx, url)
	if err != nil {
		return 0, err
	}
	bareBase, stop, err := serveLocal(ctx, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	if err != nil {
		return 0, err
	}
	defer stop()
	bare := bareBase + "/"
	if _, err := h.readLoad(ctx, bare, n, readWarmup); err != nil {
		return 0, err
	}
	return h.readLoad(ctx, bare, n, d)
}

// sameSeatMap checks that both URLs answer the same show with readSeats
// seats.
func (h *httpTarget) sameSeatMap(ctx context.Context, urls ...string) error {
	var first []byte
	for _, u := range urls {
		body, err := h.get(ctx, u)
		if err != nil {
			return err
		}
		var show projections.ShowDetail
		if err := json.Unmarshal(body, &show); err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		if len(show.Seats) != readSeats {
			return fmt.Errorf("GET %s: %d seats, want %d", u, len(show.Seats), readSeats)
		}
		if first == nil {
			first = body
		} else if !bytes.Equal(first, body) {
			return fmt.Errorf("GET %s: the cached seat map differs from the database's", u)
		}
	}
	return nil
}

func (h *httpTarget) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body, nil
}

// readLoad has n clients GET url one request after another for d and
// returns the requests per second answered 200.
//
// Each client is one keep-alive connection that writes a request and reads
// its response with http.ReadResponse, as wrk or hey would: net/http's
// Transport hands every request between goroutines and costs about as much
// CPU as the cached handler itself, and the load generator shares the
// machine with the server. Both phases use the same client.
func (h *httpTarget) readLoad(ctx context.Context, rawURL string, n int, d time.Duration) (float64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	request := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: bookingbench\r\n\r\n")
	var (
		ok       atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
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
			br := bufio.NewReader(conn)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if _, err := conn.Write(request); err != nil {
					fail(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err != nil {
					fail(err)
					return
				}
				if resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("GET %s: %d", rawURL, resp.StatusCode))
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), nil
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
