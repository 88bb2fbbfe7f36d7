package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
)

// clock is a settable time source shared by services in a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newService(t *testing.T, db ledger.DB, clk *clock) *ledger.Service {
	t.Helper()
	cfg := ledger.DefaultConfig()
	cfg.HoldTTL = time.Minute
	svc, err := ledger.New(db, cfg, ledger.WithClock(clk.Now))
	require.NoError(t, err)
	return svc
}

func uid(n int) domain.UserID {
	return domain.UserID(fmt.Sprintf("0190c6e4-0000-7000-8000-%012d", n))
}

func seats(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("S%d", i+1)
	}
	return out
}

func schedule(t *testing.T, svc *ledger.Service, clk *clock, n int) domain.ShowID {
	t.Helper()
	return scheduleCapped(t, svc, clk, n, 0)
}

// scheduleCapped schedules a show of n seats S1…Sn with at most limit seats
// per user (0: no cap).
func scheduleCapped(t *testing.T, svc *ledger.Service, clk *clock, n, limit int) domain.ShowID {
	t.Helper()
	res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{
		Name: "Film", ShowType: domain.ShowMovie, StartTime: clk.Now().Add(24 * time.Hour), SeatNumbers: seats(n),
		MaxSeatsPerUser: limit,
	}, ledger.Metadata{UserID: "admin"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Version)
	return res.ShowID
}

// twoProcesses returns two services on one new database, standing for two
// bookingd processes with their own caches, and the clock they share.
func twoProcesses(t *testing.T) (a, b *ledger.Service, clk *clock) {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	clk = &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	return newService(t, pool, clk), newService(t, pool, clk), clk
}

