package ledger

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
)

// blockShow makes the next append to show wait: a transaction of the test
// appends the show's next version and holds it uncommitted. Rolling it back
// lets the waiting append through.
func blockShow(t *testing.T, pool *pgxpool.Pool, svc *Service, show domain.ShowID) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	st, err := svc.Show(ctx, show)
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	_, err = eventstore.New(tx).Append(ctx, show.StreamID(), st.Version(), []eventstore.EventData{{
		ID: uuid.Must(uuid.NewV7()), Type: "Blocker", Data: []byte(`{}`),
	}})
	require.NoError(t, err)
	return tx
}

// waitInFlight waits until an append of the test's database waits for a
// lock (the blocker's).
func waitInFlight(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		var waiting bool
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%')`).Scan(&waiting))
		if waiting {
			return
		}
		require.False(t, time.Now().After(deadline), "no append waits for the blocker")
	}
}

// waitPending waits until n appends wait behind the one in flight.
func waitPending(t *testing.T, svc *Service, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		svc.appender.mu.Lock()
		got := len(svc.appender.pending)
		svc.appender.mu.Unlock()
		if got == n {
			return
		}
		require.False(t, time.Now().After(deadline), "%d appends pending, want %d", got, n)
	}
}

func scheduleShows(t *testing.T, svc *Service, n int) []domain.ShowID {
	t.Helper()
	ids := make([]domain.ShowID, n)
	for i := range ids {
		res, err := svc.ScheduleShow(context.Background(), ScheduleInput{Name: fmt.Sprint("show ", i), ShowType: domain.ShowBus,
			StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1", "2"}}, Metadata{})
		require.NoError(t, err)
		ids[i] = res.ShowID
	}
	return ids
}

// holdTogether holds seat 1 of the first show while a blocker holds its
// append back, and seat of every other show meanwhile, so that their
// appends wait together; then it lets the first through and returns every
// show's result (the first's included).
func holdTogether(t *testing.T, pool *pgxpool.Pool, svc *Service, shows []domain.ShowID, seat string) []Result {
	t.Helper()
	ctx := context.Background()
	blocker := blockShow(t, pool, svc, shows[0])
	results := make([]Result, len(shows))
	var wg sync.WaitGroup
	wg.Go(func() {
		_, res, err := svc.Hold(ctx, shows[0], testUser, []string{"1"}, Metadata{})
		assert.NoError(t, err, "the blocker was rolled back")
		results[0] = res
	})
	waitInFlight(t, pool)
	for i := 1; i < len(shows); i++ {
		wg.Go(func() {
			_, res, err := svc.Hold(ctx, shows[i], testUser, []string{seat}, Metadata{})
			assert.NoError(t, err)
			results[i] = res
		})
	}
	waitPending(t, svc, len(shows)-1)
	require.NoError(t, blocker.Rollback(ctx))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the holds did not return")
	}
	return results
}

const testUser = domain.UserID("0190c6e4-0000-7000-8000-000000000001")

// Holds on different shows that wait together are appended in one
// statement and one transaction.
func TestHoldsOnManyShowsShareACommit(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	var groups []int
	var mu sync.Mutex
	svc, err := New(pool, DefaultConfig(), WithGroupHook(func(n int) { mu.Lock(); groups = append(groups, n); mu.Unlock() }))
	require.NoError(t, err)
	ctx := context.Background()
	shows := scheduleShows(t, svc, 8)

	results := holdTogether(t, pool, svc, shows, "1")

	mu.Lock()
	assert.Contains(t, groups, len(shows)-1, "the waiting holds went out together")
	mu.Unlock()
	tx := results[1].Last().TransactionID
	for i := 1; i < len(shows); i++ {
		require.Len(t, results[i].Events, 1)
		assert.Equal(t, tx, results[i].Last().TransactionID, "show %d: one transaction", i)
		st, err := svc.Show(ctx, shows[i])
		require.NoError(t, err)
		assert.Equal(t, 1, st.AvailableSeats())
	}
}

// A show that another process moved meets its version conflict inside the
// group: the other shows of the group commit, and it is decided again on
// the fresh state and appended after them.
func TestAGroupCommitsAroundAConflict(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	var conflicts atomic.Int64
	svc, err := New(pool, DefaultConfig(), WithConflictHook(func() { conflicts.Add(1) }))
	require.NoError(t, err)
	other, err := New(pool, DefaultConfig()) // another bookingd
	require.NoError(t, err)
	ctx := context.Background()
	shows := scheduleShows(t, svc, 4) // svc keeps them at version 1
	_, moved, err := other.Hold(ctx, shows[2], testUser, []string{"1"}, Metadata{})
	require.NoError(t, err)

	results := holdTogether(t, pool, svc, shows, "2")

	assert.EqualValues(t, 1, conflicts.Load(), "the moved show conflicted once")
	assert.Equal(t, results[1].Last().TransactionID, results[3].Last().TransactionID, "the others committed together")
	assert.NotEqual(t, results[1].Last().TransactionID, results[2].Last().TransactionID, "the moved show went again on its own")
	assert.Equal(t, moved.Version+1, results[2].Last().StreamVersion, "decided again after the other process's hold")
	st, err := svc.Show(ctx, shows[2])
	require.NoError(t, err)
	assert.Zero(t, st.AvailableSeats(), "both holds stand")
}
