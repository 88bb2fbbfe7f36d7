package projections

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// Model is the read models folded in memory: what the tables must contain
// after the events it folded. It shares no code with the SQL projector
// beyond decoding, so diffing the two checks both.
//
// A replay holds a million seats and half a million bookings here while the
// garbage collector runs again and again, so the rows hold as few pointers
// as they can: ids as UUID bytes, nullable columns as pgtype values (not
// pointers), statuses as the domain's constants.
type Model struct {
	shows    map[int64]*showRow
	bookings map[uuid.UUID]*bookingRow
	events   int
}

type showRow struct {
	id                    int64
	name, showType        string
	start                 time.Time
	total, available, ver int
	maxSeatsPerUser       int // 0: no cap
	createdAt, updatedAt  time.Time
	seats                 []seatRow
	seatIndex             map[string]int
	orphan                bool // loaded seats whose show row is missing
}

type seatRow struct {
	number      string
	position    int
	status      domain.SeatStatus
	bookingID   pgtype.UUID
	lockedUntil pgtype.Timestamptz
}

type bookingRow struct {
	id, userID                          uuid.UUID
	showID                              int64
	seats                               []string
	status                              domain.BookingStatus
	createdAt, expiresAt, updatedAt     time.Time
	confirmedAt, expiredAt, cancelledAt pgtype.Timestamptz
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{shows: map[int64]*showRow{}, bookings: map[uuid.UUID]*bookingRow{}}
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
			total: len(ev.SeatNumbers), available: len(ev.SeatNumbers), ver: e.StreamVersion, maxSeatsPerUser: ev.MaxSeatsPerUser,
			createdAt: at, updatedAt: at, seatIndex: make(map[string]int, len(ev.SeatNumbers)),
		}
		s.seats = make([]seatRow, len(ev.SeatNumbers))
		for i, n := range ev.SeatNumbers {
			s.seats[i] = seatRow{number: n, position: i + 1, status: domain.SeatStatusAvailable}
			s.seatIndex[n] = i
		}
		m.shows[s.id] = s
	case domain.SeatLocked:
		id, err := bookingID(ev.BookingID)
		if err != nil {
			return err
		}
		user, err := uuid.Parse(string(ev.UserID))
		if err != nil {
			return fmt.Errorf("booking %s: user id %q: %w", ev.BookingID, ev.UserID, err)
		}
		until := recordedAt(ev.ExpiresAt)
		for _, n := range ev.SeatNumbers {
			seat := &s.seats[s.seatIndex[n]]
			seat.status, seat.bookingID, seat.lockedUntil = domain.SeatStatusLocked, pgtype.UUID{Bytes: id, Valid: true}, timestamptz(until)
		}
		s.available -= len(ev.SeatNumbers)
		m.bookings[id] = &bookingRow{
			id: id, userID: user, showID: s.id, seats: slices.Clone(ev.SeatNumbers),
			status: domain.StatusPending, createdAt: at, expiresAt: until, updatedAt: at,
		}
	case domain.BookingConfirmed:
		b, err := m.booking(ev.BookingID)
		if err != nil {
			return err
		}
		b.status, b.confirmedAt, b.updatedAt = domain.StatusConfirmed, timestamptz(ev.ConfirmedAt), at
		for _, n := range b.seats {
			seat := &s.seats[s.seatIndex[n]]
			if b.holds(*seat) {
				seat.status, seat.lockedUntil = domain.SeatStatusBooked, pgtype.Timestamptz{}
			}
		}
	case domain.BookingExpired:
		return m.release(s, ev.BookingID, len(ev.SeatNumbers), domain.StatusExpired, at)
	case domain.BookingCancelled:
		return m.release(s, ev.BookingID, len(ev.SeatNumbers), domain.StatusCancelled, at)
	}
	return nil
}

// holds reports whether seat is held by b: its booking_id is b's id, not
// NULL (a free seat's zero bytes are no booking's).
func (b *bookingRow) holds(seat seatRow) bool {
	return seat.bookingID == pgtype.UUID{Bytes: b.id, Valid: true}
}

// bookingID is the UUID a booking's rows are stored under.
func bookingID(id domain.BookingID) (uuid.UUID, error) {
	u, err := uuid.Parse(string(id))
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("booking id %q: %w", id, err)
	}
	return u, nil
}

// booking returns the folded booking an event of its stream names.
func (m *Model) booking(id domain.BookingID) (*bookingRow, error) {
	u, err := bookingID(id)
	if err != nil {
		return nil, err
	}
	b := m.bookings[u]
	if b == nil {
		return nil, fmt.Errorf("%w: booking %s before its hold", ErrOutOfOrder, id)
	}
	return b, nil
}

