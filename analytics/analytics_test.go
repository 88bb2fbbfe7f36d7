package analytics_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/analytics"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/workload"
	"github.com/bookingledger/ledger/ledger"
)

func busyLedger(t *testing.T, pool *pgxpool.Pool, holds int, seed uint64) {
	t.Helper()
	cfg := ledger.DefaultConfig()
	cfg.HoldTTL = 5 * time.Millisecond // some holds can be expired by the workload
	svc, err := ledger.New(pool, cfg)
	require.NoError(t, err)
	_, err = workload.Run(context.Background(), svc, workload.Options{Shows: 5, SeatsPerShow: 40, Holds: holds, Clients: 4, Seed: seed})
	require.NoError(t, err)
}

// direct counts the figures straight from the events table with SQL.
func direct(t *testing.T, pool *pgxpool.Pool) []analytics.ShowStats {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		WITH locked AS (
			SELECT stream_id, data->>'booking_id' AS b, jsonb_array_length(data->'seat_numbers') AS seats, recorded_at
			FROM events WHERE event_type = 'SeatLocked'),
		ended AS (
			SELECT data->>'booking_id' AS b, event_type, recorded_at FROM events
			WHERE event_type IN ('BookingConfirmed', 'BookingExpired', 'BookingCancelled'))
		SELECT (s.data->>'show_id')::bigint, s.data->>'name', s.data->>'show_type', jsonb_array_length(s.data->'seat_numbers'),
			(SELECT count(*) FROM locked l WHERE l.stream_id = s.stream_id),
			(SELECT count(*) FROM locked l JOIN ended e ON e.b = l.b AND e.event_type = 'BookingConfirmed' WHERE l.stream_id = s.stream_id),
			(SELECT count(*) FROM locked l JOIN ended e ON e.b = l.b AND e.event_type = 'BookingExpired' WHERE l.stream_id = s.stream_id),
			(SELECT count(*) FROM locked l JOIN ended e ON e.b = l.b AND e.event_type = 'BookingCancelled' WHERE l.stream_id = s.stream_id),
			(SELECT coalesce(sum(l.seats), 0) FROM locked l WHERE l.stream_id = s.stream_id
				AND EXISTS (SELECT 1 FROM ended e WHERE e.b = l.b AND e.event_type = 'BookingConfirmed')
				AND NOT EXISTS (SELECT 1 FROM ended e WHERE e.b = l.b AND e.event_type = 'BookingCancelled')),
			coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.recorded_at - l.recorded_at))
				FROM locked l JOIN ended e ON e.b = l.b AND e.event_type = 'BookingConfirmed' WHERE l.stream_id = s.stream_id), 0)
		FROM events s WHERE s.event_type = 'ShowScheduled' ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (analytics.ShowStats, error) {
		var s analytics.ShowStats
		err := row.Scan(&s.ShowID, &s.Name, &s.ShowType, &s.TotalSeats, &s.Holds, &s.Confirmed, &s.Expired, &s.Cancelled,
			&s.SeatsBooked, &s.MedianSecondsToConfirm)
		s.Utilisation = math.Round(float64(s.SeatsBooked)/float64(s.TotalSeats)*1000) / 1000
		if s.Holds > 0 {
			s.Conversion = math.Round(float64(s.Confirmed)/float64(s.Holds)*1000) / 1000
		}
		s.MedianSecondsToConfirm = math.Round(s.MedianSecondsToConfirm*1000) / 1000
		return s, err
	})
	require.NoError(t, err)
	return out
}

// waitCaughtUp polls until the analytics checkpoint reaches the last event,
// failing at once when the consumer has ended. The loop is bounded; when it
// gives up it says where the consumer stood and which transactions on the
// server (of any database: transaction ids are server-wide) were holding
// the readable end of the stream back.
func waitCaughtUp(t *testing.T, pool *pgxpool.Pool, c *consumer) {
	t.Helper()
	ctx := context.Background()
	store := eventstore.New(pool)
	last, err := store.Last(ctx)
	require.NoError(t, err)
	var cp eventstore.Checkpoint
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-c.ended:
			t.Fatalf("the analytics consumer ended before catching up: %v", c.err)
		default:
		}
		cp, err = store.ConsumerCheckpoint(ctx, analytics.ConsumerGroup)
		require.NoError(t, err)
		if cp == last {
			return
		}
	}
	settled, err := store.Settled(ctx)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `SELECT format('pid %s db %s xid %s %s since %s: %s', pid, datname, backend_xid, state,
			now() - xact_start, left(query, 120))
		FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY xact_start`)
	require.NoError(t, err)
	open, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	t.Fatalf("the analytics consumer did not catch up within a minute: at %+v, last event %+v, readable up to %+v; "+
		"transactions with an id: %q", cp, last, settled, open)
}

