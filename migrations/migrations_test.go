package migrations_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/migrations"
)

func TestUpIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	url := pgtest.CreateDB(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()

	files, err := fs.Glob(migrations.Files(), "*.sql")
	require.NoError(t, err)
	pending, err := migrations.Pending(ctx, pool)
	require.NoError(t, err)
	assert.Equal(t, len(files), pending)

	// Two migrators at once (two bookingctl runs): the session lock orders them.
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := migrations.Up(ctx, pool); errs <- err }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)

	v, err := migrations.Up(ctx, pool)
	require.NoError(t, err)
	assert.Equal(t, int64(len(files)), v, "the last migration's version is their count")
	pending, err = migrations.Pending(ctx, pool)
	require.NoError(t, err)
	assert.Zero(t, pending)
	for _, table := range []string{"events", "consumer_offsets", "shows", "seats", "bookings", "users", "idempotency_keys"} {
		var exists bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
		assert.True(t, exists, table)
	}
}
