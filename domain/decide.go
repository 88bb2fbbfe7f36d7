package domain

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on commands. They keep one stream's events a sensible size.
const (
	MaxSeatsPerShow   = 100_000
	MaxSeatsPerHold   = 100
	MaxSeatLabelBytes = 32
	MaxNameBytes      = 200
)

// Command is an intent to change a show. Every command carries Now: the
// domain never reads the clock, so replaying a decision gives the same answer.
type Command interface {
	isCommand()
}

// ScheduleShow opens a new show with its seat map. MaxSeatsPerUser caps the
// seats one user may hold or have bought on the show at once (0: no cap).
type ScheduleShow struct {
	ShowID          ShowID
	Name            string
	ShowType        ShowType
	StartTime       time.Time
	SeatNumbers     []string
	MaxSeatsPerUser int
	Now             time.Time
}

// LockSeats places a hold on seats for a user until Now+HoldTTL.
type LockSeats struct {
	BookingID   BookingID
	UserID      UserID
	SeatNumbers []string
	HoldTTL     time.Duration
	Now         time.Time
}

// ConfirmBooking records payment for a pending hold.
type ConfirmBooking struct {
	BookingID BookingID
	Now       time.Time
}

// ExpireBooking releases a pending hold whose expires_at has passed.
type ExpireBooking struct {
	BookingID BookingID
	Now       time.Time
}

// CancelBooking releases a pending or confirmed booking.
type CancelBooking struct {
	BookingID BookingID
	Now       time.Time
}

func (ScheduleShow) isCommand()   {}
func (LockSeats) isCommand()      {}
func (ConfirmBooking) isCommand() {}
func (ExpireBooking) isCommand()  {}
func (CancelBooking) isCommand()  {}

// Decide returns the events a command produces on a show in state s, or why
// it is refused. It does not modify s: apply the events with Evolve once they
// are stored.
func Decide(s *Show, cmd Command) ([]Event, error) {
	if c, ok := cmd.(ScheduleShow); ok {
		return decideSchedule(s, c)
	}
	if !s.Scheduled() {
		return nil, ErrShowNotFound
	}
	switch c := cmd.(type) {
	case LockSeats:
		return decideLock(s, c)
	case ConfirmBooking:
		return decideConfirm(s, c)
	case ExpireBooking:
		return decideExpire(s, c)
	case CancelBooking:
		return decideCancel(s, c)
	default:
		return nil, &InvalidCommandError{Field: "command", Reason: "unknown command"}
	}
}

func decideSchedule(s *Show, c ScheduleShow) ([]Event, error) {
	if s.Scheduled() {
		return nil, ErrShowExists
	}
	switch {
	case c.ShowID <= 0:
		return nil, &InvalidCommandError{Field: "show_id", Reason: "must be positive"}
	case c.Name == "" || len(c.Name) > MaxNameBytes || !storable(c.Name):
		return nil, &InvalidCommandError{Field: "name", Reason: "must be 1 to 200 bytes of UTF-8 text without control characters"}
	case !c.ShowType.Valid():
		return nil, &InvalidCommandError{Field: "show_type", Reason: "must be movie, bus or doctor"}
	case c.StartTime.IsZero():
		return nil, &InvalidCommandError{Field: "start_time", Reason: "is required"}
	case c.StartTime.UTC().Year() < 1 || c.StartTime.UTC().Year() > 9999:
		return nil, &InvalidCommandError{Field: "start_time", Reason: "must be within the years 1 to 9999"}
	case len(c.SeatNumbers) == 0 || len(c.SeatNumbers) > MaxSeatsPerShow:
		return nil, &InvalidCommandError{Field: "seat_numbers", Reason: "must list 1 to 100000 seats"}
	case c.MaxSeatsPerUser < 0 || c.MaxSeatsPerUser > MaxSeatsPerShow:
		return nil, &InvalidCommandError{Field: "max_seats_per_user", Reason: "must be 0 (no cap) to 100000"}
	}
	if err := checkLabels(c.SeatNumbers); err != nil {
		return nil, err
	}
	return []Event{ShowScheduled{
		ShowID:          c.ShowID,
		Name:            c.Name,
		ShowType:        c.ShowType,
		StartTime:       c.StartTime.UTC(),
		SeatNumbers:     slices.Clone(c.SeatNumbers),
		MaxSeatsPerUser: c.MaxSeatsPerUser,
	}}, nil
}

// checkLabels refuses empty, oversized, unstorable and repeated seat labels.
func checkLabels(seats []string) error {
	seen := make(map[string]bool, len(seats)) // label -> reported as duplicate
	var dups []string
	for _, n := range seats {
		if n == "" || len(n) > MaxSeatLabelBytes || !storable(n) {
			return &InvalidCommandError{Field: "seat_numbers", Reason: "a seat label must be 1 to 32 bytes of UTF-8 text without control characters"}
		}
		reported, ok := seen[n]
		if ok && !reported {
			dups = append(dups, n)
		}
		seen[n] = ok
	}
	if len(dups) > 0 {
		return &DuplicateSeatsError{Seats: dups}
	}
	return nil
}

