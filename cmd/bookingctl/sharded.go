package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/shardcli"
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

// unreachableError: shard k of several did not answer.
type unreachableError struct {
	k   int
	err error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("shard %d: unreachable: %s", e.k, shardcli.ShortError(e.err))
}

func (e *unreachableError) Unwrap() error { return e.err }

// shard connects to shard k (once). A shard that is DATABASE_URL shares its
// pool.
func (c *cli) shard(ctx context.Context, k int) (*pgxpool.Pool, error) {
	failed, err := c.connectShards(ctx, []int{k})
	if err != nil {
		return nil, err
	}
	if err := failed[k]; err != nil {
		return nil, err
	}
	return c.shardPools[k], nil
}

// connectShards connects to the shards ks that are not connected yet, all
// at once (shards that are down cost one connect timeout, not one each),
// and returns, by shard, why each one that failed did. With several shards
// such an error is an *unreachableError; with one it is the connection's
// error as it always was. err is a configuration error.
func (c *cli) connectShards(ctx context.Context, ks []int) (failed map[int]error, err error) {
	urls, err := c.shardURLs()
	if err != nil {
		return nil, err
	}
	n := len(urls)
	if c.shardPools == nil {
		c.shardPools = make([]*pgxpool.Pool, n)
	}
	failed = map[int]error{}
	fail := func(k int, err error) {
		if n > 1 {
			err = &unreachableError{k: k, err: err}
		}
		failed[k] = err
	}
	var (
		wg     sync.WaitGroup
		dialed = make([]*pgxpool.Pool, n)
		errs   = make([]error, n)
	)
	for _, k := range ks {
		if c.shardPools[k] != nil {
			continue
		}
		u := urls[k]
		if u == "" || u == c.getenv("DATABASE_URL") {
			pool, err := c.db(ctx)
			if ue := (*usageError)(nil); errors.As(err, &ue) || (err != nil && n == 1) {
				return nil, err
			}
			if err != nil {
				fail(k, err)
				continue
			}
			c.shardPools[k] = pool
			continue
		}
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			return nil, usagef("DATABASE_SHARD_URLS, shard %d: %v", k, err)
		}
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = shardcli.ConnectTimeout
		}
		wg.Go(func() { dialed[k], errs[k] = dial(ctx, cfg) })
	}
	wg.Wait()
	for k, pool := range dialed {
		if errs[k] != nil {
			if n == 1 {
				errs[k] = fmt.Errorf("connect to shard %d: %w", k, errs[k])
			}
			fail(k, errs[k])
		}
		if pool != nil {
			c.shardPools[k] = pool
			c.owned = append(c.owned, pool)
		}
	}
	return failed, nil
}

// dial opens a pool and checks that its database answers.
func dial(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// allShards is every shard's index: 0 to n-1.
func allShards(n int) []int {
	ks := make([]int, n)
	for k := range ks {
		ks[k] = k
	}
	return ks
}

// reachableShards connects to the shards ks (nil: every one) for the
// commands that go on with the shards that answer: pools[k] is nil for a
// shard not in ks and for one that failed, and failed[k] says why each one
// that failed did, naming its shard — it did not answer, or (with check)
// its stored transaction ids are another cluster's (see ledgerDB). With
// one shard its failure is err, as it always was.
func (c *cli) reachableShards(ctx context.Context, ks []int, check bool) (pools []*pgxpool.Pool, failed map[int]error, err error) {
	n, err := c.shardCount()
	if err != nil {
		return nil, nil, err
	}
	if ks == nil {
		ks = allShards(n)
	}
	if failed, err = c.connectShards(ctx, ks); err != nil {
		return nil, nil, err
	}
	pools = make([]*pgxpool.Pool, n)
	for _, k := range ks {
		if failed[k] != nil {
			continue
		}
		if check {
			if err := eventstore.New(c.shardPools[k]).CheckTransactionIDs(ctx); err != nil {
				failed[k] = shardcli.OnShard(k, n, err)
				continue
			}
		}
		pools[k] = c.shardPools[k]
	}
	if n == 1 && failed[0] != nil {
		return nil, nil, failed[0]
	}
	return pools, failed, nil
}

// shardErrors joins the errors of failed, in shard order.
func shardErrors(failed map[int]error) error {
	ks := slices.Sorted(maps.Keys(failed))
	errs := make([]error, len(ks))
	for i, k := range ks {
		errs[i] = failed[k]
	}
	return errors.Join(errs...)
}

// ledgerShards is ledgerDB for every shard: each one is refused when its
// stored transaction ids are another cluster's (see bookingctl rebase-xids).
// It fails naming every shard that does not answer or is refused.
func (c *cli) ledgerShards(ctx context.Context) ([]*pgxpool.Pool, error) {
	pools, failed, err := c.reachableShards(ctx, nil, true)
	if err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return nil, shardErrors(failed)
	}
	return pools, nil
}
