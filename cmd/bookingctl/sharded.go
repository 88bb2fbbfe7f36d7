package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/shards"
)

// The shards (DESIGN.md "Scale-out"): DATABASE_SHARD_URLS lists N databases,
// shard k holding the stream, projections and consumer groups of the shows
// whose id is k mod N; without it the one shard is DATABASE_URL. Users and
// idempotency keys stay on DATABASE_URL (the home database) either way.

// shardURLs returns the shards' connection strings, each checked: shard k at
// index k. An empty string stands for DATABASE_URL (no DATABASE_SHARD_URLS).
func (c *cli) shardURLs() ([]string, error) {
	if c.shardList != nil {
		return c.shardList, nil
	}
	urls := splitURLs(c.getenv("DATABASE_SHARD_URLS"))
	if len(urls) == 0 {
		urls = []string{""}
	}
	if len(urls) > shards.MaxShards {
		return nil, usagef("DATABASE_SHARD_URLS: %d shards; at most %d", len(urls), shards.MaxShards)
	}
	for k, u := range urls {
		if u == "" {
			continue
		}
		if _, err := pgxpool.ParseConfig(u); err != nil {
			return nil, usagef("DATABASE_SHARD_URLS, shard %d: %v", k, err)
		}
	}
	c.shardList = urls
	return urls, nil
}

// shardCount is N, the number of shards.
func (c *cli) shardCount() (int, error) {
	urls, err := c.shardURLs()
	return len(urls), err
}

// shard connects to shard k (once). A shard that is DATABASE_URL shares its
// pool.
func (c *cli) shard(ctx context.Context, k int) (*pgxpool.Pool, error) {
	urls, err := c.shardURLs()
	if err != nil {
		return nil, err
	}
	if c.shardPools == nil {
		c.shardPools = make([]*pgxpool.Pool, len(urls))
	}
	if p := c.shardPools[k]; p != nil {
		return p, nil
	}
	u := urls[k]
	if u == "" || u == c.getenv("DATABASE_URL") {
		pool, err := c.db(ctx)
		if err != nil {
			return nil, err
		}
		c.shardPools[k] = pool
		return pool, nil
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, usagef("DATABASE_SHARD_URLS, shard %d: %v", k, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to shard %d: %w", k, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to shard %d: %w", k, err)
	}
	c.shardPools[k] = pool
	c.owned = append(c.owned, pool)
	return pool, nil
}

// shardDBs connects to every shard, shard k at index k, without checking
// them (see ledgerShards).
func (c *cli) shardDBs(ctx context.Context) ([]*pgxpool.Pool, error) {
	urls, err := c.shardURLs()
	if err != nil {
		return nil, err
	}
	pools := make([]*pgxpool.Pool, len(urls))
	for k := range urls {
		if pools[k], err = c.shard(ctx, k); err != nil {
			return nil, err
		}
	}
	return pools, nil
}

// ledgerShards is ledgerDB for every shard: each one is refused when its
// stored transaction ids are another cluster's (see bookingctl rebase-xids).
func (c *cli) ledgerShards(ctx context.Context) ([]*pgxpool.Pool, error) {
	pools, err := c.shardDBs(ctx)
	if err != nil {
		return nil, err
	}
	for k, pool := range pools {
		if err := eventstore.New(pool).CheckTransactionIDs(ctx); err != nil {
			return nil, onShard(k, len(pools), err)
		}
	}
	return pools, nil
}

// label is what a line about shard k of n starts with: nothing when there is
// one shard, so a single database prints as it always did.
func label(k, n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf("shard %d: ", k)
}

// onShard names shard k of n in err (when there are several).
func onShard(k, n int, err error) error {
	if err == nil || n == 1 {
		return err
	}
	return fmt.Errorf("shard %d: %w", k, err)
}
