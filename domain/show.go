package domain

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ShowID identifies a show. Its stream is "show-<id>".
type ShowID int64

// StreamID is the name of the show's event stream.
func (id ShowID) StreamID() string { return "show-" + strconv.FormatInt(int64(id), 10) }

// ParseStreamID is the inverse of ShowID.StreamID.
func ParseStreamID(stream string) (ShowID, error) {
	const prefix = "show-"
	if len(stream) <= len(prefix) || stream[:len(prefix)] != prefix {
		return 0, fmt.Errorf("stream %q is not a show stream", stream)
	}
	digits := stream[len(prefix):]
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != digits { // canonical form only: no sign, no leading zeros
		return 0, fmt.Errorf("stream %q is not a show stream", stream)
	}
	return ShowID(id), nil
}

// BookingID identifies a booking (a UUID chosen by the caller, UUIDv7 in practice).
type BookingID string

// UserID identifies the user who placed a hold (a UUID string).
type UserID string

// ShowType is one of the kinds of show the ledger sells.
type ShowType string

// The show types of the REST contract.
const (
	ShowMovie  ShowType = "movie"
	ShowBus    ShowType = "bus"
	ShowDoctor ShowType = "doctor"
)

// Valid reports whether t is a known show type.
func (t ShowType) Valid() bool {
	return t == ShowMovie || t == ShowBus || t == ShowDoctor
}

// SeatStatus is a seat's state in the seat map.
type SeatStatus string

// Seat statuses of the REST contract.
const (
	SeatStatusAvailable SeatStatus = "available"
	SeatStatusLocked    SeatStatus = "locked"
	SeatStatusBooked    SeatStatus = "booked"
)

// BookingStatus is a booking's state.
type BookingStatus string

// Booking statuses of the REST contract.
const (
	StatusPending   BookingStatus = "pending"
	StatusConfirmed BookingStatus = "confirmed"
	StatusExpired   BookingStatus = "expired"
	StatusCancelled BookingStatus = "cancelled"
)

// Live reports whether a booking in this status occupies its seats.
func (s BookingStatus) Live() bool { return s == StatusPending || s == StatusConfirmed }

// Booking is one hold and what became of it.
type Booking struct {
	ID          BookingID
	UserID      UserID
	SeatNumbers []string
	Status      BookingStatus
	ExpiresAt   time.Time
	ConfirmedAt time.Time // zero unless confirmed
}

// Show is the aggregate: one show's seat map and bookings, folded from its
// stream. The zero value is a show that has not been scheduled (version 0).
//
// Show is not safe for concurrent use. Decide never modifies it; Evolve does.
type Show struct {
	id              ShowID
	name            string
	showType        ShowType
	startTime       time.Time
	maxSeatsPerUser int // 0: no cap
	version         int

	seatOrder []string
	index     map[string]int       // seat -> position in seatOrder
	owner     map[string]BookingID // seat -> live booking; absent when free
	bookings  map[BookingID]*Booking
	// byUser lists each user's live bookings (pending or confirmed as the
	// stream records them); absent when none. Its slices are never changed
	// in place, only replaced, so Clone can share them.
	byUser map[UserID][]BookingID
}

// NewShow returns the state of a show whose stream has no events yet.
func NewShow() *Show { return &Show{} }

// Fold rebuilds a show from its events, in stream order.
func Fold(events []Event) *Show {
	s := NewShow()
	for _, e := range events {
		s.Evolve(e)
	}
	return s
}

// ID returns the show's id (0 before ShowScheduled).
func (s *Show) ID() ShowID { return s.id }

// Name returns the show's name.
func (s *Show) Name() string { return s.name }

// Type returns the show's type.
func (s *Show) Type() ShowType { return s.showType }

// StartTime returns when the show starts.
func (s *Show) StartTime() time.Time { return s.startTime }

// MaxSeatsPerUser returns the most seats one user may hold or have bought on
// the show at once; 0 means no cap.
func (s *Show) MaxSeatsPerUser() int { return s.maxSeatsPerUser }

// SeatsHeldBy counts the seats user holds or bought on the show at now:
// those of confirmed bookings and of pending holds not expired at now. A
// hold past its expires_at does not count even before its BookingExpired is
// recorded, so the count depends only on the stream and now.
func (s *Show) SeatsHeldBy(user UserID, now time.Time) int {
	n := 0
	for _, id := range s.byUser[user] {
		b := s.bookings[id]
		if b.Status == StatusConfirmed || (b.Status == StatusPending && now.Before(b.ExpiresAt)) {
			n += len(b.SeatNumbers)
		}
	}
	return n
}

// Version is the stream version this state reflects: the number of events folded.
func (s *Show) Version() int { return s.version }

// Scheduled reports whether the show exists (its stream has ShowScheduled).
func (s *Show) Scheduled() bool { return s.version > 0 }

// SeatNumbers returns the show's seats in their scheduled order.
func (s *Show) SeatNumbers() []string { return slices.Clone(s.seatOrder) }

