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
	"github.com/bookingledger/ledger/shards"
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
	show := domain.ShowID(in.ShowID)
	b, res, err := s.ledger.Hold(r.Context(), show, domain.UserID(p.UserID.String()), in.SeatNumbers, s.meta(r, p))
	if err != nil {
		s.outcome("hold", outcomeOf(err))
		s.writeError(w, r, err)
		return
	}
	s.outcome("hold", "held")
	s.remember(r.Context(), p, s.shardOf(show), res)
	s.Logger.InfoContext(r.Context(), "seats held", "booking_id", b.ID, "show_id", in.ShowID, "seats", b.SeatNumbers)
	v := viewDomain(domain.ShowID(in.ShowID), b)
	created := res.Last().RecordedAt.UTC()
	v.CreatedAt = &created
	w.Header().Set("Location", "/api/bookings/"+string(b.ID))
	writeJSON(w, http.StatusCreated, v)
}

// remember records the caller's write on shard k so its next reads of that
// shard include it.
func (s *server) remember(ctx context.Context, p principal, k int, res ledger.Result) {
	s.Tokens.Set(ctx, tokenKey(p.UserID.String(), k), res.Last().Checkpoint())
}

// outcomeOf names a refused booking command for metrics.
func outcomeOf(err error) string {
	switch {
	case errors.Is(err, domain.ErrSeatsUnavailable):
		return "unavailable"
	case errors.Is(err, domain.ErrSeatLimit):
		return "seat_limit"
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

// readDB returns where the caller's reads of shard k go: a database of the
// shard that has the caller's own last write there. fresh is false when
// none had it in time.
func (s *server) readDB(ctx context.Context, p principal, k int) (db projections.Querier, fresh bool, err error) {
	reads := s.shards[k].Reads
	tok := s.Tokens.Get(ctx, tokenKey(p.UserID.String(), k))
	if tok == (eventstore.Checkpoint{}) {
		return reads.Any(), true, nil
	}
	db, fresh, err = reads.AtLeast(ctx, tok, s.Config.ReadYourWritesWait)
	if err == nil && !fresh {
		s.Logger.WarnContext(ctx, "projections lag behind the caller's last write")
	}
	return db, fresh, err
}

// listBookings pages the caller's bookings, newest first. On several
// shards the home database's user index answers in one query when it has
// the caller's own writes (indexedBookings); otherwise every shard answers
// the same keyset query at once (each from a database that has the
// caller's own writes there) and the pages merge: the next cursor is the
// last booking's key, which every shard and the index understand.
func (s *server) listBookings(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	limit, err := limitParam(r, 100, 500)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := projections.BookingFilter{Limit: int(limit), Cursor: r.URL.Query().Get("cursor")}
	if f.Cursor != "" {
		if _, _, err := projections.DecodeBookingCursor(f.Cursor); err != nil {
			s.writeError(w, r, badRequest("cursor: %v", err))
			return
		}
	}
	if len(s.shards) > 1 {
		page, ok, err := s.indexedBookings(r.Context(), p, f)
		if err != nil && r.Context().Err() == nil {
			// The home database is in trouble: the shards can still answer.
			s.Logger.WarnContext(r.Context(), "the user index cannot answer; asking every shard", "err", err)
		}
		if err == nil && ok {
			writeBookingPage(w, page)
			return
		}
	}
	pages := make([]projections.BookingPage, len(s.shards))
	err = s.eachShard(r.Context(), func(ctx context.Context, k int) error {
		db, _, err := s.readDB(ctx, p, k)
		if err != nil {
			return err
		}
		pages[k], err = projections.NewReader(db).UserBookings(ctx, p.UserID.String(), f)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	lists := make([][]projections.Booking, len(pages))
	more := false
	for k, pg := range pages {
		lists[k] = pg.Bookings
		more = more || pg.NextCursor != ""
	}
	page := projections.BookingPage{Bookings: shards.Merge(lists, projections.CompareBookings, f.Limit)}
	if n := len(page.Bookings); n > 0 && (more || n < sumLen(lists)) {
		page.NextCursor = projections.EncodeBookingCursor(page.Bookings[n-1])
	}
	writeBookingPage(w, page)
}

func writeBookingPage(w http.ResponseWriter, page projections.BookingPage) {
	out := make([]bookingView, len(page.Bookings))
	for i, b := range page.Bookings {
		out[i] = viewProjected(b)
	}
	body := map[string]any{"bookings": out}
	if page.NextCursor != "" {
		body["next_cursor"] = page.NextCursor
	}
	writeJSON(w, http.StatusOK, body)
}

// indexedBookings pages the caller's bookings from the home database's
// user index (projections.UserIndex): one query instead of one per shard.
// ok is false when the index cannot answer — it has not yet read some
// shard's whole stream once (never ran, or still filling after an
// upgrade), or it has not reached the caller's own last write on
// some shard within the read-your-writes wait — and the shards must.
func (s *server) indexedBookings(ctx context.Context, p principal, f projections.BookingFilter) (page projections.BookingPage, ok bool, err error) {
	tokens := make([]eventstore.Checkpoint, len(s.shards))
	for k := range s.shards {
		tokens[k] = s.Tokens.Get(ctx, tokenKey(p.UserID.String(), k))
	}
	deadline := time.Now().Add(s.Config.ReadYourWritesWait)
	for {
		reached, err := s.indexReached(ctx, tokens)
		if err != nil {
			return page, false, err
		}
		if reached {
			break
		}
		if !time.Now().Before(deadline) {
			s.Logger.WarnContext(ctx, "the user index lags behind the caller's writes; asking every shard")
			return page, false, nil
		}
		select {
		case <-ctx.Done():
			return page, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	page, err = projections.NewReader(s.Primary).IndexedUserBookings(ctx, p.UserID.String(), f)
	return page, err == nil, err
}

// indexReached reports whether the user index has a position on every
// shard, each at or past that shard's token.
func (s *server) indexReached(ctx context.Context, tokens []eventstore.Checkpoint) (bool, error) {
	at, err := projections.UserIndexPositions(ctx, s.Primary)
	if err != nil {
		return false, err
	}
	for k, tok := range tokens {
		if p, found := at[k]; !found || !p.CaughtUp || p.Less(tok) {
			return false, nil
		}
	}
	return true, nil
}

func sumLen[T any](lists [][]T) int {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	return n
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
	var (
		v     bookingView
		fresh bool
	)
	// The shard the id names first; ids made before sharding name none
	// reliably, so the others follow.
	for _, k := range s.bookingShards(id) {
		var db projections.Querier
		if db, fresh, err = s.readDB(r.Context(), p, k); err != nil {
			break
		}
		var b projections.Booking
		if b, err = projections.NewReader(db).Booking(r.Context(), string(id)); err == nil {
			v = viewProjected(b)
		}
		if !fresh || !errors.Is(err, projections.ErrNotFound) {
			break
		}
	}
	if !fresh {
		// The projections are behind the caller's own writes: the event
		// stream itself has the booking as it is now.
		var (
			show    domain.ShowID
			current domain.Booking
		)
		if show, err = s.ledger.ShowOfBooking(r.Context(), id); err == nil {
			if current, err = s.ledger.Booking(r.Context(), show, id); err == nil && v.Status != string(current.Status) {
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

// bookingShards are the shards to look for a booking on, in order: the one
// its id names (shards.BookingShard), then the others.
func (s *server) bookingShards(id domain.BookingID) []int {
	order := make([]int, 0, len(s.shards))
	if u, err := uuid.Parse(string(id)); err == nil {
		if k, ok := shards.BookingShard(u, len(s.shards)); ok {
			order = append(order, k)
		}
	}
	for k := range s.shards {
		if len(order) == 0 || k != order[0] {
			order = append(order, k)
		}
	}
	return order
}

// ownedBooking finds a booking on the event stream and checks that the
// caller may act on it: its owner, or one of the roles in also. Users get
// 404 for bookings of others, so ids of other people's bookings leak nothing.
func (s *server) ownedBooking(ctx context.Context, p principal, id domain.BookingID, also ...users.Role) (domain.ShowID, error) {
	show, err := s.ledger.ShowOfBooking(ctx, id)
	if err != nil {
		return 0, err
	}
	b, err := s.ledger.Booking(ctx, show, id)
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
	s.transition(w, r, "confirm", "confirmed", nil, s.ledger.Confirm)
}

func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	s.transition(w, r, "cancel", "cancelled", []users.Role{users.RoleAdmin}, s.ledger.Cancel)
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
	s.remember(r.Context(), p, s.shardOf(show), res)
	b, err := s.ledger.Booking(r.Context(), show, id)
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
