package workers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/workers"
)

func newLedger(t *testing.T, pool *pgxpool.Pool, ttl time.Duration, opts ...ledger.Option) *ledger.Service {
	t.Helper()
	cfg := ledger.DefaultConfig()
	cfg.HoldTTL = ttl
	svc, err := ledger.New(pool, cfg, opts...)
	require.NoError(t, err)
	return svc
}

// run starts f in the background until the returned stop is called (also at
// the end of the test).
func run(t *testing.T, f func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			assert.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return stop
}

func projector(pool *pgxpool.Pool) func(context.Context) error {
	return projections.NewProjector(pool, projections.ProjectorConfig{PollInterval: 5 * time.Millisecond}, nil).Run
}

func schedule(t *testing.T, svc *ledger.Service, seats int) domain.ShowID {
	t.Helper()
	labels, err := domain.GenerateSeatLabels(domain.ShowBus, seats)
	require.NoError(t, err)
	res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{Name: "Bus", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(24 * time.Hour), SeatNumbers: labels}, ledger.Metadata{})
	require.NoError(t, err)
	return res.ShowID
}

func user(n int) domain.UserID {
	return domain.UserID(fmt.Sprintf("0190c6e4-0000-7000-8000-%012d", n))
}

func status(t *testing.T, svc *ledger.Service, show domain.ShowID, id domain.BookingID) domain.BookingStatus {
	t.Helper()
	b, err := svc.Booking(context.Background(), show, id)
	require.NoError(t, err)
	return b.Status
}

func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if check() {
			return
		}
	}
	t.Fatalf("%s did not happen within 30s", what)
}

// terminalEvents counts, per booking, the events that ended it.
func terminalEvents(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT data->>'booking_id', count(*) FROM events
		WHERE event_type IN ('BookingConfirmed', 'BookingExpired', 'BookingCancelled') GROUP BY 1`)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func TestPaymentsConfirmHolds(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newLedger(t, pool, time.Minute)
	pay, err := workers.NewPayments(pool, svc, workers.PaymentsConfig{Delay: 200 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	run(t, pay.Run)

	show := schedule(t, svc, 4)
	b, res, err := svc.Hold(context.Background(), show, user(1), []string{"1", "2"}, ledger.Metadata{})
	require.NoError(t, err)
	eventually(t, "the hold is paid", func() bool { return status(t, svc, show, b.ID) == domain.StatusConfirmed })
	paid, err := svc.Booking(context.Background(), show, b.ID)
	require.NoError(t, err)
	assert.False(t, paid.ConfirmedAt.Before(res.Events[0].RecordedAt.Add(200*time.Millisecond)), "not paid before the delay")

	// A hold the client cancels first is left alone.
	c, _, err := svc.Hold(context.Background(), show, user(2), []string{"3"}, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Cancel(context.Background(), show, c.ID, ledger.Metadata{})
	require.NoError(t, err)
	d, _, err := svc.Hold(context.Background(), show, user(3), []string{"4"}, ledger.Metadata{})
	require.NoError(t, err)
	eventually(t, "the later hold is paid", func() bool { return status(t, svc, show, d.ID) == domain.StatusConfirmed })
	assert.Equal(t, domain.StatusCancelled, status(t, svc, show, c.ID))
	for id, n := range terminalEvents(t, pool) {
		assert.Equal(t, 1, n, "booking %s ended once", id)
	}
}

// A crash between the hold and its payment loses nothing: the payment is in
// the queue, committed with the scheduler's checkpoint, and a new worker
// confirms it — once, however often it is delivered.
func TestPaymentSurvivesARestart(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newLedger(t, pool, time.Minute)
	cfg := workers.PaymentsConfig{Delay: 1500 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	first, err := workers.NewPayments(pool, svc, cfg)
	require.NoError(t, err)
	stopFirst := run(t, first.Run)

	show := schedule(t, svc, 2)
	b, _, err := svc.Hold(context.Background(), show, user(1), []string{"1"}, ledger.Metadata{})
	require.NoError(t, err)
	eventually(t, "the payment is queued", func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM watermill_confirm_payment`).Scan(&n))
		return n == 1
	})
	stopFirst() // the process dies before the payment is due
	assert.Equal(t, domain.StatusPending, status(t, svc, show, b.ID))

	second, err := workers.NewPayments(pool, svc, cfg)
	require.NoError(t, err)
	run(t, second.Run)
	eventually(t, "the queued payment is confirmed", func() bool { return status(t, svc, show, b.ID) == domain.StatusConfirmed })
	assert.Equal(t, map[string]int{string(b.ID): 1}, terminalEvents(t, pool))
	var queued int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT last_value FROM watermill_confirm_payment_offset_seq`).Scan(&queued))
	assert.Equal(t, 1, queued, "the restarted scheduler did not queue the hold again")
	eventually(t, "the confirmer removes the paid message", func() bool {
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM watermill_confirm_payment`).Scan(&queued))
		return queued == 0
	})
}

