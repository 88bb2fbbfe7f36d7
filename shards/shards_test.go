package shards_test

import (
	"cmp"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/shards"
)

func TestNextID(t *testing.T) {
	for _, tc := range []struct {
		used       int64
		k, n       int
		want       int64
		wantReason string
	}{
		{0, 0, 4, 4, "shard 0 never hands out 0"},
		{0, 1, 4, 1, ""},
		{0, 3, 4, 3, ""},
		{5, 1, 4, 9, "after 5, the next ≡ 1 (mod 4)"},
		{8, 0, 4, 12, ""},
		{7, 3, 4, 11, "7 was used: the next one"},
		{0, 0, 1, 1, "one shard: every id"},
		{41, 0, 1, 42, ""},
	} {
		assert.Equal(t, tc.want, shards.NextID(tc.used, tc.k, tc.n), "used %d, shard %d of %d: %s", tc.used, tc.k, tc.n, tc.wantReason)
	}
}

func schedule(t *testing.T, svc *ledger.Service) domain.ShowID {
	t.Helper()
	res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{Name: "s", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
	require.NoError(t, err)
	return res.ShowID
}

// Four databases as four shards: each hands out only its own ids, the same
// configuration again changes nothing, and ids are never handed out twice.
func TestConfigureIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 4
	seen := map[domain.ShowID]bool{}
	for k := range n {
		pool, _ := pgtest.NewDB(t)
		svc, err := ledger.New(pool, ledger.DefaultConfig())
		require.NoError(t, err)
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, n))
		for round := range 2 {
			for range 3 {
				id := schedule(t, svc)
				assert.Equal(t, k, shards.Of(id, n), "show %d on shard %d", id, k)
				assert.False(t, seen[id], "show %d handed out twice", id)
				seen[id] = true
			}
			require.NoError(t, shards.ConfigureIDs(ctx, pool, k, n), "round %d: configuring again is harmless", round)
		}
	}
	assert.Len(t, seen, 4*6)
}

// A database filled before sharding holds shows of every residue: it cannot
// simply become one shard.
func TestConfigureIDsRefusesForeignShows(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	for range 3 {
		schedule(t, svc) // ids 1, 2, 3
	}
	require.ErrorIs(t, shards.ConfigureIDs(context.Background(), pool, 1, 4), shards.ErrForeignShows)
	require.Error(t, shards.ConfigureIDs(context.Background(), pool, 4, 4), "k must be below n")
	// As one shard of one, it is fine and continues after the stored ids.
	require.NoError(t, shards.ConfigureIDs(context.Background(), pool, 0, 1))
	assert.Equal(t, domain.ShowID(4), schedule(t, svc))
}

func TestBookingIDsNameTheirShard(t *testing.T) {
	id := shards.NewBookingID(3)
	assert.Equal(t, 7, int(id.Version()), "still a time-ordered UUIDv7")
	k, ok := shards.BookingShard(id, 4)
	assert.True(t, ok)
	assert.Equal(t, 3, k)
	_, ok = shards.BookingShard(id, 2)
	assert.False(t, ok, "an id naming shard 3 is no shard of 2: look everywhere")
}

func TestMergeKeepsTheFirstPageOfTheUnion(t *testing.T) {
	pages := [][]int{{1, 4, 9}, {2, 3, 10}, {}, {5, 6, 7}}
	assert.Equal(t, []int{1, 2, 3, 4}, shards.Merge(pages, cmp.Compare[int], 4))
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 9, 10}, shards.Merge(pages, cmp.Compare[int], 20))
}

func TestCursor(t *testing.T) {
	c, err := shards.ParseCursor("", 3)
	require.NoError(t, err)
	assert.Equal(t, shards.Cursor{0, 0, 0}, c)
	c = c.Advance(1, 42).Advance(2, 7)
	assert.Equal(t, "0,42,7", c.String())
	back, err := shards.ParseCursor(c.String(), 3)
	require.NoError(t, err)
	assert.Equal(t, c, back)
	assert.Equal(t, shards.Cursor{0, 5, 7}, back.Advance(1, 5), "a shard's place is the last event read, not the largest position")
	one, err := shards.ParseCursor("17", 1)
	require.NoError(t, err)
	assert.Equal(t, "17", one.String(), "one shard's cursor is a plain position")
	for _, bad := range []string{"1,2", "1,2,3,4", "1,-2,3", "1,x,3"} {
		_, err := shards.ParseCursor(bad, 3)
		assert.Error(t, err, bad)
	}
}

// CheckIDs tells a database set up as shard k of n from one set up
// otherwise: never migrated for shards, another position in the list, or
// another number of shards.
func TestCheckIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)
	require.NoError(t, shards.CheckIDs(ctx, pool, 0, 1), "one shard always matches")
	require.ErrorIs(t, shards.CheckIDs(ctx, pool, 1, 4), shards.ErrLayout, "not configured for shards")

	require.NoError(t, shards.ConfigureIDs(ctx, pool, 1, 4))
	require.NoError(t, shards.CheckIDs(ctx, pool, 1, 4))
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	schedule(t, svc)
	require.NoError(t, shards.CheckIDs(ctx, pool, 1, 4), "after handing out an id")
	require.ErrorIs(t, shards.CheckIDs(ctx, pool, 2, 4), shards.ErrLayout, "listed at another position")
	require.ErrorIs(t, shards.CheckIDs(ctx, pool, 1, 8), shards.ErrLayout, "grown without migrate")

	// Being split into shards 1 and 5 of 8 (ids ≡ 1 mod 8 only): the
	// 4-shard deployment may still restart.
	require.NoError(t, shards.ConfigureIDs(ctx, pool, 1, 8))
	require.NoError(t, shards.CheckIDs(ctx, pool, 1, 4))
	require.NoError(t, shards.CheckIDs(ctx, pool, 1, 8))
}
