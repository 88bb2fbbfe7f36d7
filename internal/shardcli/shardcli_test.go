package shardcli_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/bookingledger/ledger/internal/shardcli"
)

func TestNamesLabelOnShard(t *testing.T) {
	assert.Equal(t, "shard 2", shardcli.Names([]int{2}))
	assert.Equal(t, "shards 1 and 3", shardcli.Names([]int{3, 1}))
	assert.Equal(t, "shards 0, 1 and 3", shardcli.Names([]int{1, 3, 0}))
	assert.Equal(t, "", shardcli.Label(0, 1), "one database prints as it always did")
	assert.Equal(t, "shard 2: ", shardcli.Label(2, 4))
	err := errors.New("boom")
	assert.Same(t, err, shardcli.OnShard(0, 1, err))
	assert.EqualError(t, shardcli.OnShard(3, 4, err), "shard 3: boom")
	assert.ErrorIs(t, shardcli.OnShard(3, 4, err), err)
	assert.Equal(t, "a; b", shardcli.ShortError(errors.New("a\n  b\na\n")), "one line, each part once")
}