// storable reports whether s survives the trip through JSON and jsonb
// unchanged: valid UTF-8 (encoding/json would replace the rest with U+FFFD,
// merging distinct labels) and no control characters (jsonb refuses \u0000).
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// decideLock checks a hold in this order: the command itself (malformed,
// a reused booking id, bad labels), the show's start, seats the show does
// not have, the user's seat cap, and last the seats other bookings hold. The
// cap comes before taken seats because it depends only on the user's own
// bookings and Now: a request both over the cap and for taken seats is
// refused for the cap whatever other buyers do meanwhile, and no other
// choice of seats would help it.
func decideLock(s *Show, c LockSeats) ([]Event, error) {
	switch {
	case c.BookingID == "":
		return nil, &InvalidCommandError{Field: "booking_id", Reason: "is required"}
	case c.UserID == "":
		return nil, &InvalidCommandError{Field: "user_id", Reason: "is required"}
	case len(c.SeatNumbers) == 0 || len(c.SeatNumbers) > MaxSeatsPerHold:
		return nil, &InvalidCommandError{Field: "seat_numbers", Reason: "must list 1 to 100 seats"}
	case c.HoldTTL <= 0:
		return nil, &InvalidCommandError{Field: "hold_ttl", Reason: "must be positive"}
	}
	if _, ok := s.bookings[c.BookingID]; ok {
		return nil, &InvalidCommandError{Field: "booking_id", Reason: "already used on this show"}
	}
	if err := checkLabels(c.SeatNumbers); err != nil {
		return nil, err
	}
	if !c.Now.Before(s.startTime) {
		return nil, &ShowStartedError{ShowID: s.id, StartTime: s.startTime}
	}

	var unknown, taken []string
	var stale []BookingID // pending holds past expires_at that stand in the way
	for _, n := range c.SeatNumbers {
		id, held := s.owner[n]
		switch {
		case !held && !s.hasSeat(n):
			unknown = append(unknown, n)
		case !held:
		case s.expiredAt(id, c.Now):
			if !slices.Contains(stale, id) {
				stale = append(stale, id)
			}
		default:
			taken = append(taken, n)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownSeatsError{Seats: unknown}
	}
	if limit := s.maxSeatsPerUser; limit > 0 {
		if held := s.SeatsHeldBy(c.UserID, c.Now); held+len(c.SeatNumbers) > limit {
			return nil, &SeatLimitError{Limit: limit, Held: held, Requested: len(c.SeatNumbers)}
		}
	}
	if len(taken) > 0 {
		return nil, &SeatsUnavailableError{Seats: taken}
	}

	events := make([]Event, 0, len(stale)+1)
	for _, id := range stale {
		events = append(events, BookingExpired{BookingID: id, SeatNumbers: slices.Clone(s.bookings[id].SeatNumbers)})
	}
	return append(events, SeatLocked{
		BookingID:   c.BookingID,
		UserID:      c.UserID,
		SeatNumbers: slices.Clone(c.SeatNumbers),
		ExpiresAt:   c.Now.Add(c.HoldTTL).UTC(),
	}), nil
}

func (s *Show) hasSeat(n string) bool {
	_, ok := s.index[n]
	return ok
}

// expiredAt reports whether booking id is a pending hold whose time is up.
func (s *Show) expiredAt(id BookingID, now time.Time) bool {
	b := s.bookings[id]
	return b.Status == StatusPending && !now.Before(b.ExpiresAt)
}

func (s *Show) pending(id BookingID) (*Booking, error) {
	b, ok := s.bookings[id]
	if !ok {
		return nil, &BookingNotFoundError{BookingID: id}
	}
	if b.Status != StatusPending {
		return nil, &BookingNotPendingError{BookingID: id, Status: b.Status}
	}
	return b, nil
}

func decideConfirm(s *Show, c ConfirmBooking) ([]Event, error) {
	b, err := s.pending(c.BookingID)
	if err != nil {
		return nil, err
	}
	if !c.Now.Before(b.ExpiresAt) {
		return nil, &HoldExpiredError{BookingID: b.ID, ExpiresAt: b.ExpiresAt}
	}
	if !c.Now.Before(s.startTime) {
		// A hold placed just before the start cannot be paid after it.
		return nil, &ShowStartedError{ShowID: s.id, StartTime: s.startTime}
	}
	return []Event{BookingConfirmed{BookingID: b.ID, ConfirmedAt: c.Now.UTC()}}, nil
}

func decideExpire(s *Show, c ExpireBooking) ([]Event, error) {
	b, err := s.pending(c.BookingID)
	if err != nil {
		return nil, err
	}
	if c.Now.Before(b.ExpiresAt) {
		return nil, &HoldNotExpiredError{BookingID: b.ID, ExpiresAt: b.ExpiresAt}
	}
	return []Event{BookingExpired{BookingID: b.ID, SeatNumbers: slices.Clone(b.SeatNumbers)}}, nil
}

func decideCancel(s *Show, c CancelBooking) ([]Event, error) {
	b, ok := s.bookings[c.BookingID]
	if !ok {
		return nil, &BookingNotFoundError{BookingID: c.BookingID}
	}
	switch {
	case !b.Status.Live():
		return nil, &BookingNotPendingError{BookingID: b.ID, Status: b.Status}
	case b.Status == StatusPending && !c.Now.Before(b.ExpiresAt):
		return nil, &HoldExpiredError{BookingID: b.ID, ExpiresAt: b.ExpiresAt}
	case b.Status == StatusConfirmed && !c.Now.Before(s.startTime):
		return nil, &ShowStartedError{ShowID: s.id, StartTime: s.startTime}
	}
	return []Event{BookingCancelled{BookingID: b.ID, SeatNumbers: slices.Clone(b.SeatNumbers)}}, nil
}
