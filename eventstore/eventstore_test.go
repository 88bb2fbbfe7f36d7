package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
)

func newEvent(t testing.TB, typ string, n int) eventstore.EventData {
	t.Helper()
	return eventstore.EventData{
		ID:       uuid.Must(uuid.NewV7()),
		Type:     typ,
		Data:     json.RawMessage(fmt.Sprintf(`{"n": %d}`, n)),
		Metadata: json.RawMessage(`{"user_id": "u1"}`),
	}
}

func TestAppendAndLoad(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()

	got, err := store.Append(ctx, "show-1", 0, []eventstore.EventData{newEvent(t, "A", 1), newEvent(t, "B", 2)})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, 1, got[0].StreamVersion)
	assert.Equal(t, 2, got[1].StreamVersion)
	assert.Equal(t, "A", got[0].Type)
	assert.Less(t, got[0].GlobalPosition, got[1].GlobalPosition)
	assert.Equal(t, got[0].TransactionID, got[1].TransactionID, "one append is one transaction")

	_, err = store.Append(ctx, "show-1", 2, []eventstore.EventData{newEvent(t, "C", 3)})
	require.NoError(t, err)

	all, err := store.Load(ctx, "show-1", 0)
	require.NoError(t, err)
	require.Len(t, all, 3)
	for i, e := range all {
		assert.Equal(t, i+1, e.StreamVersion)
		assert.Equal(t, "show-1", e.StreamID)
		assert.JSONEq(t, fmt.Sprintf(`{"n": %d}`, i+1), string(e.Data))
		assert.JSONEq(t, `{"user_id": "u1"}`, string(e.Metadata))
	}
	tail, err := store.Load(ctx, "show-1", 2)
	require.NoError(t, err)
	require.Len(t, tail, 1)
	assert.Equal(t, "C", tail[0].Type)

	v, err := store.Version(ctx, "show-1")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	v, err = store.Version(ctx, "show-404")
	require.NoError(t, err)
	assert.Equal(t, 0, v)
}

func TestAppendRefusesWrongExpectedVersion(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	_, err := store.Append(ctx, "show-7", 0, []eventstore.EventData{newEvent(t, "A", 1), newEvent(t, "A", 2)})
	require.NoError(t, err)

	tests := []struct {
		name     string
		expected int
	}{
		{"behind", 1},
		{"new stream that exists", 0},
		{"ahead would leave a gap", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Append(ctx, "show-7", tc.expected, []eventstore.EventData{newEvent(t, "X", 9)})
			require.ErrorIs(t, err, eventstore.ErrVersionConflict)
			var vc *eventstore.VersionConflictError
			require.ErrorAs(t, err, &vc)
			assert.Equal(t, "show-7", vc.Stream)
			assert.Equal(t, tc.expected, vc.Expected)
			assert.Equal(t, 2, vc.Actual)
		})
	}
	v, err := store.Version(ctx, "show-7")
	require.NoError(t, err)
	assert.Equal(t, 2, v, "refused appends wrote nothing")
}

func TestAppendRejectsIncompleteEvents(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	_, err := store.Append(context.Background(), "show-1", 0, []eventstore.EventData{{Type: "A", Data: json.RawMessage(`{}`)}})
	require.Error(t, err)
	_, err = store.Append(context.Background(), "show-1", 0, []eventstore.EventData{{ID: uuid.New(), Type: "A", Data: json.RawMessage(`not json`)}})
	require.Error(t, err)
}