func TestBookingLifecycle(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	clk := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	svc := newService(t, pool, clk)
	ctx := context.Background()
	show := schedule(t, svc, clk, 10)
	user := domain.UserID("0190c6e4-0000-7000-8000-000000000001")

	b, res, err := svc.Hold(ctx, show, user, []string{"S1", "S2"}, ledger.Metadata{UserID: string(user), RequestID: "r1"})
	require.NoError(t, err)
	assert.Equal(t, domain.StatusPending, b.Status)
	assert.Equal(t, clk.Now().Add(time.Minute), b.ExpiresAt)
	assert.Equal(t, 2, res.Version)
	assert.Positive(t, res.Last().GlobalPosition)
	assert.JSONEq(t, `{"user_id": "0190c6e4-0000-7000-8000-000000000001", "request_id": "r1"}`, string(res.Events[0].Metadata))

	found, err := svc.ShowOfBooking(ctx, b.ID)
	require.NoError(t, err)
	assert.Equal(t, show, found)
	_, err = svc.ShowOfBooking(ctx, "nope")
	require.ErrorIs(t, err, domain.ErrBookingNotFound)

	_, _, err = svc.Hold(ctx, show, user, []string{"S2", "S3"}, ledger.Metadata{})
	var unavailable *domain.SeatsUnavailableError
	require.ErrorAs(t, err, &unavailable)
	assert.Equal(t, []string{"S2"}, unavailable.Seats)

	_, err = svc.Confirm(ctx, show, b.ID, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Cancel(ctx, show, b.ID, ledger.Metadata{})
	require.NoError(t, err)

	st, err := svc.Show(ctx, show)
	require.NoError(t, err)
	assert.Equal(t, 10, st.AvailableSeats())
	got, ok := st.Booking(b.ID)
	require.True(t, ok)
	assert.Equal(t, domain.StatusCancelled, got.Status)

	_, _, err = svc.Hold(ctx, 999, user, []string{"S1"}, ledger.Metadata{})
	require.ErrorIs(t, err, domain.ErrShowNotFound)
	_, _, err = svc.Hold(ctx, show, "not-a-uuid", []string{"S1"}, ledger.Metadata{})
	require.ErrorIs(t, err, domain.ErrInvalidCommand)
	// Other spellings of a UUID are stored canonically, as the projections need.
	urn, _, err := svc.Hold(ctx, show, "urn:uuid:0190C6E4-0000-7000-8000-000000000007", []string{"S9"}, ledger.Metadata{})
	require.NoError(t, err)
	assert.Equal(t, domain.UserID("0190c6e4-0000-7000-8000-000000000007"), urn.UserID)
	_, err = svc.Show(ctx, 999)
	require.ErrorIs(t, err, domain.ErrShowNotFound)
}

func TestExpiryRacesConfirmation(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	clk := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	svc := newService(t, pool, clk)
	ctx := context.Background()
	show := schedule(t, svc, clk, 4)

	b, _, err := svc.Hold(ctx, show, uid(1), []string{"S1"}, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Expire(ctx, show, b.ID, ledger.Metadata{})
	require.ErrorIs(t, err, domain.ErrHoldNotExpired)

	clk.Add(time.Minute)
	_, err = svc.Confirm(ctx, show, b.ID, ledger.Metadata{})
	var expired *domain.HoldExpiredError
	require.ErrorAs(t, err, &expired)
	assert.Equal(t, b.ExpiresAt, expired.ExpiresAt)

	_, err = svc.Expire(ctx, show, b.ID, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Expire(ctx, show, b.ID, ledger.Metadata{})
	require.ErrorIs(t, err, domain.ErrBookingNotPending)

	// A new hold may take a seat whose hold ran out even before the sweep.
	b2, _, err := svc.Hold(ctx, show, uid(2), []string{"S2"}, ledger.Metadata{})
	require.NoError(t, err)
	clk.Add(2 * time.Minute)
	b3, res, err := svc.Hold(ctx, show, uid(3), []string{"S2", "S3"}, ledger.Metadata{})
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, domain.TypeBookingExpired, res.Events[0].Type)
	st, err := svc.Show(ctx, show)
	require.NoError(t, err)
	old, _ := st.Booking(b2.ID)
	assert.Equal(t, domain.StatusExpired, old.Status)
	holder, _ := st.SeatHolder("S2")
	assert.Equal(t, b3.ID, holder)
}

// Two services stand for two bookingd processes with their own caches. Each
// refusal and each success must agree with the stream, not with a stale cache.
func TestStaleCacheCatchesUp(t *testing.T) {
	t.Parallel()
	a, b, clk := twoProcesses(t)
	ctx := context.Background()
	show := schedule(t, a, clk, 4)

	_, _, err := a.Hold(ctx, show, uid(1), []string{"S4"}, ledger.Metadata{}) // a caches the show
	require.NoError(t, err)
	held, _, err := b.Hold(ctx, show, uid(2), []string{"S1"}, ledger.Metadata{})
	require.NoError(t, err)

	// a's cache thinks S1 is free: the append conflicts, a catches up and refuses.
	_, _, err = a.Hold(ctx, show, uid(1), []string{"S1"}, ledger.Metadata{})
	var unavailable *domain.SeatsUnavailableError
	require.ErrorAs(t, err, &unavailable)
	assert.Equal(t, []string{"S1"}, unavailable.Seats)

	// b cancels; a's cache thinks S1 is taken, but must not refuse on that.
	_, err = b.Cancel(ctx, show, held.ID, ledger.Metadata{})
	require.NoError(t, err)
	_, _, err = a.Hold(ctx, show, uid(1), []string{"S1"}, ledger.Metadata{})
	require.NoError(t, err)
}

// Two services (two bookingd) book the same few shows at once, so holds
// collide within a show, and appends of different shows share statements
// (group commit across shows) while the other service moves the same
// streams: no seat is ever held by two live bookings, and every
// acknowledged hold is on its show's stream.
func TestConcurrentHoldsNeverDoubleBook(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	clk := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	services := []*ledger.Service{newService(t, pool, clk), newService(t, pool, clk)}
	ctx := context.Background()
	shows := make([]domain.ShowID, 4)
	for i := range shows {
		shows[i] = schedule(t, services[0], clk, 12)
	}

	type acked struct {
		show    domain.ShowID
		booking domain.Booking
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		held   []acked
		refuse atomic.Int64
	)
	for c := range 16 {
		wg.Go(func() {
			svc := services[c%2]
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for range 30 {
				show := shows[r.IntN(len(shows))]
				n := 1 + r.IntN(3)
				want := make([]string, 0, n)
				for _, i := range r.Perm(12)[:n] {
					want = append(want, fmt.Sprintf("S%d", i+1))
				}
				b, _, err := svc.Hold(ctx, show, uid(c), want, ledger.Metadata{})
				switch {
				case err == nil:
					mu.Lock()
					held = append(held, acked{show, b})
					mu.Unlock()
					if r.IntN(2) == 0 {
						_, err := svc.Cancel(ctx, show, b.ID, ledger.Metadata{})
						assert.NoError(t, err)
					}
				case assert.ErrorIs(t, err, domain.ErrSeatsUnavailable):
					refuse.Add(1)
				}
			}
		})
	}
	wg.Wait()

	for _, show := range shows {
		st, err := services[1].Show(ctx, show)
		require.NoError(t, err)
		owner := map[string]domain.BookingID{}
		for _, b := range st.Bookings() {
			if !b.Status.Live() {
				continue
			}
			for _, seat := range b.SeatNumbers {
				prev, dup := owner[seat]
				require.False(t, dup, "show %d: seat %s held by %s and %s", show, seat, prev, b.ID)
				owner[seat] = b.ID
			}
		}
		for _, h := range held {
			if h.show == show {
				_, ok := st.Booking(h.booking.ID)
				assert.True(t, ok, "acknowledged hold %s is on the stream of show %d", h.booking.ID, show)
			}
		}
	}
	assert.Positive(t, refuse.Load(), "the test did make holds collide")
	t.Logf("%d holds acknowledged, %d refused", len(held), refuse.Load())
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, ledger.DefaultConfig().Validate())
	for name, mutate := range map[string]func(*ledger.Config){
		"hold ttl": func(c *ledger.Config) { c.HoldTTL = 0 },
		"retries":  func(c *ledger.Config) { c.MaxRetries = -1 },
		"cache":    func(c *ledger.Config) { c.CachedShows = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := ledger.DefaultConfig()
			mutate(&c)
			require.Error(t, c.Validate())
			_, err := ledger.New(nil, c)
			require.Error(t, err)
		})
	}
}
