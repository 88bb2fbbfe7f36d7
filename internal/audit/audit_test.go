package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/audit"
	"github.com/bookingledger/ledger/internal/pgtest"
)

// The check must see what it is there to catch: streams are written here
// behind the domain's back.
func TestCheckFindsOversoldAndLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	show, other := domain.ShowID(7), domain.ShowID(8)
	event := func(e domain.Event) eventstore.EventData {
		data, err := domain.MarshalEvent(e)
		require.NoError(t, err)
		return eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), Data: data}
	}
	expires := time.Now().Add(time.Hour).UTC()
	scheduled := func(id domain.ShowID) eventstore.EventData {
		return event(domain.ShowScheduled{ShowID: id, Name: "x", ShowType: domain.ShowMovie, StartTime: expires, SeatNumbers: []string{"A1", "A2", "A3"}})
	}
	_, err := store.Append(ctx, show.StreamID(), 0, []eventstore.EventData{
		scheduled(show),
		event(domain.SeatLocked{BookingID: "b1", UserID: "u", SeatNumbers: []string{"A1", "A2"}, ExpiresAt: expires}),
		event(domain.SeatLocked{BookingID: "b2", UserID: "u", SeatNumbers: []string{"A2", "A3"}, ExpiresAt: expires}), // A2 twice
		event(domain.BookingCancelled{BookingID: "b2", SeatNumbers: []string{"A2", "A3"}}),
		event(domain.SeatLocked{BookingID: "b3", UserID: "u", SeatNumbers: []string{"A3"}, ExpiresAt: expires}), // A3 is free again
		event(domain.BookingConfirmed{BookingID: "b3"}),
		event(domain.SeatLocked{BookingID: "b4", UserID: "u", SeatNumbers: []string{"A2"}, ExpiresAt: expires}), // b1 still holds A2
	})
	require.NoError(t, err)
	_, err = store.Append(ctx, other.StreamID(), 0, []eventstore.EventData{scheduled(other)})
	require.NoError(t, err)

	r, err := audit.Check(ctx, pool, []audit.Ack{
		{Show: show, Booking: "b1", Type: domain.TypeSeatLocked},
		{Show: show, Booking: "b3", Type: domain.TypeSeatLocked},
		{Show: show, Booking: "b3", Type: domain.TypeBookingConfirmed},
		{Show: show, Booking: "b2", Type: domain.TypeBookingCancelled},
		{Show: show, Booking: "b5", Type: domain.TypeSeatLocked},       // never stored
		{Show: other, Booking: "b4", Type: domain.TypeSeatLocked},      // stored on another show's stream
		{Show: show, Booking: "b1", Type: domain.TypeBookingConfirmed}, // b1 was never confirmed
	})
	require.NoError(t, err)
	assert.Equal(t, audit.Report{Oversold: 2, Lost: 3, Events: 8}, r)
}

// A stream that is not gap-free is not audited but refused.
func TestCheckRefusesAGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)
	_, err := pool.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER`)
	require.NoError(t, err)
	data, err := domain.MarshalEvent(domain.BookingConfirmed{BookingID: "b1"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, event_type, data, metadata)
		VALUES ($1, 'show-9', 2, 'BookingConfirmed', $2, '{}')`, uuid.Must(uuid.NewV7()), data)
	require.NoError(t, err)
	_, err = audit.Check(ctx, pool, nil)
	require.ErrorContains(t, err, "show-9: version 2 follows 0")
}

// A booking resolves once: a confirmation kept after its hold expired (or
// the reverse), or a cancellation of a booking no longer live, is a stream
// that breaks the rules, and Check refuses it.
func TestCheckRefusesABookingResolvedTwice(t *testing.T) {
	t.Parallel()
	expires := time.Now().Add(time.Hour).UTC()
	locked := domain.SeatLocked{BookingID: "b1", UserID: "u", SeatNumbers: []string{"A1"}, ExpiresAt: expires}
	for name, tc := range map[string]struct {
		events []domain.Event
		want   string
	}{
		"confirmed after it expired": {[]domain.Event{locked, domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1"}}, domain.BookingConfirmed{BookingID: "b1"}},
			"booking b1 is confirmed when it was expired"},
		"expired after it was confirmed": {[]domain.Event{locked, domain.BookingConfirmed{BookingID: "b1"}, domain.BookingExpired{BookingID: "b1", SeatNumbers: []string{"A1"}}},
			"booking b1 is expired when it was confirmed"},
		"cancelled twice": {[]domain.Event{locked, domain.BookingCancelled{BookingID: "b1", SeatNumbers: []string{"A1"}}, domain.BookingCancelled{BookingID: "b1", SeatNumbers: []string{"A1"}}},
			"booking b1 is cancelled when it was cancelled"},
		"confirmed, never locked": {[]domain.Event{domain.BookingConfirmed{BookingID: "b9"}},
			"booking b9 is confirmed without having been locked"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, _ := pgtest.NewDB(t)
			data := []eventstore.EventData{}
			for _, e := range append([]domain.Event{domain.ShowScheduled{ShowID: 7, Name: "x", ShowType: domain.ShowMovie, StartTime: expires, SeatNumbers: []string{"A1"}}}, tc.events...) {
				b, err := domain.MarshalEvent(e)
				require.NoError(t, err)
				data = append(data, eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), Data: b})
			}
			_, err := eventstore.New(pool).Append(ctx, domain.ShowID(7).StreamID(), 0, data)
			require.NoError(t, err)
			_, err = audit.Check(ctx, pool, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
