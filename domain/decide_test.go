package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
)

// The fixture show: eight seats, starting two days after t0. Booking b1
// holds A1 and A2 from t0 for ttl, so it expires at t0+ttl.
const (
	showID = domain.ShowID(42)
	ttl    = 10 * time.Minute
)

var (
	t0         = time.Date(2030, 3, 1, 18, 0, 0, 0, time.UTC)
	showStart  = t0.Add(48 * time.Hour)
	allSeats   = []string{"A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4"}
	b1Expires  = t0.Add(ttl)
	cet        = time.FixedZone("CET", 60*60)
	beforeExp  = t0.Add(5 * time.Minute)
	atExpiry   = b1Expires
	afterExp   = t0.Add(11 * time.Minute)
	afterStart = showStart.Add(time.Hour)
)

func scheduleCmd() domain.ScheduleShow {
	return domain.ScheduleShow{
		ShowID:      showID,
		Name:        "Metropolis",
		ShowType:    domain.ShowMovie,
		StartTime:   showStart,
		SeatNumbers: slices.Clone(allSeats),
		Now:         t0.Add(-time.Hour),
	}
}

func lockB1() domain.LockSeats {
	return domain.LockSeats{BookingID: "b1", UserID: "u1", SeatNumbers: []string{"A1", "A2"}, HoldTTL: ttl, Now: t0}
}

// apply decides each command on s and folds its events in, failing the test
// if any command is refused.
func applyAll(tb testing.TB, s *domain.Show, cmds ...domain.Command) *domain.Show {
	tb.Helper()
	for _, c := range cmds {
		events, err := domain.Decide(s, c)
		require.NoError(tb, err, "fixture command %#v", c)
		for _, e := range events {
			s.Evolve(e)
		}
	}
	return s
}

type stateFunc func(testing.TB) *domain.Show

func unscheduled(testing.TB) *domain.Show { return domain.NewShow() }

func scheduled(tb testing.TB) *domain.Show { return applyAll(tb, domain.NewShow(), scheduleCmd()) }

func pending(tb testing.TB) *domain.Show { return applyAll(tb, scheduled(tb), lockB1()) }

func confirmed(tb testing.TB) *domain.Show {
	return applyAll(tb, pending(tb), domain.ConfirmBooking{BookingID: "b1", Now: t0.Add(time.Minute)})
}

func expired(tb testing.TB) *domain.Show {
	return applyAll(tb, pending(tb), domain.ExpireBooking{BookingID: "b1", Now: atExpiry})
}

func cancelled(tb testing.TB) *domain.Show {
	return applyAll(tb, pending(tb), domain.CancelBooking{BookingID: "b1", Now: t0.Add(time.Minute)})
}

func cancelledAfterConfirm(tb testing.TB) *domain.Show {
	return applyAll(tb, confirmed(tb), domain.CancelBooking{BookingID: "b1", Now: t0.Add(2 * time.Minute)})
}

// snapshot is everything observable about a show, for comparing states.
type snapshot struct {
	ID        domain.ShowID
	Name      string
	Type      domain.ShowType
	StartTime time.Time
	MaxSeats  int // per user
	Version   int
	Seats     []domain.Seat
	Available int
	Bookings  []domain.Booking
}

func snapshotOf(s *domain.Show) snapshot {
	bs := s.Bookings()
	slices.SortFunc(bs, func(a, b domain.Booking) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return snapshot{
		ID:        s.ID(),
		Name:      s.Name(),
		Type:      s.Type(),
		StartTime: s.StartTime(),
		MaxSeats:  s.MaxSeatsPerUser(),
		Version:   s.Version(),
		Seats:     s.SeatMap(),
		Available: s.AvailableSeats(),
		Bookings:  bs,
	}
}

type errCheck func(t *testing.T, err error)

// is expects a plain sentinel.
func errIs(sentinel error) errCheck {
	return func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, sentinel)
	}
}

// as expects the sentinel and a typed error equal to want.
func errAs[E error](sentinel error, want E) errCheck {
	return func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, sentinel)
		var got E
		require.ErrorAs(t, err, &got)
		assert.Equal(t, want, got)
	}
}

// invalid expects an InvalidCommandError about field.
func errInvalid(field string) errCheck {
	return func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, domain.ErrInvalidCommand)
		var got *domain.InvalidCommandError
		require.ErrorAs(t, err, &got)
		assert.Equal(t, field, got.Field)
		assert.NotEmpty(t, got.Reason)
		assert.Contains(t, got.Error(), field)
	}
}

type decideCase struct {
	name  string
	state stateFunc
	cmd   domain.Command
	want  []domain.Event // when err is nil
	err   errCheck
}

func runDecide(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.state(t)
			before := snapshotOf(s)

			events, err := domain.Decide(s, tc.cmd)

			assert.Equal(t, before, snapshotOf(s), "Decide modified the state")
			if tc.err != nil {
				require.Error(t, err)
				assert.Nil(t, events)
				tc.err(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, events)
			for _, e := range events {
				s.Evolve(e)
			}
			assert.Equal(t, before.Version+len(events), s.Version())
		})
	}
}

