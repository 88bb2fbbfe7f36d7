package projections_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/workload"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/shards"
)

// bookingRows is every row of a bookings-shaped table, in id order, as
// text (so timestamps compare exactly).
func bookingRows(t *testing.T, db *pgxpool.Pool, table, where string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT concat_ws('|', id, show_id, user_id, seat_numbers, status,
		created_at, expires_at, confirmed_at, expired_at, cancelled_at) FROM `+table+` WHERE `+where+` ORDER BY id`, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// The user index of two shards, fed by two consumers per shard at once
// (as two bookingd would run them) while the shards take bookings, ends up
// with exactly the rows of both shards' bookings tables; replayed from the
// beginning it changes nothing at any step.
func TestUserIndexEqualsTheShardsBookings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 2
	home, _ := pgtest.NewDB(t)
	pools := make([]*pgxpool.Pool, n)
	services := make([]*ledger.Service, n)
	for k := range n {
		pools[k], _ = pgtest.NewDB(t)
		require.NoError(t, shards.ConfigureIDs(ctx, pools[k], k, n))
		cfg := ledger.DefaultConfig()
		cfg.HoldTTL = 5 * time.Millisecond // holds also expire
		var err error
		services[k], err = ledger.New(pools[k], cfg, ledger.WithShard(k))
		require.NoError(t, err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for k := range n {
		for range 2 {
			x := projections.NewUserIndex(home, services[k].Store(), k, projections.UserIndexConfig{BatchSize: 50, PollInterval: time.Millisecond}, nil)
			wg.Go(func() { assert.NoError(t, x.Run(runCtx)) })
		}
	}
	for k := range n {
		stats, err := workload.Run(ctx, services[k], workload.Options{Shows: 3, SeatsPerShow: 30, Holds: 150, Clients: 3, Seed: uint64(k + 1)})
		require.NoError(t, err)
		require.NotZero(t, stats.Confirmed.Load()+stats.Cancelled.Load()+stats.Expired.Load())
		// And a booking confirmed, then cancelled.
		svc, err := ledger.New(pools[k], ledger.DefaultConfig(), ledger.WithShard(k))
		require.NoError(t, err)
		show, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "later", ShowType: domain.ShowBus,
			StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
		require.NoError(t, err)
		b, _, err := svc.Hold(ctx, show.ShowID, "00000000-0000-7000-8000-000000000001", []string{"1"}, ledger.Metadata{})
		require.NoError(t, err)
		_, err = svc.Confirm(ctx, show.ShowID, b.ID, ledger.Metadata{})
		require.NoError(t, err)
		_, err = svc.Cancel(ctx, show.ShowID, b.ID, ledger.Metadata{})
		require.NoError(t, err)
	}
	// Caught up: every shard's last event is indexed.
	for k := range n {
		last, err := services[k].Store().Last(ctx)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			at, err := projections.UserIndexPositions(ctx, home)
			require.NoError(t, err)
			return at[k].Checkpoint == last && at[k].CaughtUp
		}, time.Minute, 10*time.Millisecond, "shard %d indexed to its last event", k)
	}
	stop()
	wg.Wait()

	for k := range n {
		_, err := projections.Rebuild(ctx, pools[k], nil) // the shard's own bookings table, from its stream
		require.NoError(t, err)
		want := bookingRows(t, pools[k], "bookings", "true")
		require.NotEmpty(t, want)
		assert.Equal(t, want, bookingRows(t, home, "user_bookings", "show_id % $1 = $2", n, k), "shard %d", k)
	}

	// From the beginning again, an event at a time: each change is guarded
	// by the booking's version, so an old event never rolls a row back.
	before := bookingRows(t, home, "user_bookings", "true")
	_, err := home.Exec(ctx, `UPDATE user_index_positions SET transaction_id = 0, global_position = 0`)
	require.NoError(t, err)
	for k := range n {
		x := projections.NewUserIndex(home, services[k].Store(), k, projections.UserIndexConfig{BatchSize: 1}, nil)
		for {
			applied, err := x.Step(ctx)
			require.NoError(t, err)
			if applied == 0 {
				break
			}
			require.Equal(t, before, bookingRows(t, home, "user_bookings", "true"), "shard %d replayed", k)
		}
	}

	// The event the index stopped at is deleted (its show moved to
	// another shard): the index goes on from where it was.
	at, err := projections.UserIndexPositions(ctx, home)
	require.NoError(t, err)
	_, err = pools[0].Exec(ctx, `DELETE FROM events WHERE global_position = $1`, at[0].Position)
	require.NoError(t, err)
	svc, err := ledger.New(pools[0], ledger.DefaultConfig(), ledger.WithShard(0))
	require.NoError(t, err)
	show, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "after the move", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
	require.NoError(t, err)
	b, _, err := svc.Hold(ctx, show.ShowID, "00000000-0000-7000-8000-000000000002", []string{"1"}, ledger.Metadata{})
	require.NoError(t, err)
	x := projections.NewUserIndex(home, svc.Store(), 0, projections.UserIndexConfig{}, nil)
	require.Eventually(t, func() bool {
		_, err := x.Step(ctx)
		require.NoError(t, err)
		return len(bookingRows(t, home, "user_bookings", "id = $1", string(b.ID))) == 1
	}, time.Minute, 10*time.Millisecond)
}

// The index answers for a shard only once it has read the shard's whole
// stream (an upgrade starts it on a long history); it reads the shard
// outside any home transaction, so a shard that hangs holds no lock and no
// transaction id in the home database; and a stored transaction id that no
// longer matches its position (the shard was rebased) is written back
// corrected.
func TestUserIndexFillsReadsOutsideHomeAndHeals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	home, homeURL := pgtest.NewDB(t)
	shard, _ := pgtest.NewDB(t)
	svc, err := ledger.New(shard, ledger.DefaultConfig())
	require.NoError(t, err)
	show, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "history", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2", "3"}}, ledger.Metadata{})
	require.NoError(t, err)
	for _, seat := range []string{"1", "2", "3"} {
		_, _, err := svc.Hold(ctx, show.ShowID, "00000000-0000-7000-8000-000000000003", []string{seat}, ledger.Metadata{})
		require.NoError(t, err)
	}
	// All four events readable (no older transaction on the server holds
	// them back), so a batch of 2 is a full batch.
	require.Eventually(t, func() bool {
		events, err := svc.Store().ReadAll(ctx, eventstore.Checkpoint{}, 10)
		require.NoError(t, err)
		return len(events) == 4
	}, time.Minute, 10*time.Millisecond)
	x := projections.NewUserIndex(home, svc.Store(), 0, projections.UserIndexConfig{BatchSize: 2}, nil)
	position := func() projections.IndexPosition {
		at, err := projections.UserIndexPositions(ctx, home)
		require.NoError(t, err)
		return at[0]
	}
	n, err := x.Step(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	assert.False(t, position().CaughtUp, "a batch of 2 of 4 events: still filling")
	require.Eventually(t, func() bool {
		_, err := x.Step(ctx)
		require.NoError(t, err)
		return position().CaughtUp
	}, time.Minute, 10*time.Millisecond, "the whole stream read once")

	// A shard that hangs: its events table locked by another session.
	lockTx, err := shard.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lockTx.Rollback(ctx) }()
	_, err = lockTx.Exec(ctx, `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	stepped := make(chan error, 1)
	go func() { _, err := x.Step(ctx); stepped <- err }()
	probe := pgtest.Pool(t, homeURL)
	var waiting bool
	require.Eventually(t, func() bool {
		require.NoError(t, shard.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted`).Scan(&waiting))
		return waiting
	}, time.Minute, 10*time.Millisecond, "the step waits for the shard")
	var holding int
	require.NoError(t, probe.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`).Scan(&holding))
	assert.Zero(t, holding, "no home transaction holds an id while the shard hangs")
	_, err = probe.Exec(ctx, `SELECT 1 FROM user_index_positions WHERE shard = 0 FOR UPDATE NOWAIT`)
	require.NoError(t, err, "nor the position row")
	require.NoError(t, lockTx.Rollback(ctx))
	require.NoError(t, <-stepped)

	// A stored transaction id from before a rebase: healed by the next step.
	want := position().Checkpoint
	_, err = home.Exec(ctx, `UPDATE user_index_positions SET transaction_id = transaction_id + 1000000 WHERE shard = 0`)
	require.NoError(t, err)
	_, err = x.Step(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, position().Checkpoint)
}
