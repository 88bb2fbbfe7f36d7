package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/users"
)

// bookingView is a booking as the API shows it.
type bookingView struct {
	ID          string     `json:"id"`
	ShowID      int64      `json:"show_id"`
	UserID      string     `json:"user_id"`
	SeatNumbers []string   `json:"seat_numbers"`
	Status      string     `json:"status"`
	ExpiresAt   time.Time  `json:"expires_at"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	ExpiredAt   *time.Time `json:"expired_at,omitempty"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
}

func viewProjected(b projections.Booking) bookingView {
	created := b.CreatedAt.UTC()
	return bookingView{ID: b.ID, ShowID: b.ShowID, UserID: b.UserID, SeatNumbers: b.SeatNumbers, Status: b.Status,
		ExpiresAt: b.ExpiresAt.UTC(), CreatedAt: &created, ConfirmedAt: utc(b.ConfirmedAt), ExpiredAt: utc(b.ExpiredAt),
		CancelledAt: utc(b.CancelledAt)}
}

func viewDomain(show domain.ShowID, b domain.Booking) bookingView {
	v := bookingView{ID: string(b.ID), ShowID: int64(show), UserID: string(b.UserID), SeatNumbers: b.SeatNumbers,
		Status: string(b.Status), ExpiresAt: b.ExpiresAt.UTC()}
	if !b.ConfirmedAt.IsZero() {
		v.ConfirmedAt = utc(&b.ConfirmedAt)
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type holdRequest struct {
	ShowID      int64    `json:"show_id"`
	SeatNumbers []string `json:"seat_numbers"`
}

func (s *server) hold(w http.ResponseWriter, r *http.Request) {
	var in holdRequest
	if err := s.decode(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.ShowID <= 0 {
		s.writeError(w, r, unprocessable("show_id must be a positive integer"))
		return
	}
	p, _ := principalFrom(r.Context())
	b, res, err := s.Ledger.Hold(r.Context(), domain.ShowID(in.ShowID), domain.UserID(p.UserID.String()), in.SeatNumbers, s.meta(r, p))
	if err != nil {
		s.outcome("hold", outcomeOf(err))
		s.writeError(w, r, err)
		return
	}
	s.outcome("hold", "held")
	s.remember(r.Context(), p, res)
	s.Logger.InfoContext(r.Context(), "seats held", "booking_id", b.ID, "show_id", in.ShowID, "seats", b.SeatNumbers)
	v := viewDomain(domain.ShowID(in.ShowID), b)
	created := res.Last().RecordedAt.UTC()
	v.CreatedAt = &created
	w.Header().Set("Location", "/api/bookings/"+string(b.ID))
	writeJSON(w, http.StatusCreated, v)
}

// remember records the caller's write so its next reads include it.
func (s *server) remember(ctx context.Context, p principal, res ledger.Result) {
	s.Tokens.Set(ctx, p.UserID.String(), res.Last().Checkpoint())
}

// outcomeOf names a refused booking command for metrics.
func outcomeOf(err error) string {
	switch {
	case errors.Is(err, domain.ErrSeatsUnavailable):
		return "unavailable"
	case errors.Is(err, domain.ErrHoldExpired):
		return "hold_expired"
	case errors.Is(err, domain.ErrBookingNotPending):
		return "not_pending"
	case errors.Is(err, domain.ErrShowStarted):
		return "show_started"
	case errors.Is(err, domain.ErrShowNotFound), errors.Is(err, domain.ErrBookingNotFound):
		return "not_found"
	case errors.Is(err, domain.ErrInvalidCommand):
		return "invalid"
	case errors.Is(err, ledger.ErrTooManyConflicts):
		return "contended"
	default:
		return "error"
	}
}

// readDB returns where the caller's reads go: a database that has the
// caller's own last write. fresh is false when none had it in time.
func (s *server) readDB(ctx context.Context, p principal) (db projections.Querier, fresh bool, err error) {
	tok := s.Tokens.Get(ctx, p.UserID.String())
	if tok == (eventstore.Checkpoint{}) {
		return s.Reads.Any(), true, nil
	}
	db, fresh, err = s.Reads.AtLeast(ctx, tok, s.Config.ReadYourWritesWait)
	if err == nil && !fresh {
		s.Logger.WarnContext(ctx, "projections lag behind the caller's last write")
	}
	return db, fresh, err
}

func (s *server) listBookings(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	limit, err := limitParam(r, 100, 500)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	db, _, err := s.readDB(r.Context(), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := projections.NewReader(db).UserBookings(r.Context(), p.UserID.String(), int(limit))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]bookingView, len(list))
	for i, b := range list {
		out[i] = viewProjected(b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"bookings": out})
}

// bookingID parses the path's booking id; a malformed one is simply unknown.
func bookingID(r *http.Request) (domain.BookingID, error) {
	raw := chi.URLParam(r, "id")
	id, err := uuid.Parse(raw)
	if err != nil {
		return "", &domain.BookingNotFoundError{BookingID: domain.BookingID(raw)}
	}
	return domain.BookingID(id.String()), nil
}

func (s *server) getBooking(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	id, err := bookingID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	db, fresh, err := s.readDB(r.Context(), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var v bookingView
	b, err := projections.NewReader(db).Booking(r.Context(), string(id))
	if err == nil {
		v = viewProjected(b)
	}
	if !fresh {
		// The projections are behind the caller's own writes: the event
		// stream itself has the booking as it is now.
		var (
			show    domain.ShowID
			current domain.Booking
		)
		if show, err = s.Ledger.ShowOfBooking(r.Context(), id); err == nil {
			if current, err = s.Ledger.Booking(r.Context(), show, id); err == nil && v.Status != string(current.Status) {
				created := v.CreatedAt
				v = viewDomain(show, current)
				v.CreatedAt = created
			}
		}
	}
	// Not found and not yours read the same: no existence leak.
	if errors.Is(err, projections.ErrNotFound) || (err == nil && p.Role == users.RoleUser && v.UserID != p.UserID.String()) {
		err = &domain.BookingNotFoundError{BookingID: id}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// ownedBooking finds a booking on the event stream and checks that the
// caller may act on it: its owner, or one of the roles in also. Users get
// 404 for bookings of others, so ids of other people's bookings leak nothing.
func (s *server) ownedBooking(ctx context.Context, p principal, id domain.BookingID, also ...users.Role) (domain.ShowID, error) {
	show, err := s.Ledger.ShowOfBooking(ctx, id)
	if err != nil {
		return 0, err
	}
	b, err := s.Ledger.Booking(ctx, show, id)
	if err != nil {
		return 0, err
	}
	if b.UserID == domain.UserID(p.UserID.String()) {
		return show, nil
	}
	for _, role := range also {
		if p.Role == role {
			return show, nil
		}
	}
	if p.Role == users.RoleUser {
		return 0, &domain.BookingNotFoundError{BookingID: id}
	}
	return 0, forbidden("only the booking's owner may do this")
}

// errForbidden: authenticated, but not allowed.
var errForbidden = errors.New("forbidden")

func (s *server) confirm(w http.ResponseWriter, r *http.Request) {
	s.transition(w, r, "confirm", "confirmed", nil, s.Ledger.Confirm)
}

func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	s.transition(w, r, "cancel", "cancelled", []users.Role{users.RoleAdmin}, s.Ledger.Cancel)
}

type transitionFunc func(context.Context, domain.ShowID, domain.BookingID, ledger.Metadata) (ledger.Result, error)

// transition runs confirm or cancel on a booking the caller may act on, and
// answers with the booking as it is afterwards.
func (s *server) transition(w http.ResponseWriter, r *http.Request, name, done string, also []users.Role, run transitionFunc) {
	p, _ := principalFrom(r.Context())
	id, err := bookingID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	show, err := s.ownedBooking(r.Context(), p, id, also...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := run(r.Context(), show, id, s.meta(r, p))
	if err != nil {
		s.outcome(name, outcomeOf(err))
		s.writeError(w, r, err)
		return
	}
	s.outcome(name, done)
	s.remember(r.Context(), p, res)
	b, err := s.Ledger.Booking(r.Context(), show, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "booking "+done, "booking_id", id, "show_id", show)
	v := viewDomain(show, b)
	if b.Status == domain.StatusCancelled {
		at := res.Last().RecordedAt.UTC()
		v.CancelledAt = &at
	}
	writeJSON(w, http.StatusOK, v)
}