func TestDecideScheduleShow(t *testing.T) {
	t.Parallel()
	valid := scheduleCmd()
	with := func(f func(*domain.ScheduleShow)) domain.ScheduleShow {
		c := scheduleCmd()
		f(&c)
		return c
	}
	labels := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "S" + strconv.Itoa(i)
		}
		return out
	}
	runDecide(t, []decideCase{
		{
			name:  "unscheduled show is scheduled",
			state: unscheduled,
			cmd:   valid,
			want: []domain.Event{domain.ShowScheduled{
				ShowID: showID, Name: "Metropolis", ShowType: domain.ShowMovie, StartTime: showStart, SeatNumbers: allSeats,
			}},
		},
		{
			name:  "start time is stored in UTC",
			state: unscheduled,
			cmd:   with(func(c *domain.ScheduleShow) { c.StartTime = showStart.In(cet); c.ShowType = domain.ShowBus }),
			want: []domain.Event{domain.ShowScheduled{
				ShowID: showID, Name: "Metropolis", ShowType: domain.ShowBus, StartTime: showStart, SeatNumbers: allSeats,
			}},
		},
		{
			name:  "doctor show with one seat and a 200-byte name",
			state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) {
				c.ShowType, c.SeatNumbers, c.Name = domain.ShowDoctor, []string{"09:00"}, strings.Repeat("n", domain.MaxNameBytes)
			}),
			want: []domain.Event{domain.ShowScheduled{
				ShowID: showID, Name: strings.Repeat("n", domain.MaxNameBytes), ShowType: domain.ShowDoctor, StartTime: showStart, SeatNumbers: []string{"09:00"},
			}},
		},
		{
			name:  "seats per user are capped up to the largest show",
			state: unscheduled,
			cmd:   with(func(c *domain.ScheduleShow) { c.MaxSeatsPerUser = domain.MaxSeatsPerShow }),
			want: []domain.Event{domain.ShowScheduled{
				ShowID: showID, Name: "Metropolis", ShowType: domain.ShowMovie, StartTime: showStart, SeatNumbers: allSeats,
				MaxSeatsPerUser: domain.MaxSeatsPerShow,
			}},
		},
		{
			name: "negative seats per user", state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) { c.MaxSeatsPerUser = -1 }), err: errInvalid("max_seats_per_user"),
		},
		{
			name: "seats per user above the largest show", state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) { c.MaxSeatsPerUser = domain.MaxSeatsPerShow + 1 }), err: errInvalid("max_seats_per_user"),
		},
		{name: "scheduled show", state: scheduled, cmd: valid, err: errIs(domain.ErrShowExists)},
		{name: "show with bookings", state: pending, cmd: valid, err: errIs(domain.ErrShowExists)},
		{name: "zero show id", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.ShowID = 0 }), err: errInvalid("show_id")},
		{name: "negative show id", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.ShowID = -1 }), err: errInvalid("show_id")},
		{name: "empty name", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.Name = "" }), err: errInvalid("name")},
		{
			name: "name over 200 bytes", state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) { c.Name = strings.Repeat("n", domain.MaxNameBytes+1) }), err: errInvalid("name"),
		},
		{name: "unknown show type", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.ShowType = "concert" }), err: errInvalid("show_type")},
		{name: "empty show type", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.ShowType = "" }), err: errInvalid("show_type")},
		{name: "zero start time", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.StartTime = time.Time{} }), err: errInvalid("start_time")},
		{name: "no seats", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.SeatNumbers = nil }), err: errInvalid("seat_numbers")},
		{
			name: "too many seats", state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) { c.SeatNumbers = labels(domain.MaxSeatsPerShow + 1) }), err: errInvalid("seat_numbers"),
		},
		{name: "empty seat label", state: unscheduled, cmd: with(func(c *domain.ScheduleShow) { c.SeatNumbers = []string{"A1", ""} }), err: errInvalid("seat_numbers")},
		{
			name: "seat label over 32 bytes", state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) {
				c.SeatNumbers = []string{strings.Repeat("x", domain.MaxSeatLabelBytes+1)}
			}), err: errInvalid("seat_numbers"),
		},
		{
			name: "duplicate seats are each listed once", state: unscheduled,
			cmd: with(func(c *domain.ScheduleShow) { c.SeatNumbers = []string{"A1", "B2", "A1", "C3", "B2", "A1"} }),
			err: errAs(domain.ErrInvalidCommand, &domain.DuplicateSeatsError{Seats: []string{"A1", "B2"}}),
		},
	})
}

func TestDecideScheduleShowAtLimits(t *testing.T) {
	t.Parallel()
	seats := make([]string, domain.MaxSeatsPerShow)
	for i := range seats {
		seats[i] = fmt.Sprintf("%0*d", domain.MaxSeatLabelBytes, i)
	}
	seats[0] = strings.Repeat("z", domain.MaxSeatLabelBytes)
	c := scheduleCmd()
	c.SeatNumbers = seats
	events, err := domain.Decide(domain.NewShow(), c)
	require.NoError(t, err)
	require.Len(t, events, 1)
	s := domain.Fold(events)
	assert.Equal(t, domain.MaxSeatsPerShow, s.AvailableSeats())
	assert.Equal(t, seats, s.SeatNumbers())
}

func TestDecideCopiesCommandSlices(t *testing.T) {
	t.Parallel()
	sc := scheduleCmd()
	events, err := domain.Decide(domain.NewShow(), sc)
	require.NoError(t, err)
	sc.SeatNumbers[0] = "ZZ"
	assert.Equal(t, allSeats, events[0].(domain.ShowScheduled).SeatNumbers)

	lc := lockB1()
	events, err = domain.Decide(scheduled(t), lc)
	require.NoError(t, err)
	lc.SeatNumbers[0] = "ZZ"
	assert.Equal(t, []string{"A1", "A2"}, events[0].(domain.SeatLocked).SeatNumbers)
}

