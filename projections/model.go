package projections

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// Model is the read models folded in memory: what the tables must contain
// after the events it folded. It shares no code with the SQL projector
// beyond decoding, so diffing the two checks both.
type Model struct {
	shows    map[int64]*showRow
	bookings map[string]*bookingRow
	events   int
}

type showRow struct {
	id                    int64
	name, showType        string
	start                 time.Time
	total, available, ver int
	createdAt, updatedAt  time.Time
	seats                 []seatRow
	seatIndex             map[string]int
	orphan                bool // loaded seats whose show row is missing
}

type seatRow struct {
	number      string
	position    int
	status      string
	bookingID   string
	lockedUntil *time.Time
}

type bookingRow struct {
	id, userID                          string
	showID                              int64
	seats                               []string
	status                              string
	createdAt, expiresAt, updatedAt     time.Time
	confirmedAt, expiredAt, cancelledAt *time.Time
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{shows: map[int64]*showRow{}, bookings: map[string]*bookingRow{}}
}

// Events is how many events the model has folded.
func (m *Model) Events() int { return m.events }

// apply folds one decoded event, which must be the next of its stream
// (replays decode in parallel, then fold in order).
func (m *Model) apply(e eventstore.Event, id domain.ShowID, ev domain.Event) error {
	at := recordedAt(e.RecordedAt)
	s := m.shows[int64(id)]
	if _, first := ev.(domain.ShowScheduled); !first {
		if s == nil || s.ver != e.StreamVersion-1 {
			return fmt.Errorf("%w: %s v%d", ErrOutOfOrder, e.StreamID, e.StreamVersion)
		}
		s.ver, s.updatedAt = e.StreamVersion, at
	}
	m.events++
	switch ev := ev.(type) {
	case domain.ShowScheduled:
		if s != nil {
			return fmt.Errorf("%w: %s scheduled twice", ErrOutOfOrder, e.StreamID)
		}
		s = &showRow{
			id: int64(id), name: ev.Name, showType: string(ev.ShowType), start: recordedAt(ev.StartTime),
			total: len(ev.SeatNumbers), available: len(ev.SeatNumbers), ver: e.StreamVersion,
			createdAt: at, updatedAt: at, seatIndex: make(map[string]int, len(ev.SeatNumbers)),
		}
		s.seats = make([]seatRow, len(ev.SeatNumbers))
		for i, n := range ev.SeatNumbers {
			s.seats[i] = seatRow{number: n, position: i + 1, status: string(domain.SeatStatusAvailable)}
			s.seatIndex[n] = i
		}
		m.shows[s.id] = s
	case domain.SeatLocked:
		until := recordedAt(ev.ExpiresAt)
		for _, n := range ev.SeatNumbers {
			seat := &s.seats[s.seatIndex[n]]
			seat.status, seat.bookingID, seat.lockedUntil = string(domain.SeatStatusLocked), string(ev.BookingID), &until
		}
		s.available -= len(ev.SeatNumbers)
		m.bookings[string(ev.BookingID)] = &bookingRow{
			id: string(ev.BookingID), userID: string(ev.UserID), showID: s.id, seats: slices.Clone(ev.SeatNumbers),
			status: string(domain.StatusPending), createdAt: at, expiresAt: until, updatedAt: at,
		}
	case domain.BookingConfirmed:
		b := m.bookings[string(ev.BookingID)]
		confirmed := recordedAt(ev.ConfirmedAt)
		b.status, b.confirmedAt, b.updatedAt = string(domain.StatusConfirmed), &confirmed, at
		for _, n := range b.seats {
			seat := &s.seats[s.seatIndex[n]]
			if seat.bookingID == b.id {
				seat.status, seat.lockedUntil = string(domain.SeatStatusBooked), nil
			}
		}
	case domain.BookingExpired:
		m.release(s, string(ev.BookingID), len(ev.SeatNumbers), domain.StatusExpired, at)
	case domain.BookingCancelled:
		m.release(s, string(ev.BookingID), len(ev.SeatNumbers), domain.StatusCancelled, at)
	}
	return nil
}

func (m *Model) release(s *showRow, id string, n int, to domain.BookingStatus, at time.Time) {
	b := m.bookings[id]
	b.status, b.updatedAt = string(to), at
	if to == domain.StatusExpired {
		b.expiredAt = &at
	} else {
		b.cancelledAt = &at
	}
	s.available += n
	for _, n := range b.seats {
		seat := &s.seats[s.seatIndex[n]]
		if seat.bookingID == id {
			*seat = seatRow{number: n, position: seat.position, status: string(domain.SeatStatusAvailable)}
		}
	}
}

