package readpath_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/readpath"
)

// pollDeadline bounds every wait for something asynchronous; it is a failure
// deadline, not a timing assertion.
const pollDeadline = 15 * time.Second

// deadURL names a server nobody listens on.
const deadURL = "postgres://root@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=1"

// withAppName returns dbURL with application_name set, so a query can tell
// which pool answered it.
func withAppName(t testing.TB, dbURL, name string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// newPool returns a pool on dbURL, closed when t ends. Pools connect lazily,
// so dbURL may name a server or database that is not there (yet).
func newPool(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// db is one test database: the URL and a pool labelled "primary".
type db struct {
	url     string
	primary *pgxpool.Pool
}

func newDB(t testing.TB) db {
	t.Helper()
	_, u := pgtest.NewDB(t)
	return db{url: u, primary: newPool(t, withAppName(t, u, "primary"))}
}

// replica returns a pool on the same database labelled name: a "replica"
// that is always up to date.
func (d db) replica(t testing.TB, name string) *pgxpool.Pool {
	t.Helper()
	return newPool(t, withAppName(t, d.url, name))
}

// who reports which pool a Querier ran on.
func who(t testing.TB, q projections.Querier) string {
	t.Helper()
	var name string
	require.NoError(t, q.QueryRow(context.Background(), `SELECT current_setting('application_name')`).Scan(&name))
	return name
}

func setCheckpoint(t testing.TB, pool *pgxpool.Pool, cp eventstore.Checkpoint) {
	t.Helper()
	require.NoError(t, eventstore.New(pool).SetConsumerCheckpoint(context.Background(), projections.ConsumerGroup, cp))
}

func TestNoReplicasUsesThePrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDB(t)
	r := readpath.New(d.primary, nil, nil)

	assert.Same(t, d.primary, r.Primary())
	assert.Same(t, d.primary, r.Any())
	assert.Equal(t, "primary", who(t, r.Any()))
	assert.Zero(t, r.Healthy())

	q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{}, time.Minute)
	require.NoError(t, err)
	assert.True(t, fresh)
	assert.Same(t, d.primary, q)

	setCheckpoint(t, d.primary, eventstore.Checkpoint{TransactionID: 5, Position: 3})
	q, fresh, err = r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 5, Position: 3}, time.Minute)
	require.NoError(t, err)
	assert.True(t, fresh)
	assert.Same(t, d.primary, q)

	wctx, cancel := context.WithCancel(ctx)
	cancel()
	r.Watch(wctx, time.Millisecond) // returns at once: nothing to watch
}

func TestAnyRoundRobins(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	r := readpath.New(d.primary, []*pgxpool.Pool{d.replica(t, "a"), d.replica(t, "b"), d.replica(t, "c")}, nil)
	assert.Equal(t, 3, r.Healthy())

	counts := map[string]int{}
	var order []string
	for range 9 {
		name := who(t, r.Any())
		counts[name]++
		order = append(order, name)
	}
	assert.Equal(t, map[string]int{"a": 3, "b": 3, "c": 3}, counts, "order %v", order)
	for i := 3; i < len(order); i++ {
		assert.Equal(t, order[i-3], order[i], "a fixed rotation: %v", order)
	}
	assert.Equal(t, 3, r.Healthy())
}

// Each of the three Querier methods, on a replica that cannot be reached,
// takes the replica out of rotation and answers from the primary.
func TestFailoverToThePrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDB(t)
	tests := []struct {
		name string
		read func(t *testing.T, q projections.Querier) string
		want string
	}{
		{"QueryRow", func(t *testing.T, q projections.Querier) string {
			var name string
			require.NoError(t, q.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&name))
			return name
		}, "primary"},
		{"Query", func(t *testing.T, q projections.Querier) string {
			rows, err := q.Query(ctx, `SELECT current_setting('application_name')`)
			require.NoError(t, err)
			names, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Len(t, names, 1)
			return names[0]
		}, "primary"},
		{"Exec", func(t *testing.T, q projections.Querier) string {
			tag, err := q.Exec(ctx, `SELECT 1`)
			require.NoError(t, err)
			return tag.String()
		}, "SELECT 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := readpath.New(d.primary, []*pgxpool.Pool{newPool(t, deadURL)}, nil)
			require.Equal(t, 1, r.Healthy())

			assert.Equal(t, tt.want, tt.read(t, r.Any()))
			assert.Zero(t, r.Healthy(), "the dead replica is out of rotation")
			assert.Same(t, d.primary, r.Any(), "with no healthy replica, reads go to the primary")
		})
	}
}

