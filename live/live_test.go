package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
)

// countingStore counts the show loads a hub makes.
type countingStore struct {
	*eventstore.Store
	loads atomic.Int64
}

func (s *countingStore) Load(ctx context.Context, stream string, after int) ([]eventstore.Event, error) {
	s.loads.Add(1)
	return s.Store.Load(ctx, stream, after)
}

func runHub(t *testing.T, h *Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, h.Run(ctx)) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// startedHub returns a running hub on store that has chosen where it
// reads from.
func startedHub(t *testing.T, store Store, cfg Config) *Hub {
	t.Helper()
	cfg.Poll = 5 * time.Millisecond
	h := NewHub(store, nil, cfg)
	h.started = make(chan struct{})
	runHub(t, h)
	<-h.started
	return h
}

// msg is one parsed server-sent event.
type msg struct {
	id    int
	event string
	data  Message // a snapshot has the same fields
}

func parse(t *testing.T, frame []byte) msg {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(frame, []byte("\n\n")), []byte("\n"))
	require.Len(t, lines, 3, "%s", frame)
	var m msg
	var err error
	m.id, err = strconv.Atoi(string(bytes.TrimPrefix(lines[0], []byte("id: "))))
	require.NoError(t, err)
	m.event = string(bytes.TrimPrefix(lines[1], []byte("event: ")))
	require.NoError(t, json.Unmarshal(bytes.TrimPrefix(lines[2], []byte("data: ")), &m.data))
	require.Equal(t, m.id, m.data.Version, "the message id is the stream version")
	return m
}

// next returns the next messages of f (bounded wait).
func next(t *testing.T, f *Feed) []msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var frames [][]byte
	for frames == nil { // nil: a keep-alive
		var err error
		frames, err = f.Next(ctx)
		require.NoError(t, err)
	}
	out := make([]msg, len(frames))
	for i, fr := range frames {
		out[i] = parse(t, fr)
	}
	return out
}

// nextOne returns the next message of f, which must come alone.
func nextOne(t *testing.T, f *Feed) msg {
	t.Helper()
	ms := next(t, f)
	require.Len(t, ms, 1)
	return ms[0]
}

// waitVersion waits until the hub has folded show id up to v.
func waitVersion(t *testing.T, h *Hub, id domain.ShowID, v int) {
	t.Helper()
	h.mu.Lock()
	sh := h.shows[id.StreamID()]
	h.mu.Unlock()
	require.NotNil(t, sh)
	require.Eventually(t, func() bool { return sh.version() >= v }, 30*time.Second, time.Millisecond)
}

type fixture struct {
	ctx   context.Context
	db    *pgxpool.Pool
	svc   *ledger.Service
	store *countingStore
	show  domain.ShowID
}

func newFixture(t *testing.T, seats ...string) *fixture {
	t.Helper()
	pool, _ := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	f := &fixture{ctx: context.Background(), db: pool, svc: svc, store: &countingStore{Store: eventstore.New(pool)}}
	if len(seats) == 0 {
		seats = []string{"1", "2", "3", "4", "5", "6"}
	}
	res, err := svc.ScheduleShow(f.ctx, ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: seats}, ledger.Metadata{})
	require.NoError(t, err)
	f.show = res.ShowID
	return f
}

func (f *fixture) hold(t *testing.T, seats ...string) domain.BookingID {
	t.Helper()
	b, _, err := f.svc.Hold(f.ctx, f.show, domain.UserID(uuid.NewString()), seats, ledger.Metadata{})
	require.NoError(t, err)
	return b.ID
}

func (f *fixture) open(t *testing.T, h *Hub, after int) *Feed {
	t.Helper()
	feed, err := h.Open(f.ctx, f.show, after)
	require.NoError(t, err)
	t.Cleanup(feed.Close)
	return feed
}

