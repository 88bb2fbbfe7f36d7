package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
)

func newService(t testing.TB, pool *pgxpool.Pool, ttl time.Duration) *ledger.Service {
	t.Helper()
	cfg := ledger.DefaultConfig()
	cfg.HoldTTL = ttl
	svc, err := ledger.New(pool, cfg)
	require.NoError(t, err)
	return svc
}

// startProjector runs a projector until the returned stop is called.
func startProjector(t testing.TB, pool *pgxpool.Pool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	p := projections.NewProjector(pool, projections.ProjectorConfig{BatchSize: 50, PollInterval: 5 * time.Millisecond}, nil)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitCaughtUp polls until the projector's checkpoint reaches the last event
// written (callers have no writes in flight). Store.Head is not used: it
// stops at the server-wide xmin horizon, which other tests' open
// transactions can hold back. The loop is bounded.
func waitCaughtUp(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	store := eventstore.New(pool)
	ctx := context.Background()
	var head eventstore.Checkpoint
	err := pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, global_position FROM events
		ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&head.TransactionID, &head.Position)
	require.NoError(t, err)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		cp, err := store.ConsumerCheckpoint(ctx, projections.ConsumerGroup)
		require.NoError(t, err)
		if cp == head {
			return
		}
	}
	t.Fatal("projector did not catch up within 2 minutes")
}

func requireVerified(t testing.TB, pool *pgxpool.Pool) projections.VerifyReport {
	t.Helper()
	report, err := projections.Verify(context.Background(), pool, nil)
	require.NoError(t, err)
	require.Empty(t, report.Differences, "projections differ from a replay")
	return report
}

