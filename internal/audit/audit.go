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
			st = &stream{seats: map[string]bool{}, holders: map[string]int{}, live: map[domain.BookingID][]string{},
				status: map[domain.BookingID]domain.BookingStatus{}}
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
		switch e := ev.(type) {
		case domain.ShowScheduled:
			for _, s := range e.SeatNumbers {
				st.seats[s] = true
			}
		case domain.SeatLocked:
			for _, s := range e.SeatNumbers {
				if !st.seats[s] {
					return r, fmt.Errorf("%s v%d: booking %s locks seat %q the show does not have", id, version, e.BookingID, s)
				}
				if st.holders[s] > 0 {
					r.Oversold++
				}
				st.holders[s]++
			}
			if _, dup := st.status[e.BookingID]; dup {
				return r, fmt.Errorf("%s v%d: booking %s locked twice", id, version, e.BookingID)
			}
			st.live[e.BookingID] = e.SeatNumbers
			st.status[e.BookingID] = domain.StatusPending
		case domain.BookingConfirmed:
			if err := st.move(e.BookingID, domain.StatusConfirmed, domain.StatusPending); err != nil {
				return r, fmt.Errorf("%s v%d: %w", id, version, err)
			}
		case domain.BookingExpired:
			if err := st.move(e.BookingID, domain.StatusExpired, domain.StatusPending); err != nil {
				return r, fmt.Errorf("%s v%d: %w", id, version, err)
			}
			release(st.holders, st.live, e.BookingID)
		case domain.BookingCancelled:
			if err := st.move(e.BookingID, domain.StatusCancelled, domain.StatusPending, domain.StatusConfirmed); err != nil {
				return r, fmt.Errorf("%s v%d: %w", id, version, err)
			}
			release(st.holders, st.live, e.BookingID)
		}
		if b, ok := bookingOf(ev); ok {
			seen[stored{id, b, typ}] = true
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
	version int
	seats   map[string]bool
	holders map[string]int                // seat -> live bookings holding it
	live    map[domain.BookingID][]string // live booking -> its seats
	status  map[domain.BookingID]domain.BookingStatus
}

// move changes a booking's status to to, which only a booking in one of the
// from statuses may take.
func (st *stream) move(id domain.BookingID, to domain.BookingStatus, from ...domain.BookingStatus) error {
	now, ok := st.status[id]
	if !ok {
		return fmt.Errorf("booking %s is %s without having been locked", id, to)
	}
	if !slices.Contains(from, now) {
		return fmt.Errorf("booking %s is %s when it was %s", id, to, now)
	}
	st.status[id] = to
	return nil
}

// bookingOf is the booking an event is about, if any.
func bookingOf(ev domain.Event) (domain.BookingID, bool) {
	switch e := ev.(type) {
	case domain.SeatLocked:
		return e.BookingID, true
	case domain.BookingConfirmed:
		return e.BookingID, true
	case domain.BookingExpired:
		return e.BookingID, true
	case domain.BookingCancelled:
		return e.BookingID, true
	}
	return "", false
}

// release frees the seats of a live booking; ending a booking that is not
// live changes nothing.
func release(holders map[string]int, live map[domain.BookingID][]string, id domain.BookingID) {
	for _, s := range live[id] {
		holders[s]--
	}
	delete(live, id)
}