func TestDecideLockSeats(t *testing.T) {
	t.Parallel()
	lock := func(id domain.BookingID, now time.Time, seats ...string) domain.LockSeats {
		return domain.LockSeats{BookingID: id, UserID: "u2", SeatNumbers: seats, HoldTTL: ttl, Now: now}
	}
	with := func(f func(*domain.LockSeats)) domain.LockSeats {
		c := lock("b2", beforeExp, "A3", "A4")
		f(&c)
		return c
	}
	locked := func(id domain.BookingID, now time.Time, seats ...string) domain.SeatLocked {
		return domain.SeatLocked{BookingID: id, UserID: "u2", SeatNumbers: seats, ExpiresAt: now.Add(ttl)}
	}
	// b3 holds A3 from t0+1m with a 2-minute hold: it expires before b1.
	twoStale := func(tb testing.TB) *domain.Show {
		return applyAll(tb, pending(tb), domain.LockSeats{
			BookingID: "b3", UserID: "u3", SeatNumbers: []string{"A3"}, HoldTTL: 2 * time.Minute, Now: t0.Add(time.Minute),
		})
	}
	// b4 holds B1 from t0+9m: still live when b1 has expired.
	staleAndLive := func(tb testing.TB) *domain.Show {
		return applyAll(tb, pending(tb), domain.LockSeats{
			BookingID: "b4", UserID: "u4", SeatNumbers: []string{"B1"}, HoldTTL: ttl, Now: t0.Add(9 * time.Minute),
		})
	}
	hundred := make([]string, domain.MaxSeatsPerHold+1)
	for i := range hundred {
		hundred[i] = "X" + strconv.Itoa(i)
	}

	runDecide(t, []decideCase{
		{name: "unscheduled show", state: unscheduled, cmd: lock("b2", beforeExp, "A1"), err: errIs(domain.ErrShowNotFound)},
		{
			name: "scheduled show: one SeatLocked for the whole hold", state: scheduled,
			cmd:  lock("b2", beforeExp, "B4", "A3", "B1"),
			want: []domain.Event{locked("b2", beforeExp, "B4", "A3", "B1")},
		},
		{
			name: "expires_at is Now+HoldTTL in UTC", state: scheduled,
			cmd: with(func(c *domain.LockSeats) { c.Now = beforeExp.In(cet); c.HoldTTL = 90 * time.Second }),
			want: []domain.Event{domain.SeatLocked{
				BookingID: "b2", UserID: "u2", SeatNumbers: []string{"A3", "A4"}, ExpiresAt: beforeExp.Add(90 * time.Second),
			}},
		},
		{
			name: "hold may run past the show start", state: scheduled,
			cmd:  lock("b2", showStart.Add(-time.Minute), "A1"),
			want: []domain.Event{locked("b2", showStart.Add(-time.Minute), "A1")},
		},
		{
			name: "at show start", state: scheduled, cmd: lock("b2", showStart, "A1"),
			err: errAs(domain.ErrShowStarted, &domain.ShowStartedError{ShowID: showID, StartTime: showStart}),
		},
		{
			name: "after show start", state: pending, cmd: lock("b2", afterStart, "A3"),
			err: errAs(domain.ErrShowStarted, &domain.ShowStartedError{ShowID: showID, StartTime: showStart}),
		},
		{name: "empty booking id", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.BookingID = "" }), err: errInvalid("booking_id")},
		{name: "empty user id", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.UserID = "" }), err: errInvalid("user_id")},
		{name: "no seats", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.SeatNumbers = []string{} }), err: errInvalid("seat_numbers")},
		{name: "over 100 seats", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.SeatNumbers = hundred }), err: errInvalid("seat_numbers")},
		{name: "zero hold ttl", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.HoldTTL = 0 }), err: errInvalid("hold_ttl")},
		{name: "negative hold ttl", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.HoldTTL = -time.Second }), err: errInvalid("hold_ttl")},
		{name: "empty seat label", state: scheduled, cmd: with(func(c *domain.LockSeats) { c.SeatNumbers = []string{"A3", ""} }), err: errInvalid("seat_numbers")},
		{name: "booking id of a pending booking", state: pending, cmd: lock("b1", beforeExp, "A3"), err: errInvalid("booking_id")},
		{name: "booking id of a confirmed booking", state: confirmed, cmd: lock("b1", beforeExp, "A3"), err: errInvalid("booking_id")},
		{name: "booking id of an expired booking", state: expired, cmd: lock("b1", afterExp, "A1"), err: errInvalid("booking_id")},
		{name: "booking id of a cancelled booking", state: cancelled, cmd: lock("b1", beforeExp, "A1"), err: errInvalid("booking_id")},
		{
			name: "duplicate seats", state: scheduled, cmd: lock("b2", beforeExp, "A3", "A4", "A3", "A3"),
			err: errAs(domain.ErrInvalidCommand, &domain.DuplicateSeatsError{Seats: []string{"A3"}}),
		},
		{
			name: "unknown seats", state: scheduled, cmd: lock("b2", beforeExp, "Z9", "A3", "Z8"),
			err: errAs(domain.ErrInvalidCommand, &domain.UnknownSeatsError{Seats: []string{"Z9", "Z8"}}),
		},
		{
			name: "unknown seats win over taken ones", state: pending, cmd: lock("b2", beforeExp, "A1", "Z9"),
			err: errAs(domain.ErrInvalidCommand, &domain.UnknownSeatsError{Seats: []string{"Z9"}}),
		},
		{
			name: "pending before expires_at: free seats", state: pending,
			cmd:  lock("b2", beforeExp, "A3", "A4"),
			want: []domain.Event{locked("b2", beforeExp, "A3", "A4")},
		},
		{
			name: "pending before expires_at: exactly the taken seats", state: pending,
			cmd: lock("b2", beforeExp, "A3", "A2", "B1", "A1"),
			err: errAs(domain.ErrSeatsUnavailable, &domain.SeatsUnavailableError{Seats: []string{"A2", "A1"}}),
		},
		{
			name: "pending one instant before expires_at", state: pending,
			cmd: lock("b2", atExpiry.Add(-time.Nanosecond), "A2"),
			err: errAs(domain.ErrSeatsUnavailable, &domain.SeatsUnavailableError{Seats: []string{"A2"}}),
		},
		{
			name: "pending at expires_at: stale hold expires first", state: pending,
			cmd: lock("b2", atExpiry, "A2", "A3"),
			want: []domain.Event{
				domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}},
				locked("b2", atExpiry, "A2", "A3"),
			},
		},
		{
			name: "pending after expires_at: stale hold expires first", state: pending,
			cmd: lock("b2", afterExp, "A1", "A2"),
			want: []domain.Event{
				domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}},
				locked("b2", afterExp, "A1", "A2"),
			},
		},
		{
			name: "pending after expires_at: hold on other seats leaves it alone", state: pending,
			cmd:  lock("b2", afterExp, "B1"),
			want: []domain.Event{locked("b2", afterExp, "B1")},
		},
		{
			name: "two stale holds expire once each, in request order", state: twoStale,
			cmd: lock("b2", afterExp, "A3", "A1", "A2"),
			want: []domain.Event{
				domain.BookingExpired{BookingID: "b3", SeatNumbers: []string{"A3"}},
				domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}},
				locked("b2", afterExp, "A3", "A1", "A2"),
			},
		},
		{
			name: "stale hold next to a live one: nothing is expired", state: staleAndLive,
			cmd: lock("b2", afterExp, "A1", "B1"),
			err: errAs(domain.ErrSeatsUnavailable, &domain.SeatsUnavailableError{Seats: []string{"B1"}}),
		},
		{
			name: "confirmed before expires_at", state: confirmed, cmd: lock("b2", beforeExp, "A4", "A1"),
			err: errAs(domain.ErrSeatsUnavailable, &domain.SeatsUnavailableError{Seats: []string{"A1"}}),
		},
		{
			name: "confirmed after expires_at is never stale", state: confirmed, cmd: lock("b2", afterExp, "A2"),
			err: errAs(domain.ErrSeatsUnavailable, &domain.SeatsUnavailableError{Seats: []string{"A2"}}),
		},
		{
			name: "expired booking's seats are free", state: expired,
			cmd:  lock("b2", afterExp, "A1", "A2"),
			want: []domain.Event{locked("b2", afterExp, "A1", "A2")},
		},
		{
			name: "cancelled booking's seats are free", state: cancelled,
			cmd:  lock("b2", beforeExp, "A2", "A1"),
			want: []domain.Event{locked("b2", beforeExp, "A2", "A1")},
		},
		{
			name: "cancelled confirmed booking's seats are free", state: cancelledAfterConfirm,
			cmd:  lock("b2", beforeExp, "A1"),
			want: []domain.Event{locked("b2", beforeExp, "A1")},
		},
	})
}

