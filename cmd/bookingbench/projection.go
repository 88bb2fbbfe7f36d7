package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/projections"
)

// Settings of the projection measurement.
const (
	projectorPoll  = 10 * time.Millisecond // the projector's PollInterval
	lagSampleEvery = 50 * time.Millisecond
	catchUpPoll    = 5 * time.Millisecond
	// catchUpBound bounds the waits for the projector, before the run (the
	// set-up's events) and after it.
	catchUpBound = time.Minute
)

// lagStats is the projector's lag during one run. Ages are of the oldest
// committed event the projector had not applied, sampled every
// lagSampleEvery while the clients booked.
type lagStats struct {
	samples       int
	p50, p99, max float64 // ms
	behind        int64   // events not projected when the last booking finished
	// catchUp is how long after the last booking the projector's checkpoint
	// reached the newest event, in ms; -1 when it did not within catchUpBound.
	catchUp float64
}

// projection runs a projections.Projector on a target's database, on a
// small pool of its own (as bookingd does) that the lag samples share.
type projection struct {
	pool  *pgxpool.Pool
	store *eventstore.Store
	stop  context.CancelFunc
	done  chan struct{} // closed when the projector's Run returned
	err   error         // Run's error; read after done is closed
}

// startProjection starts the projector on database dbName and waits until
// it has projected everything already committed (the target's set-up).
func startProjection(ctx context.Context, adminURL, dbName string) (*projection, error) {
	pcfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	pcfg.ConnConfig.Database = dbName
	pcfg.MaxConns = 4
	pcfg.ConnConfig.RuntimeParams["application_name"] = "bookingbench-projector"
	pcfg.ConnConfig.RuntimeParams["lock_timeout"] = "5s"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("projector: connect to %s: %w", dbName, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	p := &projection{pool: pool, store: eventstore.New(pool), stop: stop, done: make(chan struct{})}
	projector := projections.NewProjector(pool, projections.ProjectorConfig{PollInterval: projectorPoll}, nil)
	go func() {
		defer close(p.done)
		p.err = projector.Run(runCtx)
	}()
	last, err := p.store.Last(ctx)
	if err != nil {
		p.close()
		return nil, err
	}
	if ok, err := p.waitFor(ctx, last, catchUpBound); err != nil || !ok {
		p.close()
		if err == nil {
			err = fmt.Errorf("the projector did not project the set-up within %s", catchUpBound)
		}
		return nil, err
	}
	return p, nil
}

// waitFor polls the projector's checkpoint until it reaches cp (true), the
// bound runs out (false) or the projector stops (an error).
func (p *projection) waitFor(ctx context.Context, cp eventstore.Checkpoint, bound time.Duration) (bool, error) {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(catchUpPoll)
	defer tick.Stop()
	for {
		at, err := p.store.ConsumerCheckpoint(ctx, projections.ConsumerGroup)
		if err != nil {
			return false, err
		}
		if !at.Less(cp) {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-p.done:
			return false, p.stopped()
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// stopped is the error of a projector that ended on its own.
func (p *projection) stopped() error {
	if p.err != nil {
		return fmt.Errorf("the projector stopped: %w", p.err)
	}
	return errors.New("the projector stopped")
}

// sampler samples the projector's lag until finish is called.
type sampler struct {
	p      *projection
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ages   []time.Duration
	err    error
}

// sample starts sampling the age of the oldest unprojected event every
// lagSampleEvery.
func (p *projection) sample(ctx context.Context) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{p: p, cancel: cancel}
	s.wg.Go(func() {
		tick := time.NewTicker(lagSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_, age, err := p.store.Lag(ctx, projections.ConsumerGroup)
			if ctx.Err() != nil {
				return // the run ended during the query: no sample
			}
			if err != nil {
				s.err = err
				return
			}
			s.ages = append(s.ages, age)
		}
	})
	return s
}

// finish stops sampling when the last booking has finished (at ended),
// counts the events the projector is behind, and waits up to catchUpBound
// for it to reach the newest event.
func (s *sampler) finish(ctx context.Context, ended time.Time) (lagStats, error) {
	s.cancel()
	s.wg.Wait()
	var st lagStats
	if s.err != nil {
		return st, fmt.Errorf("projection lag: %w", s.err)
	}
	select {
	case <-s.p.done:
		return st, s.p.stopped()
	default:
	}
	behind, _, err := s.p.store.Lag(ctx, projections.ConsumerGroup)
	if err != nil {
		return st, fmt.Errorf("projection lag: %w", err)
	}
	last, err := s.p.store.Last(ctx)
	if err != nil {
		return st, err
	}
	caughtUp, err := s.p.waitFor(ctx, last, catchUpBound-time.Since(ended))
	if err != nil {
		return st, err
	}
	st.catchUp = -1
	if caughtUp {
		st.catchUp = ms(time.Since(ended))
	}
	st.behind = behind
	slices.Sort(s.ages)
	st.samples = len(s.ages)
	st.p50, st.p99 = percentile(s.ages, 0.50), percentile(s.ages, 0.99)
	if len(s.ages) > 0 {
		st.max = ms(s.ages[len(s.ages)-1])
	}
	return st, nil
}

// close stops the projector and closes its pool.
func (p *projection) close() {
	p.stop()
	<-p.done
	p.pool.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