// A backlog of due payments, its worker stopped in the middle of it again
// and again: every payment is made, none dropped with a half-read batch.
func TestPaymentBacklogSurvivesStops(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc := newLedger(t, pool, time.Hour)
	show := schedule(t, svc, 200)
	var ids []domain.BookingID
	for i := range 200 {
		b, _, err := svc.Hold(context.Background(), show, user(i), []string{fmt.Sprint(i + 1)}, ledger.Metadata{})
		require.NoError(t, err)
		ids = append(ids, b.ID)
	}
	cfg := workers.PaymentsConfig{Delay: time.Millisecond, PollInterval: 5 * time.Millisecond}
	confirmed := func() int { return terminalCount(t, pool, "BookingConfirmed") }
	for round := 0; confirmed() < 200 && round < 200; round++ {
		pay, err := workers.NewPayments(pool, svc, cfg)
		require.NoError(t, err)
		stop := run(t, pay.Run)
		before := confirmed()
		for deadline := time.Now().Add(10 * time.Second); confirmed() == before && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		stop() // mid-backlog
	}
	require.Equal(t, 200, confirmed())
	for _, id := range ids {
		assert.Equal(t, domain.StatusConfirmed, status(t, svc, show, id))
	}
}

func terminalCount(t *testing.T, pool *pgxpool.Pool, eventType string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type = $1`, eventType).Scan(&n))
	return n
}

func TestExpiryReleasesSeats(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	svc := newLedger(t, pool, time.Second, ledger.WithClock(now))
	run(t, projector(pool))
	sweeper := workers.NewExpiry(pool, svc, workers.ExpiryConfig{Now: now, IdempotencyTTL: 24 * time.Hour})
	_, err := pool.Exec(context.Background(), `INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)
		VALUES ($1, 'old', '\x00', now() - interval '25 hours'), ($1, 'new', '\x00', now())`, string(user(9)))
	require.NoError(t, err)

	show := schedule(t, svc, 3)
	b, _, err := svc.Hold(context.Background(), show, user(1), []string{"1", "2"}, ledger.Metadata{})
	require.NoError(t, err)
	eventually(t, "the hold is projected", func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM bookings`).Scan(&n))
		return n == 1
	})
	n, err := sweeper.Sweep(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "not due yet")
	var keys []string
	rows, err := pool.Query(context.Background(), `SELECT key FROM idempotency_keys`)
	require.NoError(t, err)
	keys, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"new"}, keys, "answers past their TTL are purged")

	offset.Store(int64(2 * time.Second))
	n, err = sweeper.Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, domain.StatusExpired, status(t, svc, show, b.ID))
	st, err := svc.Show(context.Background(), show)
	require.NoError(t, err)
	assert.Equal(t, 3, st.AvailableSeats())

	// The projection still says pending for a moment; a second sweep must
	// not expire it again.
	n, err = sweeper.Sweep(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, map[string]int{string(b.ID): 1}, terminalEvents(t, pool))
}