func TestDecideConfirmBooking(t *testing.T) {
	t.Parallel()
	confirm := func(id domain.BookingID, now time.Time) domain.ConfirmBooking {
		return domain.ConfirmBooking{BookingID: id, Now: now}
	}
	runDecide(t, []decideCase{
		{name: "unscheduled show", state: unscheduled, cmd: confirm("b1", beforeExp), err: errIs(domain.ErrShowNotFound)},
		{
			name: "unknown booking", state: scheduled, cmd: confirm("b9", beforeExp),
			err: errAs(domain.ErrBookingNotFound, &domain.BookingNotFoundError{BookingID: "b9"}),
		},
		{
			name: "unknown booking next to others", state: pending, cmd: confirm("b9", beforeExp),
			err: errAs(domain.ErrBookingNotFound, &domain.BookingNotFoundError{BookingID: "b9"}),
		},
		{
			name: "pending before expires_at", state: pending, cmd: confirm("b1", beforeExp.In(cet)),
			want: []domain.Event{domain.BookingConfirmed{BookingID: "b1", ConfirmedAt: beforeExp}},
		},
		{
			name: "pending one instant before expires_at", state: pending, cmd: confirm("b1", atExpiry.Add(-time.Nanosecond)),
			want: []domain.Event{domain.BookingConfirmed{BookingID: "b1", ConfirmedAt: atExpiry.Add(-time.Nanosecond)}},
		},
		{
			name: "pending at expires_at", state: pending, cmd: confirm("b1", atExpiry),
			err: errAs(domain.ErrHoldExpired, &domain.HoldExpiredError{BookingID: "b1", ExpiresAt: b1Expires}),
		},
		{
			name: "pending after expires_at", state: pending, cmd: confirm("b1", afterExp),
			err: errAs(domain.ErrHoldExpired, &domain.HoldExpiredError{BookingID: "b1", ExpiresAt: b1Expires}),
		},
		{
			name: "confirmed before show start", state: confirmed, cmd: confirm("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusConfirmed}),
		},
		{
			name: "confirmed after show start", state: confirmed, cmd: confirm("b1", afterStart),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusConfirmed}),
		},
		{
			name: "expired", state: expired, cmd: confirm("b1", afterExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusExpired}),
		},
		{
			name: "expired, even at a time before its expires_at", state: expired, cmd: confirm("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusExpired}),
		},
		{
			name: "cancelled", state: cancelled, cmd: confirm("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusCancelled}),
		},
		{
			name: "cancelled after confirmation", state: cancelledAfterConfirm, cmd: confirm("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusCancelled}),
		},
		{
			// A long hold placed just before the start cannot be paid after it.
			name: "pending hold still running when the show starts",
			state: func(tb testing.TB) *domain.Show {
				l := lockB1()
				l.HoldTTL, l.Now = 72*time.Hour, showStart.Add(-time.Minute)
				return applyAll(tb, scheduled(tb), l)
			},
			cmd: confirm("b1", showStart),
			err: errAs(domain.ErrShowStarted, &domain.ShowStartedError{ShowID: showID, StartTime: showStart}),
		},
	})
}

func TestDecideExpireBooking(t *testing.T) {
	t.Parallel()
	expire := func(id domain.BookingID, now time.Time) domain.ExpireBooking {
		return domain.ExpireBooking{BookingID: id, Now: now}
	}
	b1Expired := []domain.Event{domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}}}
	runDecide(t, []decideCase{
		{name: "unscheduled show", state: unscheduled, cmd: expire("b1", afterExp), err: errIs(domain.ErrShowNotFound)},
		{
			name: "unknown booking", state: pending, cmd: expire("b9", afterExp),
			err: errAs(domain.ErrBookingNotFound, &domain.BookingNotFoundError{BookingID: "b9"}),
		},
		{
			name: "pending before expires_at", state: pending, cmd: expire("b1", beforeExp),
			err: errAs(domain.ErrHoldNotExpired, &domain.HoldNotExpiredError{BookingID: "b1", ExpiresAt: b1Expires}),
		},
		{
			name: "pending one instant before expires_at", state: pending, cmd: expire("b1", atExpiry.Add(-time.Nanosecond)),
			err: errAs(domain.ErrHoldNotExpired, &domain.HoldNotExpiredError{BookingID: "b1", ExpiresAt: b1Expires}),
		},
		{name: "pending at expires_at", state: pending, cmd: expire("b1", atExpiry), want: b1Expired},
		{name: "pending after expires_at", state: pending, cmd: expire("b1", afterExp), want: b1Expired},
		{name: "pending after show start", state: pending, cmd: expire("b1", afterStart), want: b1Expired},
		{
			name: "confirmed after expires_at", state: confirmed, cmd: expire("b1", afterExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusConfirmed}),
		},
		{
			name: "confirmed after show start", state: confirmed, cmd: expire("b1", afterStart),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusConfirmed}),
		},
		{
			name: "expired", state: expired, cmd: expire("b1", afterExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusExpired}),
		},
		{
			name: "cancelled", state: cancelled, cmd: expire("b1", afterExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusCancelled}),
		},
	})
}

