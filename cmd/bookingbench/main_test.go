package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/pgtest"
)

// TestEveryTargetBooksWithoutOversellingOrLosing is a smoke run of every
// target on tiny scenarios; it checks correctness only, never timings.
func TestEveryTargetBooksWithoutOversellingOrLosing(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags([]string{"-duration", "1s", "-concurrency", "4", "-read-concurrency", "4", "-read-duration", "200ms"}, os.Getenv, io.Discard)
	require.NoError(t, err)
	cfg.scenarios = []scenario{
		{name: "spread", shows: 20, seatsPerShow: 30},
		{name: "hot", shows: 1, seatsPerShow: 400},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var stdout, stderr bytes.Buffer
	results, err := bench(ctx, cfg, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	require.Len(t, results, 6)
	for _, r := range results {
		name := r.scenario + "/" + r.target
		assert.Positive(t, r.ok, name)
		assert.Zero(t, r.oversold, name)
		assert.Zero(t, r.lost, name)
		assert.Zero(t, r.errs, "%s: %v", name, r.firstErr)
		assert.Zero(t, r.refused, name, "the queue never asks for a taken seat")
		switch r.target {
		case targetLedger:
			assert.NotNil(t, r.lag, "%s measures the projection lag", name)
			assert.Nil(t, r.reads, name)
		case targetHTTP:
			assert.Nil(t, r.lag, name)
			if assert.NotNil(t, r.reads, "%s measures the reads", name) {
				assert.Positive(t, r.reads.cached, name)
				assert.Positive(t, r.reads.uncached, name)
				assert.Positive(t, r.reads.ceiling, name)
				assert.Positive(t, r.reads.cachedPlain, name)
				assert.Positive(t, r.reads.cachedRedisLimits, name)
				assert.Positive(t, r.reads.uncachedRedisLimits, name)
				assert.Less(t, r.reads.gzipBytes*4, r.reads.plainBytes, "%s: the cached seat map goes gzipped", name)
			}
		default:
			assert.Nil(t, r.lag, name)
			assert.Nil(t, r.reads, name)
		}
	}

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	for _, header := range []string{"bookings/s", "lag p99 ms", "cached reads/s"} {
		assert.Contains(t, stdout.String(), header)
	}
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last), "the last line is JSON")
	assert.Equal(t, "hot", last["scenario"])
	keys := []string{"scenario", "seed_per_s", "ledger_per_s", "http_per_s", "ledger_vs_seed", "http_vs_seed", "p50_ms", "p99_ms", "oversold", "lost",
		"lag_p99_ms", "lag_max_ms", "catchup_ms", "reads_cached_per_s", "reads_uncached_per_s", "cache_ratio",
		"reads_cached_plain_per_s", "cache_ratio_plain", "reads_ceiling_per_s",
		"reads_cached_redis_limits_per_s", "reads_uncached_redis_limits_per_s", "cache_ratio_redis_limits",
		"shards", "ledger_per_shard_per_s"}
	for _, key := range keys {
		assert.Contains(t, last, key)
	}
	assert.Len(t, last, len(keys), "no other fields")
	assert.True(t, strings.HasPrefix(lines[len(lines)-1], `{"scenario":"hot","seed_per_s":`), "the issue's fields come first")
	assert.Positive(t, last["cache_ratio"])
	assert.Positive(t, last["ledger_vs_seed"])
	assert.EqualValues(t, 0, last["oversold"])
	assert.EqualValues(t, 0, last["lost"])
}