// Every feed of a show shares one seat map: however many open at once,
// the show's stream is loaded once.
func TestFeedsShareOneLoad(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.hold(t, "1")
	h := startedHub(t, fx.store, Config{})
	var wg sync.WaitGroup
	feeds := make([]*Feed, 50)
	for i := range feeds {
		wg.Go(func() {
			f, err := h.Open(fx.ctx, fx.show, 2)
			if assert.NoError(t, err) {
				feeds[i] = f
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, fx.store.loads.Load(), "one load for fifty feeds")
	shows, open := h.Watched()
	assert.Equal(t, 1, shows)
	assert.Equal(t, 50, open)

	fx.hold(t, "2")
	for _, f := range feeds {
		m := nextOne(t, f)
		assert.Equal(t, 3, m.id)
		assert.Equal(t, []SeatChange{{"2", "locked"}}, m.data.Seats)
		f.Close()
	}
	assert.EqualValues(t, 1, fx.store.loads.Load(), "following the show reads no more")

	_, err := h.Open(fx.ctx, 999_999, 0)
	require.ErrorIs(t, err, ErrNoShow)
	shows, _ = h.Watched()
	assert.Equal(t, 1, shows, "a show that does not exist is not kept")
}

// A client without a version gets the whole seat map, then the changes; a
// client whose version the ring covers gets only what it lacks, in
// version order, with the right statuses.
func TestSnapshotThenChanges(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, "1", "2", "3")
	h := startedHub(t, fx.store, Config{})
	first := fx.open(t, h, 0)
	snap := nextOne(t, first)
	assert.Equal(t, EventSnapshot, snap.event)
	assert.Equal(t, 1, snap.id)
	assert.Equal(t, 3, snap.data.AvailableSeats)
	assert.Equal(t, []SeatChange{{"1", "available"}, {"2", "available"}, {"3", "available"}}, snap.data.Seats)

	b := fx.hold(t, "1", "2")
	_, err := fx.svc.Confirm(fx.ctx, fx.show, b, ledger.Metadata{})
	require.NoError(t, err)
	_, err = fx.svc.Cancel(fx.ctx, fx.show, b, ledger.Metadata{})
	require.NoError(t, err)
	fx.hold(t, "3")

	var got []msg
	for len(got) == 0 || got[len(got)-1].id < 5 {
		got = append(got, next(t, first)...)
	}
	want := []msg{
		{2, EventSeats, Message{int64(fx.show), 2, 1, []SeatChange{{"1", "locked"}, {"2", "locked"}}}},
		{3, EventSeats, Message{int64(fx.show), 3, 1, []SeatChange{{"1", "booked"}, {"2", "booked"}}}},
		{4, EventSeats, Message{int64(fx.show), 4, 3, []SeatChange{{"1", "available"}, {"2", "available"}}}},
		{5, EventSeats, Message{int64(fx.show), 5, 2, []SeatChange{{"3", "locked"}}}},
	}
	assert.Equal(t, want, got, "one message per event (coalescing off), none skipped or repeated")

	// Resuming inside the ring: the changes after version 3, nothing else.
	resumed := fx.open(t, h, 3)
	assert.Equal(t, want[2:], next(t, resumed))

	// A client ahead of the hub waits for what comes after its version.
	ahead := fx.open(t, h, 6)
	fx.hold(t, "1")
	fx.hold(t, "2")
	waitVersion(t, h, fx.show, 7)
	m := next(t, ahead)
	assert.Equal(t, 7, m[len(m)-1].id)
	assert.Equal(t, []SeatChange{{"2", "locked"}}, m[len(m)-1].data.Seats)
	for _, x := range m {
		assert.Greater(t, x.id, 6, "nothing at or before its version")
	}
}

// A version the ring no longer covers gets a snapshot of the seat map at
// the hub's version instead of the changes; so does a slow reader that
// fell behind the ring, and one that falls behind again right after its
// snapshot is dropped. Either way the show keeps at most Ring messages.
func TestFeedsOutsideTheRingGetASnapshot(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	h := startedHub(t, fx.store, Config{Ring: 2})
	slow := fx.open(t, h, 1)
	for _, seat := range []string{"1", "2", "3"} {
		fx.hold(t, seat)
	}
	waitVersion(t, h, fx.show, 4)

	old := fx.open(t, h, 1) // versions 2..4 are not all in a ring of 2
	snap := nextOne(t, old)
	assert.Equal(t, EventSnapshot, snap.event)
	assert.Equal(t, 4, snap.id)
	assert.Equal(t, 3, snap.data.AvailableSeats)
	assert.Equal(t, []SeatChange{{"1", "locked"}, {"2", "locked"}, {"3", "locked"}, {"4", "available"}, {"5", "available"},
		{"6", "available"}}, snap.data.Seats)
	inRing := fx.open(t, h, 2)
	assert.Equal(t, []int{3, 4}, ids(next(t, inRing)))

	// The slow feed took nothing while three messages went by.
	m := nextOne(t, slow)
	assert.Equal(t, EventSnapshot, m.event, "resynced, not sent a backlog")
	assert.Equal(t, 4, m.id)
	fx.hold(t, "4")
	fx.hold(t, "5")
	fx.hold(t, "6")
	waitVersion(t, h, fx.show, 7)
	ctx, cancel := context.WithTimeout(fx.ctx, 30*time.Second)
	defer cancel()
	_, err := slow.Next(ctx)
	require.ErrorIs(t, err, ErrDropped, "behind the ring again right after a snapshot: closed")

	h.mu.Lock()
	sh := h.shows[fx.show.StreamID()]
	h.mu.Unlock()
	sh.mu.Lock()
	assert.Equal(t, 2, sh.n, "the ring holds at most its size")
	sh.mu.Unlock()
}

func ids(ms []msg) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.id
	}
	return out
}

