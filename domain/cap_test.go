package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
)

// The capped fixture: the fixture show with at most four seats per user,
// where u1's b1 holds A1 and A2 (as in pending) until b1Expires.
const seatCap = 4

func cappedScheduled(tb testing.TB) *domain.Show {
	c := scheduleCmd()
	c.MaxSeatsPerUser = seatCap
	return applyAll(tb, domain.NewShow(), c)
}

func cappedPending(tb testing.TB) *domain.Show { return applyAll(tb, cappedScheduled(tb), lockB1()) }

func cappedConfirmed(tb testing.TB) *domain.Show {
	return applyAll(tb, cappedPending(tb), domain.ConfirmBooking{BookingID: "b1", Now: t0.Add(time.Minute)})
}

// cappedFull: u1 holds all four seats, b1 (A1 A2) and b2 (A3 A4).
func cappedFull(tb testing.TB) *domain.Show {
	return applyAll(tb, cappedPending(tb), domain.LockSeats{
		BookingID: "b2", UserID: "u1", SeatNumbers: []string{"A3", "A4"}, HoldTTL: ttl, Now: t0,
	})
}

func limitErr(held, requested int) errCheck {
	return errAs(domain.ErrSeatLimit, &domain.SeatLimitError{Limit: seatCap, Held: held, Requested: requested})
}

