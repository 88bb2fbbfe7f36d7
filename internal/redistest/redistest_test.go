package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/redistest"
)

func TestNewDeletesItsKeysAtCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	outside, outsidePrefix := redistest.New(t)
	bystander := outsidePrefix + "bystander"
	require.NoError(t, outside.Set(ctx, bystander, "1", time.Minute).Err())

	var keys []string
	t.Run("inner", func(t *testing.T) {
		rdb, prefix := redistest.New(t)
		assert.Regexp(t, `^test:[a-z0-9_]+:[0-9a-f]+:$`, prefix)
		keys = []string{prefix + "a", "rate:" + prefix + "b"}
		for _, k := range keys {
			require.NoError(t, rdb.Set(ctx, k, "1", time.Minute).Err())
		}
	})

	n, err := outside.Exists(ctx, keys...).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "keys containing the prefix are deleted")
	n, err = outside.Exists(ctx, bystander).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "other tests' keys stay")
}

func TestStartServerStopAndRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	addr, stop := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	require.NoError(t, rdb.Ping(ctx).Err())

	stop()
	stop() // idempotent
	assert.Error(t, rdb.Ping(ctx).Err())

	redistest.StartServerAt(t, addr)
	assert.Eventually(t, func() bool { return rdb.Ping(ctx).Err() == nil }, 10*time.Second, 20*time.Millisecond)
}