// Changes that arrive within the window go out as one message naming
// every seat change in order, its id the last version; every feed gets
// the same bytes.
func TestChangesAreCoalesced(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	// A window no test waits out: the message goes when the test flushes.
	h := startedHub(t, fx.store, Config{Coalesce: time.Hour})
	a, b := fx.open(t, h, 1), fx.open(t, h, 1)
	bk := fx.hold(t, "1", "2")
	_, err := fx.svc.Cancel(fx.ctx, fx.show, bk, ledger.Metadata{})
	require.NoError(t, err)
	fx.hold(t, "2", "3")
	waitVersion(t, h, fx.show, 4)
	h.mu.Lock()
	sh := h.shows[fx.show.StreamID()]
	h.mu.Unlock()
	sh.flushNow()

	fa, err := a.Next(fx.ctx)
	require.NoError(t, err)
	require.Len(t, fa, 1)
	m := parse(t, fa[0])
	assert.Equal(t, EventSeats, m.event)
	assert.Equal(t, 4, m.id, "the id is the last version")
	assert.Equal(t, []SeatChange{{"1", "locked"}, {"2", "locked"}, {"1", "available"}, {"2", "available"}, {"2", "locked"},
		{"3", "locked"}}, m.data.Seats, "every seat change, in order")
	assert.Equal(t, 4, m.data.AvailableSeats)
	fb, err := b.Next(fx.ctx)
	require.NoError(t, err)
	require.Len(t, fb, 1)
	assert.Same(t, &fa[0][0], &fb[0][0], "encoded once: both feeds write the same bytes")

	// The window is a ceiling: with a short one, a change goes out by itself.
	h2 := startedHub(t, fx.store, Config{Coalesce: 10 * time.Millisecond})
	c := fx.open(t, h2, 4)
	fx.hold(t, "4")
	assert.Equal(t, []SeatChange{{"4", "locked"}}, nextOne(t, c).data.Seats)
}