// 50 writers race for every version of one stream: each version has exactly
// one winner and the stream ends with versions 1..50 and no gaps.
func TestConcurrentAppendsOneWinnerPerVersion(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	const writers = 50

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   = map[int]int{} // version -> writer
		conflicts int
		start     = make(chan struct{})
	)
	for w := range writers {
		wg.Go(func() {
			<-start
			for attempt := 0; attempt < 10*writers; attempt++ {
				v, err := store.Version(ctx, "show-1")
				if err != nil {
					t.Error(err)
					return
				}
				got, err := store.Append(ctx, "show-1", v, []eventstore.EventData{newEvent(t, "W", w)})
				if err == nil {
					mu.Lock()
					if prev, dup := winners[got[0].StreamVersion]; dup {
						t.Errorf("version %d won by writers %d and %d", got[0].StreamVersion, prev, w)
					}
					winners[got[0].StreamVersion] = w
					mu.Unlock()
					return
				}
				var vc *eventstore.VersionConflictError
				if !assert.ErrorAs(t, err, &vc) {
					return
				}
				mu.Lock()
				conflicts++
				mu.Unlock()
			}
			t.Errorf("writer %d never appended", w)
		})
	}
	close(start)
	wg.Wait()

	require.Len(t, winners, writers)
	events, err := store.Load(ctx, "show-1", 0)
	require.NoError(t, err)
	require.Len(t, events, writers)
	seen := map[string]bool{}
	for i, e := range events {
		assert.Equal(t, i+1, e.StreamVersion, "no gaps")
		assert.False(t, seen[string(e.Data)], "each writer's event stored once")
		seen[string(e.Data)] = true
	}
	t.Logf("%d conflicts while 50 writers raced", conflicts)
}

func beginAppend(t *testing.T, pool *pgxpool.Pool, stream string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = eventstore.New(tx).Append(ctx, stream, 0, []eventstore.EventData{newEvent(t, "E", 0)})
	require.NoError(t, err)
	return tx
}

// pollUntil calls poll until done says so. pg_snapshot_xmin is server-wide,
// so a transaction open in another test's database can hold readers back for
// a moment; the loop is bounded and fails the test if done never holds.
func pollUntil(t *testing.T, poll func(), done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if poll(); done() {
			return
		}
	}
	t.Fatal("the stream did not catch up within 30s")
}

func streams(events []eventstore.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.StreamID
	}
	return out
}

// The sequence-gap problem: A takes a position, B takes a later one and
// commits first. A reader polling in between must not move past A.
func TestReadAllWaitsForLateCommits(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()

	_, err := store.Append(ctx, "show-0", 0, []eventstore.EventData{newEvent(t, "E", 0)})
	require.NoError(t, err)

	txA := beginAppend(t, pool, "show-a") // lower position, commits last
	txB := beginAppend(t, pool, "show-b")
	require.NoError(t, txB.Commit(ctx))

	var cp eventstore.Checkpoint
	var read []eventstore.Event
	poll := func() {
		batch, err := store.ReadAll(ctx, cp, 100)
		require.NoError(t, err)
		for _, e := range batch {
			read = append(read, e)
			cp = e.Checkpoint()
		}
	}
	for range 5 {
		poll()
	}
	assert.Subset(t, []string{"show-0"}, streams(read), "B is committed but must wait for A")

	require.NoError(t, txA.Commit(ctx))
	pollUntil(t, poll, func() bool { return len(read) >= 3 })
	assert.Equal(t, []string{"show-0", "show-a", "show-b"}, streams(read))
	poll()
	assert.Len(t, read, 3, "nothing read twice")
}

