// Package readpath decides which database answers a read: a streaming
// replica when one is healthy (round-robin), the primary otherwise, and —
// for a client that has just written — only a database whose projections
// already contain that write (read-your-writes).
//
// Read-your-writes works with consistency tokens. After a command, the API
// remembers the global-stream checkpoint of its last event for the user
// (Tokens, in Redis so every bookingd instance sees it). A read for that user
// then goes to a database whose projector checkpoint — the consumer_offsets
// row, which replicates with the projected rows it describes — has reached the
// token, waiting briefly for the projector when none has.
package readpath

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/projections"
)

// Router hands out databases for reads. It is safe for concurrent use.
type Router struct {
	primary  *pgxpool.Pool
	replicas []*replica
	next     atomic.Uint64
	logger   *slog.Logger
}

type replica struct {
	name string
	pool *pgxpool.Pool
	down atomic.Bool
}

// New returns a router. Replicas are named in logs by host:port, never by
// their credentials.
func New(primary *pgxpool.Pool, replicas []*pgxpool.Pool, logger *slog.Logger) *Router {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{primary: primary, logger: logger}
	for _, p := range replicas {
		cfg := p.Config().ConnConfig
		r.replicas = append(r.replicas, &replica{name: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), pool: p})
	}
	return r
}

// Primary returns the primary.
func (r *Router) Primary() projections.Querier { return r.primary }

// Any returns a healthy replica in turn, or the primary when there is none.
func (r *Router) Any() projections.Querier {
	if rep := r.pick(); rep != nil {
		return &failover{r: r, rep: rep}
	}
	return r.primary
}

func (r *Router) pick() *replica {
	n := len(r.replicas)
	start := r.next.Add(1)
	for i := range n {
		rep := r.replicas[(start+uint64(i))%uint64(n)]
		if !rep.down.Load() {
			return rep
		}
	}
	return nil
}

// AtLeast returns a database whose projections include everything up to cp:
// a healthy replica that has reached it, else the primary once its projector
// has, waiting up to wait for that. fresh is false when the wait ran out; the
// primary is returned then, as the best there is.
func (r *Router) AtLeast(ctx context.Context, cp eventstore.Checkpoint, wait time.Duration) (db projections.Querier, fresh bool, err error) {
	if cp == (eventstore.Checkpoint{}) {
		return r.Any(), true, nil
	}
	for range len(r.replicas) {
		rep := r.pick()
		if rep == nil {
			break
		}
		reached, err := reachedCheckpoint(ctx, rep.pool, cp)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			if connectionError(err) {
				r.markDown(rep, err)
			}
			continue
		}
		if reached {
			return &failover{r: r, rep: rep}, true, nil
		}
	}
	deadline := time.Now().Add(wait)
	for {
		reached, err := reachedCheckpoint(ctx, r.primary, cp)
		if err != nil {
			return nil, false, err
		}
		if reached {
			return r.primary, true, nil
		}
		if time.Now().After(deadline) {
			return r.primary, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func reachedCheckpoint(ctx context.Context, db projections.Querier, cp eventstore.Checkpoint) (bool, error) {
	at, err := eventstore.New(db).ConsumerCheckpoint(ctx, projections.ConsumerGroup)
	if err != nil {
		return false, err
	}
	return !at.Less(cp), nil
}

// Watch pings the replicas every interval until ctx ends, taking a replica
// out of rotation while it fails and back when it answers.
func (r *Router) Watch(ctx context.Context, interval time.Duration) {
	if len(r.replicas) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, rep := range r.replicas {
			// A slow answer on a busy machine is not a dead replica.
			pctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
			err := rep.pool.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return // shutting down: the ping says nothing about the replica
			}
			if err != nil {
				r.markDown(rep, err)
			} else if rep.down.Swap(false) {
				r.logger.Info("replica is back in rotation", "replica", rep.name)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Healthy counts the replicas in rotation.
func (r *Router) Healthy() int {
	n := 0
	for _, rep := range r.replicas {
		if !rep.down.Load() {
			n++
		}
	}
	return n
}

func (r *Router) markDown(rep *replica, err error) {
	if !rep.down.Swap(true) {
		r.logger.Warn("replica taken out of rotation", "replica", rep.name, "err", err)
	}
}

// connectionError reports errors that mean the server is unreachable, as
// opposed to errors of the query itself or the caller's context ending
// (which also satisfies net.Error, and says nothing about the replica).
func connectionError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err)
}

// failover runs a read on a replica and, when the replica cannot be
// reached, takes it out of rotation and runs the read on the primary.
type failover struct {
	r   *Router
	rep *replica
}

func (f *failover) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := f.rep.pool.Query(ctx, sql, args...)
	if err != nil && connectionError(err) {
		f.r.markDown(f.rep, err)
		return f.r.primary.Query(ctx, sql, args...)
	}
	return rows, err
}

func (f *failover) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &failoverRow{f: f, ctx: ctx, sql: sql, args: args}
}

func (f *failover) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := f.rep.pool.Exec(ctx, sql, args...)
	if err != nil && connectionError(err) {
		f.r.markDown(f.rep, err)
		return f.r.primary.Exec(ctx, sql, args...)
	}
	return tag, err
}

type failoverRow struct {
	f    *failover
	ctx  context.Context
	sql  string
	args []any
}

func (r *failoverRow) Scan(dest ...any) error {
	err := r.f.rep.pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	if err != nil && connectionError(err) {
		r.f.r.markDown(r.f.rep, err)
		return r.f.r.primary.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	}
	return err
}
