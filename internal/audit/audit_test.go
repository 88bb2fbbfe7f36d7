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
