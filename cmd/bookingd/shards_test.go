package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/shards"
	"github.com/bookingledger/ledger/users"
)

// bookingd on four shards and a home database, all roles in one process:
// shows created through the API spread over the shards, holds on every
// shard are paid by that shard's payments worker, "my bookings" lists them
// all, and the NATS forwarders publish every event of every shard once,
// each shard's in its order, marked with its shard.
func TestShardedBookingd(t *testing.T) {
	t.Parallel()
	const n = 4
	ctx := context.Background()
	home, homeURL := pgtest.NewDB(t)
	var urls []string
	for k := range n {
		pool, url := pgtest.NewDB(t)
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, n))
		urls = append(urls, url)
	}
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.Timeout(5*time.Second))
	require.NoError(t, err, "NATS with JetStream must run at 127.0.0.1:4222")
	t.Cleanup(nc.Close)
	js, err := nc.JetStream()
	require.NoError(t, err)
	var b [4]byte
	_, _ = rand.Read(b[:])
	topic := "test_sharded_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = js.DeleteStream(topic) })

	_, err = users.NewStore(home).Create(ctx, "admin@shards.example", "long enough", users.RoleAdmin)
	require.NoError(t, err)
	base := startBookingd(t, map[string]string{"DATABASE_URL": homeURL, "DATABASE_SHARD_URLS": strings.Join(urls, ","),
		"CONFIRM_DELAY": "100ms", "NATS_URL": "nats://127.0.0.1:4222", "NATS_TOPIC": topic, "PROJECTOR_POLL_INTERVAL": "50ms"})
	// Ready once every database answers (the first checks may wait for a
	// connection while the roles start).
	var (
		resp *http.Response
		body []byte
	)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, body = get(t, base+"/readyz"); resp.StatusCode == http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

	admin := &client{t: t, base: base}
	var login map[string]any
	require.Equal(t, http.StatusOK, admin.call("POST", "/api/auth/login", `{"email":"admin@shards.example","password":"long enough"}`, &login))
	admin.token = login["token"].(string)
	var shows []int64
	for i := range n {
		var show map[string]any
		require.Equal(t, http.StatusCreated, admin.call("POST", "/api/shows", fmt.Sprintf(`{"name":"Bus %d","show_type":"bus",
			"start_time":%q,"total_seats":4}`, i, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), &show))
		shows = append(shows, int64(show["id"].(float64)))
	}
	var onShards []int
	for _, id := range shows {
		onShards = append(onShards, shards.Of(domain.ShowID(id), n))
	}
	slices.Sort(onShards)
	require.Equal(t, []int{0, 1, 2, 3}, onShards, "one show per shard")

	c := newClient(t, base, "rider@shards.example")
	var ids []string
	for _, show := range shows {
		var b map[string]any
		require.Equal(t, http.StatusCreated, c.call("POST", "/api/bookings", fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1","2"]}`, show), &b))
		ids = append(ids, b["id"].(string))
	}
	for _, id := range ids {
		eventuallyStatus(t, c, id, "confirmed")
	}
	var mine struct {
		Bookings []struct {
			ID string `json:"id"`
		} `json:"bookings"`
	}
	require.Equal(t, http.StatusOK, c.call("GET", "/api/bookings", "", &mine))
	var listed []string
	for _, b := range mine.Bookings {
		listed = append(listed, b.ID)
	}
	assert.ElementsMatch(t, ids, listed)

	// Per-shard health and the user index's lag are exported.
	eventuallyMetric(t, base+"/metrics", `bookingledger_shard_up{shard="3"} 1`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, metrics := get(t, base+"/metrics")
		if strings.Contains(string(metrics), `bookingledger_consumer_lag_events{group="user-index",shard="2"}`) {
			break
		}
		require.False(t, time.Now().After(deadline), "the user index's lag is not exported")
	}

	// Every shard's stream reaches NATS once and in order.
	want := make([][]int64, n)
	total := 0
	for k, url := range urls {
		events, err := eventstore.New(pgtest.Pool(t, url)).ReadAll(ctx, eventstore.Checkpoint{}, 10_000)
		require.NoError(t, err)
		for _, e := range events {
			want[k] = append(want[k], e.GlobalPosition)
		}
		total += len(events)
	}
	var info *nats.StreamInfo
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if info, err = js.StreamInfo(topic); err == nil && info.State.Msgs >= uint64(total) {
			break
		}
	}
	require.NotNil(t, info, "the forwarders created no stream")
	require.EqualValues(t, total, info.State.Msgs, "every event once")
	got := make([][]int64, n)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := js.GetMsg(topic, seq)
		require.NoError(t, err)
		k, err := strconv.Atoi(m.Header.Get(eventstore.MetaShard))
		require.NoError(t, err, "message %d names its shard", seq)
		pos, err := strconv.ParseInt(m.Header.Get(eventstore.MetaGlobalPosition), 10, 64)
		require.NoError(t, err)
		got[k] = append(got[k], pos)
	}
	assert.Equal(t, want, got, "each shard's events in its stream's order")
}

