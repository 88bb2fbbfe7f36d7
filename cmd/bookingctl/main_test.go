package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/shards"
)

type result struct {
	code           int
	stdout, stderr string
}

func ctl(t *testing.T, url string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	code := run(context.Background(), args, getenv, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestMigrateSeedVerifyOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.CreateDB(t)

	r := ctl(t, url, "migrate")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "schema at version")
	r = ctl(t, url, "seed-demo")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "movie")
	assert.Contains(t, r.stdout, "bus")
	assert.Contains(t, r.stdout, "doctor")
	// Every demo show caps the seats per user, as bookingd's new shows do.
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	var shows, capped int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE (data ->> 'max_seats_per_user')::int = 10)
		FROM events WHERE event_type = 'ShowScheduled'`).Scan(&shows, &capped))
	assert.Positive(t, shows)
	assert.Equal(t, shows, capped)
	r = ctl(t, url, "seed-demo")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "adds nothing", "upcoming demo shows exist")
	r = ctl(t, url, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "ok:")

	r = ctl(t, url, "migrate")
	require.Equal(t, exitOK, r.code, "migrate is idempotent: %s", r.stderr)
}

func TestUsersCreate(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDB(t)
	r := ctl(t, url, "users", "create", "--email", "Ops@Example.com", "--password", "s3cret-pass", "--role", "admin")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "created admin ops@example.com")

	r = ctl(t, url, "users", "create", "--email", "ops@example.com", "--password", "s3cret-pass", "--role", "admin")
	assert.Equal(t, exitFail, r.code)
	assert.Contains(t, r.stderr, "already registered")

	for _, args := range [][]string{
		{"users", "create", "--email", "a@example.com", "--password", "s3cret-pass", "--role", "root"},
		{"users", "create", "--email", "not-an-email", "--password", "s3cret-pass"},
		{"users", "create", "--email", "a@example.com"},
		{"users", "delete"},
		{"users", "create", "--nope"},
	} {
		r := ctl(t, url, args...)
		assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
		assert.NotEmpty(t, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	assert.Equal(t, exitUsage, ctl(t, "", "bogus").code)
	assert.Equal(t, exitUsage, ctl(t, "").code)
	assert.Equal(t, exitOK, ctl(t, "", "help").code)
	r := ctl(t, "", "migrate")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "DATABASE_URL")
	r = ctl(t, "", "migrate", "extra")
	assert.Equal(t, exitUsage, r.code)

	empty := pgtest.CreateDB(t)
	r = ctl(t, empty, "verify")
	assert.Equal(t, exitFail, r.code)
	assert.Contains(t, r.stderr, "run: bookingctl migrate")
}

// busyLedger schedules a show and places holds on it, through the ledger.
func busyLedger(t *testing.T, pool *pgxpool.Pool) (domain.ShowID, *ledger.Service) {
	t.Helper()
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	ctx := context.Background()
	res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: "Night bus", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(48 * time.Hour), SeatNumbers: []string{"1", "2", "3", "4"}}, ledger.Metadata{})
	require.NoError(t, err)
	b, _, err := svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000001", []string{"1", "2"}, ledger.Metadata{})
	require.NoError(t, err)
	_, err = svc.Confirm(ctx, res.ShowID, b.ID, ledger.Metadata{})
	require.NoError(t, err)
	_, _, err = svc.Hold(ctx, res.ShowID, "0190c6e4-0000-7000-8000-000000000002", []string{"3"}, ledger.Metadata{})
	require.NoError(t, err)
	return res.ShowID, svc
}

func TestHistory(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	show, _ := busyLedger(t, pool)
	id := strings.TrimPrefix(show.StreamID(), "show-")

	r := ctl(t, url, "history", "--show", id)
	require.Equal(t, exitOK, r.code, r.stderr)
	for _, want := range []string{"ShowScheduled", "SeatLocked", "BookingConfirmed", "version 4", "1 of 4 available"} {
		assert.Contains(t, r.stdout, want)
	}
	assert.Regexp(t, `booked\s+2\s+1 \(`, r.stdout)
	assert.Regexp(t, `locked\s+1\s+3 \(`, r.stdout)

	r = ctl(t, url, "history", "--show", id, "--as-of", "2000-01-01T00:00:00Z")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "not scheduled yet")

	var confirmedAt time.Time
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT recorded_at FROM events WHERE event_type = 'BookingConfirmed'`).Scan(&confirmedAt))
	r = ctl(t, url, "history", "--show", id, "--as-of", confirmedAt.Add(-time.Microsecond).Format(time.RFC3339Nano))
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "version 2", "the seat map as it stood before the confirmation")
	assert.Regexp(t, `locked\s+2`, r.stdout)

	assert.Equal(t, exitUsage, ctl(t, url, "history").code)
	assert.Equal(t, exitUsage, ctl(t, url, "history", "--show", id, "--as-of", "yesterday").code)
	r = ctl(t, url, "history", "--show", "99999")
	assert.Equal(t, exitFail, r.code)
	assert.Contains(t, r.stderr, "show not found")
}