func TestDecideSeatCap(t *testing.T) {
	t.Parallel()
	lock := func(id domain.BookingID, user domain.UserID, now time.Time, seats ...string) domain.LockSeats {
		return domain.LockSeats{BookingID: id, UserID: user, SeatNumbers: seats, HoldTTL: ttl, Now: now}
	}
	locked := func(id domain.BookingID, user domain.UserID, now time.Time, seats ...string) domain.SeatLocked {
		return domain.SeatLocked{BookingID: id, UserID: user, SeatNumbers: seats, ExpiresAt: now.Add(ttl)}
	}
	uncapped := func(tb testing.TB) *domain.Show { return applyAll(tb, scheduled(tb), lockB1()) }
	// A ShowScheduled stored before the cap existed has no such field.
	old := func(tb testing.TB) *domain.Show {
		e, err := domain.UnmarshalEvent(domain.TypeShowScheduled,
			[]byte(`{"show_id":42,"name":"Metropolis","show_type":"movie","start_time":"2030-03-03T18:00:00Z","seat_numbers":["A1","A2","A3","A4","B1","B2","B3","B4"]}`))
		require.NoError(tb, err)
		return applyAll(tb, domain.Fold([]domain.Event{e}), lockB1())
	}
	// u2 holds B1 next to u1's b1.
	otherOnB1 := func(tb testing.TB) *domain.Show {
		return applyAll(tb, cappedPending(tb), lock("b3", "u2", t0, "B1"))
	}
	cancelledConfirmed := func(tb testing.TB) *domain.Show {
		return applyAll(tb, cappedConfirmed(tb), domain.CancelBooking{BookingID: "b1", Now: t0.Add(2 * time.Minute)})
	}

	runDecide(t, []decideCase{
		{
			name: "a first hold of exactly the cap", state: cappedScheduled,
			cmd: lock("b2", "u1", t0, "A1", "A2", "A3", "A4"), want: []domain.Event{locked("b2", "u1", t0, "A1", "A2", "A3", "A4")},
		},
		{name: "a first hold over the cap", state: cappedScheduled, cmd: lock("b2", "u1", t0, "A1", "A2", "A3", "A4", "B1"), err: limitErr(0, 5)},
		{
			name: "below the cap", state: cappedPending,
			cmd: lock("b2", "u1", beforeExp, "B1"), want: []domain.Event{locked("b2", "u1", beforeExp, "B1")},
		},
		{
			name: "a second hold exactly reaching the cap", state: cappedPending,
			cmd: lock("b2", "u1", beforeExp, "B1", "B2"), want: []domain.Event{locked("b2", "u1", beforeExp, "B1", "B2")},
		},
		{name: "a second hold over the cap", state: cappedPending, cmd: lock("b2", "u1", beforeExp, "B1", "B2", "B3"), err: limitErr(2, 3)},
		{name: "at the cap, one seat more", state: cappedFull, cmd: lock("b3", "u1", beforeExp, "B1"), err: limitErr(4, 1)},
		{
			name: "another user is not held back by u1's seats", state: cappedFull,
			cmd: lock("b3", "u2", beforeExp, "B1", "B2", "B3", "B4"), want: []domain.Event{locked("b3", "u2", beforeExp, "B1", "B2", "B3", "B4")},
		},
		{name: "confirmed seats count", state: cappedConfirmed, cmd: lock("b2", "u1", beforeExp, "B1", "B2", "B3"), err: limitErr(2, 3)},
		{
			name: "confirmed seats count after the hold's expires_at", state: cappedConfirmed,
			cmd: lock("b2", "u1", afterExp, "B1", "B2", "B3"), err: limitErr(2, 3),
		},
		{
			name: "a hold one instant before its expires_at counts", state: cappedPending,
			cmd: lock("b2", "u1", atExpiry.Add(-time.Nanosecond), "B1", "B2", "B3"), err: limitErr(2, 3),
		},
		{
			// b1 is not in the way of B1-B3, so it is not expired either:
			// the clock alone gives its seats back.
			name: "a hold at its expires_at no longer counts, before its BookingExpired", state: cappedPending,
			cmd: lock("b2", "u1", atExpiry, "B1", "B2", "B3"), want: []domain.Event{locked("b2", "u1", atExpiry, "B1", "B2", "B3")},
		},
		{
			name: "the user's own stale hold in the way is expired and does not count", state: cappedPending,
			cmd: lock("b2", "u1", afterExp, "A1", "A2", "A3", "A4"),
			want: []domain.Event{
				domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1", "A2"}},
				locked("b2", "u1", afterExp, "A1", "A2", "A3", "A4"),
			},
		},
		{
			name: "an expired hold gives its seats back", state: func(tb testing.TB) *domain.Show {
				return applyAll(tb, cappedPending(tb), domain.ExpireBooking{BookingID: "b1", Now: atExpiry})
			},
			cmd: lock("b2", "u1", afterExp, "B1", "B2", "B3", "B4"), want: []domain.Event{locked("b2", "u1", afterExp, "B1", "B2", "B3", "B4")},
		},
		{
			name: "a cancelled hold gives its seats back", state: func(tb testing.TB) *domain.Show {
				return applyAll(tb, cappedPending(tb), domain.CancelBooking{BookingID: "b1", Now: t0.Add(time.Minute)})
			},
			cmd: lock("b2", "u1", beforeExp, "B1", "B2", "B3", "B4"), want: []domain.Event{locked("b2", "u1", beforeExp, "B1", "B2", "B3", "B4")},
		},
		{
			name: "a cancelled purchase gives its seats back", state: cancelledConfirmed,
			cmd: lock("b2", "u1", beforeExp, "A1", "B2", "B3", "B4"), want: []domain.Event{locked("b2", "u1", beforeExp, "A1", "B2", "B3", "B4")},
		},
		{
			name: "cancelling one of two holds gives back its seats only", state: func(tb testing.TB) *domain.Show {
				return applyAll(tb, cappedFull(tb), domain.CancelBooking{BookingID: "b2", Now: t0.Add(time.Minute)})
			},
			cmd: lock("b3", "u1", beforeExp, "B1", "B2", "B3"), err: limitErr(2, 3),
		},
		{
			name: "cap 0 is no cap", state: uncapped,
			cmd: lock("b2", "u1", beforeExp, "A3", "A4", "B1", "B2", "B3", "B4"), want: []domain.Event{locked("b2", "u1", beforeExp, "A3", "A4", "B1", "B2", "B3", "B4")},
		},
		{
			name: "a ShowScheduled stored without the field is no cap", state: old,
			cmd: lock("b2", "u1", beforeExp, "A3", "A4", "B1", "B2", "B3", "B4"), want: []domain.Event{locked("b2", "u1", beforeExp, "A3", "A4", "B1", "B2", "B3", "B4")},
		},
		{
			// Stable whatever other buyers do: the cap is decided first.
			name: "over the cap and taken seats: the cap decides", state: otherOnB1,
			cmd: lock("b2", "u1", beforeExp, "B1", "B2", "B3"), err: limitErr(2, 3),
		},
		{
			name: "within the cap and taken seats: unavailable", state: otherOnB1,
			cmd: lock("b2", "u1", beforeExp, "B1", "B2"),
			err: errAs(domain.ErrSeatsUnavailable, &domain.SeatsUnavailableError{Seats: []string{"B1"}}),
		},
		{
			name: "unknown seats come before the cap", state: cappedFull, cmd: lock("b3", "u1", beforeExp, "B1", "Z9"),
			err: errAs(domain.ErrInvalidCommand, &domain.UnknownSeatsError{Seats: []string{"Z9"}}),
		},
		{
			name: "the show's start comes before the cap", state: cappedFull, cmd: lock("b3", "u1", showStart, "B1"),
			err: errAs(domain.ErrShowStarted, &domain.ShowStartedError{ShowID: showID, StartTime: showStart}),
		},
	})
}

