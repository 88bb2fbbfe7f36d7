package domain_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
)

// The fuzz input is a fuzzProgram of commands on the fixture show (8 seats,
// starting at showStart). Each command is an opcode byte, a time-step byte and
// its arguments; a missing byte reads as 0.
//
//	op%6 == 0, 1  LockSeats       id, seat mask, flags
//	op%6 == 2     ConfirmBooking  target
//	op%6 == 3     ExpireBooking   target
//	op%6 == 4     CancelBooking   target
//	op%6 == 5     ScheduleShow    arg (bit 0: empty name, bits 1-3: seats
//	                              per user, 0 for none; bit 4: a negative cap)
//
// time step: below 200, that many 15 s ticks; from 200, (step-200) hours.
// id: id%8 == 7 reuses an earlier booking id, anything else takes a new one;
// bit 3 makes the hold user u2's instead of u1's.
// mask: bit i asks for seat i (0 asks for none).
// flags: bit 0 adds an unknown seat, bit 1 repeats a seat, bit 2 leaves the
// user id empty, bits 3-7 are the hold TTL in 2-minute units (0 is invalid).
// target: 255 names an unknown booking, anything else an earlier id.
const (
	opLock0 = iota
	opLock1
	opConfirm
	opExpire
	opCancel
	opSchedule
	numOps

	flagUnknown   = 1 << 0
	flagDuplicate = 1 << 1
	flagNoUser    = 1 << 2
	maxFuzzSteps  = 48
	unknownSeat   = "Z9"
)

type fuzzProgram struct{ data []byte }

func (p *fuzzProgram) next() byte {
	if len(p.data) == 0 {
		return 0
	}
	b := p.data[0]
	p.data = p.data[1:]
	return b
}

func fuzzStep(b byte) time.Duration {
	if b < 200 {
		return time.Duration(b) * 15 * time.Second
	}
	return time.Duration(b-200) * time.Hour
}

