package api

import (
	"context"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/shards"
)

// Shard is one database of the ledger as the API uses it: show id k lives
// on shard k mod N (shards.Of) with its stream, projections and consumers.
type Shard struct {
	Ledger  *ledger.Service // made WithShard(k) on the shard's primary
	Primary *pgxpool.Pool   // the shard's primary
	Reads   *readpath.Router
	Live    *live.Hub // nil: GET /api/shows/{id}/live answers 503
}

// shardDeps checks d's shards, or makes the one shard that Ledger,
// Reads and Live describe when there are none.
func shardDeps(d *Deps) ([]Shard, error) {
	if len(d.Shards) == 0 {
		primary := d.Primary
		reads := d.Reads
		if reads == nil {
			reads = readpath.New(primary, nil, nil)
		}
		return []Shard{{Ledger: d.Ledger, Primary: primary, Reads: reads, Live: d.Live}}, nil
	}
	out := make([]Shard, len(d.Shards))
	for k, sh := range d.Shards {
		if sh.Ledger == nil || sh.Primary == nil {
			return nil, errors.New("api: shard " + strconv.Itoa(k) + " needs a ledger and a primary")
		}
		if sh.Reads == nil {
			sh.Reads = readpath.New(sh.Primary, nil, nil)
		}
		out[k] = sh
	}
	return out, nil
}

// shardOf is the index of show's shard.
func (s *server) shardOf(show domain.ShowID) int { return shards.Of(show, len(s.shards)) }

// store is the event store of shard k.
func (s *server) store(k int) *eventstore.Store { return s.shards[k].Ledger.Store() }

// tokenKey names a user's read-your-writes token on shard k: a write on
// one shard says nothing about another's projections. Shard 0 keeps the
// plain user id, so a single database's tokens read the same.
func tokenKey(user string, k int) string {
	if k == 0 {
		return user
	}
	return user + "@" + strconv.Itoa(k)
}

// eachShard runs fn for every shard at once and returns the first error.
func (s *server) eachShard(ctx context.Context, fn func(ctx context.Context, k int) error) error {
	if len(s.shards) == 1 {
		return fn(ctx, 0)
	}
	g, ctx := errgroup.WithContext(ctx)
	for k := range s.shards {
		g.Go(func() error { return fn(ctx, k) })
	}
	return g.Wait()
}
