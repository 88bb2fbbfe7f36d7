package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/analytics"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/workload"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/shards"
)

func TestRunReportReplay(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	_, err = workload.Run(context.Background(), svc, workload.Options{Shows: 2, SeatsPerShow: 20, Holds: 50, Clients: 2, Seed: 3})
	require.NoError(t, err)
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	cmd := func(ctx context.Context, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, getenv, &out, &errOut)
		return out.String(), err
	}

	replayed, err := cmd(context.Background(), "replay", "--json")
	require.NoError(t, err)
	var r struct{ Shows []analytics.ShowStats }
	require.NoError(t, json.Unmarshal([]byte(replayed), &r))
	require.Len(t, r.Shows, 2)
	table, err := cmd(context.Background(), "replay")
	require.NoError(t, err)
	assert.Contains(t, table, "UTILISATION")

	// run consumes until stopped, then prints where it got to.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cmd(ctx, "run", "--every", "50ms", "--json")
	require.NoError(t, err)
	reported, err := cmd(context.Background(), "report", "--json")
	require.NoError(t, err)
	assert.JSONEq(t, replayed, reported, "after a run, the live figures equal the replayed ones")

	for _, args := range [][]string{{}, {"bogus"}, {"report", "extra"}, {"run", "--every", "0s"}, {"report", "--nope"}} {
		_, err := cmd(context.Background(), args...)
		var ue usageError
		assert.True(t, errors.As(err, &ue), "%v: %v", args, err)
	}
}

// On four shards: run keeps one consumer per shard (each shard's tables
// hold its own shows), report joins them, and both equal replay and the
// holds and confirmations made.
func TestShardedRunReportReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 4
	var (
		urls     []string
		pools    []*pgxpool.Pool
		services []*ledger.Service
	)
	for k := range n {
		pool, url := pgtest.NewDB(t)
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, n))
		svc, err := ledger.New(pool, ledger.DefaultConfig(), ledger.WithShard(k))
		require.NoError(t, err)
		urls, pools, services = append(urls, url), append(pools, pool), append(services, svc)
	}
	svc, err := ledger.NewSharded(services...)
	require.NoError(t, err)

	// Show i gets 1 + i%3 holds of one seat; its first hold is confirmed.
	type want struct{ holds, confirmed int }
	expected := map[int64]want{}
	for i := range 2 * n {
		res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: fmt.Sprint("show ", i), ShowType: domain.ShowBus,
			StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2", "3", "4"}}, ledger.Metadata{})
		require.NoError(t, err)
		holds := 1 + i%3
		for h := range holds {
			b, _, err := svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000001", []string{fmt.Sprint(h + 1)}, ledger.Metadata{})
			require.NoError(t, err)
			if h == 0 {
				_, err = svc.Confirm(ctx, res.ShowID, b.ID, ledger.Metadata{})
				require.NoError(t, err)
			}
		}
		expected[int64(res.ShowID)] = want{holds, 1}
	}

	home := pgtest.CreateDB(t) // no ledger there: every figure comes from the shards
	getenv := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return home
		case "DATABASE_SHARD_URLS":
			return strings.Join(urls, ",")
		}
		return ""
	}
	cmd := func(ctx context.Context, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, getenv, &out, &errOut)
		return out.String(), err
	}
	shows := func(out string) []analytics.ShowStats {
		var r struct{ Shows []analytics.ShowStats }
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		return r.Shows
	}

	replayed, err := cmd(ctx, "replay", "--json")
	require.NoError(t, err)
	got := map[int64]want{}
	var ids []int64
	for _, s := range shows(replayed) {
		got[s.ShowID] = want{s.Holds, s.Confirmed}
		ids = append(ids, s.ShowID)
		assert.Equal(t, 1, s.SeatsBooked)
	}
	assert.Equal(t, expected, got, "replay reads every shard")
	assert.True(t, slices.IsSorted(ids), "by show id: %v", ids)

	before, err := cmd(ctx, "report", "--json")
	require.NoError(t, err)
	assert.Empty(t, shows(before), "no consumer has run yet")

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { _, err := cmd(runCtx, "run", "--every", "20ms", "--json"); done <- err }()
	for k, pool := range pools {
		store := eventstore.New(pool)
		head, err := store.Last(ctx)
		require.NoError(t, err)
		deadline := time.Now().Add(time.Minute)
		for {
			cp, err := store.ConsumerCheckpoint(ctx, analytics.ConsumerGroup)
			require.NoError(t, err)
			if cp == head {
				break
			}
			require.False(t, time.Now().After(deadline), "shard %d's consumer did not catch up within a minute", k)
			time.Sleep(10 * time.Millisecond)
		}
	}
	stop()
	require.NoError(t, <-done)

	for k, pool := range pools {
		var own, foreign int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE show_id % 4 = $1), count(*) FILTER (WHERE show_id % 4 <> $1)
			FROM analytics_shows`, k).Scan(&own, &foreign))
		assert.Equal(t, 2, own, "shard %d consumed its own stream", k)
		assert.Zero(t, foreign, "shard %d", k)
	}
	reported, err := cmd(ctx, "report", "--json")
	require.NoError(t, err)
	assert.JSONEq(t, replayed, reported, "after a run, the live figures of every shard equal the replayed ones")
	table, err := cmd(ctx, "report")
	require.NoError(t, err)
	assert.Equal(t, 2*n+1, strings.Count(table, "\n"), "a header and a line per show:\n%s", table)

	getenv = func(k string) string {
		if k == "DATABASE_SHARD_URLS" {
			return urls[0] + ",postgres://x:y@host:notaport/db"
		}
		return ""
	}
	_, err = cmd(ctx, "report")
	var ue usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "shard 1")
}

// Help goes to stdout and succeeds; a command that does not exist is named
// as such before any database is asked for (none is set here).
func TestHelpAndUnknownCommandNeedNoDatabase(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"report", "-h"}, {"run", "--help"}} {
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), args, noEnv, &out, io.Discard), args)
		assert.Contains(t, out.String(), "usage: analytics run", args)
	}
	err := run(context.Background(), []string{"bogus"}, noEnv, io.Discard, io.Discard)
	var ue usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), `unknown command "bogus"`)
	err = run(context.Background(), []string{"report"}, noEnv, io.Discard, io.Discard)
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "DATABASE_URL is not set")
}
