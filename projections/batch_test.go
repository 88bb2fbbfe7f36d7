package projections

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/workload"
	"github.com/bookingledger/ledger/ledger"
)

// busyStream runs a workload with short holds (so holds expire, are
// confirmed and cancelled, often several in a row on one show) without a
// projector, and returns its whole stream in global order.
func busyStream(t *testing.T, pool *pgxpool.Pool) []eventstore.Event {
	t.Helper()
	ctx := context.Background()
	cfg := ledger.DefaultConfig()
	cfg.HoldTTL = 5 * time.Millisecond
	svc, err := ledger.New(pool, cfg)
	require.NoError(t, err)
	stats, err := workload.Run(ctx, svc, workload.Options{Shows: 6, SeatsPerShow: 40, Holds: 600, Clients: 4, Seed: 7})
	require.NoError(t, err)
	require.NotZero(t, stats.Confirmed.Load())
	require.NotZero(t, stats.Cancelled.Load())
	require.NotZero(t, stats.Expired.Load())

	var events []eventstore.Event
	for _, show := range stats.Shows {
		stream, err := svc.Store().Load(ctx, show.StreamID(), 0)
		require.NoError(t, err)
		events = append(events, stream...)
	}
	slices.SortFunc(events, func(a, b eventstore.Event) int { return int(a.GlobalPosition - b.GlobalPosition) })
	return events
}

func statements(t *testing.T, events []eventstore.Event) []statement {
	t.Helper()
	sts := make([]statement, len(events))
	for i, e := range events {
		st, err := statementFor(e)
		require.NoError(t, err)
		sts[i] = st
	}
	return sts
}

// inTx runs fn in a transaction that commits when fn returns nil.
func inTx(t *testing.T, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(context.Background(), pool, fn)
}

// verified moves the projector's checkpoint past events (Verify replays up
// to it) and diffs the tables against a replay.
func verified(t *testing.T, pool *pgxpool.Pool, events []eventstore.Event) {
	t.Helper()
	last := events[0]
	for _, e := range events {
		if last.Checkpoint().Less(e.Checkpoint()) {
			last = e
		}
	}
	require.NoError(t, eventstore.New(pool).SetConsumerCheckpoint(context.Background(), ConsumerGroup, last.Checkpoint()))
	// Verify reads in one snapshot and will not wait for transactions still
	// running anywhere on the server (other tests'): try again until none is.
	var (
		report VerifyReport
		err    error
	)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		report, err = Verify(context.Background(), pool, nil)
		if !errors.Is(err, eventstore.ErrIncomplete) || time.Now().After(deadline) {
			break
		}
	}
	require.NoError(t, err)
	require.Empty(t, report.Differences, "the batched projection differs from a replay")
}

// Batches of every size, each folded into set-based statements, leave the
// tables exactly as a replay in memory does.
func TestBatchPlanEqualsReplay(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	events := busyStream(t, pool)
	sts := statements(t, events)
	r := rand.New(rand.NewPCG(1, 2))
	folded := 0
	for len(sts) > 0 {
		n := min(len(sts), 1+r.IntN(300))
		chunk := sts[:n]
		sts = sts[n:]
		plan, ok := planBatch(chunk)
		require.True(t, ok, "consecutive events fold")
		require.NoError(t, inTx(t, pool, func(tx pgx.Tx) error {
			applied, err := plan.apply(context.Background(), tx)
			assert.True(t, applied, "the guard holds for a fresh batch")
			return err
		}))
		folded += n
	}
	require.Equal(t, len(events), folded)
	verified(t, pool, events)
}

// A batch that overlaps events already projected (a redelivery) falls back
// to the per-event path, which skips the duplicates and applies the rest; a
// batch with a gap in a show's versions fails with ErrOutOfOrder.
func TestBatchRedeliveryAndGaps(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	events := busyStream(t, pool)
	sts := statements(t, events)
	half := len(sts) / 2

	require.NoError(t, inTx(t, pool, func(tx pgx.Tx) error { return applyBatch(ctx, tx, sts[:half]) }))

	overlap := sts[half-40 : half+40]
	plan, ok := planBatch(overlap)
	require.True(t, ok)
	require.NoError(t, inTx(t, pool, func(tx pgx.Tx) error {
		applied, err := plan.apply(ctx, tx)
		assert.False(t, applied, "the guard fails for shows already past the batch's first events")
		return err
	}))
	require.NoError(t, inTx(t, pool, func(tx pgx.Tx) error { return applyBatch(ctx, tx, overlap) }))

	// Skip one event of some show: everything after it on that show is a gap.
	rest := slices.Clone(sts[half+40:])
	var skipped statement
	for i, st := range rest {
		if _, ok := st.decoded.(domain.SeatLocked); ok {
			skipped = st
			rest = slices.Delete(rest, i, i+1)
			break
		}
	}
	var later bool
	for _, st := range rest {
		later = later || (st.show == skipped.show && st.event.StreamVersion > skipped.event.StreamVersion)
	}
	require.True(t, later, "the skipped event's show has later events in the batch")
	err := inTx(t, pool, func(tx pgx.Tx) error { return applyBatch(ctx, tx, rest) })
	require.ErrorIs(t, err, ErrOutOfOrder)

	require.NoError(t, inTx(t, pool, func(tx pgx.Tx) error { return applyBatch(ctx, tx, sts[half+40:]) }))
	verified(t, pool, events)
}
