package ratelimit_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/ratelimit"
)

func TestAllowRefusesOverBudget(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t)
	l := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix})
	ctx := context.Background()

	for i := range 3 {
		d := l.Allow(ctx, "auth", "user-1", 3)
		require.Truef(t, d.Allowed, "request %d", i+1)
		assert.Equal(t, 2-i, d.Remaining)
		assert.Zero(t, d.RetryAfter)
		assert.False(t, d.Degraded)
	}
	d := l.Allow(ctx, "auth", "user-1", 3)
	assert.False(t, d.Allowed)
	assert.Zero(t, d.Remaining)
	assert.Positive(t, d.RetryAfter)
	assert.LessOrEqual(t, d.RetryAfter, time.Minute)
	assert.False(t, d.Degraded)
}

func TestInstancesShareOneBudget(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t)
	other := redis.NewClient(rdb.Options()) // a second process, its own connections
	t.Cleanup(func() { _ = other.Close() })
	a := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix})
	b := ratelimit.New(other, ratelimit.Config{Prefix: prefix})
	ctx := context.Background()

	allowed := 0
	for i := range 6 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if l.Allow(ctx, "bookings", "user-1", 3).Allowed {
			allowed++
		}
	}
	assert.Equal(t, 3, allowed)
	assert.False(t, a.Allow(ctx, "bookings", "user-1", 3).Allowed)
	assert.False(t, b.Allow(ctx, "bookings", "user-1", 3).Allowed)
}

func TestBudgetsAreSeparate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		prefix2           string // appended to the test prefix for the second limiter
		class, key        string
		class2, key2      string
		wantSecondAllowed bool
	}{
		{name: "same class and key", class: "auth", key: "u1", class2: "auth", key2: "u1", wantSecondAllowed: false},
		{name: "different keys", class: "auth", key: "u1", class2: "auth", key2: "u2", wantSecondAllowed: true},
		{name: "different classes", class: "auth", key: "u1", class2: "reads", key2: "u1", wantSecondAllowed: true},
		{name: "different prefixes", prefix2: "other:", class: "auth", key: "u1", class2: "auth", key2: "u1", wantSecondAllowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := redistest.New(t)
			first := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix})
			second := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix + tt.prefix2})
			ctx := context.Background()

			require.True(t, first.Allow(ctx, tt.class, tt.key, 1).Allowed)
			require.False(t, first.Allow(ctx, tt.class, tt.key, 1).Allowed, "budget of 1 is spent")
			assert.Equal(t, tt.wantSecondAllowed, second.Allow(ctx, tt.class2, tt.key2, 1).Allowed)
		})
	}
}

func TestConcurrentRequestsShareTheBudget(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t)
	limiters := []*ratelimit.Limiter{
		ratelimit.New(rdb, ratelimit.Config{Prefix: prefix}),
		ratelimit.New(rdb, ratelimit.Config{Prefix: prefix}),
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if limiters[i%2].Allow(context.Background(), "bookings", "user-1", 10).Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 10, allowed.Load())
}

func TestFallsBackWhileRedisIsDownAndReturns(t *testing.T) {
	t.Parallel()
	addr, stop := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	var logs redistest.SyncBuffer
	l := ratelimit.New(rdb, ratelimit.Config{
		Prefix:        "test:",
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		Registerer:    reg,
		ProbeInterval: 20 * time.Millisecond,
	})
	ctx := context.Background()

	d := l.Allow(ctx, "auth", "before", 3)
	require.True(t, d.Allowed)
	require.False(t, d.Degraded)
	assert.Zero(t, metric(t, reg, "bookingledger_ratelimit_degraded", ""))

	stop()

	// Redis is gone: Allow keeps answering, and still limits, in-process.
	for i := range 3 {
		d := l.Allow(ctx, "auth", "during", 3)
		assert.Truef(t, d.Allowed, "request %d", i+1)
		assert.Truef(t, d.Degraded, "request %d", i+1)
	}
	d = l.Allow(ctx, "auth", "during", 3)
	assert.False(t, d.Allowed)
	assert.True(t, d.Degraded)
	assert.Positive(t, d.RetryAfter)
	assert.LessOrEqual(t, d.RetryAfter, time.Minute)
	assert.Equal(t, 1.0, metric(t, reg, "bookingledger_ratelimit_degraded", ""))
	assert.Equal(t, 4.0, metric(t, reg, "bookingledger_ratelimit_fallback_decisions_total", "auth"))
	assert.Equal(t, 1.0, metric(t, reg, "bookingledger_ratelimit_rejections_total", "auth"))

	// Redis comes back at the same address: a probe finds it.
	redistest.StartServerAt(t, addr)
	deadline := time.Now().Add(10 * time.Second)
	for d = l.Allow(ctx, "auth", "after", 3); d.Degraded && time.Now().Before(deadline); d = l.Allow(ctx, "auth", "after", 3) {
		time.Sleep(5 * time.Millisecond)
	}
	require.False(t, d.Degraded, "still degraded 10s after Redis came back")
	assert.True(t, d.Allowed)
	assert.Equal(t, 2, d.Remaining, "the new server has a fresh budget")
	assert.Zero(t, metric(t, reg, "bookingledger_ratelimit_degraded", ""))

	// Switches are logged once each, not on every request.
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "rate limiting falls back to in-process limits: redis unavailable"), out)
	assert.Equal(t, 1, strings.Count(out, "level=WARN"), out)
	assert.Equal(t, 1, strings.Count(out, "rate limiting is back on redis"), out)
}

