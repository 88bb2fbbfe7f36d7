package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/analytics"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/workload"
	"github.com/bookingledger/ledger/ledger"
)

func TestRunReportReplay(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	_, err = workload.Run(context.Background(), svc, workload.Options{Shows: 2, SeatsPerShow: 20, Holds: 50, Clients: 2, Seed: 3})
	require.NoError(t, err)
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	cmd := func(ctx context.Context, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, getenv, &out, &errOut)
		return out.String(), err
	}

	replayed, err := cmd(context.Background(), "replay", "--json")
	require.NoError(t, err)
	var r struct{ Shows []analytics.ShowStats }
	require.NoError(t, json.Unmarshal([]byte(replayed), &r))
	require.Len(t, r.Shows, 2)
	table, err := cmd(context.Background(), "replay")
	require.NoError(t, err)
	assert.Contains(t, table, "UTILISATION")

	// run consumes until stopped, then prints where it got to.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cmd(ctx, "run", "--every", "50ms", "--json")
	require.NoError(t, err)
	reported, err := cmd(context.Background(), "report", "--json")
	require.NoError(t, err)
	assert.JSONEq(t, replayed, reported, "after a run, the live figures equal the replayed ones")

	for _, args := range [][]string{{}, {"bogus"}, {"report", "extra"}, {"run", "--every", "0s"}, {"report", "--nope"}} {
		_, err := cmd(context.Background(), args...)
		var ue usageError
		assert.True(t, errors.As(err, &ue), "%v: %v", args, err)
	}
}