// With -replica-url the ledger target measures a real streaming standby
// (pgtest's own primary and pg_basebackup -R standby) over two shards: every
// probed event reaches the standby and its projector checkpoint, and the
// figures appear in the table and the JSON line. Correctness only, never
// timings.
func TestReplicaLagOnAStreamingStandby(t *testing.T) {
	t.Parallel()
	primary := pgtest.NewCluster(t)
	standby := primary.Standby()
	cfg, err := parseFlags([]string{"-scenario", "spread", "-target", "ledger", "-shards", "2",
		"-duration", "1s", "-concurrency", "4",
		"-admin-url", primary.URL("postgres"), "-replica-url", standby.URL("postgres")}, os.Getenv, io.Discard)
	require.NoError(t, err)
	cfg.scenarios = []scenario{{name: "spread", shows: 100, seatsPerShow: 60}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var stdout, stderr bytes.Buffer
	results, err := bench(ctx, cfg, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	t.Logf("%s", stdout.String())
	require.Len(t, results, 1)
	r := results[0]
	assert.Positive(t, r.ok)
	assert.Zero(t, r.oversold)
	assert.Zero(t, r.lost)
	require.NotNil(t, r.replica)
	assert.Positive(t, r.replica.probes, "events were probed while the clients booked")
	assert.Zero(t, r.replica.unseen, "every probed event reached the standby and its projector checkpoint")
	assert.Positive(t, r.replica.samples, "pg_stat_replication listed the standby")
	assert.Zero(t, r.replica.notStreaming)
	assert.Positive(t, r.replica.visible.max)
	assert.Positive(t, r.replica.ryw.max)
	assert.GreaterOrEqual(t, r.replica.ryw.max, r.replica.visible.p50, "a checkpoint is never seen before its event")

	out := stdout.String()
	assert.Contains(t, out, "event visible (ms)")
	assert.Contains(t, out, "replay_lag (ms)")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	for _, key := range []string{"replica_lag_p50_ms", "replica_lag_p99_ms", "replica_lag_max_ms",
		"replica_ryw_lag_p99_ms", "replica_ryw_lag_max_ms", "replica_write_lag_p99_ms", "replica_flush_lag_p99_ms",
		"replica_replay_lag_p99_ms", "replica_replay_lag_max_ms", "replica_bytes_p99", "replica_bytes_max",
		"replica_probes", "replica_unseen"} {
		assert.Contains(t, last, key)
	}
	assert.EqualValues(t, 2, last["shards"])
	assert.True(t, strings.HasPrefix(lines[len(lines)-1], `{"scenario":"spread","seed_per_s":`), "the issue's fields come first")
}

// -replica-url refuses a server that is not a standby.
func TestReplicaURLMustBeAStandby(t *testing.T) {
	t.Parallel()
	primary := pgtest.NewCluster(t)
	cfg, err := parseFlags([]string{"-scenario", "spread", "-target", "ledger",
		"-admin-url", primary.URL("postgres"), "-replica-url", primary.URL("postgres")}, os.Getenv, io.Discard)
	require.NoError(t, err)
	_, err = bench(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorContains(t, err, "is not a standby")
}

// The replay scenario generates the streams it promises, rebuilds the
// projections from them and verifies the result (a difference fails it).
func TestReplayScenario(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags([]string{"-scenario", "replay", "-replay-events", "2020"}, os.Getenv, io.Discard)
	require.NoError(t, err)
	require.Empty(t, cfg.scenarios)
	var stdout bytes.Buffer
	_, err = bench(context.Background(), cfg, &stdout, io.Discard)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	assert.Contains(t, stdout.String(), "events/s")
	var r replayResult
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &r))
	assert.Equal(t, "replay", r.Scenario)
	assert.Equal(t, 20, r.Shows)
	assert.Equal(t, 20*(replaySeats+1), r.Events, "every generated event was replayed")
	assert.Positive(t, r.PerSecond)
}

func TestQueueCoversEverySeatOnce(t *testing.T) {
	t.Parallel()
	sc := scenario{name: "spread", shows: 7, seatsPerShow: 23}
	labels, err := sc.seatLabels()
	require.NoError(t, err)
	queue := sc.queue(labels)
	seen := map[[2]any]bool{}
	for _, j := range queue {
		require.GreaterOrEqual(t, len(j.seats), 1)
		require.LessOrEqual(t, len(j.seats), 4)
		for _, s := range j.seats {
			k := [2]any{j.show, s}
			require.False(t, seen[k], "seat %v twice", k)
			seen[k] = true
		}
	}
	assert.Len(t, seen, sc.shows*sc.seatsPerShow)
	assert.Equal(t, queue, sc.queue(labels), "every target gets the same queue")
}

func TestFlagErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-scenario", "cold"},
		{"-target", "redis"},
		{"-concurrency", "0"},
		{"-duration", "0s"},
		{"-duration", "soon"},
		{"-read-duration", "0s"},
		{"-read-concurrency", "0"},
		{"-redis-url", "http://nope"},
		{"-admin-url", "mysql://nope"},
		{"-scenario", "replay", "-replay-events", "10"},
		{"-replica-url", "mysql://nope"},
		{"-target", "seed", "-replica-url", "postgres://127.0.0.1/postgres"},
		{"-scenario", "replay", "-replica-url", "postgres://127.0.0.1/postgres"},
		{"-scenario", "onsale", "-replica-url", "postgres://127.0.0.1/postgres"},
		{"-watchers", "0"},
		{"-scenario", "onsale", "-watchers", "30000"},
		{"-watchers", "many"},
		{"-onsale-alone", "0s"},
		{"-scenario", "onsale", "-onsale-watched", "-1s"},
		{"-nope"},
		{"extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := run(context.Background(), args, io.Discard, &stderr)
			var ue *usageError
			require.True(t, errors.As(err, &ue), "%v", err)
			assert.Equal(t, exitUsage, exitCode(err, &stderr))
		})
	}
	err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, exitOK, exitCode(err, io.Discard))
}

// The seed verifier must see what it is there to catch (the ledger's is
// internal/audit's, tested there).
func TestVerifySeedFindsOversoldAndLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.CreateDB(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	sc := scenario{name: "tiny", shows: 2, seatsPerShow: 10}
	labels, err := sc.seatLabels()
	require.NoError(t, err)
	s, err := newSeed(ctx, pool, sc, labels)
	require.NoError(t, err)

	user := uuid.New()
	id, err := s.book(ctx, user, job{show: 0, seats: []string{"A1", "A2"}})
	require.NoError(t, err)
	_, err = s.book(ctx, user, job{show: 0, seats: []string{"A2"}})
	require.ErrorIs(t, err, errRefused, "the seed design refuses a taken seat")

	v, err := s.verify(ctx, []success{{id: id, show: 0}})
	require.NoError(t, err)
	assert.Equal(t, verdict{}, v)

	// A second live booking on A2 behind the design's back, and an
	// acknowledged booking that is not there.
	_, err = pool.Exec(ctx, `INSERT INTO bookings (id, show_id, user_id, seat_numbers, status, expires_at)
		VALUES ($1, 1, $2, '{A2}', 'pending', now())`, uuid.New(), user)
	require.NoError(t, err)
	v, err = s.verify(ctx, []success{{id: id, show: 0}, {id: uuid.NewString(), show: 1}})
	require.NoError(t, err)
	assert.Equal(t, verdict{oversold: 1, lost: 1}, v)
}