func TestDecideCancelBooking(t *testing.T) {
	t.Parallel()
	cancel := func(id domain.BookingID, now time.Time) domain.CancelBooking {
		return domain.CancelBooking{BookingID: id, Now: now}
	}
	b1Cancelled := []domain.Event{domain.BookingCancelled{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}}}
	started := errAs(domain.ErrShowStarted, &domain.ShowStartedError{ShowID: showID, StartTime: showStart})
	runDecide(t, []decideCase{
		{name: "unscheduled show", state: unscheduled, cmd: cancel("b1", beforeExp), err: errIs(domain.ErrShowNotFound)},
		{
			name: "unknown booking", state: confirmed, cmd: cancel("b9", beforeExp),
			err: errAs(domain.ErrBookingNotFound, &domain.BookingNotFoundError{BookingID: "b9"}),
		},
		{name: "pending before expires_at", state: pending, cmd: cancel("b1", beforeExp), want: b1Cancelled},
		{
			name: "pending at expires_at", state: pending, cmd: cancel("b1", atExpiry),
			err: errAs(domain.ErrHoldExpired, &domain.HoldExpiredError{BookingID: "b1", ExpiresAt: b1Expires}),
		},
		{
			name: "pending after expires_at", state: pending, cmd: cancel("b1", afterExp),
			err: errAs(domain.ErrHoldExpired, &domain.HoldExpiredError{BookingID: "b1", ExpiresAt: b1Expires}),
		},
		{name: "confirmed before expires_at", state: confirmed, cmd: cancel("b1", beforeExp), want: b1Cancelled},
		{name: "confirmed after expires_at, before show start", state: confirmed, cmd: cancel("b1", showStart.Add(-time.Nanosecond)), want: b1Cancelled},
		{name: "confirmed at show start", state: confirmed, cmd: cancel("b1", showStart), err: started},
		{name: "confirmed after show start", state: confirmed, cmd: cancel("b1", afterStart), err: started},
		{
			name: "expired", state: expired, cmd: cancel("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusExpired}),
		},
		{
			name: "cancelled", state: cancelled, cmd: cancel("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusCancelled}),
		},
		{
			name: "cancelled after confirmation", state: cancelledAfterConfirm, cmd: cancel("b1", beforeExp),
			err: errAs(domain.ErrBookingNotPending, &domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusCancelled}),
		},
	})
}

func TestDecideNilCommand(t *testing.T) {
	t.Parallel()
	runDecide(t, []decideCase{
		{name: "unscheduled show", state: unscheduled, cmd: nil, err: errIs(domain.ErrShowNotFound)},
		{name: "scheduled show", state: scheduled, cmd: nil, err: errInvalid("command")},
	})
}

func TestEvolveAdvancesVersionByOnePerEvent(t *testing.T) {
	t.Parallel()
	events := []domain.Event{
		domain.ShowScheduled{ShowID: showID, Name: "n", ShowType: domain.ShowBus, StartTime: showStart, SeatNumbers: allSeats},
		domain.SeatLocked{BookingID: "b1", UserID: "u1", SeatNumbers: []string{"A1"}, ExpiresAt: b1Expires},
		domain.SeatLocked{BookingID: "b2", UserID: "u1", SeatNumbers: []string{"A2", "A3"}, ExpiresAt: b1Expires},
		domain.BookingConfirmed{BookingID: "b1", ConfirmedAt: beforeExp},
		domain.BookingExpired{BookingID: "b2", SeatNumbers: []string{"A2", "A3"}},
		domain.BookingCancelled{BookingID: "b1", SeatNumbers: []string{"A1"}},
		// Events for a booking the show does not know still take a version:
		// the version counts the stream, not the changes.
		domain.BookingConfirmed{BookingID: "nope", ConfirmedAt: beforeExp},
		domain.BookingExpired{BookingID: "nope"},
		domain.BookingCancelled{BookingID: "nope"},
	}
	s := domain.NewShow()
	require.Equal(t, 0, s.Version())
	require.False(t, s.Scheduled())
	for i, e := range events {
		s.Evolve(e)
		assert.Equal(t, i+1, s.Version(), "after %s", e.EventType())
		assert.True(t, s.Scheduled())
	}
	assert.Equal(t, snapshotOf(s), snapshotOf(domain.Fold(events)))
	assert.Equal(t, len(allSeats), s.AvailableSeats())
}

