// Package projections maintains the read models the API serves — the shows,
// seats and bookings tables — from the event stream, and answers queries on
// them.
//
// The Projector is a watermill-sql consumer group ("projections") of the
// global stream. Each batch of events is applied in the transaction that also
// moves the group's checkpoint, so a crash anywhere leaves the tables and the
// checkpoint agreeing, and every event is applied exactly once. Each show row
// also stores the last stream version applied to it, so an event delivered
// twice by any other path is a no-op.
//
// Model is a second, independent implementation of the same read models: it
// folds events in memory and writes the tables in bulk. Rebuild and Verify use
// it to replace the live tables or to diff them against a fresh replay
// (bookingctl replay / verify).
package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// ErrOutOfOrder: an event arrived for a show whose projected version is not
// the one before it. It means the stream was read wrong; nothing is written.
var ErrOutOfOrder = errors.New("projection: event out of order")

// Execer is what Apply needs: a pgx transaction in practice.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Apply projects one stored event into the shows, seats and bookings tables
// through db. Applying an event already applied does nothing.
func Apply(ctx context.Context, db Execer, e eventstore.Event) error {
	st, err := statementFor(e)
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, st.sql, st.args...)
	if err != nil {
		return fmt.Errorf("project %s v%d: %w", e.StreamID, e.StreamVersion, err)
	}
	return st.checkRows(ctx, db, tag.RowsAffected())
}

// statement is the SQL that projects one event, and what its result means.
type statement struct {
	event   eventstore.Event
	show    domain.ShowID
	decoded domain.Event
	sql     string
	args    []any
	// guarded statements change nothing when the event is not the show's
	// next: a duplicate (fine) or a gap (an error).
	guarded bool
}

// checkRows interprets the rows the statement changed; a guard that matched
// nothing is a duplicate when the show is already at or past the event.
func (st statement) checkRows(ctx context.Context, db Execer, rows int64) error {
	if !st.guarded || rows > 0 {
		return nil
	}
	var v int
	if err := db.QueryRow(ctx, `SELECT version FROM shows WHERE id = $1`, int64(st.show)).Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("project %s v%d: %w", st.event.StreamID, st.event.StreamVersion, err)
	}
	if v >= st.event.StreamVersion {
		return nil
	}
	return fmt.Errorf("%w: %s is at v%d, got v%d", ErrOutOfOrder, st.event.StreamID, v, st.event.StreamVersion)
}

func statementFor(e eventstore.Event) (statement, error) {
	show, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
	if err != nil {
		return statement{}, err
	}
	st := statement{event: e, show: show, decoded: ev, guarded: true}
	at := e.RecordedAt
	switch ev := ev.(type) {
	case domain.ShowScheduled:
		// A replayed ShowScheduled inserts no seats: the show row existed.
		st.guarded = false
		st.sql = `
			WITH s AS (
				INSERT INTO shows (id, name, show_type, start_time, total_seats, available_seats, version, created_at, updated_at, max_seats_per_user)
				VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $7, $9)
				ON CONFLICT (id) DO NOTHING
				RETURNING id)
			INSERT INTO seats (show_id, seat_number, position, status)
			SELECT s.id, t.n, t.ord, 'available' FROM s, unnest($8::text[]) WITH ORDINALITY AS t(n, ord)`
		st.args = []any{int64(show), ev.Name, string(ev.ShowType), ev.StartTime, len(ev.SeatNumbers), e.StreamVersion, at, ev.SeatNumbers,
			ev.MaxSeatsPerUser}
	case domain.SeatLocked:
		st.sql = guarded(`
			, seats_up AS (
				UPDATE seats SET status = 'locked', booking_id = $5, locked_until = $6
				WHERE show_id = (SELECT id FROM g) AND seat_number = ANY($7))
			INSERT INTO bookings (id, show_id, user_id, seat_numbers, status, created_at, expires_at, updated_at)
			SELECT $5, id, $8, $7, 'pending', $3, $6, $3 FROM g`)
		st.args = []any{int64(show), e.StreamVersion, at, -len(ev.SeatNumbers),
			string(ev.BookingID), ev.ExpiresAt, ev.SeatNumbers, string(ev.UserID)}
	case domain.BookingConfirmed:
		st.sql = guarded(`
			, seats_up AS (
				UPDATE seats SET status = 'booked', locked_until = NULL
				WHERE show_id = (SELECT id FROM g) AND booking_id = $5)
			UPDATE bookings SET status = 'confirmed', confirmed_at = $6, updated_at = $3
			WHERE id = $5 AND show_id = (SELECT id FROM g)`)
		st.args = []any{int64(show), e.StreamVersion, at, 0, string(ev.BookingID), ev.ConfirmedAt}
	case domain.BookingExpired:
		st.sql = release("expired", "expired_at")
		st.args = []any{int64(show), e.StreamVersion, at, len(ev.SeatNumbers), string(ev.BookingID)}
	case domain.BookingCancelled:
		st.sql = release("cancelled", "cancelled_at")
		st.args = []any{int64(show), e.StreamVersion, at, len(ev.SeatNumbers), string(ev.BookingID)}
	}
	return st, nil
}

// guarded prefixes a statement with the version guard: the CTE g holds the
// show's row only when this event is the next one for it, and every other
// part of the statement is keyed on g, so a duplicate changes nothing.
// Parameters: $1 show id, $2 stream version, $3 recorded at, $4 available
// seats delta.
func guarded(rest string) string {
	return `WITH g AS (
		UPDATE shows SET version = $2, updated_at = $3, available_seats = available_seats + $4
		WHERE id = $1 AND version = $2 - 1
		RETURNING id)` + rest
}

// release is the statement for an event that frees a booking's seats.
// Parameter $5 is the booking id.
func release(status, column string) string {
	return guarded(`
		, seats_up AS (
			UPDATE seats SET status = 'available', booking_id = NULL, locked_until = NULL
			WHERE show_id = (SELECT id FROM g) AND booking_id = $5)
		UPDATE bookings SET status = '` + status + `', ` + column + ` = $3, updated_at = $3
		WHERE id = $5 AND show_id = (SELECT id FROM g)`)
}