// Two ledgers stand for two bookingd processes writing to one database; a
// feed served by a third process's hub sees every change of both, once, in
// version order.
func TestFeedFollowsEveryProcess(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	other, err := ledger.New(fx.db, ledger.DefaultConfig())
	require.NoError(t, err)
	h := startedHub(t, fx.store, Config{})
	f := fx.open(t, h, 1)
	var wg sync.WaitGroup
	for i, svc := range []*ledger.Service{fx.svc, other, fx.svc} {
		wg.Go(func() {
			bk, _, err := svc.Hold(fx.ctx, fx.show, domain.UserID(uuid.NewString()), []string{fmt.Sprint(i + 1)}, ledger.Metadata{})
			if assert.NoError(t, err) {
				_, err = svc.Confirm(fx.ctx, fx.show, bk.ID, ledger.Metadata{})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	status := map[string]string{}
	for v := 2; v <= 7; {
		for _, m := range next(t, f) {
			require.Equal(t, v, m.id, "in version order, none skipped or repeated")
			for _, s := range m.data.Seats {
				status[s.SeatNumber] = s.Status
			}
			v++
		}
	}
	assert.Equal(t, map[string]string{"1": "booked", "2": "booked", "3": "booked"}, status)
}

// A hub that starts while an older transaction is still appending must not
// start after that transaction's events (the sequence-gap problem): the
// feed gets the event once it commits, even though a newer transaction had
// committed before the hub started.
func TestHubStartsBelowRunningTransactions(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, "1", "2")
	pool := fx.db
	res, err := fx.svc.ScheduleShow(fx.ctx, ledger.ScheduleInput{Name: "y", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2"}}, ledger.Metadata{})
	require.NoError(t, err)
	hold := func(db eventstore.Conn, show domain.ShowID) {
		data, err := domain.MarshalEvent(domain.SeatLocked{BookingID: domain.BookingID(uuid.NewString()),
			UserID: domain.UserID(uuid.NewString()), SeatNumbers: []string{"1"}, ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		_, err = eventstore.New(db).Append(fx.ctx, show.StreamID(), 1, []eventstore.EventData{{ID: uuid.Must(uuid.NewV7()), Type: domain.TypeSeatLocked, Data: data}})
		require.NoError(t, err)
	}
	older, err := pool.Begin(fx.ctx)
	require.NoError(t, err)
	defer func() { _ = older.Rollback(fx.ctx) }()
	hold(older, fx.show)   // still running
	hold(pool, res.ShowID) // newer, committed

	h := startedHub(t, fx.store, Config{})
	f := fx.open(t, h, 1)
	require.NoError(t, older.Commit(fx.ctx))
	assert.Equal(t, 2, nextOne(t, f).id, "the older transaction's hold reaches the feed")
}

// A show loaded before its hub chose where to start reading (the hub was
// starting) gets the events committed in between from the store: the hub
// starts after them.
func TestShowLoadedBeforeTheHubStartsMissesNothing(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	h := NewHub(fx.store, nil, Config{Poll: 5 * time.Millisecond})
	h.started = make(chan struct{})
	f := fx.open(t, h, 1) // loads version 1
	fx.hold(t, "1")       // version 2
	runHub(t, h)
	<-h.started // it starts after version 2
	m := nextOne(t, f)
	assert.Equal(t, 2, m.id, "version 2 from the store")
	assert.Equal(t, []SeatChange{{"1", "locked"}}, m.data.Seats)
}

// The database goes away under a running hub: open feeds stay open, and
// once the database is back they get what happened, without restarting
// the hub.
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
	h := startedHub(t, eventstore.New(hubPool), Config{})
	f, err := h.Open(ctx, res.ShowID, 1)
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
	// The hub fails to read for a while; the feed waits on.
	require.Eventually(t, func() bool {
		_, err := hubPool.Exec(ctx, `SELECT 1`)
		return err != nil
	}, 30*time.Second, 10*time.Millisecond)
	setConnections(true)
	svc2, err := ledger.New(pgtest.Pool(t, url), ledger.DefaultConfig()) // the writer's old connections were cut too
	require.NoError(t, err)
	_, _, err = svc2.Hold(ctx, res.ShowID, domain.UserID(uuid.NewString()), []string{"2"}, ledger.Metadata{})
	require.NoError(t, err)
	m := nextOne(t, f)
	assert.Equal(t, 2, m.id)
	assert.Equal(t, []SeatChange{{"2", "locked"}}, m.data.Seats, "the open feed follows changes again")
}

// A show nobody watches is evicted after a while; one with a feed stays,
// and a show watched again after eviction is loaded again. When the hub
// stops, its feeds end.
func TestIdleShowsAreEvicted(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	h := startedHub(t, fx.store, Config{Evict: time.Hour})
	f := fx.open(t, h, 1)
	g := fx.open(t, h, 1)
	f.Close()
	h.evictIdle(time.Now().Add(2 * time.Hour))
	shows, feeds := h.Watched()
	assert.Equal(t, 1, shows, "a show with a feed stays")
	assert.Equal(t, 1, feeds)
	g.Close()
	h.evictIdle(time.Now().Add(30 * time.Minute))
	shows, _ = h.Watched()
	assert.Equal(t, 1, shows, "not idle long enough")
	h.evictIdle(time.Now().Add(2 * time.Hour))
	shows, _ = h.Watched()
	assert.Equal(t, 0, shows)
	ctx, cancel := context.WithTimeout(fx.ctx, 30*time.Second)
	defer cancel()
	_, err := g.Next(ctx)
	require.ErrorIs(t, err, ErrDropped, "an evicted show's feeds end")

	fx.open(t, h, 1)
	assert.EqualValues(t, 2, fx.store.loads.Load(), "watched again: loaded again")
}

func TestGateCapsFeeds(t *testing.T) {
	t.Parallel()
	g := NewGate(3, 2)
	r1, err := g.Admit("ip:a")
	require.NoError(t, err)
	r2, err := g.Admit("ip:a")
	require.NoError(t, err)
	_, err = g.Admit("ip:a")
	require.ErrorIs(t, err, ErrTooManyClientFeeds)
	r3, err := g.Admit("user:b")
	require.NoError(t, err)
	_, err = g.Admit("user:c")
	require.ErrorIs(t, err, ErrTooManyFeeds)
	r1()
	r1() // releasing twice counts once
	assert.Equal(t, 2, g.Open())
	_, err = g.Admit("ip:a")
	require.NoError(t, err, "a released feed frees its place")
	r2()
	r3()

	free := NewGate(0, 0)
	for range 100 {
		_, err := free.Admit("ip:a")
		require.NoError(t, err, "0: no cap")
	}
}

// A feed with nothing to send is woken now and then to send a keep-alive.
func TestIdleFeedsAreWokenForAKeepAlive(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	h := startedHub(t, fx.store, Config{KeepAlive: time.Millisecond})
	f := fx.open(t, h, 1)
	ctx, cancel := context.WithTimeout(fx.ctx, 30*time.Second)
	defer cancel()
	frames, err := f.Next(ctx)
	require.NoError(t, err)
	assert.Nil(t, frames, "woken with nothing to send")
	assert.Equal(t, 1, f.Version())
}

// A client that read the show a moment before the hub first loaded it
// resumes from the ring: the show's last events are messages too.
func TestFirstLoadKeepsTheLastEventsInTheRing(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.hold(t, "1")
	fx.hold(t, "2")
	fx.hold(t, "3") // version 4
	h := startedHub(t, fx.store, Config{Ring: 2})
	f := fx.open(t, h, 2)
	got := next(t, f)
	assert.Equal(t, []int{3, 4}, ids(got), "the changes, not a snapshot")
	assert.Equal(t, []SeatChange{{"2", "locked"}}, got[0].data.Seats)
	assert.Equal(t, []SeatChange{{"3", "locked"}}, got[1].data.Seats)
	older := fx.open(t, h, 1) // the ring of 2 holds versions 3 and 4
	assert.Equal(t, EventSnapshot, nextOne(t, older).event)
}

// A snapshot is encoded once while the ring covers its version: a client
// that needs one later gets the same bytes and resumes from the ring.
func TestSnapshotsAreReusedWhileTheRingCoversThem(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	h := startedHub(t, fx.store, Config{})
	a := fx.open(t, h, 0)
	fa, err := a.Next(fx.ctx)
	require.NoError(t, err)
	first := fa[0]
	fx.hold(t, "1")
	waitVersion(t, h, fx.show, 2)
	b := fx.open(t, h, 0)
	fb, err := b.Next(fx.ctx)
	require.NoError(t, err)
	assert.Same(t, &first[0], &fb[0][0], "the snapshot at version 1, not a new one")
	assert.Equal(t, 1, b.Version())
	m := nextOne(t, b)
	assert.Equal(t, 2, m.id)
	assert.Equal(t, []SeatChange{{"1", "locked"}}, m.data.Seats)
}

// A hub whose Run has returned opens no feeds: nothing would keep them up
// to date.
func TestAStoppedHubOpensNoFeeds(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	h := NewHub(fx.store, nil, Config{Poll: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(fx.ctx)
	cancel()
	require.NoError(t, h.Run(ctx))
	_, err := h.Open(fx.ctx, fx.show, 0)
	require.ErrorIs(t, err, ErrDropped)
}