// A transaction that got its xid first but its position last is read before
// the one with the lower position: the stream order is (transaction, position).
func TestReadAllOrdersByTransaction(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()

	txA, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = txA.Rollback(ctx) }()
	_, err = txA.Exec(ctx, "SELECT pg_current_xact_id()") // A's xid is older
	require.NoError(t, err)

	txB := beginAppend(t, pool, "show-b") // B takes the lower position
	_, err = eventstore.New(txA).Append(ctx, "show-a", 0, []eventstore.EventData{newEvent(t, "E", 0)})
	require.NoError(t, err)
	require.NoError(t, txB.Commit(ctx))

	got, err := store.ReadAll(ctx, eventstore.Checkpoint{}, 100)
	require.NoError(t, err)
	assert.Empty(t, got, "B's transaction is newer than running A")

	require.NoError(t, txA.Commit(ctx))
	pollUntil(t, func() {
		got, err = store.ReadAll(ctx, eventstore.Checkpoint{}, 100)
		require.NoError(t, err)
	}, func() bool { return len(got) >= 2 })
	require.Equal(t, []string{"show-a", "show-b"}, streams(got))
	assert.Greater(t, got[0].GlobalPosition, got[1].GlobalPosition)

	// Resuming from a plain position goes through CheckpointAt.
	cp, err := store.CheckpointAt(ctx, got[0].GlobalPosition)
	require.NoError(t, err)
	rest, err := store.ReadAll(ctx, cp, 100)
	require.NoError(t, err)
	assert.Equal(t, []string{"show-b"}, streams(rest))
	_, err = store.CheckpointAt(ctx, 999999)
	require.ErrorIs(t, err, eventstore.ErrPositionNotFound)
}

func TestReadAllPagesThroughEverything(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	const streamsN, perStream = 7, 13
	for s := range streamsN {
		for v := range perStream {
			_, err := store.Append(ctx, fmt.Sprintf("show-%d", s+1), v, []eventstore.EventData{newEvent(t, "E", v)})
			require.NoError(t, err)
		}
	}
	// pg_snapshot_xmin is server-wide: a transaction open in another test's
	// database holds every reader back for a moment, so the reader polls.
	var cp eventstore.Checkpoint
	var all []eventstore.Event
	pollUntil(t, func() {
		batch, err := store.ReadAll(ctx, cp, 10)
		require.NoError(t, err)
		if len(batch) > 0 {
			all = append(all, batch...)
			cp = batch[len(batch)-1].Checkpoint()
		}
	}, func() bool { return len(all) >= streamsN*perStream })
	require.Len(t, streams(all), streamsN*perStream)
	more, err := store.ReadAll(ctx, cp, 10)
	require.NoError(t, err)
	assert.Empty(t, more)
	last := map[string]int{}
	for _, e := range all {
		assert.Equal(t, last[e.StreamID]+1, e.StreamVersion, "per-stream order kept")
		last[e.StreamID] = e.StreamVersion
	}
	_, err = store.ReadAll(ctx, cp, 0)
	require.Error(t, err)
}

// The events table works as a watermill topic: a consumer group gets every
// event once, in stream order, and resumes from its committed offset.
func TestWatermillSubscriberResumes(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	for v := range 25 {
		_, err := store.Append(ctx, "show-1", v, []eventstore.EventData{newEvent(t, "E", v+1)})
		require.NoError(t, err)
	}

	consume := func(n int) []eventstore.Event {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(pool),
			eventstore.SubscriberConfig{ConsumerGroup: "test", BatchSize: 10, PollInterval: 10 * time.Millisecond}, nil)
		require.NoError(t, err)
		defer sub.Close()
		msgs, err := sub.Subscribe(ctx, eventstore.Topic)
		require.NoError(t, err)
		var got []eventstore.Event
		for len(got) < n {
			msg := <-msgs
			e, err := eventstore.FromMessage(msg)
			require.NoError(t, err)
			got = append(got, e)
			msg.Ack()
		}
		return got
	}
	first := consume(10)
	for i, e := range first {
		assert.Equal(t, i+1, e.StreamVersion)
		assert.JSONEq(t, `{"user_id": "u1"}`, string(e.Metadata))
	}
	// The group's offset moves a whole batch at a time, once all of it is
	// acked and committed; the first consumer stopped somewhere in a batch.
	// The next one starts right after the committed offset: every event
	// after it once, in order, none before it.
	committed, err := store.ConsumerCheckpoint(ctx, "test")
	require.NoError(t, err)
	done := 0
	for _, e := range first {
		if !committed.Less(e.Checkpoint()) {
			done = e.StreamVersion
		}
	}
	require.Equal(t, committed == eventstore.Checkpoint{}, done == 0, "the offset is one of the acked events")
	rest := consume(25 - done)
	for i, e := range rest {
		assert.Equal(t, done+i+1, e.StreamVersion)
	}

	// Events enter only through Append, never through a watermill publisher.
	pub, err := wsql.NewPublisher(wsql.BeginnerFromPgx(pool), wsql.PublisherConfig{SchemaAdapter: eventstore.WatermillSchema{}}, nil)
	require.NoError(t, err)
	err = pub.Publish(eventstore.Topic, eventstore.ToMessage(rest[0]))
	require.ErrorIs(t, err, eventstore.ErrPublishNotSupported)
}