func FuzzDecide(f *testing.F) {
	const sched = opSchedule
	for _, seed := range [][]byte{
		{},
		// schedule; lock A1 A2 for 10 min; confirm it; cancel it.
		{sched, 0, 0, opLock0, 1, 0, 0x03, 5 << 3, opConfirm, 1, 0, opCancel, 1, 0},
		// schedule; lock A1-A4 for 2 min; 2.5 min later lock A1 (stale hold
		// expires first); expiring the old hold is refused; confirm the new one.
		{sched, 0, 0, opLock0, 0, 0, 0x0F, 1 << 3, opLock1, 10, 0, 0x01, 1 << 3, opExpire, 0, 0, opConfirm, 0, 1},
		// lock before schedule; schedule twice; lock, confirm, then jump past
		// the showStart: new holds and cancellation are refused.
		{opLock0, 0, 0, 1, 8, sched, 0, 0, sched, 0, 0, opLock0, 0, 0, 0x10, 8, opConfirm, 0, 0, opLock0, 255, 0, 0x20, 8, opCancel, 0, 0, opCancel, 0, 255},
		// invalid holds: unknown seat, repeated seat, no user, zero TTL, no seats, reused id.
		{sched, 0, 1, sched, 0, 0, opLock0, 0, 0, 0x01, flagUnknown | 8, opLock0, 0, 0, 0x01, flagDuplicate | 8,
			opLock0, 0, 0, 0x01, flagNoUser | 8, opLock0, 0, 0, 0x01, 0, opLock0, 0, 0, 0, 8,
			opLock0, 0, 0, 0x02, 8, opLock0, 0, 7, 0x04, 8},
		// overlapping holds, exact expiry boundary, expire, re-lock.
		{sched, 0, 0, opLock0, 0, 0, 0xF0, 2 << 3, opLock0, 1, 0, 0x30, 2 << 3, opExpire, 15, 0,
			opExpire, 1, 0, opLock1, 0, 0, 0x30, 3 << 3, opCancel, 0, 2, opConfirm, 0, 1},
		// three seats per user: u1 holds two, is refused two more, u2 is not;
		// u1 pays, takes a third, is refused a fourth; 10 min later u2's
		// hold has run out but u1's paid seats still count.
		{sched, 0, 3 << 1, opLock0, 0, 0, 0x03, 2 << 3, opLock0, 0, 0, 0x0C, 2 << 3, opLock0, 8, 0, 0x30, 2 << 3,
			opConfirm, 0, 0, opLock0, 0, 0, 0x04, 2 << 3, opLock0, 0, 0, 0x08, 2 << 3,
			opLock0, 8, 40, 0xC0, 2 << 3, opLock0, 0, 0, 0x08, 2 << 3, opCancel, 0, 0, opLock0, 0, 0, 0x88, 2 << 3},
		// a cap of one seat; an invalid negative cap.
		{sched, 0, 1 << 4, sched, 0, 1 << 1, opLock0, 0, 0, 0x01, 1 << 3, opLock0, 0, 0, 0x02, 1 << 3,
			opLock0, 0, 9, 0x02, 1 << 3},
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		p := &fuzzProgram{data: data}
		s := domain.NewShow()
		now := t0
		var (
			ids    []domain.BookingID
			stored []domain.Event // the events as decoded from their JSON
		)
		for i := 0; len(p.data) > 0 && i < maxFuzzSteps; i++ {
			op := p.next() % numOps
			now = now.Add(fuzzStep(p.next()))

			var (
				cmd    domain.Command
				expect func(t *testing.T, events []domain.Event, err error)
			)
			switch op {
			case opLock0, opLock1:
				idb, mask, flags := p.next(), p.next(), p.next()
				c := domain.LockSeats{UserID: "u1", HoldTTL: time.Duration(flags>>3) * 2 * time.Minute, Now: now}
				if idb&(1<<3) != 0 {
					c.UserID = "u2"
				}
				if idb%8 == 7 && len(ids) > 0 {
					c.BookingID = ids[int(idb>>3)%len(ids)]
				} else {
					c.BookingID = domain.BookingID("b" + strconv.Itoa(len(ids)))
					ids = append(ids, c.BookingID)
				}
				for j, n := range allSeats {
					if mask&(1<<j) != 0 {
						c.SeatNumbers = append(c.SeatNumbers, n)
					}
				}
				if flags&flagUnknown != 0 {
					c.SeatNumbers = append(c.SeatNumbers, unknownSeat)
				}
				if flags&flagDuplicate != 0 && len(c.SeatNumbers) > 0 {
					c.SeatNumbers = append(c.SeatNumbers, c.SeatNumbers[0])
				}
				if flags&flagNoUser != 0 {
					c.UserID = ""
				}
				cmd, expect = c, expectLock(s, c)
			case opConfirm, opExpire, opCancel:
				id := domain.BookingID("unknown")
				if b := p.next(); b != 255 && len(ids) > 0 {
					id = ids[int(b)%len(ids)]
				}
				switch op {
				case opConfirm:
					cmd = domain.ConfirmBooking{BookingID: id, Now: now}
				case opExpire:
					cmd = domain.ExpireBooking{BookingID: id, Now: now}
				default:
					cmd = domain.CancelBooking{BookingID: id, Now: now}
				}
				expect = expectTransition(s, cmd, id, now)
			case opSchedule:
				c := scheduleCmd()
				c.Now = now
				arg := p.next()
				if arg&1 != 0 {
					c.Name = ""
				}
				c.MaxSeatsPerUser = int(arg>>1) & 7
				if arg&(1<<4) != 0 {
					c.MaxSeatsPerUser = -1
				}
				cmd, expect = c, expectSchedule(s, c)
			}

			before := snapshotOf(s)
			events, err := domain.Decide(s, cmd)
			require.Equal(t, before, snapshotOf(s), "step %d: Decide(%#v) modified the state", i, cmd)
			expect(t, events, err)
			if err != nil {
				require.Nil(t, events)
				require.True(t, isDomainError(err), "step %d: %#v: error %v matches no sentinel", i, cmd, err)
			} else {
				require.NotEmpty(t, events, "step %d: %#v", i, cmd)
			}

			for _, e := range events {
				data, err := domain.MarshalEvent(e)
				require.NoError(t, err)
				back, err := domain.UnmarshalEvent(e.EventType(), data)
				require.NoError(t, err)
				require.Equal(t, e, back, "step %d: %s does not survive JSON: %s", i, e.EventType(), data)
				s.Evolve(e)
				stored = append(stored, back)
			}
			checkInvariants(t, s, len(stored), now)
			require.Equal(t, snapshotOf(s), snapshotOf(domain.Fold(stored)), "step %d: replay differs from the evolved state", i)
		}
	})
}

func isDomainError(err error) bool {
	for _, sentinel := range []error{
		domain.ErrShowNotFound, domain.ErrShowExists, domain.ErrInvalidCommand, domain.ErrSeatsUnavailable,
		domain.ErrBookingNotFound, domain.ErrBookingNotPending, domain.ErrHoldExpired, domain.ErrHoldNotExpired,
		domain.ErrShowStarted, domain.ErrSeatLimit,
	} {
		if errors.Is(err, sentinel) {
			return true
		}
	}
	return false
}

