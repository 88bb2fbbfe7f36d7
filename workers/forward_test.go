package workers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/workload"
	"github.com/bookingledger/ledger/workers"
)

func natsURL() string {
	if u := os.Getenv("NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// jetStream connects to the test NATS server and names a fresh stream that
// is deleted when the test ends.
func jetStream(t *testing.T) (nats.JetStreamContext, string) {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(5*time.Second))
	require.NoError(t, err, "NATS with JetStream must run at %s", natsURL())
	t.Cleanup(nc.Close)
	js, err := nc.JetStream()
	require.NoError(t, err)
	var b [4]byte
	_, _ = rand.Read(b[:])
	topic := "test_events_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = js.DeleteStream(topic) })
	return js, topic
}

func forward(t *testing.T, pool *pgxpool.Pool, topic string) (stop func()) {
	t.Helper()
	return run(t, func(ctx context.Context) error {
		return workers.ForwardToNATS(ctx, pool, workers.NATSConfig{URL: natsURL(), Topic: topic, Poll: 10 * time.Millisecond})
	})
}

// streamMessages reads the whole JetStream stream, once it holds want messages.
func streamMessages(t *testing.T, js nats.JetStreamContext, topic string, want int) []*nats.RawStreamMsg {
	t.Helper()
	eventually(t, "the events reach NATS", func() bool {
		info, err := js.StreamInfo(topic)
		return err == nil && info.State.Msgs >= uint64(want)
	})
	info, err := js.StreamInfo(topic)
	require.NoError(t, err)
	var out []*nats.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := js.GetMsg(topic, seq)
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

// The stream is forwarded to real NATS JetStream: every event once, in the
// stream's order, and a restarted forwarder neither loses nor repeats one.
func TestForwardToNATS(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	js, topic := jetStream(t)
	svc := newLedger(t, pool, time.Minute)
	ctx := context.Background()

	_, err := workload.Run(ctx, svc, workload.Options{Shows: 2, SeatsPerShow: 10, Holds: 20, Clients: 2, Seed: 4})
	require.NoError(t, err)
	stop := forward(t, pool, topic)
	first := countEvents(t, pool)
	streamMessages(t, js, topic, first)
	stop()

	_, err = workload.Run(ctx, svc, workload.Options{Shows: 1, SeatsPerShow: 10, Holds: 10, Clients: 2, Seed: 5})
	require.NoError(t, err)
	forward(t, pool, topic) // a new process resumes at the group's checkpoint
	total := countEvents(t, pool)
	msgs := streamMessages(t, js, topic, total)
	require.Len(t, msgs, total, "each event forwarded once")

	var events []eventstore.Event
	_, err = eventstore.New(pool).ReadRange(ctx, eventstore.Checkpoint{}, lastEvent(t, pool), 1000, 10*time.Millisecond,
		func(batch []eventstore.Event) error { events = append(events, batch...); return nil })
	require.NoError(t, err)
	require.Len(t, events, total)
	for i, m := range msgs {
		e := events[i]
		assert.Equal(t, e.StreamID, m.Header.Get(eventstore.MetaStreamID), "message %d in stream order", i)
		assert.Equal(t, e.Type, m.Header.Get(eventstore.MetaEventType))
		assert.JSONEq(t, string(e.Data), string(m.Data))
	}
}

func countEvents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

func lastEvent(t *testing.T, pool *pgxpool.Pool) eventstore.Checkpoint {
	t.Helper()
	cp, err := eventstore.New(pool).Last(context.Background())
	require.NoError(t, err)
	return cp
}

// A forwarder stopped again and again while the ledger appends — whatever
// it was publishing or acknowledging at that moment — leaves JetStream
// with every event exactly once, in the stream's order: what a stop
// forwarded without recording it is sent again, and JetStream drops the
// repeat by its message id.
func TestForwarderStoppedMidStreamForwardsEachEventOnce(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	js, topic := jetStream(t)
	svc := newLedger(t, pool, time.Minute)
	ctx := context.Background()

	booked := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, svc, workload.Options{Shows: 4, SeatsPerShow: 40, Holds: 300, Clients: 4, Seed: 9})
		booked <- err
	}()
	published := func() uint64 {
		info, err := js.StreamInfo(topic)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	for range 6 {
		stop := forward(t, pool, topic)
		before := published()
		eventually(t, "the forwarder publishes", func() bool { return published() > before })
		stop()
	}
	require.NoError(t, <-booked)
	forward(t, pool, topic)
	total := countEvents(t, pool)
	msgs := streamMessages(t, js, topic, total)
	require.Len(t, msgs, total, "each event forwarded once")

	var events []eventstore.Event
	_, err := eventstore.New(pool).ReadRange(ctx, eventstore.Checkpoint{}, lastEvent(t, pool), 1000, 10*time.Millisecond,
		func(batch []eventstore.Event) error { events = append(events, batch...); return nil })
	require.NoError(t, err)
	require.Len(t, events, total)
	for i, m := range msgs {
		assert.Equal(t, events[i].ID.String(), m.Header.Get(nats.MsgIdHdr), "message %d is event %d", i, i)
	}
}
