package eventstore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/pgtest"
)

// Rebase needs the server's transaction counter past the ids it hands out;
// burnTransactionIDs moves it by at least the asked amount.
func TestBurnTransactionIDs(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	next := func() int64 {
		var n int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&n))
		return n
	}
	before := next()
	require.NoError(t, burnTransactionIDs(ctx, pool, 5000))
	assert.GreaterOrEqual(t, next()-before, int64(5000))
}