func TestAnySkipsADeadReplica(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	r := readpath.New(d.primary, []*pgxpool.Pool{d.replica(t, "live"), newPool(t, deadURL)}, nil)
	require.Equal(t, 2, r.Healthy())

	// Round-robin reaches the dead replica within two reads; that read is
	// answered by the primary.
	var names []string
	for range 2 {
		names = append(names, who(t, r.Any()))
	}
	assert.ElementsMatch(t, []string{"live", "primary"}, names)
	assert.Equal(t, 1, r.Healthy())

	for range 4 {
		assert.Equal(t, "live", who(t, r.Any()), "only the live replica is in rotation")
	}
	assert.Equal(t, 1, r.Healthy())
}

// An error of the query itself says nothing about the replica's health.
func TestQueryErrorKeepsTheReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDB(t)
	r := readpath.New(d.primary, []*pgxpool.Pool{d.replica(t, "live")}, nil)

	_, err := r.Any().Exec(ctx, `SELECT * FROM no_such_table`)
	require.Error(t, err)
	var n int
	err = r.Any().QueryRow(ctx, `SELECT 1 WHERE false`).Scan(&n)
	require.ErrorIs(t, err, pgx.ErrNoRows)
	rows, err := r.Any().Query(ctx, `SELECT 1/0`)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	require.Error(t, err)

	assert.Equal(t, 1, r.Healthy())
	assert.Equal(t, "live", who(t, r.Any()))
}

// A read whose own context has run out says nothing about the replica's
// health either.
func TestExpiredContextKeepsTheReplica(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()

	t.Run("Any", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{d.replica(t, "live")}, nil)
		_, err := r.Any().Exec(ctx, `SELECT 1`)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, r.Healthy())
	})
	t.Run("deadline during the read", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{d.replica(t, "live")}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := r.Any().Exec(ctx, `SELECT pg_sleep(30)`)
		require.Error(t, err)
		assert.Equal(t, 1, r.Healthy())
	})
	t.Run("AtLeast", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{d.replica(t, "live")}, nil)
		_, _, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 1, Position: 1}, time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, r.Healthy())
	})
}

// createDBLater returns the URL of a database that does not exist yet and a
// func that creates it (migrated) and one that drops it again.
func createDBLater(t testing.TB) (dbURL string, create, drop func()) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "test_readpath_later_" + hex.EncodeToString(b[:])
	u, err := url.Parse(pgtest.AdminURL())
	require.NoError(t, err)
	u.Path = "/" + name
	admin := func(sql string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgtest.AdminURL())
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	drop = func() { admin("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)") }
	create = func() { admin("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()) }
	t.Cleanup(drop)
	return u.String(), create, drop
}

func waitHealthy(t testing.TB, r *readpath.Router, want int) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	for r.Healthy() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Healthy() = %d, want %d within %s", r.Healthy(), want, pollDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchTakesReplicasOutAndBack(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	laterURL, create, drop := createDBLater(t)
	r := readpath.New(d.primary, []*pgxpool.Pool{
		d.replica(t, "live"),
		newPool(t, withAppName(t, laterURL, "later")),
	}, nil)
	require.Equal(t, 2, r.Healthy(), "replicas start in rotation")

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Watch(ctx, 20*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})

	waitHealthy(t, r, 1) // the database is not there
	for range 3 {
		assert.Equal(t, "live", who(t, r.Any()))
	}

	create()
	waitHealthy(t, r, 2)
	seen := map[string]bool{}
	for range 4 {
		seen[who(t, r.Any())] = true
	}
	assert.Equal(t, map[string]bool{"live": true, "later": true}, seen)

	drop()
	waitHealthy(t, r, 1)
	for range 3 {
		assert.Equal(t, "live", who(t, r.Any()))
	}
}