func TestShowAccessors(t *testing.T) {
	t.Parallel()
	s := domain.NewShow()
	assert.Equal(t, domain.ShowID(0), s.ID())
	assert.False(t, s.Scheduled())
	assert.Empty(t, s.SeatMap())
	assert.Empty(t, s.Bookings())
	assert.Equal(t, 0, s.AvailableSeats())

	c := scheduleCmd()
	c.StartTime = showStart.In(cet)
	s = applyAll(t, s, c)
	assert.Equal(t, showID, s.ID())
	assert.Equal(t, "Metropolis", s.Name())
	assert.Equal(t, domain.ShowMovie, s.Type())
	assert.True(t, showStart.Equal(s.StartTime()))
	assert.Equal(t, time.UTC, s.StartTime().Location())
	assert.True(t, s.Scheduled())
	assert.Equal(t, 1, s.Version())

	seats := s.SeatNumbers()
	assert.Equal(t, allSeats, seats)
	seats[0] = "ZZ"
	assert.Equal(t, allSeats, s.SeatNumbers(), "SeatNumbers must return a copy")

	s = applyAll(t, s, lockB1())
	b, ok := s.Booking("b1")
	require.True(t, ok)
	b.SeatNumbers[0] = "ZZ"
	b, _ = s.Booking("b1")
	assert.Equal(t, []string{"A1", "A2"}, b.SeatNumbers, "Booking must return a copy")
	bs := s.Bookings()
	require.Len(t, bs, 1)
	bs[0].SeatNumbers[0] = "ZZ"
	b, _ = s.Booking("b1")
	assert.Equal(t, []string{"A1", "A2"}, b.SeatNumbers, "Bookings must return copies")

	_, ok = s.Booking("b9")
	assert.False(t, ok)
	_, ok = s.SeatHolder("A3")
	assert.False(t, ok)
	_, ok = s.SeatHolder("Z9")
	assert.False(t, ok)
}

func TestSeatMapFollowsBookings(t *testing.T) {
	t.Parallel()
	const (
		av = domain.SeatStatusAvailable
		lk = domain.SeatStatusLocked
		bk = domain.SeatStatusBooked
	)
	type seatWant struct {
		status domain.SeatStatus
		by     domain.BookingID
	}
	s := scheduled(t)
	check := func(step string, avail int, want map[string]seatWant, bookings map[domain.BookingID]domain.Booking) {
		t.Helper()
		seats := s.SeatMap()
		require.Len(t, seats, len(allSeats), step)
		for i, seat := range seats {
			assert.Equal(t, allSeats[i], seat.Number, "%s: seat order", step)
			w, ok := want[seat.Number]
			if !ok {
				w = seatWant{status: av}
			}
			assert.Equal(t, w.status, seat.Status, "%s: seat %s", step, seat.Number)
			assert.Equal(t, w.by, seat.BookingID, "%s: seat %s", step, seat.Number)
			holder, held := s.SeatHolder(seat.Number)
			assert.Equal(t, w.by != "", held, "%s: SeatHolder(%s)", step, seat.Number)
			assert.Equal(t, w.by, holder, "%s: SeatHolder(%s)", step, seat.Number)
		}
		assert.Equal(t, avail, s.AvailableSeats(), step)
		got := map[domain.BookingID]domain.Booking{}
		for _, b := range s.Bookings() {
			got[b.ID] = b
		}
		assert.Equal(t, bookings, got, step)
	}
	check("scheduled", 8, nil, map[domain.BookingID]domain.Booking{})

	s = applyAll(t, s, lockB1())
	b1 := domain.Booking{ID: "b1", UserID: "u1", SeatNumbers: []string{"A1", "A2"}, Status: domain.StatusPending, ExpiresAt: b1Expires}
	check("b1 locked", 6, map[string]seatWant{"A1": {lk, "b1"}, "A2": {lk, "b1"}},
		map[domain.BookingID]domain.Booking{"b1": b1})

	s = applyAll(t, s, domain.LockSeats{BookingID: "b2", UserID: "u2", SeatNumbers: []string{"B4", "A3"}, HoldTTL: time.Minute, Now: t0})
	b2 := domain.Booking{ID: "b2", UserID: "u2", SeatNumbers: []string{"B4", "A3"}, Status: domain.StatusPending, ExpiresAt: t0.Add(time.Minute)}
	check("b2 locked", 4, map[string]seatWant{"A1": {lk, "b1"}, "A2": {lk, "b1"}, "A3": {lk, "b2"}, "B4": {lk, "b2"}},
		map[domain.BookingID]domain.Booking{"b1": b1, "b2": b2})

	s = applyAll(t, s, domain.ConfirmBooking{BookingID: "b1", Now: t0.Add(30 * time.Second)})
	b1.Status, b1.ConfirmedAt = domain.StatusConfirmed, t0.Add(30*time.Second)
	// b2's hold has run out, but the map reflects the stream, not the clock.
	check("b1 confirmed", 4, map[string]seatWant{"A1": {bk, "b1"}, "A2": {bk, "b1"}, "A3": {lk, "b2"}, "B4": {lk, "b2"}},
		map[domain.BookingID]domain.Booking{"b1": b1, "b2": b2})

	s = applyAll(t, s, domain.LockSeats{BookingID: "b3", UserID: "u3", SeatNumbers: []string{"A3", "A4"}, HoldTTL: ttl, Now: t0.Add(2 * time.Minute)})
	b2.Status = domain.StatusExpired
	b3 := domain.Booking{ID: "b3", UserID: "u3", SeatNumbers: []string{"A3", "A4"}, Status: domain.StatusPending, ExpiresAt: t0.Add(12 * time.Minute)}
	check("b3 takes over b2's stale seat", 4, map[string]seatWant{"A1": {bk, "b1"}, "A2": {bk, "b1"}, "A3": {lk, "b3"}, "A4": {lk, "b3"}},
		map[domain.BookingID]domain.Booking{"b1": b1, "b2": b2, "b3": b3})
	assert.Equal(t, 6, s.Version(), "scheduled, 3 locks, 1 confirm, 1 expiry")

	s = applyAll(t, s, domain.CancelBooking{BookingID: "b1", Now: t0.Add(3 * time.Minute)})
	b1.Status = domain.StatusCancelled
	check("b1 cancelled", 6, map[string]seatWant{"A3": {lk, "b3"}, "A4": {lk, "b3"}},
		map[domain.BookingID]domain.Booking{"b1": b1, "b2": b2, "b3": b3})

	s = applyAll(t, s, domain.ExpireBooking{BookingID: "b3", Now: t0.Add(12 * time.Minute)})
	b3.Status = domain.StatusExpired
	check("b3 expired", 8, nil, map[domain.BookingID]domain.Booking{"b1": b1, "b2": b2, "b3": b3})
	assert.Equal(t, 8, s.Version())
}

