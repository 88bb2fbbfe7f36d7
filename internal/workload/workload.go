// Package workload drives the ledger with a random but reproducible mix of
// commands — holds, confirmations, cancellations and expiries on several
// shows from several clients — for tests and tools that need a busy ledger.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/ledger"
)

// Options shape a workload.
type Options struct {
	Shows        int // shows scheduled first
	SeatsPerShow int
	Holds        int // successful holds wanted in all (attempts stop at 20×)
	Clients      int // concurrent clients
	Seed         uint64
}

// Stats counts what happened.
type Stats struct {
	Holds, Refused, Confirmed, Cancelled, Expired atomic.Int64
	Shows                                         []domain.ShowID
}

// Run schedules the shows, then has Clients goroutines place Holds holds in
// all (or give up after 20 times as many attempts, when seats run out).
// After each successful hold a client confirms, cancels, expires (waiting
// for the hold to lapse when that is at most maxExpiryWait away; the
// service's clock decides) or leaves it pending, at random. Refusals the
// domain gives under contention are counted, other errors end the run.
func Run(ctx context.Context, svc *ledger.Service, o Options) (*Stats, error) {
	st := &Stats{}
	for i := range o.Shows {
		seats := make([]string, o.SeatsPerShow)
		for j := range seats {
			seats[j] = seatLabel(j)
		}
		res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{
			Name: fmt.Sprintf("Workload show %d", i+1), ShowType: []domain.ShowType{domain.ShowMovie, domain.ShowBus, domain.ShowDoctor}[i%3],
			StartTime: time.Now().Add(time.Duration(24+i) * time.Hour), SeatNumbers: seats,
		}, ledger.Metadata{RequestID: "workload"})
		if err != nil {
			return st, err
		}
		st.Shows = append(st.Shows, res.ShowID)
	}

	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for c := range o.Clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(o.Seed, uint64(c)))
			user := domain.UserID(uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "workload-user-%d", c)).String())
			for next.Add(1) <= 20*int64(o.Holds) && st.Holds.Load() < int64(o.Holds) && ctx.Err() == nil {
				if err := step(ctx, svc, st, r, user, o); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return st, firstErr
}

func step(ctx context.Context, svc *ledger.Service, st *Stats, r *rand.Rand, user domain.UserID, o Options) error {
	show := st.Shows[r.IntN(len(st.Shows))]
	n := 1 + r.IntN(4)
	want := make([]string, 0, n)
	for _, i := range r.Perm(o.SeatsPerShow)[:min(n, o.SeatsPerShow)] {
		want = append(want, seatLabel(i))
	}
	b, _, err := svc.Hold(ctx, show, user, want, ledger.Metadata{UserID: string(user)})
	switch {
	case errors.Is(err, domain.ErrSeatsUnavailable), errors.Is(err, ledger.ErrTooManyConflicts):
		st.Refused.Add(1)
		return nil
	case err != nil:
		return err
	}
	st.Holds.Add(1)
	switch r.IntN(4) {
	case 0:
		_, err = svc.Confirm(ctx, show, b.ID, ledger.Metadata{UserID: string(user)})
		if err == nil {
			st.Confirmed.Add(1)
		}
	case 1:
		_, err = svc.Cancel(ctx, show, b.ID, ledger.Metadata{UserID: string(user)})
		if err == nil {
			st.Cancelled.Add(1)
		}
	case 2:
		// A hold about to lapse (tests give holds a TTL of milliseconds) is
		// waited for, so that expiries happen however fast the machine is;
		// a long one is asked anyway and refused.
		if wait := time.Until(b.ExpiresAt); wait > 0 && wait <= maxExpiryWait {
			time.Sleep(wait + time.Millisecond)
		}
		_, err = svc.Expire(ctx, show, b.ID, ledger.Metadata{})
		if err == nil {
			st.Expired.Add(1)
		}
	}
	if errors.Is(err, domain.ErrHoldNotExpired) || errors.Is(err, domain.ErrHoldExpired) ||
		errors.Is(err, domain.ErrBookingNotPending) || errors.Is(err, ledger.ErrTooManyConflicts) {
		err = nil // the clock decides; both answers are legitimate
	}
	return err
}

// maxExpiryWait is the longest a client waits for a hold to lapse before
// it expires it.
const maxExpiryWait = 100 * time.Millisecond

// seatLabel names seat i: rows A–Z of 20 seats, then plain numbers.
func seatLabel(i int) string {
	if i < 20*26 {
		return fmt.Sprintf("%c%d", 'A'+i/20, i%20+1)
	}
	return fmt.Sprint(i + 1)
}
