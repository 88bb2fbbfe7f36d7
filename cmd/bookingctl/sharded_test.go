package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/shards"
)

// deployment is a ledger on n databases as n shards, migrated by
// bookingctl migrate, with its command side (ledger.Sharded).
type deployment struct {
	home  string
	urls  []string
	pools []*pgxpool.Pool
	svc   *ledger.Sharded
}

func newDeployment(t *testing.T, n int) *deployment {
	t.Helper()
	d := &deployment{home: pgtest.CreateDB(t)}
	for range n {
		d.urls = append(d.urls, pgtest.CreateDB(t))
	}
	r := d.ctl(t, "migrate")
	require.Equal(t, exitOK, r.code, r.stderr)
	services := make([]*ledger.Service, n)
	for k, u := range d.urls {
		d.pools = append(d.pools, pgtest.Pool(t, u))
		svc, err := ledger.New(d.pools[k], ledger.DefaultConfig(), ledger.WithShard(k))
		require.NoError(t, err)
		services[k] = svc
	}
	svc, err := ledger.NewSharded(services...)
	require.NoError(t, err)
	d.svc = svc
	return d
}

func (d *deployment) getenv(k string) string {
	switch k {
	case "DATABASE_URL":
		return d.home
	case "DATABASE_SHARD_URLS":
		return strings.Join(d.urls, ",")
	}
	return ""
}

func (d *deployment) ctl(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, d.getenv, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// book schedules count shows (spread over the shards in turn) and on each
// confirms a hold of seats 1 and 2 and leaves a hold of seat 3.
func (d *deployment) book(t *testing.T, count int) []domain.ShowID {
	t.Helper()
	ctx := context.Background()
	var shows []domain.ShowID
	for i := range count {
		res, err := d.svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: fmt.Sprint("show ", i), ShowType: domain.ShowBus,
			StartTime: time.Now().Add(48 * time.Hour), SeatNumbers: []string{"1", "2", "3", "4", "5"}}, ledger.Metadata{})
		require.NoError(t, err)
		b, _, err := d.svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000001", []string{"1", "2"}, ledger.Metadata{})
		require.NoError(t, err)
		_, err = d.svc.Confirm(ctx, res.ShowID, b.ID, ledger.Metadata{})
		require.NoError(t, err)
		_, _, err = d.svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000002", []string{"3"}, ledger.Metadata{})
		require.NoError(t, err)
		shows = append(shows, res.ShowID)
	}
	return shows
}

// more adds a confirmed hold of seat on each show.
func (d *deployment) more(t *testing.T, shows []domain.ShowID, seat string) {
	t.Helper()
	ctx := context.Background()
	for _, show := range shows {
		b, _, err := d.svc.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000003", []string{seat}, ledger.Metadata{})
		require.NoError(t, err)
		_, err = d.svc.Confirm(ctx, show, b.ID, ledger.Metadata{})
		require.NoError(t, err)
	}
}

// stream is one shard's events (position, id), in stream order.
type streamed struct {
	Position int64
	ID       uuid.UUID
	Stream   string
}

