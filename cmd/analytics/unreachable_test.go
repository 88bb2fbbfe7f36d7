package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/shards"
)

// A shard that does not answer: report, replay and run fail before
// printing anything, naming every such shard; with every shard back they
// work.
func TestShardUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const closed = "postgres://root@127.0.0.1:1/x?connect_timeout=2" // nothing listens on port 1
	var urls []string
	for k := range 4 {
		pool, url := pgtest.NewDB(t)
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, 4))
		urls = append(urls, url)
	}
	cmd := func(urls []string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		getenv := func(k string) string {
			if k == "DATABASE_SHARD_URLS" {
				return strings.Join(urls, ",")
			}
			return ""
		}
		err := run(ctx, args, getenv, &out, &errOut)
		return out.String(), err
	}

	oneDown := []string{urls[0], urls[1], closed, urls[3]}
	twoDown := []string{urls[0], closed, closed, urls[3]}
	for _, args := range [][]string{{"report"}, {"replay", "--json"}, {"run", "--every", "1h"}} {
		out, err := cmd(oneDown, args...)
		require.Error(t, err, args)
		assert.Empty(t, out, args)
		assert.Contains(t, err.Error(), args[0]+" needs every shard, and shard 2 does not answer:\nshard 2: unreachable: 127.0.0.1:1", args)
		assert.Contains(t, err.Error(), "connection refused", args)
		assert.Equal(t, 1, strings.Count(err.Error(), "unreachable"), args)
		var ue usageError
		assert.NotErrorAs(t, err, &ue, "exit 1, not 2")

		out, err = cmd(twoDown, args...)
		require.Error(t, err, args)
		assert.Empty(t, out, args)
		assert.Contains(t, err.Error(), args[0]+" needs every shard, and shards 1 and 2 do not answer:", args)
		assert.Contains(t, err.Error(), "\nshard 1: unreachable: ", args)
		assert.Contains(t, err.Error(), "\nshard 2: unreachable: ", args)
		assert.NotContains(t, err.Error(), "shard 0", args)
		assert.NotContains(t, err.Error(), "shard 3", args)
	}
	for _, args := range [][]string{{"report", "--json"}, {"replay", "--json"}} {
		out, err := cmd(urls, args...)
		require.NoError(t, err, args)
		assert.JSONEq(t, `{"shows": []}`, out, args)
	}
}