func TestNilClientLimitsInProcess(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	l := ratelimit.New(nil, ratelimit.Config{Registerer: reg})
	ctx := context.Background()

	for i := range 3 {
		d := l.Allow(ctx, "reads", "10.0.0.1", 3)
		require.Truef(t, d.Allowed, "request %d", i+1)
		assert.Equal(t, 2-i, d.Remaining)
		assert.False(t, d.Degraded, "in-process by configuration is not degraded")
	}
	d := l.Allow(ctx, "reads", "10.0.0.1", 3)
	assert.False(t, d.Allowed)
	assert.Positive(t, d.RetryAfter)
	assert.LessOrEqual(t, d.RetryAfter, time.Minute)
	assert.True(t, l.Allow(ctx, "reads", "10.0.0.2", 3).Allowed, "another key has its own budget")
	assert.True(t, l.Allow(ctx, "auth", "10.0.0.1", 3).Allowed, "another class has its own budget")

	assert.Zero(t, metric(t, reg, "bookingledger_ratelimit_degraded", ""))
	assert.Zero(t, metric(t, reg, "bookingledger_ratelimit_fallback_decisions_total", "reads"))
}

func TestInProcessKeysAreBounded(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(nil, ratelimit.Config{MaxLocalKeys: 2})
	ctx := context.Background()

	require.True(t, l.Allow(ctx, "auth", "a", 1).Allowed)
	require.False(t, l.Allow(ctx, "auth", "a", 1).Allowed)
	l.Allow(ctx, "auth", "b", 1)
	l.Allow(ctx, "auth", "c", 1) // evicts "a", the least recently used
	assert.True(t, l.Allow(ctx, "auth", "a", 1).Allowed, "an evicted key starts with a full budget")
}

func TestNonPositiveBudgetRefuses(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t)
	for _, l := range []*ratelimit.Limiter{
		ratelimit.New(rdb, ratelimit.Config{Prefix: prefix}),
		ratelimit.New(nil, ratelimit.Config{}),
	} {
		d := l.Allow(context.Background(), "auth", "u1", 0)
		assert.False(t, d.Allowed)
		assert.Positive(t, d.RetryAfter)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t)
	reg := prometheus.NewRegistry()
	l := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Registerer: reg})
	ctx := context.Background()

	for range 3 {
		l.Allow(ctx, "auth", "u1", 1)
	}
	l.Allow(ctx, "reads", "u1", 1)

	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP bookingledger_ratelimit_degraded 1 while rate limiting falls back to in-process limits because Redis is unavailable.
# TYPE bookingledger_ratelimit_degraded gauge
bookingledger_ratelimit_degraded 0
# HELP bookingledger_ratelimit_rejections_total Requests refused by the rate limiter, by class.
# TYPE bookingledger_ratelimit_rejections_total counter
bookingledger_ratelimit_rejections_total{class="auth"} 2
`), "bookingledger_ratelimit_rejections_total", "bookingledger_ratelimit_degraded", "bookingledger_ratelimit_fallback_decisions_total")
	assert.NoError(t, err)

	// A second Limiter on the same registry shares the metrics instead of failing.
	l2 := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Registerer: reg})
	l2.Allow(ctx, "auth", "u1", 1)
	assert.Equal(t, 3.0, metric(t, reg, "bookingledger_ratelimit_rejections_total", "auth"))
}

// metric returns the value of the counter or gauge name (with label
// class=class when class is not empty), 0 when it has no sample.
func metric(t testing.TB, g prometheus.Gatherer, name, class string) float64 {
	t.Helper()
	families, err := g.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if class != "" {
				match := false
				for _, lp := range m.GetLabel() {
					match = match || (lp.GetName() == "class" && lp.GetValue() == class)
				}
				if !match {
					continue
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// On a Redis Cluster the limits hold across instances like on one server.
func TestLimitsOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.StartCluster(t, 3)
	a := ratelimit.New(rdb, ratelimit.Config{Prefix: "bookingledger:"})
	b := ratelimit.New(rdb, ratelimit.Config{Prefix: "bookingledger:"})
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d := l.Allow(ctx, "bookings", "user:cluster", 10)
		require.False(t, d.Degraded, "request %d: Redis answered", i)
		require.True(t, d.Allowed, "request %d", i)
	}
	d := b.Allow(ctx, "bookings", "user:cluster", 10)
	assert.False(t, d.Degraded)
	assert.False(t, d.Allowed, "the eleventh request of the minute, across two instances")
}