// consumer is an analytics consumer running in the background.
type consumer struct {
	cancel context.CancelFunc
	ended  chan struct{} // closed when Run has returned
	err    error         // what Run returned, once ended is closed
}

// stop cancels the consumer and returns what Run returned.
func (c *consumer) stop() error {
	c.cancel()
	<-c.ended
	return c.err
}

func runConsumer(t *testing.T, pool *pgxpool.Pool) *consumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, ended: make(chan struct{})}
	go func() {
		defer close(c.ended)
		c.err = analytics.NewConsumer(pool, 5*time.Millisecond, nil).Run(ctx)
	}()
	t.Cleanup(func() { _ = c.stop() })
	return c
}

func TestLiveReplayAndDirectCountAgree(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	busyLedger(t, pool, 400, 1)
	waitCaughtUp(t, pool, runConsumer(t, pool))

	live, err := analytics.Report(context.Background(), pool)
	require.NoError(t, err)
	replayed, err := analytics.Replay(context.Background(), eventstore.New(pool))
	require.NoError(t, err)
	want := direct(t, pool)
	require.Len(t, want, 5)
	assert.Equal(t, want, live, "live figures equal a direct count over the events")
	assert.Equal(t, want, replayed, "replayed figures equal a direct count over the events")

	var confirmed, cancelled int
	for _, s := range live {
		confirmed += s.Confirmed
		cancelled += s.Cancelled
	}
	assert.Positive(t, confirmed)
	assert.Positive(t, cancelled)
}

// The consumer is killed again and again — its context cancelled between
// messages, its connection terminated inside a batch — while the ledger is
// busy. Restarted each time, it ends with exactly the direct count: nothing
// lost, nothing counted twice.
func TestConsumerResumesAfterKills(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		busyLedger(t, pool, 600, 2)
	}()
	killer, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer killer.Close(ctx)

	kills := 0
	for running := true; running; {
		c := runConsumer(t, pool)
		select {
		case <-done:
			running = false
		case <-time.After(30 * time.Millisecond):
		}
		var n int
		require.NoError(t, killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
			  AND query LIKE '%analytics%'`).Scan(&n))
		kills += n
		// A killed consumer returns its connection's error (both ways are
		// a crash here); any other error from the database, such as a
		// duplicate key, is an event applied twice. 57P01: admin_shutdown.
		var pgErr *pgconn.PgError
		if err := c.stop(); errors.As(err, &pgErr) && pgErr.Code != "57P01" {
			t.Fatalf("a consumer stopped with %v", err)
		}
	}
	waitCaughtUp(t, pool, runConsumer(t, pool))
	live, err := analytics.Report(ctx, pool)
	require.NoError(t, err)
	assert.Equal(t, direct(t, pool), live)
	t.Logf("killed %d consumer connections inside a batch", kills)
}

// Union joins the figures of shards (disjoint show ids) in show id order.
func TestUnion(t *testing.T) {
	t.Parallel()
	got := analytics.Union(
		[]analytics.ShowStats{{ShowID: 4, Holds: 1}, {ShowID: 8}},
		nil,
		[]analytics.ShowStats{{ShowID: 1}, {ShowID: 5, Confirmed: 2}},
		[]analytics.ShowStats{{ShowID: 2}},
	)
	ids := make([]int64, len(got))
	for i, s := range got {
		ids[i] = s.ShowID
	}
	assert.Equal(t, []int64{1, 2, 4, 5, 8}, ids)
	assert.Equal(t, 1, got[2].Holds)
	assert.Equal(t, 2, got[3].Confirmed)
	assert.NotNil(t, analytics.Union(), "no shows is an empty list, not null")
}
