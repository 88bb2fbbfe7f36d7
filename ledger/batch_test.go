package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
)

func hold(id domain.BookingID, seats ...string) *request {
	return holdBy(id, "0190c6e4-0000-7000-8000-000000000001", seats...)
}

// holdBy is a queued hold of seats for user.
func holdBy(id domain.BookingID, user domain.UserID, seats ...string) *request {
	return &request{
		command: func(now time.Time) domain.Command {
			return domain.LockSeats{BookingID: id, UserID: user, SeatNumbers: seats, HoldTTL: time.Minute, Now: now}
		},
		meta: json.RawMessage(`{}`),
		done: make(chan outcome, 1),
	}
}

// scheduleBus schedules a bus show of seats through svc.
func scheduleBus(t *testing.T, svc *Service, seats ...string) domain.ShowID {
	t.Helper()
	return scheduleCappedBus(t, svc, 0, seats...)
}

// scheduleCappedBus schedules a bus show of seats, at most limit per user.
func scheduleCappedBus(t *testing.T, svc *Service, limit int, seats ...string) domain.ShowID {
	t.Helper()
	res, err := svc.ScheduleShow(context.Background(), ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: seats, MaxSeatsPerUser: limit}, Metadata{})
	require.NoError(t, err)
	return res.ShowID
}