// Booking returns a copy of a booking on this show.
func (s *Show) Booking(id BookingID) (Booking, bool) {
	b, ok := s.bookings[id]
	if !ok {
		return Booking{}, false
	}
	c := *b
	c.SeatNumbers = slices.Clone(b.SeatNumbers)
	return c, true
}

// Bookings returns copies of every booking on the show, in no particular order.
func (s *Show) Bookings() []Booking {
	out := make([]Booking, 0, len(s.bookings))
	for id := range s.bookings {
		b, _ := s.Booking(id)
		out = append(out, b)
	}
	return out
}

// SeatHolder returns the live booking that holds or owns a seat.
func (s *Show) SeatHolder(seat string) (BookingID, bool) {
	id, ok := s.owner[seat]
	return id, ok
}

// Seat is one entry of the seat map.
type Seat struct {
	Number    string
	Status    SeatStatus
	BookingID BookingID // empty when available
}

// SeatMap returns every seat with its status as recorded by events. A pending
// hold whose expires_at has passed still shows as locked until its
// BookingExpired event is recorded: the map reflects the stream, not the clock.
func (s *Show) SeatMap() []Seat {
	out := make([]Seat, len(s.seatOrder))
	for i, n := range s.seatOrder {
		out[i] = Seat{Number: n, Status: s.SeatStatus(n), BookingID: s.owner[n]}
	}
	return out
}

// SeatStatus is one seat's entry of SeatMap: available unless a live
// booking holds it, booked once that booking is confirmed.
func (s *Show) SeatStatus(seat string) SeatStatus {
	id, ok := s.owner[seat]
	switch {
	case !ok:
		return SeatStatusAvailable
	case s.bookings[id].Status == StatusConfirmed:
		return SeatStatusBooked
	default:
		return SeatStatusLocked
	}
}

// AvailableSeats counts seats no live booking holds.
func (s *Show) AvailableSeats() int { return len(s.seatOrder) - len(s.owner) }

// Evolve applies one event to the state and advances its version by one.
// Events come from the stream, which Decide vetted, so Evolve trusts them.
func (s *Show) Evolve(e Event) {
	s.version++
	switch e := e.(type) {
	case ShowScheduled:
		s.id = e.ShowID
		s.name = e.Name
		s.showType = e.ShowType
		s.startTime = e.StartTime
		s.maxSeatsPerUser = e.MaxSeatsPerUser
		s.seatOrder = slices.Clone(e.SeatNumbers)
		s.index = make(map[string]int, len(e.SeatNumbers))
		for i, n := range e.SeatNumbers {
			s.index[n] = i
		}
		s.owner = make(map[string]BookingID, len(e.SeatNumbers))
		s.bookings = make(map[BookingID]*Booking)
		s.byUser = make(map[UserID][]BookingID)
	case SeatLocked:
		s.bookings[e.BookingID] = &Booking{
			ID:          e.BookingID,
			UserID:      e.UserID,
			SeatNumbers: slices.Clone(e.SeatNumbers),
			Status:      StatusPending,
			ExpiresAt:   e.ExpiresAt,
		}
		for _, n := range e.SeatNumbers {
			s.owner[n] = e.BookingID
		}
		// A new slice each time (Clip leaves no room to append in place).
		s.byUser[e.UserID] = append(slices.Clip(s.byUser[e.UserID]), e.BookingID)
	case BookingConfirmed:
		if b, ok := s.bookings[e.BookingID]; ok {
			b.Status = StatusConfirmed
			b.ConfirmedAt = e.ConfirmedAt
		}
	case BookingExpired:
		s.release(e.BookingID, StatusExpired)
	case BookingCancelled:
		s.release(e.BookingID, StatusCancelled)
	}
}

func (s *Show) release(id BookingID, to BookingStatus) {
	b, ok := s.bookings[id]
	if !ok {
		return
	}
	b.Status = to
	for _, n := range b.SeatNumbers {
		if s.owner[n] == id {
			delete(s.owner, n)
		}
	}
	// A new slice, never an edit of the shared one (see byUser).
	rest := slices.DeleteFunc(slices.Clone(s.byUser[b.UserID]), func(x BookingID) bool { return x == id })
	if len(rest) == 0 {
		delete(s.byUser, b.UserID)
	} else {
		s.byUser[b.UserID] = rest
	}
}

// Clone returns an independent copy of the state: Evolve on one does not
// change the other.
func (s *Show) Clone() *Show {
	c := *s
	// seatOrder and index never change after ShowScheduled; bookings' seat
	// lists never change at all: those are shared.
	c.owner = make(map[string]BookingID, len(s.owner))
	for k, v := range s.owner {
		c.owner[k] = v
	}
	c.bookings = make(map[BookingID]*Booking, len(s.bookings))
	for k, v := range s.bookings {
		b := *v
		c.bookings[k] = &b
	}
	c.byUser = maps.Clone(s.byUser) // its slices are replaced, never edited: shared
	return &c
}
