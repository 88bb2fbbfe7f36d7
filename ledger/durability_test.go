package ledger_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
)

// DESIGN.md's second invariant: a hold acknowledged is never lost, not on
// a PostgreSQL crash. Clients hold seats on a server of the test's own;
// once some holds are acknowledged the server crashes (Cluster.Crash: no
// checkpoint, recovery from the WAL) and is started again while the
// clients keep asking. Afterwards every acknowledged hold is on its show's
// stream with its seats, and every stream's versions run 1..n.
func TestAcknowledgedHoldsSurviveAPostgresCrash(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewCluster(t)
	srv.CreateDB("ledger")
	ctx := context.Background()
	pool := pgtest.Pool(t, srv.URL("ledger"))
	_, err := migrations.Up(ctx, pool)
	require.NoError(t, err)
	clk := &clock{now: time.Now()}
	svc := newService(t, pool, clk)
	const nShows, nSeats, clients, perClient = 4, 200, 8, 60
	shows := make([]domain.ShowID, nShows)
	for i := range shows {
		shows[i] = schedule(t, svc, clk, nSeats)
	}

	type acked struct {
		show    domain.ShowID
		booking domain.BookingID
		seats   []string
	}
	var (
		mu        sync.Mutex
		acks      []acked
		ackCount  atomic.Int64
		failed    atomic.Int64
		crashOnce sync.Once
		crashed   = make(chan struct{})
		wg        sync.WaitGroup
	)
	crashAfter := int64(clients * perClient / 4)
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			// Bounded: perClient acknowledged holds, or attempts run out.
			for done, attempts := 0, 0; done < perClient && attempts < 20*perClient; attempts++ {
				show := shows[rng.IntN(nShows)]
				want := []string{seats(nSeats)[rng.IntN(nSeats)]}
				b, _, err := svc.Hold(ctx, show, uid(c), want, ledger.Metadata{})
				if err != nil {
					if !errors.Is(err, domain.ErrSeatsUnavailable) {
						failed.Add(1)
						// The server is down or recovering: ask again a
						// little later, as a client would.
						time.Sleep(20 * time.Millisecond)
					}
					continue
				}
				done++
				mu.Lock()
				acks = append(acks, acked{show: show, booking: b.ID, seats: want})
				mu.Unlock()
				if ackCount.Add(1) >= crashAfter {
					crashOnce.Do(func() { close(crashed) })
				}
			}
		})
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-crashed:
	case <-clientsDone:
		t.Fatalf("the clients ended with %d holds acknowledged, before the crash at %d", ackCount.Load(), crashAfter)
	}
	srv.Crash()
	srv.Start()
	atRestart := ackCount.Load()
	<-clientsDone

	require.Positive(t, failed.Load(), "some holds failed while the server was down")
	require.Greater(t, ackCount.Load(), atRestart, "holds were acknowledged after the restart too")
	for _, show := range shows {
		var n, maxVersion, distinct int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), max(stream_version), count(DISTINCT stream_version)
			FROM events WHERE stream_id = $1`, show.StreamID()).Scan(&n, &maxVersion, &distinct))
		assert.Equal(t, n, maxVersion, "show %d: versions 1..n", show)
		assert.Equal(t, n, distinct, "show %d: versions 1..n", show)
	}
	state := map[domain.ShowID]*domain.Show{}
	for _, show := range shows {
		st, err := svc.Show(ctx, show)
		require.NoError(t, err)
		state[show] = st
	}
	for _, a := range acks {
		b, ok := state[a.show].Booking(a.booking)
		if assert.True(t, ok, "acknowledged booking %s of show %d is on the stream", a.booking, a.show) {
			assert.Equal(t, a.seats, b.SeatNumbers, "booking %s", a.booking)
		}
	}
	t.Logf("%d holds acknowledged, %d failed while the server was down or recovering", len(acks), failed.Load())
}
