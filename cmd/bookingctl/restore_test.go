package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	"github.com/bookingledger/ledger/projections"
)

// workedLedger fills a ledger with a random workload while its projector and
// analytics consumer run, and stops them when the workload is done (with
// their checkpoints somewhere in the stream).
func workedLedger(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	var wg sync.WaitGroup
	proj := projections.NewProjector(pool, projections.ProjectorConfig{BatchSize: 50, PollInterval: 5 * time.Millisecond}, nil)
	wg.Go(func() { assert.NoError(t, proj.Run(ctx)) })
	wg.Go(func() { assert.NoError(t, analytics.NewConsumer(pool, 5*time.Millisecond, nil).Run(ctx)) })
	_, err = workload.Run(ctx, svc, workload.Options{Shows: 5, SeatsPerShow: 40, Holds: 300, Clients: 4, Seed: 3})
	require.NoError(t, err)
	cancel()
	wg.Wait()
}

// consumersCatchUp runs the projector and the analytics consumer on pool
// until both checkpoints reach the last event (bounded).
func consumersCatchUp(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	proj := projections.NewProjector(pool, projections.ProjectorConfig{PollInterval: 5 * time.Millisecond}, nil)
	wg.Go(func() { assert.NoError(t, proj.Run(ctx)) })
	wg.Go(func() { assert.NoError(t, analytics.NewConsumer(pool, 5*time.Millisecond, nil).Run(ctx)) })
	store := eventstore.New(pool)
	var head eventstore.Checkpoint
	require.NoError(t, pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, global_position FROM events
		ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&head.TransactionID, &head.Position))
	for _, group := range []string{projections.ConsumerGroup, analytics.ConsumerGroup} {
		deadline := time.Now().Add(time.Minute)
		for {
			cp, err := store.ConsumerCheckpoint(ctx, group)
			require.NoError(t, err)
			if cp == head {
				break
			}
			require.False(t, time.Now().After(deadline), "%s did not catch up within a minute", group)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func pgTool(t *testing.T, name string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(name)
	require.NoError(t, err, "%s is part of the PostgreSQL client (apt install postgresql-client)", name)
	out, err := exec.Command(path, args...).CombinedOutput()
	require.NoError(t, err, "%s: %s", name, out)
}

// The runbook's logical restore, rehearsed: a pg_dump of a busy ledger is
// restored into a new database, as if into another cluster (whose
// transaction counter is behind the ids stored in the dump). The ledger there
// refuses to run until `bookingctl rebase-xids`; after it, verify passes,
// the projector and the analytics consumer continue from their checkpoints
// without reprocessing anything, new bookings work and are projected, and the
// analytics counts still equal a direct count of the events.
func TestRestoreFromPgDumpIntoAnotherCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	source, sourceURL := pgtest.NewDB(t)
	workedLedger(t, source)

	dump := filepath.Join(t.TempDir(), "ledger.dump")
	pgTool(t, "pg_dump", "--format=custom", "--file="+dump, sourceURL)
	targetURL := pgtest.CreateDB(t)
	pgTool(t, "pg_restore", "--no-owner", "--exit-on-error", "--dbname="+targetURL, dump)
	target, err := pgxpool.New(ctx, targetURL)
	require.NoError(t, err)
	defer target.Close()

	var before struct{ events int64 }
	require.NoError(t, target.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&before.events))
	require.Positive(t, before.events)

	// Another cluster: its counter is far behind the stored ids. (Restoring
	// into this test server keeps the counter ahead; moving the stored ids
	// up by 2^32 gives the same situation.)
	for _, q := range []string{
		`UPDATE events SET transaction_id = (transaction_id::text::bigint + 4294967296)::text::xid8`,
		`UPDATE consumer_offsets SET last_processed_transaction_id = (last_processed_transaction_id::text::bigint + 4294967296)::text::xid8
			WHERE last_processed_transaction_id <> '0'`,
	} {
		_, err := target.Exec(ctx, q)
		require.NoError(t, err)
	}
	checkpoints := func() map[string]int64 {
		rows, err := target.Query(ctx, `SELECT consumer_group, offset_acked FROM consumer_offsets`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var g string
			var pos int64
			require.NoError(t, rows.Scan(&g, &pos))
			out[g] = pos
		}
		return out
	}
	restored := checkpoints()
	require.Contains(t, restored, projections.ConsumerGroup)
	require.Contains(t, restored, analytics.ConsumerGroup)

	r := ctl(t, targetURL, "verify")
	require.Equal(t, exitFail, r.code)
	assert.Contains(t, r.stderr, "rebase-xids", "the problem is named with its fix")
	require.ErrorIs(t, eventstore.New(target).CheckTransactionIDs(ctx), eventstore.ErrForeignTransactionIDs)

	r = ctl(t, targetURL, "rebase-xids")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "rebased")
	r = ctl(t, targetURL, "rebase-xids")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "nothing to do")
	assert.Equal(t, restored, checkpoints(), "checkpoints keep their positions")

	r = ctl(t, targetURL, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)

	// The consumers resume where they were; then new bookings go through.
	consumersCatchUp(t, target)
	svc, err := ledger.New(target, ledger.DefaultConfig())
	require.NoError(t, err)
	show, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "after the restore", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2", "3"}}, ledger.Metadata{})
	require.NoError(t, err)
	var restoredShows int64
	require.NoError(t, source.QueryRow(ctx, `SELECT count(*) FROM shows`).Scan(&restoredShows))
	assert.Greater(t, int64(show.ShowID), restoredShows, "new show ids continue after the restored ones")
	b, _, err := svc.Hold(ctx, show.ShowID, "0190c6e4-0000-7000-8000-0000000000aa", []string{"2"}, ledger.Metadata{})
	require.NoError(t, err)
	consumersCatchUp(t, target)

	d, err := projections.NewReader(target).Show(ctx, int64(show.ShowID))
	require.NoError(t, err)
	assert.Equal(t, 2, d.AvailableSeats)
	_, err = projections.NewReader(target).Booking(ctx, string(b.ID))
	require.NoError(t, err)
	var after struct{ events, bookings, holds int64 }
	require.NoError(t, target.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM bookings),
		(SELECT count(*) FROM events WHERE event_type = 'SeatLocked')`).Scan(&after.events, &after.bookings, &after.holds))
	assert.Equal(t, before.events+2, after.events)
	// The dump may have caught the projector a little behind: it projects
	// the rest now, each hold once (a duplicate would fail the insert).
	assert.Equal(t, after.holds, after.bookings, "every hold projected once, across the restore")

	r = ctl(t, targetURL, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
	report, err := analytics.Report(ctx, target)
	require.NoError(t, err)
	direct, err := analytics.Replay(ctx, eventstore.New(target))
	require.NoError(t, err)
	assert.Equal(t, direct, report, "analytics consumed every event exactly once across the restore")
}

// export → import into an empty ledger → replay gives the same stream and
// projections that verify; importing the same export again is refused.
func TestExportImportReplay(t *testing.T) {
	t.Parallel()
	source, sourceURL := pgtest.NewDB(t)
	workedLedger(t, source)
	r := ctl(t, sourceURL, "export")
	require.Equal(t, exitOK, r.code, r.stderr)
	export := filepath.Join(t.TempDir(), "events.ndjson")
	require.NoError(t, os.WriteFile(export, []byte(r.stdout), 0o600))

	// Concurrent writers interleave positions in stream order: the input
	// need not be in position order. Swap two neighbours of different
	// streams to make sure.
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	swapped := false
	for i := 1; i+1 < len(lines) && !swapped; i++ {
		a, b := normalize(t, lines[i])[0], normalize(t, lines[i+1])[0]
		if a.StreamID != b.StreamID {
			lines[i], lines[i+1], swapped = lines[i+1], lines[i], true
		}
	}
	require.True(t, swapped)
	half := filepath.Join(t.TempDir(), "half.ndjson")
	require.NoError(t, os.WriteFile(half, []byte(strings.Join(lines[:len(lines)/2], "\n")+"\n"), 0o600))
	require.NoError(t, os.WriteFile(export, []byte(strings.Join(lines, "\n")+"\n"), 0o600))

	// An import that stopped halfway is resumed by running the whole import
	// again; once more adds nothing.
	_, targetURL := pgtest.NewDB(t)
	r = ctl(t, targetURL, "import", "--file", half)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = ctl(t, targetURL, "import", "--file", export)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, fmt.Sprintf("imported %d events (%d of the %d read were here already)", len(lines)-len(lines)/2, len(lines)/2, len(lines)))
	r = ctl(t, targetURL, "import", "--file", export)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "imported 0 events")

	// Another history is refused.
	other, otherURL := pgtest.NewDB(t)
	workedLedger(t, other)
	r = ctl(t, otherURL, "import", "--file", export)
	require.Equal(t, exitFail, r.code)
	assert.Contains(t, r.stderr, "not this ledger's history")

	again := ctl(t, targetURL, "export")
	require.Equal(t, exitOK, again.code, again.stderr)
	assert.Equal(t, normalize(t, r0(t, sourceURL)), normalize(t, again.stdout), "the same events, positions, ids and times")

	r = ctl(t, targetURL, "replay")
	require.Equal(t, exitOK, r.code, r.stderr)
	r = ctl(t, targetURL, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "ok:")

	// Other consumer groups: listed, moved to the end, forgotten.
	store := eventstore.New(pgtest.Pool(t, targetURL))
	require.NoError(t, store.SetConsumerCheckpoint(context.Background(), "payments", eventstore.Checkpoint{}))
	r = ctl(t, targetURL, "consumers")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Regexp(t, `payments\s+0\s+[1-9]`, r.stdout, "payments is behind by every event")
	assert.Regexp(t, `projections\s+[1-9][0-9]*\s+0\s`, r.stdout)
	r = ctl(t, targetURL, "consumers", "reset", "--group", "payments", "--to-end")
	require.Equal(t, exitOK, r.code, r.stderr)
	n, _, err := store.Lag(context.Background(), "payments")
	require.NoError(t, err)
	assert.Zero(t, n)
	r = ctl(t, targetURL, "consumers", "delete", "--group", "payments")
	require.Equal(t, exitOK, r.code, r.stderr)
	r = ctl(t, targetURL, "consumers", "delete", "--group", "payments")
	assert.Equal(t, exitFail, r.code)
	for _, args := range [][]string{{"consumers", "reset", "--group", "x"}, {"consumers", "reset", "--group", "x", "--to-end", "--after", "3"},
		{"consumers", "delete"}, {"consumers", "move"}} {
		assert.Equal(t, exitUsage, ctl(t, targetURL, args...).code, args)
	}
}

// r0 is the source's export.
func r0(t *testing.T, url string) string {
	t.Helper()
	r := ctl(t, url, "export")
	require.Equal(t, exitOK, r.code, r.stderr)
	return r.stdout
}

// normalize drops what an import cannot keep: the transaction id.
func normalize(t *testing.T, ndjson string) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for line := range bytes.Lines([]byte(ndjson)) {
		var e eventstore.Event
		require.NoError(t, json.Unmarshal(line, &e))
		e.TransactionID = 0
		out = append(out, e)
	}
	// Within one import transaction events are in position order; the
	// source's order may interleave streams differently.
	slices.SortFunc(out, func(a, b eventstore.Event) int { return cmp.Compare(a.GlobalPosition, b.GlobalPosition) })
	return out
}
