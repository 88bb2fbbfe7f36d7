// Package audit checks a ledger database against DESIGN.md's invariants
// from its events table alone, independently of the domain's own state: no
// seat is held by two live bookings, nothing acknowledged is missing from
// its show's stream, and every stream's versions run 1..n. Benchmarks and
// failure tests use it after they have done their worst.
package audit

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/bookingledger/ledger/domain"
)

// Ack is what a client was told succeeded: the event of type Type (a
// domain.Type… constant: TypeSeatLocked for a 201 hold, TypeBookingConfirmed
// for a confirmation, …) for Booking on Show's stream.
type Ack struct {
	Show    domain.ShowID
	Booking domain.BookingID
	Type    string
}

// Report is what Check found.
type Report struct {
	Oversold int // seat claims by a second live booking
	Lost     int // acknowledgements without their event on their show's stream
	Events   int // events read
}

// Querier is what Check needs of a database.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Check reads every show's stream in version order and folds it on its
// own: a SeatLocked that claims a seat a live booking already holds counts
// as oversold; an acknowledgement whose event is not on its show's stream,
// as lost. A gap in a stream's versions, a seat the show does not have, a
// booking locked twice, or a booking confirmed or expired when it was not
// pending, or cancelled when it was no longer live (a confirmation that
// lost its race with expiry and was kept anyway), is an error: the stream
// itself breaks the rules.
func Check(ctx context.Context, db Querier, acks []Ack) (Report, error) {
	type stored struct {
		stream  string
		booking domain.BookingID
		typ     string
	}
	var (
		r       Report
		streams = map[string]*stream{}
		seen    = map[stored]bool{}
	)
	rows, err := db.Query(ctx, `SELECT stream_id, stream_version, event_type, data FROM events ORDER BY stream_id, stream_version`)
	if err != nil {
		return r, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, typ string
			version int
			data    []byte
		)
		if err := rows.Scan(&id, &version, &typ, &data); err != nil {
			return r, fmt.Errorf("read events: %w", err)
		}
		r.Events++
		st := streams[id]
		if st == nil {
			st = &stream{seats: map[string]bool{}, holders: map[string]int{}, bookings: map[domain.BookingID]*booking{}}
			streams[id] = st
		}
		if version != st.version+1 {
			return r, fmt.Errorf("%s: version %d follows %d", id, version, st.version)
		}
		st.version = version
		ev, err := domain.UnmarshalEvent(typ, data)
		if err != nil {
			return r, fmt.Errorf("%s v%d: %w", id, version, err)
		}
		var about domain.BookingID // the booking the event is about, if any
		switch e := ev.(type) {
		case domain.ShowScheduled:
			for _, s := range e.SeatNumbers {
				st.seats[s] = true
			}
		case domain.SeatLocked:
			about = e.BookingID
			var oversold int
			if oversold, err = st.lock(e.BookingID, e.SeatNumbers); err == nil {
				r.Oversold += oversold
			}
		case domain.BookingConfirmed:
			about = e.BookingID
			err = st.move(e.BookingID, domain.StatusConfirmed, domain.StatusPending)
		case domain.BookingExpired:
			about = e.BookingID
			err = st.move(e.BookingID, domain.StatusExpired, domain.StatusPending)
		case domain.BookingCancelled:
			about = e.BookingID
			err = st.move(e.BookingID, domain.StatusCancelled, domain.StatusPending, domain.StatusConfirmed)
		}
		if err != nil {
			return r, fmt.Errorf("%s v%d: %w", id, version, err)
		}
		if about != "" {
			seen[stored{id, about, typ}] = true
		}
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("read events: %w", err)
	}
	for _, a := range acks {
		if !seen[stored{a.Show.StreamID(), a.Booking, a.Type}] {
			r.Lost++
		}
	}
	return r, nil
}

// stream is one show's stream as Check has folded it so far.
type stream struct {
	version  int
	seats    map[string]bool
	holders  map[string]int // seat -> live bookings holding it
	bookings map[domain.BookingID]*booking
}

// booking is a booking as its stream has it so far.
type booking struct {
	seats  []string
	status domain.BookingStatus
}

// lock records a hold of seats by a new booking, and returns how many of
// them a live booking held already.
func (st *stream) lock(id domain.BookingID, seats []string) (oversold int, err error) {
	if _, dup := st.bookings[id]; dup {
		return 0, fmt.Errorf("booking %s locked twice", id)
	}
	for _, s := range seats {
		if !st.seats[s] {
			return 0, fmt.Errorf("booking %s locks seat %q the show does not have", id, s)
		}
		if st.holders[s] > 0 {
			oversold++
		}
		st.holders[s]++
	}
	st.bookings[id] = &booking{seats: seats, status: domain.StatusPending}
	return oversold, nil
}

// move changes a booking's status to to, which only a booking in one of the
// from statuses may take; a booking that stops being live frees its seats.
func (st *stream) move(id domain.BookingID, to domain.BookingStatus, from ...domain.BookingStatus) error {
	b := st.bookings[id]
	if b == nil {
		return fmt.Errorf("booking %s is %s without having been locked", id, to)
	}
	if !slices.Contains(from, b.status) {
		return fmt.Errorf("booking %s is %s when it was %s", id, to, b.status)
	}
	if b.status.Live() && !to.Live() {
		for _, s := range b.seats {
			st.holders[s]--
		}
	}
	b.status = to
	return nil
}