// checkInvariants checks the state against itself: the bookings list decides
// who holds what, and the seat map, seat holders, count and each user's
// seats at now must agree with it.
func checkInvariants(t *testing.T, s *domain.Show, applied int, now time.Time) {
	t.Helper()
	require.Equal(t, applied, s.Version(), "version must count the events applied")

	known := map[string]bool{}
	for _, n := range s.SeatNumbers() {
		known[n] = true
	}
	holder := map[string]domain.Booking{}
	for _, b := range s.Bookings() {
		require.NotEmpty(t, b.SeatNumbers, "booking %s has no seats", b.ID)
		if !b.Status.Live() {
			continue
		}
		for _, n := range b.SeatNumbers {
			require.True(t, known[n], "live booking %s holds unknown seat %q", b.ID, n)
			other, taken := holder[n]
			require.False(t, taken, "seat %s is held by live bookings %s and %s", n, other.ID, b.ID)
			holder[n] = b
		}
	}

	available := 0
	seats := s.SeatMap()
	require.Len(t, seats, len(known))
	for _, seat := range seats {
		b, held := holder[seat.Number]
		id, ok := s.SeatHolder(seat.Number)
		require.Equal(t, held, ok, "SeatHolder(%s)", seat.Number)
		require.Equal(t, b.ID, id, "SeatHolder(%s)", seat.Number)
		switch {
		case !held:
			require.Equal(t, domain.SeatStatusAvailable, seat.Status, "seat %s is held by no live booking", seat.Number)
			require.Empty(t, seat.BookingID, "seat %s", seat.Number)
			available++
		case b.Status == domain.StatusPending:
			require.Equal(t, domain.Seat{Number: seat.Number, Status: domain.SeatStatusLocked, BookingID: b.ID}, seat)
		default:
			require.Equal(t, domain.Seat{Number: seat.Number, Status: domain.SeatStatusBooked, BookingID: b.ID}, seat)
		}
	}
	require.Equal(t, available, s.AvailableSeats())
	for _, u := range []domain.UserID{"u1", "u2", ""} {
		require.Equal(t, heldBy(s, u, now), s.SeatsHeldBy(u, now), "seats held by %q at %s", u, now)
	}
}

// heldBy counts, from the bookings list, the seats user holds or bought at
// now: confirmed bookings, and pending holds whose expires_at is still ahead.
func heldBy(s *domain.Show, user domain.UserID, now time.Time) int {
	n := 0
	for _, b := range s.Bookings() {
		if b.UserID == user && (b.Status == domain.StatusConfirmed || (b.Status == domain.StatusPending && now.Before(b.ExpiresAt))) {
			n += len(b.SeatNumbers)
		}
	}
	return n
}

type expectation = func(t *testing.T, events []domain.Event, err error)

func wantError(sentinels ...error) expectation {
	return func(t *testing.T, events []domain.Event, err error) {
		t.Helper()
		require.Error(t, err, "want one of %v, got events %v", sentinels, events)
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		require.Failf(t, "wrong error", "got %v, want one of %v", err, sentinels)
	}
}

func wantEvents(want ...domain.Event) expectation {
	return func(t *testing.T, events []domain.Event, err error) {
		t.Helper()
		require.NoError(t, err)
		require.Equal(t, want, events)
	}
}

func expectSchedule(s *domain.Show, c domain.ScheduleShow) expectation {
	switch {
	case s.Scheduled() && (c.Name == "" || c.MaxSeatsPerUser < 0):
		return wantError(domain.ErrShowExists, domain.ErrInvalidCommand)
	case s.Scheduled():
		return wantError(domain.ErrShowExists)
	case c.Name == "" || c.MaxSeatsPerUser < 0:
		return wantError(domain.ErrInvalidCommand)
	}
	return wantEvents(domain.ShowScheduled{
		ShowID: c.ShowID, Name: c.Name, ShowType: c.ShowType, StartTime: c.StartTime, SeatNumbers: c.SeatNumbers,
		MaxSeatsPerUser: c.MaxSeatsPerUser,
	})
}