func TestConsumerLag(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	for v := range 5 {
		_, err := store.Append(ctx, "show-1", v, []eventstore.EventData{newEvent(t, "E", v)})
		require.NoError(t, err)
	}
	n, behind, err := store.Lag(ctx, "jobs")
	require.NoError(t, err)
	assert.Equal(t, int64(5), n, "a group that never consumed is behind by everything")
	assert.GreaterOrEqual(t, behind, time.Duration(0))

	events, err := store.Load(ctx, "show-1", 3)
	require.NoError(t, err)
	require.NoError(t, store.SetConsumerCheckpoint(ctx, "jobs", events[0].Checkpoint()))
	n, _, err = store.Lag(ctx, "jobs")
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	require.NoError(t, store.SetConsumerCheckpoint(ctx, "jobs", events[1].Checkpoint()))
	n, behind, err = store.Lag(ctx, "jobs")
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, behind)
	groups, err := store.ConsumerGroups(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"jobs"}, groups)
}

// A consumer stopped right after it handled and acked a message has moved
// its group's offset past that message, so what the handler wrote in the
// message's transaction commits with the offset. watermill-sql records an
// ack only when its goroutine sees it; when that goroutine comes to look
// after the subscription was closed as well, it chooses between the two at
// random, and choosing the close it committed the transaction without the
// offset: the next consumer applied the message again.
//
// The test makes that order likely on one processor: the first message of
// each round is acked by the handler itself, which then lets the
// subscriber's goroutine run (it hands out the next message and waits)
// before stopping the consumer; Consume may still take that next message
// (it chooses at random between it and the stop), and its handler does not
// wait. Not parallel, so that no other test runs meanwhile.
func TestConsumeStoppedAfterAnAckHasMovedTheOffset(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	pool, _ := pgtest.NewDB(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	const events = 60
	for v := range events {
		_, err := store.Append(ctx, "show-1", v, []eventstore.EventData{newEvent(t, "E", v+1)})
		require.NoError(t, err)
	}

	handled := 0
	for round := 0; handled < events; round++ {
		require.Less(t, round, 2*events, "the consumer makes no progress")
		sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(pool),
			eventstore.SubscriberConfig{ConsumerGroup: "stops", BatchSize: 10, PollInterval: 5 * time.Millisecond}, nil)
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		first := true
		err = eventstore.Consume(runCtx, sub, eventstore.Topic, func(msg *message.Message) error {
			e, err := eventstore.FromMessage(msg)
			if err != nil {
				return err
			}
			if e.StreamVersion != handled+1 {
				return fmt.Errorf("event v%d handled after v%d", e.StreamVersion, handled)
			}
			handled++
			if first {
				first = false
				msg.Ack()
				runtime.Gosched()
				stop()
			}
			return nil
		})
		stop()
		require.NoError(t, err, "round %d", round)

		committed, err := store.ConsumerCheckpoint(ctx, "stops")
		require.NoError(t, err)
		var upTo int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events
			WHERE (transaction_id::text::bigint, global_position) <= ($1, $2)`, committed.TransactionID, committed.Position).Scan(&upTo))
		require.Equal(t, handled, upTo, "round %d: the offset stands after every handled message", round)
	}
}
