package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/users"
)

// replicatedLedger is a migrated ledger database on a primary of the test's
// own and a pg_basebackup -R standby of it, with a pool on each.
func replicatedLedger(t *testing.T) (primary, standby *pgtest.Cluster, pool, replica *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	primary = pgtest.NewCluster(t)
	primary.CreateDB("ledger")
	pool, err := pgxpool.New(ctx, primary.URL("ledger"))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Up(ctx, pool)
	require.NoError(t, err)
	standby = primary.Standby()
	replica, err = pgxpool.New(ctx, standby.URL("ledger"))
	require.NoError(t, err)
	t.Cleanup(replica.Close)
	return primary, standby, pool, replica
}

// The read path on real streaming replication: a primary of the test's own
// and a standby made with pg_basebackup -R. With the standby's replay
// paused, others' reads are stale, yet a client sees its own booking at once
// and its seat map never shows its own seats as free; a standby that goes
// down is skipped, and once it is back (and caught up) it serves again.
func TestReadPathOnAStreamingStandby(t *testing.T) {
	t.Parallel()
	primary, standby, pool, replica := replicatedLedger(t)
	ctx := context.Background()

	reads := readpath.New(pool, []*pgxpool.Pool{replica}, nil)
	e := newEnvOn(t, pool, primary.URL("ledger"), func(d *api.Deps, _ *ledger.Config) {
		d.Reads = reads
		d.Cache = cache.New(nil, cache.Config{}) // every read is a load: the replica answers
		d.Config.ReadYourWritesWait = 30 * time.Second
	})
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { reads.Watch(watchCtx, 50*time.Millisecond) })
	t.Cleanup(func() { stopWatch(); wg.Wait() })

	inRecovery := func() bool {
		var standby bool
		require.NoError(t, reads.Any().QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby))
		return standby
	}
	require.True(t, inRecovery(), "reads without a token go to the standby")

	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"name": "replicated", "show_type": "bus", "total_seats": 4})
	e.waitShow(show, 1) // projected on the primary and replayed on the standby
	path := fmt.Sprintf("/api/shows/%d", show)

	standby.PauseReplay()
	r := e.do("POST", "/api/bookings", alice, hold(show, "1", "2"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	booking := r.json(t)["id"].(string)

	// Her own writes, at once, whatever the standby has replayed.
	r = e.do("GET", "/api/bookings/"+booking, alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "pending", r.json(t)["status"])
	r = e.do("GET", "/api/bookings", alice, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, r.json(t)["bookings"], 1)
	mine := seatStatuses(e.doJSON("GET", path, alice))
	assert.Equal(t, "locked", mine["1"], "her seat map never shows her own seats as free")
	assert.Equal(t, "locked", mine["2"])

	// Someone else reads the paused standby: stale, as replicas may be.
	others := seatStatuses(e.doJSON("GET", path, ""))
	assert.Equal(t, "available", others["1"], "the standby has not replayed the hold")

	// The standby goes down: skipped, reads come from the primary.
	standby.Stop()
	others = seatStatuses(e.doJSON("GET", path, ""))
	assert.Equal(t, "locked", others["1"], "with the standby down the primary answers")
	eventually(t, "the watcher takes the standby out", func() bool { return reads.Healthy() == 0 })

	// Back, and replaying again (a restart resumes replay): used again.
	standby.Start()
	standby.WaitReplayed(primary)
	eventually(t, "the watcher puts the standby back", func() bool { return reads.Healthy() == 1 })
	assert.True(t, inRecovery(), "reads go to the standby again")
	eventually(t, "the standby serves the hold", func() bool {
		return seatStatuses(e.doJSON("GET", path, ""))["1"] == "locked"
	})
}

// doJSON is a GET that must answer 200 with a JSON object.
func (e *env) doJSON(method, path, token string) map[string]any {
	e.t.Helper()
	r := e.do(method, path, token, nil)
	require.Equal(e.t, http.StatusOK, r.status, "%s %s: %s", method, path, r.body)
	return r.json(e.t)
}

// The show cache loads from the primary: a standby that lags (here: paused)
// never puts an old seat map back into the cache after the projector's
// commit invalidated it.
func TestCacheIsNotFilledFromALaggingStandby(t *testing.T) {
	t.Parallel()
	primary, standby, pool, replica := replicatedLedger(t)

	e := newEnvOn(t, pool, primary.URL("ledger"), func(d *api.Deps, _ *ledger.Config) {
		d.Reads = readpath.New(pool, []*pgxpool.Pool{replica}, nil)
	})
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"name": "cached", "show_type": "bus", "total_seats": 4})
	e.waitShow(show, 1)
	standby.WaitReplayed(primary)
	standby.PauseReplay()

	path := fmt.Sprintf("/api/shows/%d", show)
	require.Equal(t, "available", seatStatuses(e.doJSON("GET", path, ""))["1"]) // cached now
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "1")).status)
	eventually(t, "anonymous readers see the hold through the cache", func() bool {
		return seatStatuses(e.doJSON("GET", path, ""))["1"] == "locked"
	})
}
