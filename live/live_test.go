package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
)

func runHub(t *testing.T, h *Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, h.Run(ctx)) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func next(t *testing.T, f *Feed) Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, ok, err := f.Next(ctx, nil)
		require.NoError(t, err)
		if ok {
			return c
		}
	}
}

// Two ledgers stand for two bookingd processes writing to one database; a
// feed served by a third process's hub sees every change of both, once, in
// version order, with the right seat statuses.
func TestFeedFollowsEveryProcess(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	a, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	b, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	hub := NewHub(eventstore.New(pool), nil, 5*time.Millisecond)
	runHub(t, hub)

	res, err := a.ScheduleShow(ctx, ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2", "3", "4", "5", "6"}}, ledger.Metadata{})
	require.NoError(t, err)
	f, err := Open(ctx, hub, res.ShowID, 1)
	require.NoError(t, err)
	defer f.Close()

	var wg sync.WaitGroup
	for i, svc := range []*ledger.Service{a, b, a} {
		wg.Go(func() {
			seat := fmt.Sprint(i + 1)
			bk, _, err := svc.Hold(ctx, res.ShowID, domain.UserID(fmt.Sprintf("0190c6e4-0000-7000-8000-00000000000%d", i)), []string{seat}, ledger.Metadata{})
			if assert.NoError(t, err) {
				_, err = svc.Confirm(ctx, res.ShowID, bk.ID, ledger.Metadata{})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()

	status := map[string]string{}
	for v := 2; v <= 7; v++ {
		c := next(t, f)
		require.Equal(t, v, c.Version, "in version order, none skipped or repeated")
		for _, s := range c.Seats {
			status[s.SeatNumber] = s.Status
		}
	}
	assert.Equal(t, map[string]string{"1": "booked", "2": "booked", "3": "booked"}, status)

	// The backlog: a feed opened after all that, from version 3, starts at 4.
	g, err := Open(ctx, hub, res.ShowID, 3)
	require.NoError(t, err)
	defer g.Close()
	assert.Equal(t, 4, next(t, g).Version)

	_, err = Open(ctx, hub, 999, 0)
	require.ErrorIs(t, err, ErrNoShow)
}

// A subscriber that does not keep up is dropped rather than slowing the
// hub; its client reconnects and resumes from the store.
func TestSlowSubscriberIsDropped(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	hub := NewHub(eventstore.New(pool), nil, 5*time.Millisecond)
	hub.buffer = 2
	hub.started = make(chan struct{})
	runHub(t, hub)
	<-hub.started // it reads what comes next
	res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2", "3", "4"}}, ledger.Metadata{})
	require.NoError(t, err)
	sub := hub.Subscribe(res.ShowID.StreamID())
	defer sub.Close()
	for _, seat := range []string{"1", "2", "3", "4"} {
		_, _, err := svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000001", []string{seat}, ledger.Metadata{})
		require.NoError(t, err)
	}
	select {
	case <-sub.Dropped():
	case <-time.After(30 * time.Second):
		t.Fatal("the slow subscriber was not dropped")
	}
}

// A hub that starts while an older transaction is still appending must not
// start after that transaction's events (the sequence-gap problem): the
// feed gets the event once it commits, even though a newer transaction had
// committed before the hub started.
func TestHubStartsBelowRunningTransactions(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	var ids []domain.ShowID
	for range 2 {
		res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
			StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2"}}, ledger.Metadata{})
		require.NoError(t, err)
		ids = append(ids, res.ShowID)
	}
	hold := func(db eventstore.Conn, show domain.ShowID) {
		data, err := domain.MarshalEvent(domain.SeatLocked{BookingID: domain.BookingID(uuid.NewString()),
			UserID: domain.UserID(uuid.NewString()), SeatNumbers: []string{"1"}, ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		_, err = eventstore.New(db).Append(ctx, show.StreamID(), 1, []eventstore.EventData{{ID: uuid.Must(uuid.NewV7()), Type: domain.TypeSeatLocked, Data: data}})
		require.NoError(t, err)
	}
	older, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = older.Rollback(ctx) }()
	hold(older, ids[0]) // still running
	hold(pool, ids[1])  // newer, committed

	hub := NewHub(eventstore.New(pool), nil, 5*time.Millisecond)
	hub.started = make(chan struct{})
	runHub(t, hub)
	<-hub.started
	f, err := Open(ctx, hub, ids[0], 1)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, older.Commit(ctx))
	assert.Equal(t, 2, next(t, f).Version, "the older transaction's hold reaches the feed")
}

// The database goes away under a running hub: every open feed is dropped at
// once (its client reconnects and resumes from the store), and once the
// database is back new feeds follow changes again, without restarting the
// hub.
func TestHubRidesOutADatabaseOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2"}}, ledger.Metadata{})
	require.NoError(t, err)
	hubPool := pgtest.Pool(t, url)
	hub := NewHub(eventstore.New(hubPool), nil, 5*time.Millisecond)
	hub.started = make(chan struct{})
	runHub(t, hub)
	<-hub.started
	f, err := Open(ctx, hub, res.ShowID, 1)
	require.NoError(t, err)
	defer f.Close()

	admin := pgtest.Pool(t, pgtest.AdminURL())
	name := hubPool.Config().ConnConfig.Database
	setConnections := func(allow bool) {
		_, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS %t`, name, allow))
		require.NoError(t, err)
		if !allow {
			_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name)
			require.NoError(t, err)
		}
	}
	setConnections(false)
	t.Cleanup(func() { setConnections(true) }) // before the database is dropped
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, _, err = f.Next(wait, nil)
	require.ErrorIs(t, err, ErrDropped, "an open feed ends when the hub cannot read")

	setConnections(true)
	svc2, err := ledger.New(pgtest.Pool(t, url), ledger.DefaultConfig()) // the writer's old connections were cut too
	require.NoError(t, err)
	// A feed opened once the database answers gets the next hold live. (One
	// opened just before the hub's last failed retry may still be dropped:
	// its client would reconnect, and so does this loop.)
	seats := []string{"1", "2"}
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 2, "the hub does not deliver again")
		var g *Feed
		require.Eventually(t, func() bool {
			g, err = Open(ctx, hub, res.ShowID, 1)
			return err == nil
		}, 30*time.Second, 50*time.Millisecond, "the database is back")
		_, _, err = svc2.Hold(ctx, res.ShowID, domain.UserID(uuid.NewString()), seats[attempt:attempt+1], ledger.Metadata{})
		require.NoError(t, err)
		wait, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, ok, err := g.Next(wait, nil)
		cancel()
		g.Close()
		if errors.Is(err, ErrDropped) {
			continue
		}
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, domain.TypeSeatLocked, c.Type, "a new feed follows changes again")
		assert.Equal(t, []SeatChange{{SeatNumber: seats[attempt], Status: "locked"}}, c.Seats)
		break
	}
}

// A feed opened before its hub chose where to start reading (the hub was
// starting, or coming back after an outage) gets the events committed in
// between from the store: the hub starts after them.
func TestFeedOpenedBeforeTheHubStartsMissesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2"}}, ledger.Metadata{})
	require.NoError(t, err)
	hub := NewHub(eventstore.New(pool), nil, 5*time.Millisecond)
	hub.started = make(chan struct{})
	f, err := Open(ctx, hub, res.ShowID, 1) // loads version 1
	require.NoError(t, err)
	defer f.Close()
	_, _, err = svc.Hold(ctx, res.ShowID, domain.UserID(uuid.NewString()), []string{"1"}, ledger.Metadata{}) // version 2
	require.NoError(t, err)
	runHub(t, hub)
	<-hub.started // it starts after version 2
	c := next(t, f)
	assert.Equal(t, 2, c.Version, "version 2 from the store")
	assert.Equal(t, domain.TypeSeatLocked, c.Type)
}
