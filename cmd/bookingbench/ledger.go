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
		var mine []success
		for _, o := range ok {
			if shards.Of(l.shows[o.show], len(l.pools)) == k {
				mine = append(mine, o)
			}
		}
		vk, err := verifyEvents(ctx, pool, l.shows, mine)
		if err != nil {
			return v, fmt.Errorf("shard %d: %w", k, err)
		}
		v.oversold, v.lost = v.oversold+vk.oversold, v.lost+vk.lost
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

// verifyEvents reads the events table alone, every show's stream in version
// order, and folds each one independently of the domain's state: a
// SeatLocked that claims a seat a live booking already holds counts as
// oversold, and an acknowledged booking without its SeatLocked event on its
// show's stream as lost. Gaps in a stream's versions and seats a show does
// not have are errors.
func verifyEvents(ctx context.Context, pool *pgxpool.Pool, shows []domain.ShowID, ok []success) (verdict, error) {
	type stream struct {
		version int
		seats   map[string]bool
		holders map[string]int                // seat -> live bookings holding it
		live    map[domain.BookingID][]string // live booking -> its seats
	}
	var (
		v       verdict
		streams = map[string]*stream{}
		locked  = map[domain.BookingID]string{} // booking -> its stream
	)
	rows, err := pool.Query(ctx, `SELECT stream_id, stream_version, event_type, data FROM events ORDER BY stream_id, stream_version`)
	if err != nil {
		return v, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, typ string
			version int
			data    []byte
		)
		if err := rows.Scan(&id, &version, &typ, &data); err != nil {
			return v, fmt.Errorf("read events: %w", err)
		}
		st := streams[id]
		if st == nil {
			st = &stream{seats: map[string]bool{}, holders: map[string]int{}, live: map[domain.BookingID][]string{}}
			streams[id] = st
		}
		if version != st.version+1 {
			return v, fmt.Errorf("%s: version %d follows %d", id, version, st.version)
		}
		st.version = version
		ev, err := domain.UnmarshalEvent(typ, data)
		if err != nil {
			return v, fmt.Errorf("%s v%d: %w", id, version, err)
		}
		switch e := ev.(type) {
		case domain.ShowScheduled:
			for _, s := range e.SeatNumbers {
				st.seats[s] = true
			}
		case domain.SeatLocked:
			for _, s := range e.SeatNumbers {
				if !st.seats[s] {
					return v, fmt.Errorf("%s v%d: booking %s locks seat %q the show does not have", id, version, e.BookingID, s)
				}
				if st.holders[s] > 0 {
					v.oversold++
				}
				st.holders[s]++
			}
			if _, dup := st.live[e.BookingID]; dup {
				return v, fmt.Errorf("%s v%d: booking %s locked twice", id, version, e.BookingID)
			}
			st.live[e.BookingID] = e.SeatNumbers
			locked[e.BookingID] = id
		case domain.BookingExpired:
			release(st.holders, st.live, e.BookingID)
		case domain.BookingCancelled:
			release(st.holders, st.live, e.BookingID)
		}
	}
	if err := rows.Err(); err != nil {
		return v, fmt.Errorf("read events: %w", err)
	}
	for _, o := range ok {
		if locked[domain.BookingID(o.id)] != shows[o.show].StreamID() {
			v.lost++
		}
	}
	return v, nil
}

// release frees the seats of a live booking; ending a booking that is not
// live changes nothing.
func release(holders map[string]int, live map[domain.BookingID][]string, id domain.BookingID) {
	for _, s := range live[id] {
		holders[s]--
	}
	delete(live, id)
}