// Shards listed in another order than they were migrated in, or a replica
// of another shard, would send shows to a database that does not have
// them: bookingd refuses to start, naming the fix.
func TestRefusesShardsInAnotherOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, homeURL := pgtest.NewDB(t)
	var urls []string
	for k := range 2 {
		pool, url := pgtest.NewDB(t)
		require.NoError(t, shards.ConfigureIDs(ctx, pool, k, 2))
		urls = append(urls, url)
	}
	err := run(ctx, nil, env(map[string]string{"DATABASE_URL": homeURL, "DATABASE_SHARD_URLS": urls[1] + "," + urls[0],
		"BOOKINGD_ENV": "dev", "HTTP_ADDR": "127.0.0.1:0"}), io.Discard, nil)
	require.ErrorIs(t, err, shards.ErrLayout)
	assert.Contains(t, err.Error(), "shard 0 of 2: the database is not set up as this shard: it hands out the show ids of shard 1")

	// A replica group that names another shard's database.
	err = run(ctx, nil, env(map[string]string{"DATABASE_URL": homeURL, "DATABASE_SHARD_URLS": urls[0] + "," + urls[1],
		"DATABASE_REPLICA_URLS": ";" + urls[0], "BOOKINGD_ENV": "dev", "HTTP_ADDR": "127.0.0.1:0"}), io.Discard, nil)
	require.ErrorIs(t, err, shards.ErrLayout)
	assert.Contains(t, err.Error(), "DATABASE_REPLICA_URLS, replica 1 of shard 1")
}

// REDIS_CLUSTER: bookingd's cache, limits and read-your-writes tokens on a
// real three-node Redis Cluster, with no Redis error on the way.
func TestOnRedisCluster(t *testing.T) {
	t.Parallel()
	rdb := redistest.StartCluster(t, 3)
	addrs := rdb.Options().Addrs
	_, url := pgtest.NewDB(t)
	show := scheduleBus(t, url, "1", "2")
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "CONFIRM_DELAY": "0",
		"REDIS_CLUSTER": "true", "REDIS_URL": "redis://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]})
	c := newClient(t, base, "cluster@example.com")
	var b map[string]any
	require.Equal(t, http.StatusCreated, c.call("POST", "/api/bookings", fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1"]}`, show), &b))
	eventuallyStatus(t, c, b["id"].(string), "pending")
	anon := &client{t: t, base: base}
	for range 3 {
		require.Equal(t, http.StatusOK, anon.call("GET", fmt.Sprintf("/api/shows/%d", show), "", nil))
	}
	_, metrics := get(t, base+"/metrics")
	assert.Contains(t, string(metrics), "\nbookingledger_cache_errors_total 0\n", "no CROSSSLOT or other Redis error")
	assert.Contains(t, string(metrics), "\nbookingledger_ratelimit_degraded 0\n", "limits decided by the cluster")
	assert.NotContains(t, string(metrics), "bookingledger_ratelimit_fallback_decisions_total{")
}