func TestSeatsHeldBy(t *testing.T) {
	t.Parallel()
	s := cappedFull(t)
	assert.Equal(t, seatCap, s.MaxSeatsPerUser())
	assert.Equal(t, 4, s.SeatsHeldBy("u1", beforeExp))
	assert.Equal(t, 0, s.SeatsHeldBy("u2", beforeExp))
	assert.Equal(t, 0, s.SeatsHeldBy("u1", atExpiry), "both holds have run out")
	s = applyAll(t, s, domain.ConfirmBooking{BookingID: "b2", Now: beforeExp})
	assert.Equal(t, 2, s.SeatsHeldBy("u1", afterStart), "a purchase counts for good")
	assert.Equal(t, 0, domain.NewShow().SeatsHeldBy("u1", t0))
}

// A replay decides alike: every command decided on the state folded from
// the events stored before it (as JSON, as the event store keeps them) gets
// the decision it got when it was first decided.
func TestSeatCapDecisionsReplayAlike(t *testing.T) {
	t.Parallel()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	lock := func(id domain.BookingID, user domain.UserID, now time.Time, seats ...string) domain.LockSeats {
		return domain.LockSeats{BookingID: id, UserID: user, SeatNumbers: seats, HoldTTL: ttl, Now: now}
	}
	c := scheduleCmd()
	c.MaxSeatsPerUser = 3
	cmds := []domain.Command{
		c,
		lock("b1", "u1", at(0), "A1", "A2"),
		lock("b2", "u1", at(1), "A3", "A4"), // over: 2 + 2
		lock("b3", "u2", at(1), "A3", "A4", "B1"),
		lock("b4", "u1", at(2), "B2"), // reaches 3
		domain.ConfirmBooking{BookingID: "b4", Now: at(3)},
		lock("b5", "u1", at(4), "B3"),                      // over: 3 + 1
		lock("b6", "u1", at(10), "B3", "B4"),               // b1 ran out at 10: 1 + 2
		lock("b7", "u2", at(12), "B2"),                     // b3 ran out at 11, but b4 bought B2
		domain.CancelBooking{BookingID: "b4", Now: at(13)}, // u1 back to 2
		lock("b8", "u1", at(14), "A1", "A2"),               // over: 2 + 2
		lock("b9", "u1", at(14), "A1"),                     // reaches 3; expires b1
		domain.ExpireBooking{BookingID: "b3", Now: at(14)}, // recorded late
		lock("b10", "u2", at(15), "A2", "A3", "A4"),
		lock("b11", "u2", at(15), "B1"),                    // over: 3 + 1
		lock("b12", "u1", at(24), "A1", "B1", "B2"),        // b6 and b9 ran out at 20 and 24; expires b9
		domain.ExpireBooking{BookingID: "b6", Now: at(24)}, // recorded late
		lock("b13", "u1", at(25), "B3"),                    // over: 3 + 1
		domain.CancelBooking{BookingID: "b12", Now: at(25)},
		lock("b14", "u1", at(25), "B3"),
	}
	type decision struct {
		events []domain.Event
		err    string
	}
	var (
		stored   [][]byte // each event's JSON
		types    []string
		firstRun []decision
		refusals int
	)
	s := domain.NewShow()
	for _, cmd := range cmds {
		events, err := domain.Decide(s, cmd)
		d := decision{events: events}
		if err != nil {
			d.err = err.Error()
			refusals++
		}
		firstRun = append(firstRun, d)
		for _, e := range events {
			s.Evolve(e)
			data, err := domain.MarshalEvent(e)
			require.NoError(t, err)
			stored, types = append(stored, data), append(types, e.EventType())
		}
	}
	require.Equal(t, 6, refusals, "the scenario refuses some holds: %+v", firstRun)

	n := 0 // events stored before the command being replayed
	for i, cmd := range cmds {
		events := make([]domain.Event, n)
		for j := range events {
			e, err := domain.UnmarshalEvent(types[j], stored[j])
			require.NoError(t, err)
			events[j] = e
		}
		got, err := domain.Decide(domain.Fold(events), cmd)
		d := decision{events: got}
		if err != nil {
			d.err = err.Error()
		}
		assert.Equal(t, firstRun[i], d, "command %d: %#v", i, cmd)
		n += len(firstRun[i].events)
	}
}
