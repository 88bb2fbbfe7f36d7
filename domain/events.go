package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event type names as stored in the events table's event_type column.
// They are part of the public contract: auditors and analytics jobs match on them.
const (
	TypeShowScheduled    = "ShowScheduled"
	TypeSeatLocked       = "SeatLocked"
	TypeBookingConfirmed = "BookingConfirmed"
	TypeBookingExpired   = "BookingExpired"
	TypeBookingCancelled = "BookingCancelled"
)

// Event is one fact on a show's stream. The JSON field names of every
// implementation are part of the contract (see DESIGN.md, "Event model").
type Event interface {
	EventType() string
}

// ShowScheduled opens a show's stream: it is always version 1.
// MaxSeatsPerUser caps the seats one user may hold or have bought on the
// show at once; 0 is no cap, and is also what a ShowScheduled stored before
// the field existed decodes to.
type ShowScheduled struct {
	ShowID          ShowID    `json:"show_id"`
	Name            string    `json:"name"`
	ShowType        ShowType  `json:"show_type"`
	StartTime       time.Time `json:"start_time"`
	SeatNumbers     []string  `json:"seat_numbers"`
	MaxSeatsPerUser int       `json:"max_seats_per_user"`
}

// SeatLocked records one hold: every seat it locks, atomically.
type SeatLocked struct {
	BookingID   BookingID `json:"booking_id"`
	UserID      UserID    `json:"user_id"`
	SeatNumbers []string  `json:"seat_numbers"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// BookingConfirmed turns a pending hold into a sale.
type BookingConfirmed struct {
	BookingID   BookingID `json:"booking_id"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// BookingExpired releases the seats of a hold that was not confirmed in time.
type BookingExpired struct {
	BookingID   BookingID `json:"booking_id"`
	SeatNumbers []string  `json:"seat_numbers"`
}

// BookingCancelled releases the seats of a pending or confirmed booking.
type BookingCancelled struct {
	BookingID   BookingID `json:"booking_id"`
	SeatNumbers []string  `json:"seat_numbers"`
}

func (ShowScheduled) EventType() string    { return TypeShowScheduled }
func (SeatLocked) EventType() string       { return TypeSeatLocked }
func (BookingConfirmed) EventType() string { return TypeBookingConfirmed }
func (BookingExpired) EventType() string   { return TypeBookingExpired }
func (BookingCancelled) EventType() string { return TypeBookingCancelled }

// MarshalEvent encodes an event's data as stored in the events table.
func MarshalEvent(e Event) ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", e.EventType(), err)
	}
	return data, nil
}

// UnmarshalEvent decodes the data of a stored event of the given type.
func UnmarshalEvent(eventType string, data []byte) (Event, error) {
	var (
		e   Event
		err error
	)
	switch eventType {
	case TypeShowScheduled:
		var v ShowScheduled
		err = json.Unmarshal(data, &v)
		e = v
	case TypeSeatLocked:
		var v SeatLocked
		err = json.Unmarshal(data, &v)
		e = v
	case TypeBookingConfirmed:
		var v BookingConfirmed
		err = json.Unmarshal(data, &v)
		e = v
	case TypeBookingExpired:
		var v BookingExpired
		err = json.Unmarshal(data, &v)
		e = v
	case TypeBookingCancelled:
		var v BookingCancelled
		err = json.Unmarshal(data, &v)
		e = v
	default:
		return nil, &UnknownEventTypeError{Type: eventType}
	}
	if err != nil {
		return nil, fmt.Errorf("unmarshal %s: %w", eventType, err)
	}
	return e, nil
}

// DecodeShowEvent decodes a stored event of a show's stream: the show it
// belongs to and the event.
func DecodeShowEvent(stream, eventType string, data []byte) (ShowID, Event, error) {
	show, err := ParseStreamID(stream)
	if err != nil {
		return 0, nil, err
	}
	e, err := UnmarshalEvent(eventType, data)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", stream, err)
	}
	return show, e, nil
}