func stream(t *testing.T, pool *pgxpool.Pool) []streamed {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT global_position, event_id, stream_id FROM events ORDER BY transaction_id, global_position`)
	require.NoError(t, err)
	defer rows.Close()
	var out []streamed
	for rows.Next() {
		var s streamed
		require.NoError(t, rows.Scan(&s.Position, &s.ID, &s.Stream))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// exported reads a sharded export: each shard's events in output order.
func exported(t *testing.T, n int, ndjson string) [][]streamed {
	t.Helper()
	out := make([][]streamed, n)
	sc := bufio.NewScanner(strings.NewReader(ndjson))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e shardEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		require.NotNil(t, e.Shard, "a line of a sharded export names its shard: %s", sc.Text())
		require.Less(t, *e.Shard, n)
		out[*e.Shard] = append(out[*e.Shard], streamed{e.GlobalPosition, e.ID, e.StreamID})
	}
	require.NoError(t, sc.Err())
	return out
}

var nextCursor = regexp.MustCompile(`(?m)^next --after (\S+)$`)

func cursorOf(t *testing.T, r result) string {
	t.Helper()
	m := nextCursor.FindStringSubmatch(r.stderr)
	require.NotNil(t, m, "export prints the cursor to continue from: %q", r.stderr)
	return m[1]
}

// replay, verify and history on four shards: each shard is checked against
// its own stream, and a corrupted shard fails verify, named.
func TestShardedVerifyReplayHistory(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, 4)
	shows := d.book(t, 8)

	r := d.ctl(t, "replay")
	require.Equal(t, exitOK, r.code, r.stderr)
	for k := range 4 {
		assert.Contains(t, r.stdout, fmt.Sprintf("shard %d: rebuilt projections from 8 events", k), "two shows of 4 events on each shard")
	}
	r = d.ctl(t, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
	for k := range 4 {
		assert.Contains(t, r.stdout, fmt.Sprintf("shard %d: ok: projections equal a replay of 8 events", k))
	}

	// Corrupt shard 2's projection of one of its shows.
	var onTwo domain.ShowID
	for _, s := range shows {
		if shards.Of(s, 4) == 2 {
			onTwo = s
		}
	}
	require.NotZero(t, onTwo)
	_, err := d.pools[2].Exec(context.Background(), `UPDATE seats SET status = 'available', booking_id = NULL WHERE show_id = $1 AND seat_number = '3'`, int64(onTwo))
	require.NoError(t, err)
	r = d.ctl(t, "verify")
	assert.Equal(t, exitFail, r.code)
	assert.Regexp(t, `(?m)^shard 2: seats missing: \{.*"seat_number":"3".*"status":"locked"`, r.stdout)
	assert.Contains(t, r.stderr, "shard 2: verify: 2 differences")
	for _, k := range []int{0, 1, 3} {
		assert.Contains(t, r.stdout, fmt.Sprintf("shard %d: ok:", k), "the other shards are still checked")
		assert.NotContains(t, r.stderr, fmt.Sprintf("shard %d", k))
	}
	require.Equal(t, exitOK, d.ctl(t, "replay").code)
	r = d.ctl(t, "verify")
	assert.Equal(t, exitOK, r.code, r.stdout+r.stderr)

	// history reads the show's own shard.
	for _, s := range shows {
		r := d.ctl(t, "history", "--show", strconv.FormatInt(int64(s), 10))
		require.Equal(t, exitOK, r.code, "show %d: %s", s, r.stderr)
		assert.Contains(t, r.stdout, "2 of 5 available")
	}

	// rebase-xids goes over every shard.
	r = d.ctl(t, "rebase-xids")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, 4, strings.Count(r.stdout, "nothing to do"), r.stdout)
}

// A bad shard URL is a usage error naming the shard.
func TestShardURLUsageErrors(t *testing.T) {
	t.Parallel()
	good := pgtest.CreateDB(t)
	for _, cmd := range [][]string{{"verify"}, {"replay"}, {"export"}, {"consumers"}, {"import", "--file", os.DevNull}, {"rebase-xids"}, {"seed-demo"}, {"history", "--show", "1"}} {
		var out, errOut bytes.Buffer
		getenv := func(k string) string {
			switch k {
			case "DATABASE_URL":
				return good
			case "DATABASE_SHARD_URLS":
				return good + ",postgres://x:y@host:notaport/db"
			}
			return ""
		}
		code := run(context.Background(), cmd, getenv, &out, &errOut)
		assert.Equal(t, exitUsage, code, "%v: %s", cmd, errOut.String())
		assert.Contains(t, errOut.String(), "DATABASE_SHARD_URLS, shard 1", cmd)
	}
}

// export over four shards, continued with the cursor it prints, holds every
// event of every shard exactly once and in each shard's stream order; its
// import into two shards puts each show on shard id mod 2, where verify
// passes and new shows and bookings go on.
func TestShardedExportImport(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, 4)
	shows := d.book(t, 8)

	// A limited export stops in the middle of a shard; the cursor continues
	// from there, and from where the second export stopped after more
	// bookings.
	first := d.ctl(t, "export", "--limit", "11")
	require.Equal(t, exitOK, first.code, first.stderr)
	c1 := cursorOf(t, first)
	second := d.ctl(t, "export", "--after", c1)
	require.Equal(t, exitOK, second.code, second.stderr)
	c2 := cursorOf(t, second)
	d.more(t, shows, "4")
	third := d.ctl(t, "export", "--after", c2)
	require.Equal(t, exitOK, third.code, third.stderr)
	c3 := cursorOf(t, third)
	empty := d.ctl(t, "export", "--after", c3)
	require.Equal(t, exitOK, empty.code, empty.stderr)
	assert.Empty(t, empty.stdout, "nothing after the last cursor")
	assert.Equal(t, c3, cursorOf(t, empty))

	parts := [][][]streamed{exported(t, 4, first.stdout), exported(t, 4, second.stdout), exported(t, 4, third.stdout)}
	assert.Len(t, slices.Concat(parts[0]...), 11)
	for k := range 4 {
		var got []streamed
		for _, p := range parts {
			got = append(got, p[k]...)
		}
		want := stream(t, d.pools[k])
		require.Len(t, want, 12, "two shows of 6 events on shard %d", k)
		assert.Equal(t, want, got, "shard %d: every event once, in stream order", k)
	}
	assert.Len(t, strings.Split(c3, ","), 4)

	all := first.stdout + second.stdout + third.stdout
	file := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(file, []byte(all), 0o600))
	lines := strings.Split(strings.TrimSpace(all), "\n")
	half := filepath.Join(t.TempDir(), "half.ndjson")
	require.NoError(t, os.WriteFile(half, []byte(strings.Join(lines[:len(lines)/2], "\n")+"\n"), 0o600))

	// Into two shards: an import that stopped halfway is resumed by running
	// the whole import again; once more adds nothing.
	two := newDeployment(t, 2)
	r := two.ctl(t, "import", "--file", half)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = two.ctl(t, "import", "--file", file)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, fmt.Sprintf("imported %d events (%d of the %d read were here already)", len(lines)-len(lines)/2, len(lines)/2, len(lines)))
	r = two.ctl(t, "import", "--file", file)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "imported 0 events")

	// Each stream is on shard id mod 2, whole and in version order.
	source := map[string][]uuid.UUID{}
	for k := range 4 {
		for _, e := range stream(t, d.pools[k]) {
			source[e.Stream] = append(source[e.Stream], e.ID)
		}
	}
	target := map[string][]uuid.UUID{}
	for k := range 2 {
		for _, e := range stream(t, two.pools[k]) {
			show, err := domain.ParseStreamID(e.Stream)
			require.NoError(t, err)
			assert.Equal(t, k, shards.Of(show, 2), "%s is on shard %d", e.Stream, k)
			target[e.Stream] = append(target[e.Stream], e.ID)
		}
	}
	assert.Equal(t, source, target)

	r = two.ctl(t, "replay")
	require.Equal(t, exitOK, r.code, r.stderr)
	r = two.ctl(t, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "shard 0: ok: projections equal a replay of 24 events")
	assert.Contains(t, r.stdout, "shard 1: ok: projections equal a replay of 24 events")

	// The copy is a working ledger: new shows get ids of their shard's
	// residue after the imported ones, and bookings go through.
	news := two.book(t, 2)
	for _, s := range news {
		assert.Greater(t, int64(s), int64(slices.Max(shows)))
	}
	two.more(t, shows, "5")
	consumersCatchUp(t, two.pools[0])
	consumersCatchUp(t, two.pools[1])
	r = two.ctl(t, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
	for _, s := range shows {
		r := two.ctl(t, "history", "--show", strconv.FormatInt(int64(s), 10))
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "0 of 5 available", "show %d", s)
	}

	// Bad cursors are usage errors.
	for _, after := range []string{"5", "0,0,0", "0,0,0,99999", "0,-1,0,0"} {
		r := d.ctl(t, "export", "--after", after)
		assert.Equal(t, exitUsage, r.code, "%s: %s", after, r.stderr)
	}
	assert.Contains(t, d.ctl(t, "export", "--after", "0,0,0,99999").stderr, "shard 3")
}

// consumers on four shards: listed with their shard, moved on one shard
// or all, forgotten everywhere.
func TestShardedConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployment(t, 4)
	d.book(t, 4)
	for k := range 4 {
		require.NoError(t, eventstore.New(d.pools[k]).SetConsumerCheckpoint(ctx, "payments", eventstore.Checkpoint{}))
	}
	r := d.ctl(t, "consumers")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Regexp(t, `SHARD\s+GROUP\s+AFTER POSITION`, r.stdout)
	for k := range 4 {
		assert.Regexp(t, fmt.Sprintf(`(?m)^%d\s+payments\s+0\s+4\s`, k), r.stdout)
	}

	r = d.ctl(t, "consumers", "reset", "--group", "payments", "--after", "2")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--shard")
	assert.Equal(t, exitUsage, d.ctl(t, "consumers", "reset", "--group", "payments", "--after", "2", "--shard", "4").code)

	r = d.ctl(t, "consumers", "reset", "--group", "payments", "--after", "2", "--shard", "1")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "shard 1: payments continues after position 2")
	for k := range 4 {
		n, _, err := eventstore.New(d.pools[k]).Lag(ctx, "payments")
		require.NoError(t, err)
		assert.Equal(t, map[bool]int64{true: 2, false: 4}[k == 1], n, "shard %d", k)
	}
	r = d.ctl(t, "consumers", "reset", "--group", "payments", "--to-end")
	require.Equal(t, exitOK, r.code, r.stderr)
	for k := range 4 {
		n, _, err := eventstore.New(d.pools[k]).Lag(ctx, "payments")
		require.NoError(t, err)
		assert.Zero(t, n, "shard %d", k)
	}
	r = d.ctl(t, "consumers", "delete", "--group", "payments")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, 4, strings.Count(r.stdout, "deleted payments"))
	for k := range 4 {
		groups, err := eventstore.New(d.pools[k]).ConsumerGroups(ctx)
		require.NoError(t, err)
		assert.NotContains(t, groups, "payments")
	}
	assert.Equal(t, exitFail, d.ctl(t, "consumers", "delete", "--group", "payments").code)

}

// seed-demo spreads its shows over the shards.
func TestShardedSeedDemo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployment(t, 4)
	r := d.ctl(t, "seed-demo")
	require.Equal(t, exitOK, r.code, r.stderr)
	for k := range 4 {
		var n int
		require.NoError(t, d.pools[k].QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = 'ShowScheduled'
			AND (data ->> 'show_id')::bigint % 4 = $1`, k).Scan(&n))
		assert.Positive(t, n, "shard %d has demo shows of its own", k)
	}
	r = d.ctl(t, "seed-demo")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "adds nothing")
	r = d.ctl(t, "replay")
	require.Equal(t, exitOK, r.code, r.stderr)
	r = d.ctl(t, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
}