// Two bookingd processes sweep at once: every due hold is expired exactly
// once, and the sweeps do not pile on each other.
func TestTwoSweepersExpireEachHoldOnce(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	svc := newLedger(t, pool, time.Minute, ledger.WithClock(now))
	run(t, projector(pool))
	show := schedule(t, svc, 300)
	for i := range 200 {
		_, _, err := svc.Hold(context.Background(), show, user(i), []string{fmt.Sprint(i + 1)}, ledger.Metadata{})
		require.NoError(t, err)
	}
	eventually(t, "the holds are projected", func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM bookings`).Scan(&n))
		return n == 200
	})
	offset.Store(int64(2 * time.Minute))

	// The second process has its own pool and its own ledger cache.
	pool2, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool2.Close)
	svc2 := newLedger(t, pool2, time.Minute, ledger.WithClock(now))
	sweepers := []*workers.Expiry{
		workers.NewExpiry(pool, svc, workers.ExpiryConfig{Now: now, Batch: 20}),
		workers.NewExpiry(pool2, svc2, workers.ExpiryConfig{Now: now, Batch: 20}),
	}
	var wg sync.WaitGroup
	var expired, busy atomic.Int64
	for _, s := range sweepers {
		wg.Go(func() {
			for range 5 {
				n, err := s.Sweep(context.Background())
				if errors.Is(err, workers.ErrSweepBusy) {
					busy.Add(1)
					continue
				}
				assert.NoError(t, err)
				expired.Add(int64(n))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(200), expired.Load())
	ended := terminalEvents(t, pool)
	assert.Len(t, ended, 200)
	for id, n := range ended {
		assert.Equal(t, 1, n, "booking %s expired once", id)
	}
	t.Logf("%d sweeps skipped while the other process swept", busy.Load())
}

// 1,000 holds whose owners pay right around the moment their holds expire,
// while two sweepers run: each booking ends confirmed or expired, never both.
func TestConfirmationsRaceExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 holds")
	}
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	const ttl = 400 * time.Millisecond
	svc := newLedger(t, pool, ttl)
	run(t, projector(pool))
	pool2, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool2.Close)
	svc2 := newLedger(t, pool2, ttl)
	for _, x := range []*workers.Expiry{
		workers.NewExpiry(pool, svc, workers.ExpiryConfig{Interval: 20 * time.Millisecond}),
		workers.NewExpiry(pool2, svc2, workers.ExpiryConfig{Interval: 20 * time.Millisecond}),
	} {
		run(t, x.Run)
	}
	var shows []domain.ShowID
	for range 10 {
		shows = append(shows, schedule(t, svc, 100))
	}

	type hold struct {
		show domain.ShowID
		id   domain.BookingID
	}
	holds := make(chan hold, 1000)
	var wg sync.WaitGroup
	var retried atomic.Int64
	for c := range 10 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for i := range 100 {
				show := shows[c]
				b, _, err := svc.Hold(context.Background(), show, user(c), []string{fmt.Sprint(i + 1)}, ledger.Metadata{})
				if !assert.NoError(t, err) {
					return
				}
				holds <- hold{show, b.ID}
				// Pay somewhere between just before and just after expiry.
				wait := time.Duration(300+r.IntN(150)) * time.Millisecond
				wg.Go(func() {
					time.Sleep(wait)
					// Told to try again (the API's 503 with Retry-After),
					// the owner does, as a client would.
					var err error
					for range 100 {
						_, err = svc2.Confirm(context.Background(), show, b.ID, ledger.Metadata{})
						if !errors.Is(err, ledger.ErrTooManyConflicts) {
							break
						}
						retried.Add(1)
						time.Sleep(time.Millisecond)
					}
					if err != nil && !errors.Is(err, domain.ErrHoldExpired) && !errors.Is(err, domain.ErrBookingNotPending) {
						t.Errorf("confirm %s: %v", b.ID, err)
					}
				})
			}
		})
	}
	wg.Wait()
	close(holds)
	var all []hold
	for h := range holds {
		all = append(all, h)
	}
	require.Len(t, all, 1000)
	eventually(t, "every hold settled", func() bool {
		return len(terminalEvents(t, pool)) == 1000
	})
	outcomes := map[domain.BookingStatus]int{}
	ended := terminalEvents(t, pool)
	for _, h := range all {
		assert.Equal(t, 1, ended[string(h.id)], "booking %s ended exactly once", h.id)
		outcomes[status(t, svc, h.show, h.id)]++
	}
	assert.Equal(t, 1000, outcomes[domain.StatusConfirmed]+outcomes[domain.StatusExpired], "%v", outcomes)
	t.Logf("outcomes: %v; %d confirmations tried again after too many concurrent changes", outcomes, retried.Load())

	report, err := projections.Verify(context.Background(), pool, nil)
	require.NoError(t, err)
	assert.Empty(t, report.Differences)
}
