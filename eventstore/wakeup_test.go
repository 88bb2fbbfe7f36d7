package eventstore_test

import (
	"context"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
)

// A caught-up subscriber whose poll interval is far longer than the test
// gets each new event anyway: the append is announced by NOTIFY, the
// listener wakes the subscriber, and it queries at once. Without the
// wake-up the events would wait out the poll interval and the test would
// fail at its bound.
func TestAnnouncedAppendsWakeSubscribers(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	listener := eventstore.NewListener(func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, url) }, nil)
	announcer := eventstore.NewAnnouncer(pool, 0, nil)
	wake := listener.Wake()
	done := make(chan struct{}, 2)
	go func() { listener.Run(ctx); done <- struct{}{} }()
	go func() { announcer.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

	sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(pool), eventstore.SubscriberConfig{
		ConsumerGroup: "woken", PollInterval: 10 * time.Minute, Wake: wake,
	}, nil)
	require.NoError(t, err)
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, eventstore.Topic)
	require.NoError(t, err)

	for v := range 3 {
		// The second event is announced while an older transaction is still
		// open: the woken query cannot read it yet, and the subscriber must
		// look again soon after, not wait for the next announcement.
		var blocker pgx.Tx
		if v == 1 {
			blocker, err = pool.Begin(ctx)
			require.NoError(t, err)
			_, err = blocker.Exec(ctx, `SELECT pg_current_xact_id()`)
			require.NoError(t, err)
		}
		_, err := store.Append(ctx, "show-1", v, []eventstore.EventData{newEvent(t, "E", v+1)})
		require.NoError(t, err)
		announcer.Announce()
		if blocker != nil {
			time.Sleep(100 * time.Millisecond) // let the woken subscriber find nothing
			require.NoError(t, blocker.Rollback(ctx))
		}
		select {
		case msg := <-msgs:
			e, err := eventstore.FromMessage(msg)
			require.NoError(t, err)
			require.Equal(t, v+1, e.StreamVersion)
			msg.Ack()
		case <-time.After(time.Minute):
			t.Fatalf("event %d was not delivered: the subscriber was not woken", v+1)
		}
	}
}
