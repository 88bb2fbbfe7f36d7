package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/projections"
)

// closedURL is a database that does not answer: nothing listens on port 1.
const closedURL = "postgres://root@127.0.0.1:1/x?connect_timeout=2"

// without is d with the shards ks replaced by databases that do not answer.
func (d *deployment) without(ks ...int) *deployment {
	down := *d
	down.urls = slices.Clone(d.urls)
	for _, k := range ks {
		down.urls[k] = closedURL
	}
	return &down
}

// With shard 2 of four down, verify, replay, consumers and rebase-xids go on
// with the other three, print a line for shard 2 and exit 1 naming it;
// export, import and seed-demo change nothing and name every shard that is
// down.
func TestShardUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployment(t, 4)
	d.book(t, 8)
	for k := range 4 {
		require.NoError(t, eventstore.New(d.pools[k]).SetConsumerCheckpoint(ctx, "payments", eventstore.Checkpoint{}))
	}
	first := d.ctl(t, "export", "--limit", "5")
	require.Equal(t, exitOK, first.code, first.stderr)
	cursor := cursorOf(t, first)
	down := d.without(2)
	unreachable := regexp.MustCompile(`(?m)^shard 2: unreachable: .*127\.0\.0\.1:1.*connection refused`)

	// Each of these goes on with shards 0, 1 and 3.
	healthy := func(t *testing.T, r result, line string) {
		t.Helper()
		assert.Equal(t, exitFail, r.code, r.stdout+r.stderr)
		for _, k := range []int{0, 1, 3} {
			assert.Contains(t, r.stdout, fmt.Sprintf("shard %d: %s", k, line))
			assert.NotContains(t, r.stderr, fmt.Sprintf("shard %d", k))
		}
		assert.NotContains(t, r.stdout, "shard 2: "+line)
		assert.Regexp(t, unreachable, r.stdout)
		assert.Regexp(t, `^bookingctl: shard 2: unreachable: `, r.stderr)
	}
	healthy(t, down.ctl(t, "replay"), "rebuilt projections from 8 events")
	healthy(t, down.ctl(t, "verify"), "ok: projections equal a replay of 8 events") // of the replayed projections
	healthy(t, down.ctl(t, "rebase-xids"), "ok: the stored transaction ids are this server's")

	r := down.ctl(t, "consumers")
	assert.Equal(t, exitFail, r.code, r.stdout+r.stderr)
	for _, k := range []int{0, 1, 3} {
		assert.Regexp(t, fmt.Sprintf(`(?m)^%d\s+payments\s+0\s+8\s`, k), r.stdout)
	}
	assert.NotRegexp(t, `(?m)^2\s`, r.stdout)
	assert.Regexp(t, unreachable, r.stdout)
	assert.Regexp(t, `^bookingctl: shard 2: unreachable: `, r.stderr)

	// reset and delete of every shard: the three are moved, shard 2 is named.
	r = down.ctl(t, "consumers", "reset", "--group", "payments", "--to-end")
	assert.Equal(t, exitFail, r.code, r.stdout+r.stderr)
	assert.Regexp(t, unreachable, r.stdout)
	for k := range 4 {
		if k != 2 {
			assert.Contains(t, r.stdout, fmt.Sprintf("shard %d: payments continues after position 8", k))
		}
		n, _, err := eventstore.New(d.pools[k]).Lag(ctx, "payments")
		require.NoError(t, err)
		assert.Equal(t, map[bool]int64{true: 8, false: 0}[k == 2], n, "shard %d", k)
	}
	// One shard that answers: the one that does not is not needed.
	r = down.ctl(t, "consumers", "reset", "--group", "payments", "--after", "2", "--shard", "1")
	assert.Equal(t, exitOK, r.code, r.stdout+r.stderr)
	assert.Equal(t, "shard 1: payments continues after position 2\n", r.stdout)
	r = down.ctl(t, "consumers", "reset", "--group", "payments", "--after", "2", "--shard", "2")
	assert.Equal(t, exitFail, r.code, r.stdout+r.stderr)
	assert.Regexp(t, unreachable, r.stdout)
	r = down.ctl(t, "consumers", "delete", "--group", "payments")
	assert.Equal(t, exitFail, r.code, r.stdout+r.stderr)
	assert.Equal(t, 3, strings.Count(r.stdout, "deleted payments"), r.stdout)
	assert.Regexp(t, unreachable, r.stdout)
	for k := range 4 {
		groups, err := eventstore.New(d.pools[k]).ConsumerGroups(ctx)
		require.NoError(t, err)
		assert.Equal(t, k == 2, slices.Contains(groups, "payments"), "shard %d", k)
	}

	// export writes nothing, and says how to resume.
	for _, after := range []string{"", cursor} {
		args := []string{"export"}
		if after != "" {
			args = append(args, "--after", after)
		}
		r = down.ctl(t, args...)
		assert.Equal(t, exitFail, r.code, r.stderr)
		assert.Empty(t, r.stdout, "no event is exported")
		assert.NotContains(t, r.stderr, "next --after")
		assert.Contains(t, r.stderr, "an export needs every shard and shard 2 failed")
		if after == "" {
			after = "0,0,0,0"
		}
		assert.Contains(t, r.stderr, "run the same export (--after "+after+") again")
		assert.Regexp(t, unreachable, r.stderr)
	}

	// Two shards down: each one is named.
	two := d.without(1, 3)
	r = two.ctl(t, "verify")
	assert.Equal(t, exitFail, r.code)
	for k := range 4 {
		if k == 1 || k == 3 {
			assert.Regexp(t, fmt.Sprintf(`(?m)^shard %d: unreachable: `, k), r.stdout)
			assert.Regexp(t, fmt.Sprintf(`(?m)^(bookingctl: )?shard %d: unreachable: `, k), r.stderr)
		} else {
			assert.Contains(t, r.stdout, fmt.Sprintf("shard %d: ok:", k))
		}
	}
	r = two.ctl(t, "export")
	assert.Equal(t, exitFail, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "shards 1 and 3 failed")
	for _, cmd := range [][]string{{"import", "--file", os.DevNull}, {"seed-demo"}} {
		r = two.ctl(t, cmd...)
		assert.Equal(t, exitFail, r.code, cmd)
		assert.Regexp(t, `(?m)^bookingctl: shard 1: unreachable: `, r.stderr, cmd)
		assert.Regexp(t, `(?m)^shard 3: unreachable: `, r.stderr, cmd)
		assert.Empty(t, r.stdout, cmd)
	}
}

