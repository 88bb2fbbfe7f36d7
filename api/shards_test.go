package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/ratelimit"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/shards"
	"github.com/bookingledger/ledger/users"
)

// shardDB is a migrated database for a shard and the router its reads take.
type shardDB struct {
	pool  *pgxpool.Pool
	url   string
	reads *readpath.Router // nil: the primary alone
}

// newShardedEnv is an API over n shards, each a fresh database.
func newShardedEnv(t *testing.T, n int) *env {
	t.Helper()
	dbs := make([]shardDB, n)
	for k := range dbs {
		dbs[k].pool, dbs[k].url = pgtest.NewDB(t)
	}
	return newShardedEnvOn(t, dbs, nil)
}

// newShardedEnvOn is an API over the shards dbs, shard k at index k, each
// with its own projector, live hub and cache listener, and a separate home
// database for users and idempotency keys, as bookingd runs with
// DATABASE_SHARD_URLS.
func newShardedEnvOn(t *testing.T, dbs []shardDB, cacheOf func(rdb redis.UniversalClient, prefix string) *cache.Cache) *env {
	t.Helper()
	n := len(dbs)
	home, homeURL := pgtest.NewDB(t)
	rdb, prefix := redistest.New(t)
	e := &env{t: t, url: homeURL, pool: home, rdb: rdb, prefix: prefix, clock: &clock{}, reg: prometheus.NewRegistry()}
	cfg := testConfig()
	showCache := cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute, Registerer: e.reg})
	if cacheOf != nil {
		showCache = cacheOf(rdb, prefix)
	}
	e.deps = api.Deps{
		Config:   cfg,
		Users:    users.NewStore(home).WithCost(bcrypt.MinCost),
		Primary:  home,
		Tokens:   readpath.NewTokens(rdb, prefix, time.Minute),
		Cache:    showCache,
		Limiter:  ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Registerer: e.reg}),
		Registry: e.reg,
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	for k, db := range dbs {
		t.Cleanup(stop) // before the pools close
		pool, url := db.pool, db.url
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, n))
		svc, err := ledger.New(pool, ledger.DefaultConfig(), ledger.WithClock(e.clock.Now), ledger.WithShard(k))
		require.NoError(t, err)
		hub := live.NewHub(svc.Store(), nil, live.Config{Poll: 10 * time.Millisecond})
		reads := db.reads
		if reads == nil {
			reads = readpath.New(pool, nil, nil)
		}
		e.deps.Shards = append(e.deps.Shards, api.Shard{Ledger: svc, Primary: pool, Reads: reads, Live: hub})
		ready := make(chan struct{})
		p := projections.NewProjector(pool, projections.ProjectorConfig{PollInterval: 5 * time.Millisecond}, nil)
		wg.Go(func() { _ = p.Run(ctx) })
		if n > 1 {
			x := projections.NewUserIndex(home, svc.Store(), k, projections.UserIndexConfig{PollInterval: 5 * time.Millisecond}, nil)
			wg.Go(func() { _ = x.Run(ctx) })
		}
		wg.Go(func() { assert.NoError(t, hub.Run(ctx)) })
		wg.Go(func() { reads.Watch(ctx, 50*time.Millisecond) })
		wg.Go(func() {
			e.deps.Cache.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, url) }, ready)
		})
		<-ready
	}
	h, err := api.New(e.deps)
	require.NoError(t, err)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// Two shards, one of them on a primary with a real streaming standby whose