func TestAtLeast(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	at := eventstore.Checkpoint{TransactionID: 1000, Position: 40}
	setCheckpoint(t, d.primary, at)
	r := readpath.New(d.primary, nil, nil)

	tests := []struct {
		name  string
		token eventstore.Checkpoint
		wait  time.Duration
		fresh bool
	}{
		// A wait of a minute that runs out fails the test by its length.
		{"no token", eventstore.Checkpoint{}, time.Minute, true},
		{"at the token", at, time.Minute, true},
		{"after the token, same transaction", eventstore.Checkpoint{TransactionID: 1000, Position: 39}, time.Minute, true},
		{"after the token, earlier transaction", eventstore.Checkpoint{TransactionID: 999, Position: 99}, time.Minute, true},
		{"behind the token, same transaction", eventstore.Checkpoint{TransactionID: 1000, Position: 41}, 100 * time.Millisecond, false},
		{"behind the token, later transaction", eventstore.Checkpoint{TransactionID: 1001, Position: 1}, 100 * time.Millisecond, false},
		{"behind, no wait", eventstore.Checkpoint{TransactionID: 1001, Position: 1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, fresh, err := r.AtLeast(context.Background(), tt.token, tt.wait)
			require.NoError(t, err)
			assert.Equal(t, tt.fresh, fresh)
			assert.Same(t, d.primary, q, "the primary is the best there is")
		})
	}
}

func TestAtLeastWithoutAnyCheckpoint(t *testing.T) {
	t.Parallel()
	d := newDB(t) // no consumer_offsets row: the projector has not started
	r := readpath.New(d.primary, nil, nil)
	q, fresh, err := r.AtLeast(context.Background(), eventstore.Checkpoint{TransactionID: 1, Position: 1}, 50*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, fresh)
	assert.Same(t, d.primary, q)
}

func TestAtLeastWaitsForTheProjector(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	setCheckpoint(t, d.primary, eventstore.Checkpoint{TransactionID: 10, Position: 1})
	r := readpath.New(d.primary, nil, nil)
	token := eventstore.Checkpoint{TransactionID: 12, Position: 7}

	advanced := make(chan struct{})
	go func() {
		defer close(advanced)
		// The projector catches up in steps while the read waits; the sleeps
		// only make it likely that AtLeast polls in between.
		for _, cp := range []eventstore.Checkpoint{{TransactionID: 11, Position: 3}, {TransactionID: 12, Position: 6}, token} {
			time.Sleep(50 * time.Millisecond)
			if err := eventstore.New(d.primary).SetConsumerCheckpoint(context.Background(), projections.ConsumerGroup, cp); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	q, fresh, err := r.AtLeast(context.Background(), token, time.Minute)
	require.NoError(t, err)
	assert.True(t, fresh, "the projector reached the token within the wait")
	assert.Same(t, d.primary, q)
	<-advanced
}

func TestAtLeastContextEnds(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	r := readpath.New(d.primary, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 1, Position: 1}, time.Minute)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, fresh)
	assert.Nil(t, q)
}

