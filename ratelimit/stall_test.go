//go:build linux

package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/ratelimit"
)

// A Redis that stops answering without closing its connections (a stalled
// process, a network partition) must not hold requests: the fallback decides
// once RedisTimeout has passed, or when the caller gives up. The client here
// has no read or write timeout and no retries, so without those bounds every
// Allow below would wait until Redis answers again.
func TestDecisionsDoNotWaitForAStalledRedis(t *testing.T) {
	t.Parallel()
	addr, _ := redistest.StartServer(t)
	pid := serverPID(t, addr)
	patient := func() *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DisableIdentity: true,
			ReadTimeout: -1, WriteTimeout: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}
	bounded := ratelimit.New(patient(), ratelimit.Config{Prefix: "test:", RedisTimeout: 50 * time.Millisecond,
		ProbeInterval: 10 * time.Millisecond})
	unbounded := ratelimit.New(patient(), ratelimit.Config{Prefix: "test:", RedisTimeout: time.Hour})
	ctx := context.Background()
	for _, l := range []*ratelimit.Limiter{bounded, unbounded} {
		d := l.Allow(ctx, "reads", "before", 100)
		require.True(t, d.Allowed)
		require.False(t, d.Degraded)
	}

	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
		}
	}
	t.Cleanup(resume) // before the clients close and the server stops

	// returns runs allow and reports whether it returned within a generous
	// bound (a hang, not a speed, is what fails).
	returns := func(allow func() ratelimit.Decision) (ratelimit.Decision, bool) {
		done := make(chan ratelimit.Decision, 1)
		go func() { done <- allow() }()
		select {
		case d := <-done:
			return d, true
		case <-time.After(30 * time.Second):
			return ratelimit.Decision{}, false
		}
	}

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			d, ok := returns(func() ratelimit.Decision { return bounded.Allow(ctx, "reads", "during", 100) })
			if assert.Truef(t, ok, "request %d waited for the stalled Redis", i) {
				assert.Truef(t, d.Degraded, "request %d: the fallback decides", i)
				assert.Truef(t, d.Allowed, "request %d", i)
			}
		})
	}
	wg.Wait()

	// A caller that gives up is not held either, whatever the timeout.
	gaveUp, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	d, ok := returns(func() ratelimit.Decision { return unbounded.Allow(gaveUp, "reads", "during", 100) })
	if assert.True(t, ok, "a cancelled request waited for the stalled Redis") {
		assert.True(t, d.Degraded)
	}

	// Redis answers again: a probe brings the decisions back to it.
	resume()
	deadline := time.Now().Add(10 * time.Second)
	for d = bounded.Allow(ctx, "reads", "after", 100); d.Degraded && time.Now().Before(deadline); d = bounded.Allow(ctx, "reads", "after", 100) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.False(t, d.Degraded, "still degraded 10 s after Redis answered again")
}

// serverPID is the process id of the Redis server at addr.
func serverPID(t *testing.T, addr string) int {
	t.Helper()
	rdb := redistest.FailFastClient(t, addr)
	info, err := rdb.Info(context.Background(), "server").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			require.NoError(t, err)
			return pid
		}
	}
	t.Fatal("INFO server has no process_id")
	return 0
}
