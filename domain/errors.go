package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Typed errors below wrap them, so callers can match either
// the category (errors.Is) or the details (errors.As).
var (
	// ErrShowNotFound: the command targets a show whose stream does not exist.
	ErrShowNotFound = errors.New("show not found")
	// ErrShowExists: ScheduleShow on a stream that already has events.
	ErrShowExists = errors.New("show already scheduled")
	// ErrInvalidCommand: the command itself is malformed (see InvalidCommandError).
	ErrInvalidCommand = errors.New("invalid command")
	// ErrSeatsUnavailable: a hold asks for seats another live booking has.
	ErrSeatsUnavailable = errors.New("seats unavailable")
	// ErrSeatLimit: a hold would take the user past the show's seats per user.
	ErrSeatLimit = errors.New("seat limit reached")
	// ErrBookingNotFound: the booking is not on this show's stream.
	ErrBookingNotFound = errors.New("booking not found")
	// ErrBookingNotPending: the booking has already reached another state.
	ErrBookingNotPending = errors.New("booking is not pending")
	// ErrHoldExpired: the hold's expires_at has passed.
	ErrHoldExpired = errors.New("hold expired")
	// ErrHoldNotExpired: ExpireBooking before the hold's expires_at.
	ErrHoldNotExpired = errors.New("hold has not expired yet")
	// ErrShowStarted: the show has started, so it can no longer be booked or
	// a confirmed booking cancelled.
	ErrShowStarted = errors.New("show has started")
	// ErrUnknownEventType: a stored event whose type this code does not know.
	ErrUnknownEventType = errors.New("unknown event type")
)

// InvalidCommandError says which field of a command is wrong and why.
type InvalidCommandError struct {
	Field  string
	Reason string
}

func (e *InvalidCommandError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

func (e *InvalidCommandError) Unwrap() error { return ErrInvalidCommand }

// UnknownSeatsError lists requested seats the show does not have.
type UnknownSeatsError struct {
	Seats []string
}

func (e *UnknownSeatsError) Error() string {
	return "unknown seats: " + strings.Join(e.Seats, ", ")
}

func (e *UnknownSeatsError) Unwrap() error { return ErrInvalidCommand }

// DuplicateSeatsError lists seats named more than once in one command.
type DuplicateSeatsError struct {
	Seats []string
}

func (e *DuplicateSeatsError) Error() string {
	return "duplicate seats: " + strings.Join(e.Seats, ", ")
}

func (e *DuplicateSeatsError) Unwrap() error { return ErrInvalidCommand }

// SeatsUnavailableError lists exactly the requested seats that are held or
// sold by another live booking.
type SeatsUnavailableError struct {
	Seats []string
}

func (e *SeatsUnavailableError) Error() string {
	return "seats unavailable: " + strings.Join(e.Seats, ", ")
}

func (e *SeatsUnavailableError) Unwrap() error { return ErrSeatsUnavailable }

// SeatLimitError refuses a hold that would leave its user with more than
// Limit seats on the show: the user already holds or bought Held of them
// (live bookings only) and asked for Requested more. The message carries all
// three, so two refusals with the same message were decided alike.
type SeatLimitError struct {
	Limit, Held, Requested int
}

func (e *SeatLimitError) Error() string {
	return fmt.Sprintf("seat limit reached: at most %d seats per user on this show, %d held, %d more asked for",
		e.Limit, e.Held, e.Requested)
}

func (e *SeatLimitError) Unwrap() error { return ErrSeatLimit }

// BookingNotFoundError names the booking the show does not know.
type BookingNotFoundError struct {
	BookingID BookingID
}

func (e *BookingNotFoundError) Error() string {
	return fmt.Sprintf("booking %s not found", e.BookingID)
}

func (e *BookingNotFoundError) Unwrap() error { return ErrBookingNotFound }

// BookingNotPendingError names the booking and the state it is in.
type BookingNotPendingError struct {
	BookingID BookingID
	Status    BookingStatus
}

func (e *BookingNotPendingError) Error() string {
	return fmt.Sprintf("booking %s is %s, not pending", e.BookingID, e.Status)
}

func (e *BookingNotPendingError) Unwrap() error { return ErrBookingNotPending }

// HoldExpiredError names the booking whose hold ran out, and when.
type HoldExpiredError struct {
	BookingID BookingID
	ExpiresAt time.Time
}

func (e *HoldExpiredError) Error() string {
	return fmt.Sprintf("hold %s expired at %s", e.BookingID, e.ExpiresAt.Format(time.RFC3339))
}

func (e *HoldExpiredError) Unwrap() error { return ErrHoldExpired }

// HoldNotExpiredError names the booking that is still within its hold.
type HoldNotExpiredError struct {
	BookingID BookingID
	ExpiresAt time.Time
}

func (e *HoldNotExpiredError) Error() string {
	return fmt.Sprintf("hold %s does not expire before %s", e.BookingID, e.ExpiresAt.Format(time.RFC3339))
}

func (e *HoldNotExpiredError) Unwrap() error { return ErrHoldNotExpired }

// ShowStartedError names the show and when it started.
type ShowStartedError struct {
	ShowID    ShowID
	StartTime time.Time
}

func (e *ShowStartedError) Error() string {
	return fmt.Sprintf("show %d started at %s", e.ShowID, e.StartTime.Format(time.RFC3339))
}

func (e *ShowStartedError) Unwrap() error { return ErrShowStarted }

// UnknownEventTypeError names a stored event type this code cannot decode.
type UnknownEventTypeError struct {
	Type string
}

func (e *UnknownEventTypeError) Error() string {
	return fmt.Sprintf("unknown event type %q", e.Type)
}

func (e *UnknownEventTypeError) Unwrap() error { return ErrUnknownEventType }