func TestProjectorAndQueries(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newService(t, pool, time.Hour)
	ctx := context.Background()
	startProjector(t, pool)

	start := time.Date(2031, 5, 1, 18, 0, 0, 0, time.UTC)
	var ids []domain.ShowID
	for i, typ := range []domain.ShowType{domain.ShowMovie, domain.ShowBus, domain.ShowDoctor, domain.ShowMovie, domain.ShowMovie} {
		res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{
			Name: string(typ), ShowType: typ, StartTime: start.Add(time.Duration(i) * time.Hour), SeatNumbers: []string{"A1", "A2", "A3"},
			MaxSeatsPerUser: 3 * i, // the first without a cap
		}, ledger.Metadata{})
		require.NoError(t, err)
		ids = append(ids, res.ShowID)
	}
	user := domain.UserID("0190c6e4-0000-7000-8000-000000000001")
	held, _, err := svc.Hold(ctx, ids[0], user, []string{"A1", "A2"}, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Confirm(ctx, ids[0], held.ID, ledger.Metadata{})
	require.NoError(t, err)
	other, _, err := svc.Hold(ctx, ids[1], user, []string{"A3"}, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Cancel(ctx, ids[1], other.ID, ledger.Metadata{})
	require.NoError(t, err)
	pending, _, err := svc.Hold(ctx, ids[0], user, []string{"A3"}, ledger.Metadata{})
	require.NoError(t, err)
	waitCaughtUp(t, pool)

	r := projections.NewReader(pool)
	d, err := r.Show(ctx, int64(ids[0]))
	require.NoError(t, err)
	assert.Equal(t, 0, d.AvailableSeats)
	assert.Equal(t, 3, d.TotalSeats)
	assert.Equal(t, 4, d.Version)
	assert.Zero(t, d.MaxSeatsPerUser)
	assert.Equal(t, []projections.Seat{{"A1", "booked"}, {"A2", "booked"}, {"A3", "locked"}}, d.Seats)
	d, err = r.Show(ctx, int64(ids[1]))
	require.NoError(t, err)
	assert.Equal(t, 3, d.AvailableSeats)
	assert.Equal(t, 3, d.MaxSeatsPerUser)
	assert.Equal(t, "available", d.Seats[2].Status)
	_, err = r.Show(ctx, 424242)
	require.ErrorIs(t, err, projections.ErrNotFound)

	b, err := r.Booking(ctx, string(held.ID))
	require.NoError(t, err)
	assert.Equal(t, "confirmed", b.Status)
	assert.Equal(t, []string{"A1", "A2"}, b.SeatNumbers)
	assert.NotNil(t, b.ConfirmedAt)
	assert.Equal(t, held.ExpiresAt.Truncate(time.Microsecond), b.ExpiresAt.UTC())
	_, err = r.Booking(ctx, "not-a-uuid")
	require.ErrorIs(t, err, projections.ErrNotFound)

	all, err := r.UserBookings(ctx, string(user), projections.BookingFilter{})
	require.NoError(t, err)
	mine := all.Bookings
	require.Len(t, mine, 3)
	assert.Empty(t, all.NextCursor)
	assert.Equal(t, string(pending.ID), mine[0].ID, "newest first")
	assert.Equal(t, "cancelled", mine[1].Status)
	assert.True(t, slices.IsSortedFunc(mine, projections.CompareBookings))
	// Pages of two resume where the last ended.
	first, err := r.UserBookings(ctx, string(user), projections.BookingFilter{Limit: 2})
	require.NoError(t, err)
	require.Len(t, first.Bookings, 2)
	require.NotEmpty(t, first.NextCursor)
	second, err := r.UserBookings(ctx, string(user), projections.BookingFilter{Limit: 2, Cursor: first.NextCursor})
	require.NoError(t, err)
	assert.Equal(t, mine, append(first.Bookings, second.Bookings...))
	assert.Empty(t, second.NextCursor)
	_, err = r.UserBookings(ctx, string(user), projections.BookingFilter{Cursor: "!!"})
	require.ErrorIs(t, err, projections.ErrBadCursor)

	// The list pages in start order; filters narrow it.
	var (
		seen []int64
		caps []int
	)
	page := projections.ShowPage{}
	for range 10 {
		page, err = r.ListShows(ctx, projections.ShowFilter{Limit: 2, Cursor: page.NextCursor})
		require.NoError(t, err)
		for _, s := range page.Shows {
			seen, caps = append(seen, s.ID), append(caps, s.MaxSeatsPerUser)
		}
		if page.NextCursor == "" {
			break
		}
	}
	assert.Equal(t, []int64{int64(ids[0]), int64(ids[1]), int64(ids[2]), int64(ids[3]), int64(ids[4])}, seen)
	assert.Equal(t, []int{0, 3, 6, 9, 12}, caps)
	page, err = r.ListShows(ctx, projections.ShowFilter{Type: "movie", From: start.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, page.Shows, 2)
	assert.Equal(t, int64(ids[3]), page.Shows[0].ID)
	page, err = r.ListShows(ctx, projections.ShowFilter{To: start.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, page.Shows, 1)
	_, err = r.ListShows(ctx, projections.ShowFilter{Cursor: "!!"})
	require.ErrorIs(t, err, projections.ErrBadCursor)

	requireVerified(t, pool)
}

func TestApplyIsIdempotentAndOrdered(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newService(t, pool, time.Hour)
	ctx := context.Background()
	res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{
		Name: "x", ShowType: domain.ShowBus, StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2"},
	}, ledger.Metadata{})
	require.NoError(t, err)
	_, _, err = svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000001", []string{"1"}, ledger.Metadata{})
	require.NoError(t, err)
	events, err := svc.Store().Load(ctx, res.ShowID.StreamID(), 0)
	require.NoError(t, err)
	require.Len(t, events, 2)

	err = projections.Apply(ctx, pool, events[1])
	require.ErrorIs(t, err, projections.ErrOutOfOrder, "a hold before its show")
	for range 2 {
		for _, e := range events {
			require.NoError(t, projections.Apply(ctx, pool, e))
		}
	}
	d, err := projections.NewReader(pool).Show(ctx, int64(res.ShowID))
	require.NoError(t, err)
	assert.Equal(t, 1, d.AvailableSeats, "the second pass changed nothing")
	assert.Equal(t, 2, d.Version)
}

// The projector is stopped again and again, between batches and inside them,
// while a workload runs. In the end the tables equal a fresh replay.
func TestProjectorSurvivesKills(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newService(t, pool, 5*time.Millisecond)
	ctx := context.Background()

	done := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, svc, workload.Options{Shows: 5, SeatsPerShow: 40, Holds: 1500, Clients: 6, Seed: 1})
		done <- err
	}()
	r := rand.New(rand.NewPCG(2, 3))
	for running := true; running; {
		stop := startProjector(t, pool)
		select {
		case err := <-done:
			require.NoError(t, err)
			running = false
		case <-time.After(time.Duration(r.IntN(40)) * time.Millisecond):
		}
		stop()
	}
	startProjector(t, pool)
	waitCaughtUp(t, pool)
	report := requireVerified(t, pool)
	assert.Equal(t, countEvents(t, pool), report.Events, "every event was compared")
}

