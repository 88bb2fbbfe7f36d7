package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/audit"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/shards"
)

// ledgerTarget books through the ledger's command side in this process:
// one ledger.Service per shard behind ledger.Sharded (one shard unless
// -shards says more).
type ledgerTarget struct {
	pools []*pgxpool.Pool // shard k at index k
	svc   *ledger.Sharded
	shows []domain.ShowID // by the scenario's show index
}

// newLedger migrates every shard's database, sets up its show ids, and
// schedules the scenario's shows (spread over the shards) through the
// command side the clients will use.
func newLedger(ctx context.Context, pools []*pgxpool.Pool, sc scenario, labels []string) (*ledgerTarget, error) {
	services := make([]*ledger.Service, len(pools))
	for k, pool := range pools {
		if _, err := migrations.Up(ctx, pool); err != nil {
			return nil, err
		}
		if err := shards.ConfigureIDs(ctx, pool, k, len(pools)); err != nil {
			return nil, err
		}
		svc, err := ledger.New(pool, ledger.DefaultConfig(), ledger.WithShard(k))
		if err != nil {
			return nil, err
		}
		services[k] = svc
	}
	svc, err := ledger.NewSharded(services...)
	if err != nil {
		return nil, err
	}
	l := &ledgerTarget{pools: pools, svc: svc, shows: make([]domain.ShowID, sc.shows)}
	start := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(8, sc.shows) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= sc.shows || ctx.Err() != nil {
					return
				}
				res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{
					Name: fmt.Sprintf("Bench show %d", i+1), ShowType: domain.ShowMovie,
					StartTime: start, SeatNumbers: labels,
				}, ledger.Metadata{RequestID: "bookingbench"})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("schedule show %d: %w", i+1, err) })
					return
				}
				l.shows[i] = res.ShowID
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return l, ctx.Err()
}

func (l *ledgerTarget) clients(_ context.Context, n int) ([]bookFunc, error) {
	out := make([]bookFunc, n)
	for i := range out {
		user := domain.UserID(uuid.NewString())
		meta := ledger.Metadata{UserID: string(user)}
		out[i] = func(ctx context.Context, j job) (string, error) {
			b, _, err := l.svc.Hold(ctx, l.shows[j.show], user, j.seats, meta)
			if errors.Is(err, domain.ErrSeatsUnavailable) || errors.Is(err, ledger.ErrTooManyConflicts) {
				return "", fmt.Errorf("%w: %w", errRefused, err)
			}
			if err != nil {
				return "", err
			}
			return string(b.ID), nil
		}
	}
	return out, nil
}

// verify checks every shard's events for the bookings acknowledged on it.
func (l *ledgerTarget) verify(ctx context.Context, ok []success) (verdict, error) {
	var v verdict
	for k, pool := range l.pools {
		var acks []audit.Ack
		for _, o := range ok {
			if show := l.shows[o.show]; shards.Of(show, len(l.pools)) == k {
				acks = append(acks, audit.Ack{Show: show, Booking: domain.BookingID(o.id), Type: domain.TypeSeatLocked})
			}
		}
		r, err := audit.Check(ctx, pool, acks)
		if err != nil {
			return v, fmt.Errorf("shard %d: %w", k, err)
		}
		v.oversold, v.lost = v.oversold+r.Oversold, v.lost+r.Lost
	}
	return v, nil
}

// perShard counts the acknowledged bookings of each shard.
func (l *ledgerTarget) perShard(ok []success) []int {
	out := make([]int, len(l.pools))
	for _, o := range ok {
		out[shards.Of(l.shows[o.show], len(l.pools))]++
	}
	return out
}

func (l *ledgerTarget) close() {}
