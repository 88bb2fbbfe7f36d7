package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/shards"
)

// Four databases as four shards behind one command side: shows spread over
// them and live where their ids say, holds race on each shard without
// double booking, and a booking named only by its id is found — on the
// shard the id names, or on any shard for an id made before sharding.
func TestShardedLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 4
	var (
		services []*ledger.Service
		pools    []*pgxpool.Pool
	)
	for k := range n {
		pool, _ := pgtest.NewDB(t)
		pools = append(pools, pool)
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, n))
		svc, err := ledger.New(pool, ledger.DefaultConfig(), ledger.WithShard(k))
		require.NoError(t, err)
		services = append(services, svc)
	}
	sharded, err := ledger.NewSharded(services...)
	require.NoError(t, err)

	perShard := map[int]int{}
	var shows []domain.ShowID
	for i := range 2 * n {
		res, err := sharded.ScheduleShow(ctx, ledger.ScheduleInput{Name: fmt.Sprint("show ", i), ShowType: domain.ShowBus,
			StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2", "3"}}, ledger.Metadata{})
		require.NoError(t, err)
		k := shards.Of(res.ShowID, n)
		perShard[k]++
		shows = append(shows, res.ShowID)
		for j, svc := range services {
			v, err := svc.Store().Version(ctx, res.ShowID.StreamID())
			require.NoError(t, err)
			assert.Equal(t, j == k, v > 0, "show %d's stream is on shard %d only", res.ShowID, k)
		}
	}
	assert.Equal(t, map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, perShard, "new shows go to the shards in turn")

	// Eight clients race for the same two seats of every show: one wins each.
	var wins atomic.Int64
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			user := domain.UserID(fmt.Sprintf("0190c6e4-0000-7000-8000-%012d", c))
			for _, show := range shows {
				_, _, err := sharded.Hold(ctx, show, user, []string{"1", "2"}, ledger.Metadata{})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, domain.ErrSeatsUnavailable):
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, len(shows), wins.Load(), "exactly one hold per show")

	b, _, err := sharded.Hold(ctx, shows[5], "0190c6e4-0000-7000-8000-0000000000aa", []string{"3"}, ledger.Metadata{})
	require.NoError(t, err)
	show, err := sharded.ShowOfBooking(ctx, b.ID)
	require.NoError(t, err)
	assert.Equal(t, shows[5], show)
	_, err = sharded.Confirm(ctx, show, b.ID, ledger.Metadata{})
	require.NoError(t, err)
	got, err := sharded.Booking(ctx, show, b.ID)
	require.NoError(t, err)
	assert.Equal(t, domain.StatusConfirmed, got.Status)

	// A booking made before sharding: its id names no shard reliably.
	legacy, err := ledger.New(pools[2], ledger.DefaultConfig())
	require.NoError(t, err)
	var onShard2 domain.ShowID
	for _, s := range shows {
		if shards.Of(s, n) == 2 {
			onShard2 = s
		}
	}
	old, _, err := legacy.Hold(ctx, onShard2, "0190c6e4-0000-7000-8000-0000000000bb", []string{"3"}, ledger.Metadata{})
	require.NoError(t, err)
	show, err = sharded.ShowOfBooking(ctx, old.ID)
	require.NoError(t, err)
	assert.Equal(t, onShard2, show)

	_, err = sharded.ShowOfBooking(ctx, "0190c6e4-0000-7000-8000-0000000000cc")
	var notFound *domain.BookingNotFoundError
	require.ErrorAs(t, err, &notFound)
}

// Shards whose sequences were not set up for the layout are refused at the
// first show, not silently mixed.
func TestShardedLedgerNeedsConfiguredShards(t *testing.T) {
	t.Parallel()
	var services []*ledger.Service
	for k := range 2 {
		pool, _ := pgtest.NewDB(t)
		svc, err := ledger.New(pool, ledger.DefaultConfig(), ledger.WithShard(k))
		require.NoError(t, err)
		services = append(services, svc)
	}
	sharded, err := ledger.NewSharded(services...)
	require.NoError(t, err)
	_, err = sharded.ScheduleShow(context.Background(), ledger.ScheduleInput{Name: "x", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
	require.ErrorContains(t, err, "bookingctl migrate")
	_, err = ledger.NewSharded()
	require.Error(t, err)
}