// With replicas, AtLeast prefers one that has reached the token, skips those
// that lag or are down, and falls back to the primary.
func TestAtLeastWithReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDB(t)
	lagging := newDB(t) // a replica behind the primary: its own database
	setCheckpoint(t, d.primary, eventstore.Checkpoint{TransactionID: 100, Position: 20})
	setCheckpoint(t, lagging.primary, eventstore.Checkpoint{TransactionID: 100, Position: 10})

	t.Run("a replica that reached the token answers", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{lagging.replica(t, "lagging")}, nil)
		q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 100, Position: 10}, time.Minute)
		require.NoError(t, err)
		assert.True(t, fresh)
		assert.Equal(t, "lagging", who(t, q))
	})
	t.Run("a lagging replica is skipped for the primary", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{lagging.replica(t, "lagging")}, nil)
		q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 100, Position: 20}, time.Minute)
		require.NoError(t, err)
		assert.True(t, fresh)
		assert.Equal(t, "primary", who(t, q))
		assert.Equal(t, 1, r.Healthy(), "lagging is not down")
	})
	t.Run("an up-to-date replica is preferred to the primary", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{lagging.replica(t, "lagging"), d.replica(t, "current")}, nil)
		for range 4 {
			q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 100, Position: 20}, time.Minute)
			require.NoError(t, err)
			assert.True(t, fresh)
			assert.Equal(t, "current", who(t, q))
		}
	})
	t.Run("a dead replica is marked down", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{newPool(t, deadURL), d.replica(t, "current")}, nil)
		for range 4 {
			q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 100, Position: 20}, time.Minute)
			require.NoError(t, err)
			assert.True(t, fresh)
			assert.Equal(t, "current", who(t, q))
		}
		assert.Equal(t, 1, r.Healthy())
	})
	t.Run("behind everywhere", func(t *testing.T) {
		r := readpath.New(d.primary, []*pgxpool.Pool{lagging.replica(t, "lagging")}, nil)
		q, fresh, err := r.AtLeast(ctx, eventstore.Checkpoint{TransactionID: 100, Position: 21}, 50*time.Millisecond)
		require.NoError(t, err)
		assert.False(t, fresh)
		assert.Equal(t, "primary", who(t, q))
	})
}

func TestTokensAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	other, _ := redistest.New(t) // a second connection, as another bookingd would have
	a := readpath.NewTokens(rdb, prefix, time.Minute)
	b := readpath.NewTokens(other, prefix, time.Minute)

	cp := eventstore.Checkpoint{TransactionID: 77, Position: 1234}
	a.Set(ctx, "alice", cp)
	assert.Equal(t, cp, a.Get(ctx, "alice"))
	assert.Equal(t, cp, b.Get(ctx, "alice"), "another instance sees the token")
	assert.Zero(t, b.Get(ctx, "bob"))

	later := eventstore.Checkpoint{TransactionID: 78, Position: 1300}
	b.Set(ctx, "alice", later)
	assert.Equal(t, later, a.Get(ctx, "alice"), "Redis's later token beats the local one")

	// Another prefix is another deployment.
	c := readpath.NewTokens(other, prefix+"other:", time.Minute)
	assert.Zero(t, c.Get(ctx, "alice"))
}

func TestTokensKeepTheLaterCheckpointLocally(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	for _, tt := range []struct {
		name   string
		tokens *readpath.Tokens
	}{
		{"with Redis", readpath.NewTokens(rdb, prefix, time.Minute)},
		{"without Redis", readpath.NewTokens(nil, "", time.Minute)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			later := eventstore.Checkpoint{TransactionID: 100, Position: 10}
			tt.tokens.Set(ctx, "alice", later)
			tt.tokens.Set(ctx, "alice", eventstore.Checkpoint{TransactionID: 100, Position: 9})
			tt.tokens.Set(ctx, "alice", eventstore.Checkpoint{TransactionID: 99, Position: 50})
			assert.Equal(t, later, tt.tokens.Get(ctx, "alice"))

			latest := eventstore.Checkpoint{TransactionID: 101, Position: 1}
			tt.tokens.Set(ctx, "alice", latest)
			assert.Equal(t, latest, tt.tokens.Get(ctx, "alice"))
		})
	}
}

func TestTokensWithoutRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := readpath.NewTokens(nil, "", time.Minute)
	b := readpath.NewTokens(nil, "", time.Minute)

	assert.Zero(t, a.Get(ctx, "alice"))
	cp := eventstore.Checkpoint{TransactionID: 5, Position: 6}
	a.Set(ctx, "alice", cp)
	assert.Equal(t, cp, a.Get(ctx, "alice"))
	assert.Zero(t, a.Get(ctx, "bob"))
	assert.Zero(t, b.Get(ctx, "alice"), "in-process only")
}

func TestTokensRedisDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	addr, stop := redistest.StartServer(t)
	rdb := redistest.FailFastClient(t, addr)
	tokens := readpath.NewTokens(rdb, "down:", time.Minute)

	before := eventstore.Checkpoint{TransactionID: 1, Position: 1}
	tokens.Set(ctx, "alice", before)
	stop()
	assert.Equal(t, before, tokens.Get(ctx, "alice"))
	after := eventstore.Checkpoint{TransactionID: 2, Position: 2}
	tokens.Set(ctx, "alice", after)
	assert.Equal(t, after, tokens.Get(ctx, "alice"), "this instance's writes still count")
}

func TestTokensExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	const ttl = time.Second // long enough to read back right after Set

	waitZero := func(t *testing.T, tokens *readpath.Tokens) {
		t.Helper()
		deadline := time.Now().Add(pollDeadline)
		for tokens.Get(ctx, "alice") != (eventstore.Checkpoint{}) {
			if time.Now().After(deadline) {
				t.Fatalf("the token did not expire within %s", pollDeadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("local copy", func(t *testing.T) {
		t.Parallel()
		tokens := readpath.NewTokens(nil, "", ttl)
		high := eventstore.Checkpoint{TransactionID: 100, Position: 100}
		tokens.Set(ctx, "alice", high)
		assert.Equal(t, high, tokens.Get(ctx, "alice"))
		waitZero(t, tokens)

		// An expired token no longer holds back an earlier one.
		low := eventstore.Checkpoint{TransactionID: 50, Position: 50}
		tokens.Set(ctx, "alice", low)
		assert.Equal(t, low, tokens.Get(ctx, "alice"))
	})
	t.Run("Redis and local copy", func(t *testing.T) {
		t.Parallel()
		a := readpath.NewTokens(rdb, prefix, ttl)
		b := readpath.NewTokens(rdb, prefix, ttl)
		cp := eventstore.Checkpoint{TransactionID: 7, Position: 8}
		a.Set(ctx, "alice", cp)
		assert.Equal(t, cp, b.Get(ctx, "alice"))
		waitZero(t, b) // Redis expired it
		waitZero(t, a) // and so did a's local copy
	})
}

// A slower write with an earlier checkpoint, finishing last on another
// instance, must not replace the later token in Redis.
func TestTokensKeepTheLaterCheckpointAcrossInstances(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	a := readpath.NewTokens(rdb, prefix, time.Minute)
	b := readpath.NewTokens(rdb, prefix, time.Minute)
	c := readpath.NewTokens(rdb, prefix, time.Minute)
	later := eventstore.Checkpoint{TransactionID: 900, Position: 12}
	earlier := eventstore.Checkpoint{TransactionID: 899, Position: 40}
	a.Set(ctx, "u1", later)
	b.Set(ctx, "u1", earlier)
	assert.Equal(t, later, c.Get(ctx, "u1"))
	b.Set(ctx, "u1", eventstore.Checkpoint{TransactionID: 900, Position: 13})
	assert.Equal(t, eventstore.Checkpoint{TransactionID: 900, Position: 13}, c.Get(ctx, "u1"))
}

// On a Redis Cluster a token set by one instance is seen by another.
func TestTokensOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.StartCluster(t, 3)
	a := readpath.NewTokens(rdb, "bookingledger:", time.Minute)
	b := readpath.NewTokens(rdb, "bookingledger:", time.Minute)
	later := eventstore.Checkpoint{TransactionID: 900, Position: 12}
	a.Set(ctx, "user-1", later)
	b.Set(ctx, "user-1", eventstore.Checkpoint{TransactionID: 899, Position: 40}) // older: kept out
	assert.Equal(t, later, readpath.NewTokens(rdb, "bookingledger:", time.Minute).Get(ctx, "user-1"))
	a.Set(ctx, "user-1@3", later)
	assert.Equal(t, later, b.Get(ctx, "user-1@3"))
}
