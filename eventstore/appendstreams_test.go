package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
)

// AppendStreams appends every stream found at its expected version in one
// transaction, in stream order, and gives each of the others its version
// conflict; what it stores reads back as Append would have stored it.
func TestAppendStreams(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	store := eventstore.New(pool)
	_, err := store.Append(ctx, "b", 0, []eventstore.EventData{newEvent(t, "E", 1)})
	require.NoError(t, err)
	_, err = store.Append(ctx, "c", 0, []eventstore.EventData{newEvent(t, "E", 1), newEvent(t, "E", 2)})
	require.NoError(t, err)

	bare := newEvent(t, "E", 9)
	bare.Metadata = nil
	appends := []eventstore.StreamAppend{
		{Stream: "d", ExpectedVersion: 0, Events: []eventstore.EventData{newEvent(t, "E", 1), bare}},
		{Stream: "c", ExpectedVersion: 1, Events: []eventstore.EventData{newEvent(t, "E", 3)}}, // c is at 2
		{Stream: "b", ExpectedVersion: 1, Events: []eventstore.EventData{newEvent(t, "E", 2)}},
	}
	out, err := store.AppendStreams(ctx, appends)
	require.NoError(t, err)
	require.Len(t, out, 3)

	require.NoError(t, out[0].Err)
	require.NoError(t, out[2].Err)
	var conflict *eventstore.VersionConflictError
	require.ErrorAs(t, out[1].Err, &conflict)
	assert.Equal(t, eventstore.VersionConflictError{Stream: "c", Expected: 1, Actual: -1}, *conflict)
	assert.Empty(t, out[1].Events)

	require.Len(t, out[0].Events, 2)
	require.Len(t, out[2].Events, 1)
	b, d := out[2].Events[0], out[0].Events
	assert.Equal(t, []int{1, 2}, []int{d[0].StreamVersion, d[1].StreamVersion})
	assert.Equal(t, 2, b.StreamVersion)
	assert.Equal(t, b.TransactionID, d[0].TransactionID, "one transaction")
	assert.Equal(t, b.TransactionID, d[1].TransactionID)
	assert.Less(t, b.GlobalPosition, d[0].GlobalPosition, "stream order: b before d")
	assert.Less(t, d[0].GlobalPosition, d[1].GlobalPosition)
	assert.Equal(t, "{}", string(d[1].Metadata))

	for stream, want := range map[string][]eventstore.Event{"b": {b}, "d": d} {
		loaded, err := store.Load(ctx, stream, map[string]int{"b": 1, "d": 0}[stream])
		require.NoError(t, err)
		require.Len(t, loaded, len(want))
		for i := range want {
			assert.Equal(t, want[i].ID, loaded[i].ID)
			assert.Equal(t, want[i].GlobalPosition, loaded[i].GlobalPosition)
			assert.Equal(t, want[i].StreamVersion, loaded[i].StreamVersion)
			assert.Equal(t, want[i].Type, loaded[i].Type)
			assert.JSONEq(t, string(want[i].Data), string(loaded[i].Data))
			assert.JSONEq(t, string(want[i].Metadata), string(loaded[i].Metadata))
			assert.Equal(t, want[i].RecordedAt, loaded[i].RecordedAt)
		}
	}
	v, err := store.Version(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, 2, v, "the conflicting stream got nothing")

	for _, bad := range [][]eventstore.StreamAppend{
		{{Stream: "x", Events: []eventstore.EventData{newEvent(t, "E", 1)}}, {Stream: "x", ExpectedVersion: 1, Events: []eventstore.EventData{newEvent(t, "E", 2)}}},
		{{Stream: "x"}},
		{{Stream: "x", Events: []eventstore.EventData{{ID: uuid.Nil, Type: "E", Data: []byte(`{}`)}}}},
	} {
		_, err := store.AppendStreams(ctx, bad)
		assert.Error(t, err)
	}
	v, err = store.Version(ctx, "x")
	require.NoError(t, err)
	assert.Zero(t, v, "refused before anything was written")
}

// A writer that takes a stream's next version while the statement waits at
// the unique index fails the statement as a whole; sent again, it sees the
// winner: only the stream that lost gets a conflict, the others commit
// together.
func TestAppendStreamsLosingARaceAtTheIndex(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	store := eventstore.New(pool)
	tx := beginAppend(t, pool, "a") // a's version 1, not committed yet

	type result struct {
		out []eventstore.AppendResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := store.AppendStreams(ctx, []eventstore.StreamAppend{
			{Stream: "a", Events: []eventstore.EventData{newEvent(t, "E", 1)}},
			{Stream: "y", Events: []eventstore.EventData{newEvent(t, "E", 1)}},
			{Stream: "z", Events: []eventstore.EventData{newEvent(t, "E", 1)}},
		})
		done <- result{out, err}
	}()
	// The statement waits for tx at a's unique index entry.
	pollUntil(t, func() {}, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%WITH input AS%')`).Scan(&waiting))
		return waiting
	})
	require.NoError(t, tx.Commit(ctx))

	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("AppendStreams did not return after the other writer committed")
	}
	require.NoError(t, r.err)
	var conflict *eventstore.VersionConflictError
	require.ErrorAs(t, r.out[0].Err, &conflict)
	assert.Equal(t, "a", conflict.Stream)
	for _, z := range r.out[1:] {
		require.NoError(t, z.Err)
		require.Len(t, z.Events, 1)
		assert.Equal(t, 1, z.Events[0].StreamVersion)
	}
	assert.Equal(t, r.out[1].Events[0].TransactionID, r.out[2].Events[0].TransactionID, "sent again as one statement")
	for stream, want := range map[string]int{"a": 1, "y": 1, "z": 1} {
		v, err := store.Version(ctx, stream)
		require.NoError(t, err)
		assert.Equal(t, want, v, stream)
	}
}

// An error of the statement's own that one stream causes (here a trigger
// refusing it, as the resharding fence does) does not fail the others:
// each stream is then appended on its own.
func TestAppendStreamsRefusedForOneStream(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_fenced() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.stream_id = 'fenced' THEN RAISE EXCEPTION 'stream % is moving', NEW.stream_id; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fence BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_fenced();`)
	require.NoError(t, err)
	store := eventstore.New(pool)
	out, err := store.AppendStreams(ctx, []eventstore.StreamAppend{
		{Stream: "open", Events: []eventstore.EventData{newEvent(t, "E", 1)}},
		{Stream: "fenced", Events: []eventstore.EventData{newEvent(t, "E", 1)}},
		{Stream: "other", Events: []eventstore.EventData{newEvent(t, "E", 1)}},
	})
	require.NoError(t, err)
	require.NoError(t, out[0].Err)
	require.NoError(t, out[2].Err)
	require.Error(t, out[1].Err)
	assert.Contains(t, out[1].Err.Error(), "stream fenced is moving")
	assert.NotErrorIs(t, out[1].Err, eventstore.ErrVersionConflict)
	for stream, want := range map[string]int{"open": 1, "fenced": 0, "other": 1} {
		v, err := store.Version(ctx, stream)
		require.NoError(t, err)
		assert.Equal(t, want, v, stream)
	}
}
