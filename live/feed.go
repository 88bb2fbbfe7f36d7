package live

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// Change is one message of a show's live feed: the seats one event changed,
// with their new status.
type Change struct {
	ShowID         int64        `json:"show_id"`
	Version        int          `json:"version"`
	Type           string       `json:"type"`
	BookingID      string       `json:"booking_id,omitempty"`
	Seats          []SeatChange `json:"seats"`
	AvailableSeats int          `json:"available_seats"`
}

// SeatChange is a seat's new status.
type SeatChange struct {
	SeatNumber string `json:"seat_number"`
	Status     string `json:"status"`
}

// ErrNoShow: the show has no stream.
var ErrNoShow = errors.New("no such show")

// Feed is one client's view of one show: the show's state folded up to the
// last change sent.
type Feed struct {
	show    *domain.Show
	id      domain.ShowID
	store   *eventstore.Store
	sub     *Subscription
	pending []Change // changes after the client's version, not yet taken
}

// Open starts a feed of show id for a client that has its seat map at
// version after (0: from the start). It subscribes first and then reads the
// stream, so nothing appended in between is missed. ErrNoShow when the show
// does not exist.
func Open(ctx context.Context, hub *Hub, id domain.ShowID, after int) (*Feed, error) {
	f := &Feed{show: domain.NewShow(), id: id, store: hub.store, sub: hub.Subscribe(id.StreamID())}
	events, err := f.store.Load(ctx, id.StreamID(), 0)
	if err != nil {
		f.Close()
		return nil, err
	}
	if len(events) == 0 {
		f.Close()
		return nil, fmt.Errorf("show %d: %w", id, ErrNoShow)
	}
	for _, e := range events {
		c, err := f.apply(e)
		if err != nil {
			f.Close()
			return nil, err
		}
		if e.StreamVersion > after && e.Type != domain.TypeShowScheduled {
			f.pending = append(f.pending, c)
		}
	}
	return f, nil
}

// Close ends the feed's subscription.
func (f *Feed) Close() { f.sub.Close() }

// Version is the version of the last change folded.
func (f *Feed) Version() int { return f.show.Version() }

// Next returns the next change: first those the client missed, then each
// new one as the hub delivers it. It returns false, and no error, when idle
// fires first (time to send a keep-alive); ctx's error when ctx ends; and
// ErrDropped when the hub dropped the subscription (the client should
// reconnect and resume).
func (f *Feed) Next(ctx context.Context, idle <-chan time.Time) (Change, bool, error) {
	if len(f.pending) > 0 {
		c := f.pending[0]
		f.pending = f.pending[1:]
		return c, true, nil
	}
	for {
		select {
		case <-ctx.Done():
			return Change{}, false, ctx.Err()
		case <-idle:
			return Change{}, false, nil
		case <-f.sub.Dropped():
			return Change{}, false, ErrDropped
		case <-f.sub.Resync():
			if err := f.catchUp(ctx); err != nil {
				return Change{}, false, err
			}
			return f.Next(ctx, idle)
		case e := <-f.sub.Events():
			switch v := f.show.Version(); {
			case e.StreamVersion <= v:
				continue // sent already, from the store
			case e.StreamVersion > v+1:
				// Cannot happen with the hub reading in order; resync from
				// the store rather than skip.
				if err := f.catchUp(ctx); err != nil {
					return Change{}, false, err
				}
				return f.Next(ctx, idle)
			}
			c, err := f.apply(e)
			return c, err == nil, err
		}
	}
}

// ErrDropped: the hub stopped delivering to this feed.
var ErrDropped = errors.New("live: feed dropped")

func (f *Feed) catchUp(ctx context.Context) error {
	events, err := f.store.Load(ctx, f.id.StreamID(), f.show.Version())
	if err != nil {
		return err
	}
	for _, e := range events {
		c, err := f.apply(e)
		if err != nil {
			return err
		}
		f.pending = append(f.pending, c)
	}
	return nil
}

// apply folds e and returns the seats it changed.
func (f *Feed) apply(e eventstore.Event) (Change, error) {
	_, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
	if err != nil {
		return Change{}, err
	}
	var seats []string
	c := Change{ShowID: int64(f.id), Version: e.StreamVersion, Type: e.Type}
	switch ev := ev.(type) {
	case domain.SeatLocked:
		seats, c.BookingID = ev.SeatNumbers, string(ev.BookingID)
	case domain.BookingConfirmed:
		b, _ := f.show.Booking(ev.BookingID)
		seats, c.BookingID = b.SeatNumbers, string(ev.BookingID)
	case domain.BookingExpired:
		seats, c.BookingID = ev.SeatNumbers, string(ev.BookingID)
	case domain.BookingCancelled:
		seats, c.BookingID = ev.SeatNumbers, string(ev.BookingID)
	}
	f.show.Evolve(ev)
	c.Seats = make([]SeatChange, 0, len(seats))
	for _, n := range seats {
		c.Seats = append(c.Seats, SeatChange{SeatNumber: n, Status: string(f.status(n))})
	}
	c.AvailableSeats = f.show.AvailableSeats()
	return c, nil
}

func (f *Feed) status(seat string) domain.SeatStatus {
	id, ok := f.show.SeatHolder(seat)
	if !ok {
		return domain.SeatStatusAvailable
	}
	if b, _ := f.show.Booking(id); b.Status == domain.StatusConfirmed {
		return domain.SeatStatusBooked
	}
	return domain.SeatStatusLocked
}