func countEvents(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

// A crash inside a batch: the projector's connection is killed while its
// batch transaction is open, again and again. The batch rolls back with its
// checkpoint; a new projector redoes it, and the tables equal a replay.
func TestProjectorSurvivesConnectionKillsInsideBatches(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	svc := newService(t, pool, time.Hour)
	ctx := context.Background()
	_, err := workload.Run(ctx, svc, workload.Options{Shows: 4, SeatsPerShow: 60, Holds: 600, Clients: 4, Seed: 5})
	require.NoError(t, err)

	// The killer has its own connection: the pool's could be among those killed.
	killer, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer killer.Close(ctx)
	var killed int
	for round := 0; round < 200 && killed < 10; round++ {
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		p := projections.NewProjector(pool, projections.ProjectorConfig{BatchSize: 200, PollInterval: 5 * time.Millisecond}, nil)
		go func() { done <- p.Run(pctx) }()
		// Kill any connection of this database that sits inside a
		// transaction which already wrote (the projector mid-batch).
		var n int
		for range 50 {
			err := killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()
				  AND backend_xid IS NOT NULL`).Scan(&n)
			require.NoError(t, err)
			if n > 0 {
				killed += n
				break
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done // a killed projector returns an error, a cancelled one nil: both are fine here
	}
	require.Positive(t, killed, "the test did kill a projector inside a batch")

	startProjector(t, pool)
	waitCaughtUp(t, pool)
	report := requireVerified(t, pool)
	assert.Equal(t, countEvents(t, pool), report.Events)
	t.Logf("killed %d projector connections inside a batch", killed)
}

func TestVerifyFindsDifferencesAndRebuildRepairs(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newService(t, pool, time.Hour)
	ctx := context.Background()
	stats, err := workload.Run(ctx, svc, workload.Options{Shows: 3, SeatsPerShow: 20, Holds: 200, Clients: 4, Seed: 9})
	require.NoError(t, err)
	// The workload may sell every seat; this show keeps all of its free.
	free, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "free", ShowType: domain.ShowBus,
		StartTime: time.Date(2031, 5, 1, 18, 0, 0, 0, time.UTC), SeatNumbers: []string{"F1", "F2"}, MaxSeatsPerUser: 2}, ledger.Metadata{})
	require.NoError(t, err)
	stop := startProjector(t, pool)
	waitCaughtUp(t, pool)
	stop()
	requireVerified(t, pool)

	_, err = pool.Exec(ctx, `UPDATE seats SET status = CASE status WHEN 'available' THEN 'booked' ELSE 'available' END
		WHERE show_id = $1 AND position = 1`, int64(stats.Shows[0]))
	require.NoError(t, err)
	var deleted string
	require.NoError(t, pool.QueryRow(ctx, `DELETE FROM bookings WHERE id = (SELECT id FROM bookings ORDER BY id LIMIT 1)
		RETURNING id::text`).Scan(&deleted))
	// NULLs count too: a confirmed booking that lost its confirmation time,
	// a booked seat (of another show) that lost its booking.
	var unconfirmed, unbookedShow, unbookedSeat string
	require.NoError(t, pool.QueryRow(ctx, `UPDATE bookings SET confirmed_at = NULL
		WHERE id = (SELECT id FROM bookings WHERE status = 'confirmed' ORDER BY id DESC LIMIT 1) RETURNING id::text`).Scan(&unconfirmed))
	require.NoError(t, pool.QueryRow(ctx, `UPDATE seats SET booking_id = NULL
		WHERE (show_id, position) = (SELECT show_id, position FROM seats WHERE status = 'booked' AND show_id <> $1 LIMIT 1)
		RETURNING format('"show_id":%s', show_id), format('"seat_number":"%s"', seat_number)`, int64(stats.Shows[0])).Scan(&unbookedShow, &unbookedSeat))
	// Values the projector never writes are differences too, not NULLs: the
	// nil UUID, infinity.
	_, err = pool.Exec(ctx, `UPDATE seats SET booking_id = '00000000-0000-0000-0000-000000000000'
		WHERE show_id = $1 AND seat_number = 'F1'`, int64(free.ShowID))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE seats SET locked_until = '-infinity' WHERE show_id = $1 AND seat_number = 'F2'`, int64(free.ShowID))
	require.NoError(t, err)
	// A show's seat cap is compared too: the rebuild restores it.
	_, err = pool.Exec(ctx, `UPDATE shows SET max_seats_per_user = 0 WHERE id = $1`, int64(free.ShowID))
	require.NoError(t, err)
	var infinite string
	require.NoError(t, pool.QueryRow(ctx, `UPDATE bookings SET expired_at = 'infinity'
		WHERE id = (SELECT id FROM bookings WHERE id::text NOT IN ($1, $2) ORDER BY id LIMIT 1) RETURNING id::text`,
		deleted, unconfirmed).Scan(&infinite))
	report, err := projections.Verify(ctx, pool, nil)
	require.NoError(t, err)
	tables := map[string]bool{}
	for _, d := range report.Differences {
		tables[d.Table+" "+d.Kind] = true
	}
	assert.True(t, tables["seats missing"], "%v", report.Differences)
	assert.True(t, tables["seats unexpected"], "%v", report.Differences)
	assert.True(t, tables["bookings missing"], "%v", report.Differences)
	found := func(table, kind string, parts ...string) bool {
		for _, d := range report.Differences {
			if d.Table == table && d.Kind == kind && containsAll(d.Row, parts...) {
				return true
			}
		}
		return false
	}
	assert.True(t, found("bookings", "missing", deleted), "the deleted booking: %v", report.Differences)
	assert.True(t, found("bookings", "unexpected", unconfirmed, `"confirmed_at":null`), "the unconfirmed booking: %v", report.Differences)
	assert.True(t, found("bookings", "missing", unconfirmed, `"status":"confirmed"`), "the unconfirmed booking: %v", report.Differences)
	assert.True(t, found("seats", "unexpected", unbookedShow, unbookedSeat, `"booking_id":null`, `"status":"booked"`), "the unbooked seat: %v", report.Differences)
	freeShow := fmt.Sprintf(`"show_id":%d`, free.ShowID)
	assert.True(t, found("seats", "unexpected", freeShow, `"seat_number":"F1"`, `"booking_id":"00000000-0000-0000-0000-000000000000"`),
		"the seat booked by the nil UUID: %v", report.Differences)
	assert.True(t, found("seats", "unexpected", freeShow, `"seat_number":"F2"`, `"locked_until":"-infinity"`),
		"the seat locked until -infinity: %v", report.Differences)
	assert.True(t, found("bookings", "unexpected", infinite, `"expired_at":"infinity"`), "the booking expired at infinity: %v", report.Differences)
	freeRow := fmt.Sprintf(`"id":%d`, free.ShowID)
	assert.True(t, found("shows", "missing", freeRow, `"max_seats_per_user":2`), "the show that lost its cap: %v", report.Differences)
	assert.True(t, found("shows", "unexpected", freeRow, `"max_seats_per_user":0`), "the show that lost its cap: %v", report.Differences)

	indexes := func() []string {
		rows, err := pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename IN ('shows', 'seats', 'bookings') ORDER BY 1`)
		require.NoError(t, err)
		defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return defs
	}
	before := indexes()
	require.Len(t, before, 8)

	var progressed int
	rs, err := projections.Rebuild(ctx, pool, func(n int) { progressed = n })
	require.NoError(t, err)
	assert.Equal(t, before, indexes(), "the rebuild drops the indexes while it copies and builds them again")
	assert.Equal(t, countEvents(t, pool), report.Events)
	assert.Equal(t, report.Events, rs.Events)
	assert.Equal(t, rs.Events, progressed)
	requireVerified(t, pool)

	// The projector continues after the rebuilt checkpoint without replaying.
	startProjector(t, pool)
	_, err = workload.Run(ctx, svc, workload.Options{Shows: 1, SeatsPerShow: 5, Holds: 20, Clients: 2, Seed: 10})
	require.NoError(t, err)
	waitCaughtUp(t, pool)
	requireVerified(t, pool)
}

// Invariant 3 at scale: a 10,000-booking random workload, projected while it
// runs, equals a fresh replay.
func TestVerifyAfterTenThousandBookings(t *testing.T) {
	if testing.Short() {
		t.Skip("long workload")
	}
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newService(t, pool, 20*time.Millisecond)
	startProjector(t, pool)
	stats, err := workload.Run(context.Background(), svc, workload.Options{Shows: 40, SeatsPerShow: 400, Holds: 10_000, Clients: 8, Seed: 42})
	require.NoError(t, err)
	require.GreaterOrEqual(t, stats.Holds.Load(), int64(10_000))
	waitCaughtUp(t, pool)
	report := requireVerified(t, pool)
	t.Logf("holds %d refused %d confirmed %d cancelled %d expired %d; %d events verified in %s",
		stats.Holds.Load(), stats.Refused.Load(), stats.Confirmed.Load(), stats.Cancelled.Load(), stats.Expired.Load(),
		report.Events, report.Elapsed)
}

// Verify compares a consistent snapshot while writers and the projector
// work: it neither gives up nor reports differences that are only lag.
func TestVerifyWhileBusy(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newService(t, pool, 10*time.Millisecond)
	startProjector(t, pool)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, svc, workload.Options{Shows: 4, SeatsPerShow: 50, Holds: 1500, Clients: 4, Seed: 77})
		done <- err
	}()
	verified := 0
	for running := true; running; {
		select {
		case err := <-done:
			require.NoError(t, err)
			running = false
		default:
		}
		requireVerified(t, pool)
		verified++
	}
	assert.Greater(t, verified, 1, "verify ran while the workload did")
}

// containsAll reports whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