func TestExport(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	busyLedger(t, pool)

	lines := func(out string) []eventstore.Event {
		var got []eventstore.Event
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var e eventstore.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
			got = append(got, e)
		}
		return got
	}
	r := ctl(t, url, "export", "--after", "0")
	require.Equal(t, exitOK, r.code, r.stderr)
	all := lines(r.stdout)
	require.Len(t, all, 4)
	for i, e := range all {
		assert.Equal(t, i+1, e.StreamVersion)
		assert.NotEqual(t, uuid.Nil, e.ID)
		assert.NotZero(t, e.TransactionID)
	}
	assert.Equal(t, "ShowScheduled", all[0].Type)
	assert.Contains(t, string(all[1].Data), `"seat_numbers"`)

	r = ctl(t, url, "export", "--after", "0", "--limit", "2")
	require.Equal(t, exitOK, r.code, r.stderr)
	first := lines(r.stdout)
	require.Len(t, first, 2)
	r = ctl(t, url, "export", "--after", jsonInt(first[1].GlobalPosition))
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, all[2:], lines(r.stdout), "resuming from a position continues exactly after it")

	assert.Equal(t, exitUsage, ctl(t, url, "export", "--after", "-1").code)
	assert.Equal(t, exitUsage, ctl(t, url, "export", "--after", "123456").code)
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestVerifyAndReplay(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	show, _ := busyLedger(t, pool)

	r := ctl(t, url, "replay")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "from 4 events")
	r = ctl(t, url, "verify")
	require.Equal(t, exitOK, r.code, r.stderr)

	_, err := pool.Exec(context.Background(), `UPDATE seats SET status = 'available', booking_id = NULL WHERE show_id = $1 AND seat_number = '3'`, int64(show))
	require.NoError(t, err)
	r = ctl(t, url, "verify")
	assert.Equal(t, exitFail, r.code)
	assert.Regexp(t, `seats missing: \{.*"seat_number":"3".*"status":"locked"`, r.stdout)
	assert.Regexp(t, `seats unexpected: \{.*"seat_number":"3".*"status":"available"`, r.stdout)
	assert.Contains(t, r.stderr, "differences")

	require.Equal(t, exitOK, ctl(t, url, "replay").code)
	r = ctl(t, url, "verify")
	assert.Equal(t, exitOK, r.code, r.stdout)
}

// migrate sets up every shard of DATABASE_SHARD_URLS: each gets the schema
// and hands out only show ids of its own residue.
func TestMigrateShards(t *testing.T) {
	t.Parallel()
	home := pgtest.CreateDB(t)
	var urls []string
	for range 4 {
		urls = append(urls, pgtest.CreateDB(t))
	}
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		switch k {
		case "DATABASE_URL":
			return home
		case "DATABASE_SHARD_URLS":
			return strings.Join(urls, ", ")
		}
		return ""
	}
	for range 2 { // again: nothing changes
		out.Reset()
		require.Equal(t, exitOK, run(context.Background(), []string{"migrate"}, getenv, &out, &errOut), errOut.String())
		assert.Contains(t, out.String(), "shard 3 of 4: schema at version")
	}
	for k, u := range urls {
		pool, err := pgxpool.New(context.Background(), u)
		require.NoError(t, err)
		svc, err := ledger.New(pool, ledger.DefaultConfig(), ledger.WithShard(k))
		require.NoError(t, err)
		res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{Name: "s", ShowType: domain.ShowBus,
			StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
		require.NoError(t, err)
		assert.Equal(t, k, int(res.ShowID)%4, "a show created on shard %d has an id of its residue", k)
		b, _, err := svc.Hold(context.Background(), res.ShowID, "0190c6e4-0000-7000-8000-000000000001", []string{"1"}, ledger.Metadata{})
		require.NoError(t, err)
		shard, ok := shards.BookingShard(uuid.MustParse(string(b.ID)), 4)
		assert.True(t, ok)
		assert.Equal(t, k, shard, "the booking id names its shard")
		pool.Close()
	}
}
