package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
)

// Two services on one database stand for two bookingd processes. Two users
// each try many one-seat holds at once through both: neither ever holds
// more than the cap, each ends with exactly the cap (a one-seat hold is
// refused only at the cap, and nothing is released), and every refusal is
// the typed seat-limit error with the values that decided it.
func TestSeatCapHoldsAcrossTwoProcesses(t *testing.T) {
	t.Parallel()
	db, url := pgtest.NewDB(t)
	clk := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	services := make([]*ledger.Service, 2)
	for i := range services {
		pool, err := pgxpool.New(ctx, url) // a pool each, as two processes have
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		services[i] = newService(t, pool, clk)
	}
	const limit, perUser, workers = 5, 16, 8
	show := scheduleCapped(t, services[0], clk, 2*perUser, limit)
	users := []domain.UserID{uid(1), uid(2)}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		held     = map[domain.UserID]int{}
		refusals = map[domain.UserID]int{}
	)
	for w := range workers {
		wg.Go(func() {
			svc := services[w%2]
			for i := w; i < 2*perUser; i += workers {
				user := users[i%2]
				_, _, err := svc.Hold(ctx, show, user, []string{fmt.Sprintf("S%d", i+1)}, ledger.Metadata{})
				var capped *domain.SeatLimitError
				switch {
				case err == nil:
					mu.Lock()
					held[user]++
					mu.Unlock()
				case errors.As(err, &capped):
					assert.Equal(t, domain.SeatLimitError{Limit: limit, Held: limit, Requested: 1}, *capped)
					assert.ErrorIs(t, err, domain.ErrSeatLimit)
					mu.Lock()
					refusals[user]++
					mu.Unlock()
				default:
					// Retries that ran out are not a decision either way.
					assert.ErrorIs(t, err, ledger.ErrTooManyConflicts)
				}
			}
		})
	}
	wg.Wait()

	for _, user := range users {
		var onStream int
		require.NoError(t, db.QueryRow(ctx, `
			SELECT coalesce(sum(jsonb_array_length(data -> 'seat_numbers')), 0) FROM events
			WHERE stream_id = $1 AND event_type = 'SeatLocked' AND data ->> 'user_id' = $2`,
			show.StreamID(), string(user)).Scan(&onStream))
		assert.Equal(t, limit, onStream, "user %s: seats held on the stream", user)
		assert.Equal(t, limit, held[user], "user %s: holds acknowledged", user)
		assert.Positive(t, refusals[user], "user %s: the cap refused some holds", user)
	}
}

// A process whose cached state still counts a hold another process has
// cancelled does not refuse on it: the refusal is checked against the
// stream, which gives the seats back.
func TestSeatCapSeesAnotherProcessCancel(t *testing.T) {
	t.Parallel()
	a, b, clk := twoProcesses(t)
	ctx := context.Background()
	show := scheduleCapped(t, a, clk, 10, 3)
	user := uid(1)

	first, _, err := a.Hold(ctx, show, user, []string{"S1", "S2"}, ledger.Metadata{})
	require.NoError(t, err)
	_, _, err = a.Hold(ctx, show, user, []string{"S3"}, ledger.Metadata{})
	require.NoError(t, err)
	_, _, err = a.Hold(ctx, show, user, []string{"S4"}, ledger.Metadata{})
	var capped *domain.SeatLimitError
	require.ErrorAs(t, err, &capped)
	assert.Equal(t, domain.SeatLimitError{Limit: 3, Held: 3, Requested: 1}, *capped)

	_, err = b.Cancel(ctx, show, first.ID, ledger.Metadata{})
	require.NoError(t, err)
	_, _, err = a.Hold(ctx, show, user, []string{"S4", "S5"}, ledger.Metadata{})
	require.NoError(t, err, "the cancelled hold's seats are the user's again")

	// And the clock gives seats back too: past the holds' expiry, before
	// any sweep has recorded it.
	clk.Add(time.Minute)
	_, _, err = b.Hold(ctx, show, user, []string{"S6", "S7", "S8"}, ledger.Metadata{})
	require.NoError(t, err)
}
