package projections

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Query errors.
var (
	ErrNotFound  = errors.New("not found")
	ErrBadCursor = errors.New("malformed cursor")
)

// Querier is what the read side needs: a pool on the primary or a replica.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Reader answers the API's queries from the projection tables.
type Reader struct {
	db Querier
}

// NewReader returns a reader on db.
func NewReader(db Querier) *Reader { return &Reader{db: db} }

// ShowSummary is a show as listed.
type ShowSummary struct {
	ID              int64     `json:"id"`
	Name            string    `json:"name"`
	ShowType        string    `json:"show_type"`
	StartTime       time.Time `json:"start_time"`
	TotalSeats      int       `json:"total_seats"`
	AvailableSeats  int       `json:"available_seats"`
	MaxSeatsPerUser int       `json:"max_seats_per_user"` // seats one user may hold or have bought at once; 0: no cap
	Version         int       `json:"version"`            // stream version projected; the ETag source
}

// Seat is one entry of a show's seat map.
type Seat struct {
	SeatNumber string `json:"seat_number"`
	Status     string `json:"status"`
}

// ShowDetail is a show with its seat map, in seat order.
type ShowDetail struct {
	ShowSummary
	Seats []Seat `json:"seats"`
}

// Booking is a booking as its owner sees it.
type Booking struct {
	ID          string     `json:"id"`
	ShowID      int64      `json:"show_id"`
	UserID      string     `json:"user_id"`
	SeatNumbers []string   `json:"seat_numbers"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	ExpiredAt   *time.Time `json:"expired_at,omitempty"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
}

// ShowFilter selects and pages the show list. Zero fields do not filter.
type ShowFilter struct {
	Type   string
	From   time.Time // start_time >= From
	To     time.Time // start_time < To
	Limit  int       // 1..100, default 20
	Cursor string    // from the previous page's NextCursor
}

// DefaultShowLimit is the show list's page size when none is asked for.
const DefaultShowLimit = 20