func (m *Model) release(s *showRow, id domain.BookingID, n int, to domain.BookingStatus, at time.Time) error {
	b, err := m.booking(id)
	if err != nil {
		return err
	}
	b.status, b.updatedAt = to, at
	if to == domain.StatusExpired {
		b.expiredAt = timestamptz(at)
	} else {
		b.cancelledAt = timestamptz(at)
	}
	s.available += n
	for _, n := range b.seats {
		seat := &s.seats[s.seatIndex[n]]
		if b.holds(*seat) {
			*seat = seatRow{number: n, position: seat.position, status: domain.SeatStatusAvailable}
		}
	}
	return nil
}

// Write stores the model into the empty shows, seats and bookings tables
// through tx, with COPY. Rows are made one at a time into one reused buffer
// (COPY encodes each before asking for the next), not gathered first: a
// million rows of boxed values would double the heap the garbage collector
// walks. Shows and their seats go in show id order, so the indexes built
// afterwards sort input that is mostly in order already.
func (m *Model) Write(ctx context.Context, tx pgx.Tx) error {
	shows := slices.SortedFunc(maps.Values(m.shows), func(a, b *showRow) int { return cmp.Compare(a.id, b.id) })
	i := 0
	row := make([]any, 10)
	showRows := func() ([]any, error) {
		if i == len(shows) {
			return nil, nil
		}
		s := shows[i]
		i++
		row = append(row[:0], s.id, s.name, s.showType, s.start, s.total, s.available, s.ver, s.createdAt, s.updatedAt, s.maxSeatsPerUser)
		return row, nil
	}
	show, seat := 0, 0
	seatRows := func() ([]any, error) {
		for show < len(shows) && seat == len(shows[show].seats) {
			show, seat = show+1, 0
		}
		if show == len(shows) {
			return nil, nil
		}
		s, r := shows[show], shows[show].seats[seat]
		seat++
		row = append(row[:0], s.id, r.number, r.position, string(r.status), r.bookingID, r.lockedUntil)
		return row, nil
	}
	bookings, j := slices.Collect(maps.Values(m.bookings)), 0
	bookingRows := func() ([]any, error) {
		if j == len(bookings) {
			return nil, nil
		}
		b := bookings[j]
		j++
		row = append(row[:0], [16]byte(b.id), b.showID, [16]byte(b.userID), b.seats, string(b.status),
			b.createdAt, b.expiresAt, b.confirmedAt, b.expiredAt, b.cancelledAt, b.updatedAt)
		return row, nil
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  func() ([]any, error)
	}{
		{"shows", []string{"id", "name", "show_type", "start_time", "total_seats", "available_seats", "version", "created_at", "updated_at", "max_seats_per_user"}, showRows},
		{"seats", []string{"show_id", "seat_number", "position", "status", "booking_id", "locked_until"}, seatRows},
		{"bookings", []string{"id", "show_id", "user_id", "seat_numbers", "status", "created_at", "expires_at", "confirmed_at", "expired_at", "cancelled_at", "updated_at"}, bookingRows},
	} {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromFunc(c.rows)); err != nil {
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
	rows, err := tx.Query(ctx, `SELECT id, name, show_type, start_time, total_seats, available_seats, version, created_at, updated_at, max_seats_per_user FROM shows`)
	if err != nil {
		return nil, fmt.Errorf("read shows: %w", err)
	}
	for rows.Next() {
		s := &showRow{seatIndex: map[string]int{}}
		if err := rows.Scan(&s.id, &s.name, &s.showType, &s.start, &s.total, &s.available, &s.ver, &s.createdAt, &s.updatedAt, &s.maxSeatsPerUser); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read shows: %w", err)
		}
		m.shows[s.id] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read shows: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT show_id, seat_number, position, status, booking_id, locked_until FROM seats ORDER BY show_id, position`)
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

	rows, err = tx.Query(ctx, `SELECT id, show_id, user_id, seat_numbers, status, created_at, expires_at,
		confirmed_at, expired_at, cancelled_at, updated_at FROM bookings`)
	if err != nil {
		return nil, fmt.Errorf("read bookings: %w", err)
	}
	for rows.Next() {
		var b bookingRow
		if err := rows.Scan(&b.id, &b.showID, &b.userID, &b.seats, &b.status, &b.createdAt, &b.expiresAt,
			&b.confirmedAt, &b.expiredAt, &b.cancelledAt, &b.updatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read bookings: %w", err)
		}
		m.bookings[b.id] = &b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bookings: %w", err)
	}
	return m, nil
}

// timestamptz is a non-NULL value of a nullable timestamptz column, as the
// table stores it.
func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: recordedAt(t), Valid: true}
}