// expectLock is an independent model of LockSeats, built on the public view
// of the state. Where a command itself is malformed or too late, any of its
// faults' errors will do; otherwise the seat cap is decided before taken
// seats.
func expectLock(s *domain.Show, c domain.LockSeats) expectation {
	if !s.Scheduled() {
		return wantError(domain.ErrShowNotFound)
	}
	_, reused := s.Booking(c.BookingID)
	seen := map[string]bool{}
	dup, unknown := false, false
	known := s.SeatNumbers()
	for _, n := range c.SeatNumbers {
		dup = dup || seen[n]
		seen[n] = true
		unknown = unknown || !slices.Contains(known, n)
	}
	var faults []error
	if reused || dup || unknown || c.UserID == "" || c.HoldTTL <= 0 || len(c.SeatNumbers) == 0 {
		faults = append(faults, domain.ErrInvalidCommand)
	}
	if !c.Now.Before(s.StartTime()) {
		faults = append(faults, domain.ErrShowStarted)
	}

	// A requested seat is taken by a confirmed booking or an unexpired hold,
	// and free to take over from a hold whose expires_at has passed.
	var taken []string
	var stale []domain.Event
	staleSeen := map[domain.BookingID]bool{}
	for _, n := range c.SeatNumbers {
		for _, b := range s.Bookings() {
			if !b.Status.Live() || !slices.Contains(b.SeatNumbers, n) {
				continue
			}
			if b.Status == domain.StatusPending && !c.Now.Before(b.ExpiresAt) {
				if !staleSeen[b.ID] {
					staleSeen[b.ID] = true
					stale = append(stale, domain.BookingExpired{BookingID: b.ID, SeatNumbers: b.SeatNumbers})
				}
			} else {
				taken = append(taken, n)
			}
		}
	}
	held := heldBy(s, c.UserID, c.Now)
	switch limit := s.MaxSeatsPerUser(); {
	case len(faults) > 0:
	case limit > 0 && held+len(c.SeatNumbers) > limit:
		faults = append(faults, domain.ErrSeatLimit)
	case len(taken) > 0:
		faults = append(faults, domain.ErrSeatsUnavailable)
	}
	if len(faults) > 0 {
		check := wantError(faults...)
		return func(t *testing.T, events []domain.Event, err error) {
			t.Helper()
			check(t, events, err)
			var su *domain.SeatsUnavailableError
			if errors.As(err, &su) {
				require.Equal(t, taken, su.Seats, "unavailable seats")
			}
			var us *domain.UnknownSeatsError
			if errors.As(err, &us) {
				require.Equal(t, []string{unknownSeat}, us.Seats, "unknown seats")
			}
			var sl *domain.SeatLimitError
			if errors.As(err, &sl) {
				require.Equal(t, domain.SeatLimitError{Limit: s.MaxSeatsPerUser(), Held: held, Requested: len(c.SeatNumbers)}, *sl)
			}
		}
	}
	return wantEvents(append(stale, domain.SeatLocked{
		BookingID: c.BookingID, UserID: c.UserID, SeatNumbers: c.SeatNumbers, ExpiresAt: c.Now.Add(c.HoldTTL),
	})...)
}

// expectTransition models ConfirmBooking, ExpireBooking and CancelBooking.
func expectTransition(s *domain.Show, cmd domain.Command, id domain.BookingID, now time.Time) expectation {
	if !s.Scheduled() {
		return wantError(domain.ErrShowNotFound)
	}
	b, ok := s.Booking(id)
	if !ok {
		return wantError(domain.ErrBookingNotFound)
	}
	past := !now.Before(b.ExpiresAt)
	switch cmd.(type) {
	case domain.ConfirmBooking:
		switch {
		case b.Status != domain.StatusPending:
			return wantError(domain.ErrBookingNotPending)
		case past:
			return wantError(domain.ErrHoldExpired)
		case !now.Before(s.StartTime()):
			return wantError(domain.ErrShowStarted)
		}
		return wantEvents(domain.BookingConfirmed{BookingID: id, ConfirmedAt: now})
	case domain.ExpireBooking:
		switch {
		case b.Status != domain.StatusPending:
			return wantError(domain.ErrBookingNotPending)
		case !past:
			return wantError(domain.ErrHoldNotExpired)
		}
		return wantEvents(domain.BookingExpired{BookingID: id, SeatNumbers: b.SeatNumbers})
	default:
		switch {
		case !b.Status.Live():
			return wantError(domain.ErrBookingNotPending)
		case b.Status == domain.StatusPending && past:
			return wantError(domain.ErrHoldExpired)
		case b.Status == domain.StatusConfirmed && !now.Before(s.StartTime()):
			return wantError(domain.ErrShowStarted)
		}
		return wantEvents(domain.BookingCancelled{BookingID: id, SeatNumbers: b.SeatNumbers})
	}
}