// replay is paused: the caller's own bookings on both shards read back at
// once (tokens per shard), others read the stale standby, and "my bookings"
// lists both.
func TestShardsWithAStreamingStandby(t *testing.T) {
	t.Parallel()
	primary, standby, pool, replica := replicatedLedger(t)
	other, otherURL := pgtest.NewDB(t)
	reads := readpath.New(pool, []*pgxpool.Pool{replica}, nil)
	e := newShardedEnvOn(t, []shardDB{{pool: pool, url: primary.URL("ledger"), reads: reads}, {pool: other, url: otherURL}},
		func(redis.UniversalClient, string) *cache.Cache { return cache.New(nil, cache.Config{}) }) // every read is a load
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	showA := e.createShow(admin, map[string]any{"name": "replicated", "total_seats": 4})
	showB := e.createShow(admin, map[string]any{"name": "plain", "total_seats": 4})
	require.Equal(t, []int{0, 1}, []int{shards.Of(domain.ShowID(showA), 2), shards.Of(domain.ShowID(showB), 2)})
	e.waitShow(showA, 1)
	standby.WaitReplayed(primary)
	require.Equal(t, 1, reads.Healthy())

	standby.PauseReplay()
	var ids []string
	for _, show := range []int64{showA, showB} {
		r := e.do("POST", "/api/bookings", alice, hold(show, "1"))
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		ids = append(ids, r.json(t)["id"].(string))
	}
	for _, id := range ids {
		r := e.do("GET", "/api/bookings/"+id, alice, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	}
	r := e.do("GET", "/api/bookings", alice, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, r.json(t)["bookings"], 2, "both shards, the standby's lag notwithstanding")
	pathA := fmt.Sprintf("/api/shows/%d", showA)
	assert.Equal(t, "locked", seatStatuses(e.doJSON("GET", pathA, alice))["1"], "her own seat is never free")
	assert.Equal(t, "available", seatStatuses(e.doJSON("GET", pathA, ""))["1"], "others read the paused standby")
	standby.ResumeReplay()
}

// Four shards behind one API: shows spread over them, bookings on every
// shard are read back at once by their owner, the show list and "my
// bookings" page across shards in order, and the global stream's cursor
// gives every event of every shard once, in each shard's order.
func TestShardedAPI(t *testing.T) {
	t.Parallel()
	const n = 4
	e := newShardedEnv(t, n)
	ctx := context.Background()
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	bob, _ := e.login(users.RoleUser)
	auditor, _ := e.login(users.RoleAuditor)

	// Start times run backwards, so list order interleaves the shards.
	base := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	var shows []int64
	perShard := map[int]int{}
	for i := range 2 * n {
		id := e.createShow(admin, map[string]any{"total_seats": 10, "name": fmt.Sprint("show ", i),
			"start_time": base.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339)})
		shows = append(shows, id)
		perShard[shards.Of(domain.ShowID(id), n)]++
	}
	assert.Equal(t, map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, perShard, "creation spreads shows evenly")

	// Every show's live seat map follows from its own shard's hub.
	feeds := map[int64]*sse{}
	for _, show := range shows {
		feeds[show] = e.openLive(fmt.Sprintf("/api/shows/%d/live?after=1", show))
	}

	// Alice books on every show; each booking and seat map reads back at
	// once (read-your-writes per shard).
	var mine []string
	for _, show := range shows {
		r := e.do("POST", "/api/bookings", alice, map[string]any{"show_id": show, "seat_numbers": []string{"1", "2"}})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
		id := r.json(t)["id"].(string)
		mine = append(mine, id)
		v, change := feeds[show].next()
		assert.Equal(t, 2, v)
		assert.Equal(t, show, change.ShowID, "show %d's feed", show)
		assert.Equal(t, map[string]string{"1": "locked", "2": "locked"}, seatsOf(change), "show %d's feed", show)
		feeds[show].close()
		got := e.do("GET", "/api/bookings/"+id, alice, nil)
		require.Equal(t, http.StatusOK, got.status, "%s", got.body)
		assert.Equal(t, "pending", got.json(t)["status"])
		seats := e.do("GET", fmt.Sprintf("/api/shows/%d", show), alice, nil)
		require.Equal(t, http.StatusOK, seats.status)
		for _, s := range seats.json(t)["seats"].([]any) {
			seat := s.(map[string]any)
			if seat["seat_number"] == "1" {
				assert.Equal(t, "locked", seat["status"], "show %d: the caller's own seat is not free", show)
			}
		}
	}
	r := e.do("POST", "/api/bookings", bob, map[string]any{"show_id": shows[3], "seat_numbers": []string{"5"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	bobs := r.json(t)["id"].(string)
	r = e.do("POST", "/api/bookings", bob, map[string]any{"show_id": shows[3], "seat_numbers": []string{"1"}})
	requireProblem(t, r, http.StatusConflict)

	// Confirm and cancel route to the booking's shard.
	r = e.do("POST", "/api/bookings/"+mine[1]+"/confirm", alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "confirmed", r.json(t)["status"])
	r = e.do("POST", "/api/bookings/"+mine[2]+"/cancel", alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r = e.do("GET", "/api/bookings/"+bobs, alice, nil)
	requireProblem(t, r, http.StatusNotFound)

	// My bookings, three at a time: all of Alice's, newest first, none of
	// Bob's.
	var paged []string
	var created []string
	cursor := ""
	for range 10 {
		r := e.do("GET", "/api/bookings?limit=3&cursor="+url.QueryEscape(cursor), alice, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		page := r.json(t)
		for _, b := range page["bookings"].([]any) {
			paged = append(paged, b.(map[string]any)["id"].(string))
			created = append(created, b.(map[string]any)["created_at"].(string))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	want := slices.Clone(mine)
	slices.Reverse(want)
	assert.Equal(t, want, paged, "every booking of every shard once, newest first")
	assert.True(t, slices.IsSorted(reversed(created)), "newest first: %v", created)

	// The show list, three at a time: every show once, by start time.
	var listed []int64
	cursor = ""
	for range 10 {
		r := e.do("GET", "/api/shows?limit=3&cursor="+url.QueryEscape(cursor), "", nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		page := r.json(t)
		for _, s := range page["shows"].([]any) {
			listed = append(listed, int64(s.(map[string]any)["id"].(float64)))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	byStart := slices.Clone(shows)
	slices.Reverse(byStart)
	assert.Equal(t, byStart, listed)

	// The global stream, five events at a time: each shard's events once
	// and in that shard's order.
	wantStreams := make([][]int64, n)
	for k, sh := range e.deps.Shards {
		events, err := sh.Ledger.Store().ReadAll(ctx, eventstore.Checkpoint{}, 10_000)
		require.NoError(t, err)
		for _, ev := range events {
			wantStreams[k] = append(wantStreams[k], ev.GlobalPosition)
		}
		require.NotEmpty(t, wantStreams[k])
	}
	gotStreams := make([][]int64, n)
	cursor = ""
	for range 100 {
		r := e.do("GET", "/api/events?limit=5&after="+url.QueryEscape(cursor), auditor, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		page := r.json(t)
		events := page["events"].([]any)
		for _, ev := range events {
			m := ev.(map[string]any)
			var show int64
			_, err := fmt.Sscanf(m["stream_id"].(string), "show-%d", &show)
			require.NoError(t, err)
			k := shards.Of(domain.ShowID(show), n)
			assert.EqualValues(t, k, m["shard"], "each event names its shard")
			gotStreams[k] = append(gotStreams[k], int64(m["global_position"].(float64)))
		}
		assert.NotContains(t, page, "next_after", "several shards have no single position")
		cursor = page["next_cursor"].(string)
		if len(events) == 0 {
			break
		}
	}
	assert.Equal(t, wantStreams, gotStreams)

	// One shard gets new events after the reader caught up with every
	// shard (a slow shard's late commits): the same cursor gives exactly
	// those, and nothing of the others again.
	late := shows[2]
	r = e.do("POST", "/api/bookings", bob, map[string]any{"show_id": late, "seat_numbers": []string{"9"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	k := shards.Of(domain.ShowID(late), n)
	last := wantStreams[k][len(wantStreams[k])-1]
	r = e.do("GET", "/api/events?wait=20s&after="+url.QueryEscape(cursor), auditor, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	events := r.json(t)["events"].([]any)
	require.Len(t, events, 1)
	assert.EqualValues(t, k, events[0].(map[string]any)["shard"])
	assert.Greater(t, int64(events[0].(map[string]any)["global_position"].(float64)), last)
	assert.Equal(t, "SeatLocked", events[0].(map[string]any)["event_type"])

	r = e.do("GET", "/api/events?after=7", auditor, nil)
	requireProblem(t, r, http.StatusBadRequest)

	r = e.do("GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// A shard that does not answer fails only its own shows' requests (503);
// the instance stays ready, naming it, and the other shard serves.
func TestAShardDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up, upURL := pgtest.NewDB(t)
	down, err := pgxpool.New(ctx, "postgres://root@127.0.0.1:1/none?connect_timeout=2")
	require.NoError(t, err)
	t.Cleanup(down.Close)
	require.NoError(t, shards.ConfigureIDs(ctx, up, 0, 2))
	upSvc, err := ledger.New(up, ledger.DefaultConfig(), ledger.WithShard(0))
	require.NoError(t, err)
	res, err := upSvc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "up", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
	require.NoError(t, err)
	downSvc, err := ledger.New(down, ledger.DefaultConfig(), ledger.WithShard(1))
	require.NoError(t, err)

	home, _ := pgtest.NewDB(t)
	cfg := testConfig()
	e := &env{t: t, url: upURL, pool: home}
	e.deps = api.Deps{Config: cfg, Primary: home, Users: users.NewStore(home).WithCost(bcrypt.MinCost),
		Shards: []api.Shard{{Ledger: upSvc, Primary: up}, {Ledger: downSvc, Primary: down}}}
	h, err := api.New(e.deps)
	require.NoError(t, err)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)

	r := e.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "degraded", r.json(t)["status"])
	assert.Equal(t, []any{float64(1)}, r.json(t)["unreachable_shards"])

	alice, _ := e.login(users.RoleUser)
	r = e.do("POST", "/api/bookings", alice, hold(int64(res.ShowID), "1"))
	assert.Equal(t, http.StatusCreated, r.status, "shard 0 books: %s", r.body)
	r = e.do("POST", "/api/bookings", alice, hold(int64(res.ShowID)+1, "1"))
	requireProblem(t, r, http.StatusServiceUnavailable)

	// "My bookings" comes from the home database's index, which had
	// reached shard 1 before it went down: shard 1 is not asked.
	_, err = home.Exec(ctx, `INSERT INTO user_index_positions (shard, transaction_id, global_position, caught_up) VALUES (1, 0, 0, true)`)
	require.NoError(t, err)
	ictx, stop := context.WithCancel(ctx)
	x := projections.NewUserIndex(home, upSvc.Store(), 0, projections.UserIndexConfig{PollInterval: 5 * time.Millisecond}, nil)
	indexed := make(chan error, 1)
	go func() { indexed <- x.Run(ictx) }()
	t.Cleanup(func() { stop(); assert.NoError(t, <-indexed) })
	r = e.do("GET", "/api/bookings", alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Len(t, r.json(t)["bookings"], 1)
	r = e.do("GET", fmt.Sprintf("/api/shows/%d", res.ShowID+1), "", nil)
	requireProblem(t, r, http.StatusServiceUnavailable)
}