// A batch decides each command on the state the earlier ones leave: a
// later command that wants a seat an earlier one took is refused, the rest
// commit together in one append.
func TestBatchDecidesInOrder(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc, err := New(pool, DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	show := scheduleBus(t, svc, "1", "2", "3")
	e := svc.cache.entry(show)

	batch := []*request{hold("a", "1"), hold("b", "1", "2"), hold("c", "2"), hold("d", "9")}
	e.mu.Lock()
	out := svc.runBatch(ctx, show, e, batch)
	e.mu.Unlock()

	require.NoError(t, out[0].err)
	var unavailable *domain.SeatsUnavailableError
	require.ErrorAs(t, out[1].err, &unavailable)
	assert.Equal(t, []string{"1"}, unavailable.Seats)
	require.NoError(t, out[2].err)
	require.ErrorIs(t, out[3].err, domain.ErrInvalidCommand)
	assert.Equal(t, 2, out[0].res.Version)
	assert.Equal(t, 3, out[2].res.Version)
	require.Len(t, out[0].res.Events, 1)
	require.Len(t, out[2].res.Events, 1)
	assert.Equal(t, out[0].res.Events[0].TransactionID, out[2].res.Events[0].TransactionID, "one append, one transaction")
	assert.Equal(t, 3, out[2].res.Events[0].StreamVersion)

	st, err := svc.Show(ctx, show)
	require.NoError(t, err)
	assert.Equal(t, 1, st.AvailableSeats())
	assert.Equal(t, e.show.Version(), st.Version(), "the cache moved past the batch")
}

// Holds of one user decided in one batch each see the seats the earlier
// ones took: two that fit the cap alone cannot both pass it together.
func TestBatchCountsEarlierHoldsAgainstTheCap(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc, err := New(pool, DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	show := scheduleCappedBus(t, svc, 3, "1", "2", "3", "4", "5", "6")
	e := svc.cache.entry(show)

	const u1, u2 = "0190c6e4-0000-7000-8000-000000000001", "0190c6e4-0000-7000-8000-000000000002"
	batch := []*request{holdBy("a", u1, "1", "2"), holdBy("b", u1, "3", "4"), holdBy("c", u2, "3", "4"), holdBy("d", u1, "5")}
	e.mu.Lock()
	out := svc.runBatch(ctx, show, e, batch)
	e.mu.Unlock()

	require.NoError(t, out[0].err)
	var capped *domain.SeatLimitError
	require.ErrorAs(t, out[1].err, &capped)
	assert.Equal(t, domain.SeatLimitError{Limit: 3, Held: 2, Requested: 2}, *capped)
	require.NoError(t, out[2].err, "another user's allowance is their own")
	require.NoError(t, out[3].err, "a hold that reaches the cap exactly passes")
	assert.Equal(t, out[0].res.Events[0].TransactionID, out[3].res.Events[0].TransactionID, "one append")

	st, err := svc.Show(ctx, show)
	require.NoError(t, err)
	first, ok := st.Booking("a")
	require.True(t, ok)
	live := first.ExpiresAt.Add(-time.Nanosecond) // every hold of the batch was placed at or after a's
	assert.Equal(t, 3, st.SeatsHeldBy(u1, live))
	assert.Equal(t, 2, st.SeatsHeldBy(u2, live))
}

// Concurrent holds on one show share appends: fewer transactions than holds.
func TestConcurrentHoldsAreGroupCommitted(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc, err := New(pool, DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	seats, err := domain.GenerateSeatLabels(domain.ShowBus, 400)
	require.NoError(t, err)
	show := scheduleBus(t, svc, seats...)

	var wg sync.WaitGroup
	for c := range 32 {
		wg.Go(func() {
			for i := c; i < 400; i += 32 {
				_, _, err := svc.Hold(ctx, show, domain.UserID(fmt.Sprintf("0190c6e4-0000-7000-8000-%012d", c)), []string{seats[i]}, Metadata{})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	var events, txs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT transaction_id) FROM events WHERE event_type = 'SeatLocked'`).Scan(&events, &txs))
	assert.Equal(t, 400, events)
	assert.Less(t, txs, events, "holds that arrived together were appended together")
	t.Logf("400 holds in %d appends", txs)
	st, err := svc.Show(ctx, show)
	require.NoError(t, err)
	assert.Zero(t, st.AvailableSeats())
}

// A caller that leads its show's batch returns once its own request is
// answered: requests queued behind it are led by another goroutine, so no
// caller waits for the commands of others while the show stays busy.
func TestALeaderReturnsOnceItsOwnRequestIsAnswered(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc, err := New(pool, DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	show := scheduleBus(t, svc, "1", "2")
	e := svc.cache.entry(show)

	// While the leader's own batch is being appended, another request
	// queues up behind it.
	later := hold("later", "2")
	var queued bool
	svc.onBatch = func(int) {
		if !queued {
			queued = true
			e.qmu.Lock()
			e.queue = append(e.queue, later)
			e.qmu.Unlock()
		}
	}
	var handoff func()
	svc.spawn = func(f func()) { handoff = f }

	_, _, err = svc.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000002", []string{"1"}, Metadata{})
	require.NoError(t, err)
	require.True(t, queued)
	select {
	case out := <-later.done:
		t.Fatalf("the leader ran the request queued after its own before returning: %+v", out)
	default:
	}
	require.NotNil(t, handoff, "the queued request was handed to a new leader")

	handoff()
	out := <-later.done
	require.NoError(t, out.err)
	assert.Equal(t, 3, out.res.Version)
	e.qmu.Lock()
	assert.False(t, e.leading, "the queue is empty and nobody leads")
	e.qmu.Unlock()
}

// A refusal decided on the stream as just read stands, however busy the
// show is afterwards: on a show that moves between every decision and the
// next read, a taken seat is refused as taken, not as a conflict.
func TestARefusalOnTheStreamAsReadStandsOnABusyShow(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	cfg := DefaultConfig()
	cfg.MaxRetries = 3
	a, err := New(pool, cfg)
	require.NoError(t, err)
	b, err := New(pool, DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	seats := make([]string, 20)
	for i := range seats {
		seats[i] = fmt.Sprint(i + 1)
	}
	show := scheduleBus(t, a, seats...)
	_, _, err = a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000001", []string{"1"}, Metadata{})
	require.NoError(t, err)

	// Each time a has decided only refusals, b holds another seat of the
	// show before a reads the stream again.
	next := 1
	a.onRefusals = func() {
		next++
		_, _, err := b.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000002", []string{fmt.Sprint(next)}, Metadata{})
		require.NoError(t, err)
	}
	_, _, err = a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000003", []string{"1"}, Metadata{})
	require.ErrorIs(t, err, domain.ErrSeatsUnavailable, "seat 1 is taken on the stream whenever a reads it")
	assert.Equal(t, 3, next, "decided on a's state in memory, then once on the stream as read")
}

// A refusal that only the time since the read decides is not taken on
// that read alone: a hold pending when the stream was read, expired by the
// time of the decision, may have been confirmed in between by another
// process, and a confirmed booking can be cancelled.
func TestARefusalTheClockDecidedAfterTheReadIsCheckedAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newTwoLedgers(t, "1")
	held, _, err := l.a.Hold(ctx, l.show, "0190c6e4-0000-7000-8000-000000000001", []string{"1"}, Metadata{})
	require.NoError(t, err)
	show, b := l.show, l.b

	// c reads the show with the hold pending; then, before c decides, b
	// confirms it, and c's clock has passed the hold's expiry.
	c := l.afterTheRead(t, func() {
		_, err := b.Confirm(ctx, show, held.ID, Metadata{})
		require.NoError(t, err)
	})
	_, err = c.Cancel(ctx, show, held.ID, Metadata{})
	require.NoError(t, err, "the booking was confirmed, and a confirmed booking can be cancelled")
	booking, err := b.Booking(ctx, show, held.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.StatusCancelled, booking.Status)
}

// The same for the seats a refusal names: a seat whose hold expired after
// the read, confirmed since by another process, is taken at every moment.
func TestTheSeatsARefusalNamesAreThoseOfOneMoment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newTwoLedgers(t, "1", "2")
	a, b, show := l.a, l.b, l.show
	pending, _, err := a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000001", []string{"1"}, Metadata{})
	require.NoError(t, err)
	sold, _, err := a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000001", []string{"2"}, Metadata{})
	require.NoError(t, err)
	_, err = a.Confirm(ctx, show, sold.ID, Metadata{})
	require.NoError(t, err)

	c := l.afterTheRead(t, func() {
		_, err := b.Confirm(ctx, show, pending.ID, Metadata{})
		require.NoError(t, err)
	})
	_, _, err = c.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000003", []string{"1", "2"}, Metadata{})
	var taken *domain.SeatsUnavailableError
	require.ErrorAs(t, err, &taken)
	assert.Equal(t, []string{"1", "2"}, taken.Seats, "both seats are taken at the read and ever after")
}

// twoLedgers is a show on a fresh database, a ledger a whose clock stands
// at t0 and a ledger b on the real clock; holds last a minute.
type twoLedgers struct {
	pool *pgxpool.Pool
	cfg  Config
	t0   time.Time
	a, b *Service
	show domain.ShowID
}

func newTwoLedgers(t *testing.T, seats ...string) *twoLedgers {
	t.Helper()
	l := &twoLedgers{cfg: DefaultConfig(), t0: time.Now().UTC().Truncate(time.Microsecond)}
	l.pool, _ = pgtest.NewDB(t)
	l.cfg.HoldTTL = time.Minute
	var err error
	l.a, err = New(l.pool, l.cfg, WithClock(func() time.Time { return l.t0 }))
	require.NoError(t, err)
	l.b, err = New(l.pool, l.cfg)
	require.NoError(t, err)
	l.show = scheduleBus(t, l.a, seats...)
	return l
}

// afterTheRead is a third ledger whose clock says a second after t0 until
// it has read the show from the stream; the first time it looks at the
// clock after that (to decide), meanwhile runs, and from then on the clock
// says a millisecond after the holds a made expire.
func (l *twoLedgers) afterTheRead(t *testing.T, meanwhile func()) *Service {
	t.Helper()
	var svc *Service
	ran := false
	svc, err := New(l.pool, l.cfg, WithClock(func() time.Time {
		// The clock is read by the show's leader, which holds its entry.
		if e := svc.cache.entry(l.show); e.show == nil || !e.show.Scheduled() {
			return l.t0.Add(time.Second)
		}
		if !ran {
			ran = true
			meanwhile()
		}
		return l.t0.Add(l.cfg.HoldTTL + time.Millisecond)
	}))
	require.NoError(t, err)
	return svc
}

// A refusal decided on a state the stream has since left is not given
// once the retries are spent: the stream might accept the command.
func TestNoRefusalFromAStateTheStreamLeft(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	cfg := DefaultConfig()
	cfg.MaxRetries = 0
	a, err := New(pool, cfg)
	require.NoError(t, err)
	b, err := New(pool, DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	show := scheduleBus(t, a, "1", "2")
	held, _, err := a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000001", []string{"1"}, Metadata{})
	require.NoError(t, err)
	// b frees the seat; a's state still has it held.
	_, err = b.Cancel(ctx, show, held.ID, Metadata{})
	require.NoError(t, err)

	_, _, err = a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000002", []string{"1"}, Metadata{})
	require.ErrorIs(t, err, ErrTooManyConflicts, "not SeatsUnavailable: seat 1 is free on the stream")

	// With the state caught up, the hold is decided on the stream as it is.
	_, _, err = a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000002", []string{"1"}, Metadata{})
	require.NoError(t, err)

	// A refusal of the command itself stands whatever the state: a seat
	// the show does not have is no busier show.
	_, _, err = b.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000003", []string{"2"}, Metadata{})
	require.NoError(t, err) // a's state is behind again
	_, _, err = a.Hold(ctx, show, "0190c6e4-0000-7000-8000-000000000002", []string{"Z9"}, Metadata{})
	require.ErrorIs(t, err, domain.ErrInvalidCommand)
}