// ShowPage is one page of the show list, ordered by start time then id.
type ShowPage struct {
	Shows      []ShowSummary `json:"shows"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

const showColumns = `id, name, show_type, start_time, total_seats, available_seats, max_seats_per_user, version`

func scanShow(row pgx.Row, s *ShowSummary) error {
	return row.Scan(&s.ID, &s.Name, &s.ShowType, &s.StartTime, &s.TotalSeats, &s.AvailableSeats, &s.MaxSeatsPerUser, &s.Version)
}

// ListShows returns a page of shows.
func (r *Reader) ListShows(ctx context.Context, f ShowFilter) (ShowPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultShowLimit
	}
	limit = min(limit, 100)
	where := []string{"true"}
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.Type != "" {
		where = append(where, "show_type = "+arg(f.Type))
	}
	if !f.From.IsZero() {
		where = append(where, "start_time >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "start_time < "+arg(f.To))
	}
	if f.Cursor != "" {
		at, id, err := DecodeShowCursor(f.Cursor)
		if err != nil {
			return ShowPage{}, err
		}
		where = append(where, fmt.Sprintf("(start_time, id) > (%s, %s)", arg(at), arg(id)))
	}
	rows, err := r.db.Query(ctx, `SELECT `+showColumns+` FROM shows WHERE `+strings.Join(where, " AND ")+
		` ORDER BY start_time, id LIMIT `+arg(limit+1), args...)
	if err != nil {
		return ShowPage{}, fmt.Errorf("list shows: %w", err)
	}
	shows, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ShowSummary, error) {
		var s ShowSummary
		return s, scanShow(row, &s)
	})
	if err != nil {
		return ShowPage{}, fmt.Errorf("list shows: %w", err)
	}
	page := ShowPage{Shows: shows}
	if len(shows) > limit {
		page.Shows = shows[:limit]
		last := page.Shows[limit-1]
		page.NextCursor = EncodeShowCursor(last.StartTime, last.ID)
	}
	if page.Shows == nil {
		page.Shows = []ShowSummary{}
	}
	return page, nil
}

// EncodeShowCursor makes the opaque cursor for the show after (at, id).
func EncodeShowCursor(at time.Time, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + strconv.FormatInt(id, 10)))
}

// DecodeShowCursor is the inverse of EncodeShowCursor.
func DecodeShowCursor(c string) (time.Time, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, 0, ErrBadCursor
	}
	us, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return time.Time{}, 0, ErrBadCursor
	}
	micros, err1 := strconv.ParseInt(us, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, ErrBadCursor
	}
	return time.UnixMicro(micros).UTC(), n, nil
}

// Show returns a show with its seat map.
func (r *Reader) Show(ctx context.Context, id int64) (ShowDetail, error) {
	var d ShowDetail
	err := scanShow(r.db.QueryRow(ctx, `SELECT `+showColumns+` FROM shows WHERE id = $1`, id), &d.ShowSummary)
	if errors.Is(err, pgx.ErrNoRows) {
		return ShowDetail{}, fmt.Errorf("show %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return ShowDetail{}, fmt.Errorf("show %d: %w", id, err)
	}
	rows, err := r.db.Query(ctx, `SELECT seat_number, status FROM seats WHERE show_id = $1 ORDER BY position`, id)
	if err != nil {
		return ShowDetail{}, fmt.Errorf("seats of show %d: %w", id, err)
	}
	d.Seats, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Seat])
	if err != nil {
		return ShowDetail{}, fmt.Errorf("seats of show %d: %w", id, err)
	}
	return d, nil
}

const bookingColumns = `id::text, show_id, user_id::text, seat_numbers, status, created_at, expires_at, confirmed_at, expired_at, cancelled_at`

func scanBooking(row pgx.Row) (Booking, error) {
	var b Booking
	err := row.Scan(&b.ID, &b.ShowID, &b.UserID, &b.SeatNumbers, &b.Status, &b.CreatedAt, &b.ExpiresAt, &b.ConfirmedAt, &b.ExpiredAt, &b.CancelledAt)
	return b, err
}

// Booking returns one booking.
func (r *Reader) Booking(ctx context.Context, id string) (Booking, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Booking{}, fmt.Errorf("booking %q: %w", id, ErrNotFound)
	}
	b, err := scanBooking(r.db.QueryRow(ctx, `SELECT `+bookingColumns+` FROM bookings WHERE id = $1`, uid))
	if errors.Is(err, pgx.ErrNoRows) {
		return Booking{}, fmt.Errorf("booking %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Booking{}, fmt.Errorf("booking %s: %w", id, err)
	}
	return b, nil
}

// BookingFilter pages a user's bookings.
type BookingFilter struct {
	Limit  int    // 1..500, default 100
	Cursor string // from the previous page's NextCursor
}

// BookingPage is one page of a user's bookings, newest first (created_at,
// then id, descending).
type BookingPage struct {
	Bookings   []Booking `json:"bookings"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// UserBookings returns a page of a user's bookings, newest first.
func (r *Reader) UserBookings(ctx context.Context, userID string, f BookingFilter) (BookingPage, error) {
	return r.userBookings(ctx, "bookings", userID, f)
}

// userBookings pages a user's bookings from table (bookings, or the home
// database's user_bookings, which has the same columns).
func (r *Reader) userBookings(ctx context.Context, table, userID string, f BookingFilter) (BookingPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 500)
	page := BookingPage{Bookings: []Booking{}}
	uid, err := uuid.Parse(userID)
	if err != nil {
		return page, nil
	}
	// Past the last possible key: the first page.
	at, after := time.Unix(1<<40, 0), uuid.Max
	if f.Cursor != "" {
		if at, after, err = DecodeBookingCursor(f.Cursor); err != nil {
			return page, err
		}
	}
	rows, err := r.db.Query(ctx, `SELECT `+bookingColumns+` FROM `+table+` WHERE user_id = $1
		AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`, uid, at, after, limit+1)
	if err != nil {
		return page, fmt.Errorf("bookings of %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Booking, error) { return scanBooking(row) })
	if err != nil {
		return page, fmt.Errorf("bookings of %s: %w", userID, err)
	}
	if len(out) > limit {
		out = out[:limit]
		page.NextCursor = EncodeBookingCursor(out[limit-1])
	}
	if len(out) > 0 {
		page.Bookings = out
	}
	return page, nil
}

// CompareBookings orders bookings as UserBookings pages them: newest
// first, then by id descending (uuid order is the order of its text).
func CompareBookings(a, b Booking) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// CompareShows orders shows as ListShows pages them.
func CompareShows(a, b ShowSummary) int {
	if c := a.StartTime.Compare(b.StartTime); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// EncodeBookingCursor makes the opaque cursor for the bookings after b.
func EncodeBookingCursor(b Booking) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(b.CreatedAt.UnixMicro(), 10) + "." + b.ID))
}

// DecodeBookingCursor is the inverse of EncodeBookingCursor.
func DecodeBookingCursor(c string) (time.Time, uuid.UUID, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	us, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	micros, err1 := strconv.ParseInt(us, 10, 64)
	u, err2 := uuid.Parse(id)
	if err1 != nil || err2 != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	return time.UnixMicro(micros).UTC(), u, nil
}