// Write stores the model into the empty shows, seats and bookings tables
// through tx, with COPY.
func (m *Model) Write(ctx context.Context, tx pgx.Tx) error {
	shows := make([][]any, 0, len(m.shows))
	var seats [][]any
	for _, s := range m.shows {
		shows = append(shows, []any{s.id, s.name, s.showType, s.start, s.total, s.available, s.ver, s.createdAt, s.updatedAt})
		for _, seat := range s.seats {
			var booking any
			if seat.bookingID != "" {
				booking = mustUUID(seat.bookingID)
			}
			seats = append(seats, []any{s.id, seat.number, seat.position, seat.status, booking, seat.lockedUntil})
		}
	}
	bookings := make([][]any, 0, len(m.bookings))
	for _, b := range m.bookings {
		bookings = append(bookings, []any{mustUUID(b.id), b.showID, mustUUID(b.userID), b.seats, b.status,
			b.createdAt, b.expiresAt, b.confirmedAt, b.expiredAt, b.cancelledAt, b.updatedAt})
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"shows", []string{"id", "name", "show_type", "start_time", "total_seats", "available_seats", "version", "created_at", "updated_at"}, shows},
		{"seats", []string{"show_id", "seat_number", "position", "status", "booking_id", "locked_until"}, seats},
		{"bookings", []string{"id", "show_id", "user_id", "seat_numbers", "status", "created_at", "expires_at", "confirmed_at", "expired_at", "cancelled_at", "updated_at"}, bookings},
	} {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return fmt.Errorf("write %s: %w", c.table, err)
		}
	}
	return nil
}

// recordedAt is how the tables store times: PostgreSQL keeps microseconds.
func recordedAt(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// loadModel reads the live tables into a Model, to compare with a replay.
func loadModel(ctx context.Context, tx pgx.Tx) (*Model, error) {
	m := NewModel()
	rows, err := tx.Query(ctx, `SELECT id, name, show_type, start_time, total_seats, available_seats, version, created_at, updated_at FROM shows`)
	if err != nil {
		return nil, fmt.Errorf("read shows: %w", err)
	}
	for rows.Next() {
		s := &showRow{seatIndex: map[string]int{}}
		if err := rows.Scan(&s.id, &s.name, &s.showType, &s.start, &s.total, &s.available, &s.ver, &s.createdAt, &s.updatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read shows: %w", err)
		}
		m.shows[s.id] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read shows: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT show_id, seat_number, position, status, coalesce(booking_id::text, ''), locked_until FROM seats ORDER BY show_id, position`)
	if err != nil {
		return nil, fmt.Errorf("read seats: %w", err)
	}
	for rows.Next() {
		var (
			show int64
			seat seatRow
		)
		if err := rows.Scan(&show, &seat.number, &seat.position, &seat.status, &seat.bookingID, &seat.lockedUntil); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read seats: %w", err)
		}
		s := m.shows[show]
		if s == nil { // a seat without its show: keep it under a placeholder so diff reports it
			s = &showRow{id: show, seatIndex: map[string]int{}, orphan: true}
			m.shows[show] = s
		}
		s.seatIndex[seat.number] = len(s.seats)
		s.seats = append(s.seats, seat)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read seats: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT id::text, show_id, user_id::text, seat_numbers, status, created_at, expires_at,
		confirmed_at, expired_at, cancelled_at, updated_at FROM bookings`)
	if err != nil {
		return nil, fmt.Errorf("read bookings: %w", err)
	}
	for rows.Next() {
		b := &bookingRow{}
		if err := rows.Scan(&b.id, &b.showID, &b.userID, &b.seats, &b.status, &b.createdAt, &b.expiresAt,
			&b.confirmedAt, &b.expiredAt, &b.cancelledAt, &b.updatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read bookings: %w", err)
		}
		m.bookings[b.id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bookings: %w", err)
	}
	return m, nil
}

// mustUUID gives COPY a typed value for a uuid column (a string makes pgx
// try and fail binary encodings first, which dominated a replay's CPU). The
// ids come from events the ledger validated; a malformed one is written as
// text and refused by PostgreSQL, failing the rebuild loudly.
func mustUUID(s string) any {
	if id, err := uuid.Parse(s); err == nil {
		return [16]byte(id) // not uuid.UUID: its driver.Valuer turns it back into a string
	}
	return s
}