func TestStatusHelpers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status domain.BookingStatus
		live   bool
	}{
		{domain.StatusPending, true},
		{domain.StatusConfirmed, true},
		{domain.StatusExpired, false},
		{domain.StatusCancelled, false},
		{"", false},
	} {
		assert.Equal(t, tc.live, tc.status.Live(), "status %q", tc.status)
	}
	for _, tc := range []struct {
		typ   domain.ShowType
		valid bool
	}{
		{domain.ShowMovie, true},
		{domain.ShowBus, true},
		{domain.ShowDoctor, true},
		{"Movie", false},
		{"", false},
	} {
		assert.Equal(t, tc.valid, tc.typ.Valid(), "type %q", tc.typ)
	}
	assert.Equal(t, domain.ShowType("movie"), domain.ShowMovie)
	assert.Equal(t, domain.SeatStatus("available"), domain.SeatStatusAvailable)
	assert.Equal(t, domain.SeatStatus("locked"), domain.SeatStatusLocked)
	assert.Equal(t, domain.SeatStatus("booked"), domain.SeatStatusBooked)
	assert.Equal(t, domain.BookingStatus("pending"), domain.StatusPending)
	assert.Equal(t, domain.BookingStatus("confirmed"), domain.StatusConfirmed)
	assert.Equal(t, domain.BookingStatus("expired"), domain.StatusExpired)
	assert.Equal(t, domain.BookingStatus("cancelled"), domain.StatusCancelled)
}