// consumers on several shards lists each shard's user index: its position
// in the home database and the events of the shard's stream after it, or
// "never ran" with the whole stream behind.
func TestConsumersUserIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployment(t, 2)
	d.book(t, 2) // a show on each shard: 4 events each
	home := pgtest.Pool(t, d.home)
	events := stream(t, d.pools[0])
	require.Len(t, events, 4)

	row := func(r result, k int) string {
		t.Helper()
		m := regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+user-index\s+(.*)$`, k)).FindStringSubmatch(r.stdout)
		require.NotNil(t, m, "shard %d's user index is listed:\n%s", k, r.stdout)
		return strings.Join(strings.Fields(m[1]), " ")
	}
	r := d.ctl(t, "consumers")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Regexp(t, `^never ran 4 \d`, row(r, 0))
	assert.Regexp(t, `^never ran 4 \d`, row(r, 1))

	index := projections.NewUserIndex(home, eventstore.New(d.pools[0]), 0, projections.UserIndexConfig{BatchSize: 1}, slog.New(slog.DiscardHandler))
	// Wait until the shard's four events are readable: a Step that reads
	// nothing (a transaction older than them still runs on the server, in
	// any database) would mark the index caught up.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		readable, err := eventstore.New(d.pools[0]).ReadAll(ctx, eventstore.Checkpoint{}, 10)
		require.NoError(t, err)
		if len(readable) == 4 {
			break
		}
		require.False(t, time.Now().After(deadline), "the shard's events are not readable after a minute")
	}
	// step applies the next event.
	step := func() {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; {
			applied, err := index.Step(ctx)
			require.NoError(t, err)
			if applied == 1 {
				return
			}
			require.Zero(t, applied)
			require.False(t, time.Now().After(deadline), "the user index applied nothing for a minute")
			time.Sleep(5 * time.Millisecond)
		}
	}
	for range 3 {
		step()
	}
	r = d.ctl(t, "consumers")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Regexp(t, fmt.Sprintf(`^%d \(filling: not used yet\) 1 \d`, events[2].Position), row(r, 0), "after the third event, the fourth to go")
	fields := strings.Fields(row(r, 0))
	assert.NotEqual(t, "0s", fields[len(fields)-1], "the unread event has an age")
	assert.Regexp(t, `^never ran 4 \d`, row(r, 1))

	step()
	r = d.ctl(t, "consumers")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, fmt.Sprintf("%d (filling: not used yet) 0 0s", events[3].Position), row(r, 0),
		"every event applied, but the end of the stream not seen yet")
	applied, err := index.Step(ctx) // reads nothing more: caught up
	require.NoError(t, err)
	require.Zero(t, applied)
	r = d.ctl(t, "consumers")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, fmt.Sprintf("%d 0 0s", events[3].Position), row(r, 0), "caught up")
	assert.Regexp(t, `^never ran 4 \d`, row(r, 1))

	// The home database down: the shards' groups are still listed, and the
	// command fails naming the user index.
	for k := range 2 {
		require.NoError(t, eventstore.New(d.pools[k]).SetConsumerCheckpoint(ctx, "payments", eventstore.Checkpoint{}))
	}
	noHome := *d
	noHome.home = closedURL
	r = noHome.ctl(t, "consumers")
	assert.Equal(t, exitFail, r.code, r.stdout+r.stderr)
	for k := range 2 {
		assert.Regexp(t, fmt.Sprintf(`(?m)^%d\s+payments\s+0\s+4\s`, k), r.stdout)
	}
	assert.NotContains(t, r.stdout, "never ran")
	assert.Regexp(t, `(?m)^user-index \(home database\): unreachable: .*connection refused`, r.stdout)
	assert.Contains(t, r.stderr, "user-index (home database): unreachable")
}