func TestEventJSON(t *testing.T) {
	t.Parallel()
	confirmedAt := time.Date(2030, 3, 1, 18, 5, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name  string
		event domain.Event
		json  string
	}{
		{
			name:  domain.TypeShowScheduled,
			event: domain.ShowScheduled{ShowID: 42, Name: "Metropolis", ShowType: domain.ShowMovie, StartTime: showStart, SeatNumbers: []string{"A1", "A2"}, MaxSeatsPerUser: 6},
			json:  `{"show_id":42,"name":"Metropolis","show_type":"movie","start_time":"2030-03-03T18:00:00Z","seat_numbers":["A1","A2"],"max_seats_per_user":6}`,
		},
		{
			// No cap is written too: every new ShowScheduled says what it decided.
			name:  domain.TypeShowScheduled + " without a cap",
			event: domain.ShowScheduled{ShowID: 42, Name: "Metropolis", ShowType: domain.ShowMovie, StartTime: showStart, SeatNumbers: []string{"A1", "A2"}},
			json:  `{"show_id":42,"name":"Metropolis","show_type":"movie","start_time":"2030-03-03T18:00:00Z","seat_numbers":["A1","A2"],"max_seats_per_user":0}`,
		},
		{
			name:  domain.TypeSeatLocked,
			event: domain.SeatLocked{BookingID: "b1", UserID: "u1", SeatNumbers: []string{"A1", "A2"}, ExpiresAt: b1Expires},
			json:  `{"booking_id":"b1","user_id":"u1","seat_numbers":["A1","A2"],"expires_at":"2030-03-01T18:10:00Z"}`,
		},
		{
			name:  domain.TypeBookingConfirmed,
			event: domain.BookingConfirmed{BookingID: "b1", ConfirmedAt: confirmedAt},
			json:  `{"booking_id":"b1","confirmed_at":"2030-03-01T18:05:00.123456789Z"}`,
		},
		{
			name:  domain.TypeBookingExpired,
			event: domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}},
			json:  `{"booking_id":"b1","seat_numbers":["A1","A2"]}`,
		},
		{
			name:  domain.TypeBookingCancelled,
			event: domain.BookingCancelled{BookingID: "b1", SeatNumbers: []string{"B3"}},
			json:  `{"booking_id":"b1","seat_numbers":["B3"]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.True(t, strings.HasPrefix(tc.name, tc.event.EventType()), tc.name)

			data, err := domain.MarshalEvent(tc.event)
			require.NoError(t, err)
			assert.JSONEq(t, tc.json, string(data))

			back, err := domain.UnmarshalEvent(tc.event.EventType(), data)
			require.NoError(t, err)
			assert.Equal(t, tc.event, back)
			assert.IsType(t, tc.event, back)

			_, err = domain.UnmarshalEvent(tc.event.EventType(), []byte(`{"booking_id":`))
			require.Error(t, err)
			assert.NotErrorIs(t, err, domain.ErrUnknownEventType)
			var syntax *json.SyntaxError
			assert.ErrorAs(t, err, &syntax)
			assert.Contains(t, err.Error(), tc.event.EventType())
		})
	}
}

func TestEventTypeNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "ShowScheduled", domain.TypeShowScheduled)
	assert.Equal(t, "SeatLocked", domain.TypeSeatLocked)
	assert.Equal(t, "BookingConfirmed", domain.TypeBookingConfirmed)
	assert.Equal(t, "BookingExpired", domain.TypeBookingExpired)
	assert.Equal(t, "BookingCancelled", domain.TypeBookingCancelled)
}

func TestUnmarshalEventUnknownType(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"SeatBooked", "", "seatlocked", "showScheduled"} {
		t.Run("type "+typ, func(t *testing.T) {
			t.Parallel()
			e, err := domain.UnmarshalEvent(typ, []byte(`{"booking_id":"b1"}`))
			assert.Nil(t, e)
			require.ErrorIs(t, err, domain.ErrUnknownEventType)
			var u *domain.UnknownEventTypeError
			require.ErrorAs(t, err, &u)
			assert.Equal(t, typ, u.Type)
		})
	}
}

func TestStreamID(t *testing.T) {
	t.Parallel()
	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			id     domain.ShowID
			stream string
		}{
			{1, "show-1"},
			{42, "show-42"},
			{1 << 40, "show-1099511627776"},
			{9223372036854775807, "show-9223372036854775807"},
		} {
			assert.Equal(t, tc.stream, tc.id.StreamID())
			got, err := domain.ParseStreamID(tc.stream)
			require.NoError(t, err, tc.stream)
			assert.Equal(t, tc.id, got)
		}
	})
	t.Run("rejects", func(t *testing.T) {
		t.Parallel()
		for _, stream := range []string{
			"", "show", "show-", "show-0", "show--1", "show-abc", "show-1x", "show-1.5", "show-0x10",
			"Show-1", "shows-1", " show-1", "show-1 ", "show- 1", "booking-1", "1",
			"show-9223372036854775808",
		} {
			id, err := domain.ParseStreamID(stream)
			assert.Error(t, err, "ParseStreamID(%q) = %d", stream, id)
			assert.Zero(t, id, stream)
		}
	})
	t.Run("rejects non-canonical ids", func(t *testing.T) {
		t.Parallel()
		// "show-01" and "show-+1" name a different stream than "show-1", yet
		// parse to the same show: StreamID(ParseStreamID(s)) != s.
		for _, stream := range []string{"show-+1", "show-01", "show-007"} {
			id, err := domain.ParseStreamID(stream)
			assert.Error(t, err, "ParseStreamID(%q) = %d", stream, id)
		}
	})
}

// Every event Decide returns is stored as JSON in a jsonb column and must
// come back unchanged. encoding/json replaces invalid UTF-8 with U+FFFD (so
// two distinct labels can become one seat on replay), Postgres jsonb refuses
// \u0000, and time.Time only marshals years 0 to 9999.
func TestDecideRefusesWhatCannotBeStored(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*domain.ScheduleShow)
	}{
		{"seat labels that are not UTF-8", func(c *domain.ScheduleShow) { c.SeatNumbers = []string{"\xff", "\xfe"} }},
		{"name that is not UTF-8", func(c *domain.ScheduleShow) { c.Name = "caf\xe9" }},
		{"NUL in a seat label", func(c *domain.ScheduleShow) { c.SeatNumbers = []string{"A\x00"} }},
		{"start time past year 9999", func(c *domain.ScheduleShow) { c.StartTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := scheduleCmd()
			tc.edit(&c)
			events, err := domain.Decide(domain.NewShow(), c)
			require.ErrorIs(t, err, domain.ErrInvalidCommand, "events %v", events)
		})
	}
}

func TestMarshalEventError(t *testing.T) {
	t.Parallel()
	e := domain.ShowScheduled{ShowID: 1, Name: "n", ShowType: domain.ShowBus, StartTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), SeatNumbers: []string{"1"}}
	data, err := domain.MarshalEvent(e)
	assert.Nil(t, data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), domain.TypeShowScheduled)
}

func TestSentinelsAreDistinct(t *testing.T) {
	t.Parallel()
	all := []error{
		domain.ErrShowNotFound, domain.ErrShowExists, domain.ErrInvalidCommand, domain.ErrSeatsUnavailable,
		domain.ErrBookingNotFound, domain.ErrBookingNotPending, domain.ErrHoldExpired, domain.ErrHoldNotExpired,
		domain.ErrShowStarted, domain.ErrUnknownEventType, domain.ErrSeatLimit,
	}
	for i, a := range all {
		for j, b := range all {
			assert.Equal(t, i == j, errors.Is(a, b), "%v vs %v", a, b)
		}
	}
	// Typed errors name what is wrong.
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&domain.SeatsUnavailableError{Seats: []string{"A1", "B2"}}, "A1, B2"},
		{&domain.UnknownSeatsError{Seats: []string{"Z9"}}, "Z9"},
		{&domain.DuplicateSeatsError{Seats: []string{"A1"}}, "A1"},
		{&domain.BookingNotFoundError{BookingID: "b9"}, "b9"},
		{&domain.BookingNotPendingError{BookingID: "b1", Status: domain.StatusExpired}, "expired"},
		{&domain.HoldExpiredError{BookingID: "b1", ExpiresAt: b1Expires}, "2030-03-01T18:10:00Z"},
		{&domain.HoldNotExpiredError{BookingID: "b1", ExpiresAt: b1Expires}, "2030-03-01T18:10:00Z"},
		{&domain.ShowStartedError{ShowID: 42, StartTime: showStart}, "42"},
		{&domain.UnknownEventTypeError{Type: "X"}, `"X"`},
		{&domain.SeatLimitError{Limit: 10, Held: 7, Requested: 4}, "at most 10 seats per user on this show, 7 held, 4 more"},
	} {
		assert.Contains(t, tc.err.Error(), tc.want)
	}
}
