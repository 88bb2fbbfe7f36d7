package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/ledger"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		env   map[string]string
		roles string
		want  string
	}{
		"no database":   {map[string]string{}, "", "DATABASE_URL is required"},
		"bad ttl":       {map[string]string{"DATABASE_URL": "x", "HOLD_TTL": "soon"}, "", "HOLD_TTL"},
		"zero ttl":      {map[string]string{"DATABASE_URL": "x", "HOLD_TTL": "0s"}, "", "HOLD_TTL"},
		"unknown role":  {map[string]string{"DATABASE_URL": "x"}, "api,cron", `unknown role "cron"`},
		"no jwt secret": {map[string]string{"DATABASE_URL": "x"}, "", "JWT_SECRET is required"},
		"short secret":  {map[string]string{"DATABASE_URL": "x", "JWT_SECRET": "short"}, "", "at least 32 bytes"},
		"bad limit":     {map[string]string{"DATABASE_URL": "x", "RATE_LIMIT_READS_PER_MIN": "-3"}, "", "RATE_LIMIT_READS_PER_MIN"},
		"bad trust":     {map[string]string{"DATABASE_URL": "x", "TRUST_PROXY_HEADERS": "yes please"}, "", "TRUST_PROXY_HEADERS"},
		"bad feed cap":  {map[string]string{"DATABASE_URL": "x", "LIVE_MAX_FEEDS_PER_CLIENT": "-1"}, "", "LIVE_MAX_FEEDS_PER_CLIENT"},
		"bad coalesce":  {map[string]string{"DATABASE_URL": "x", "LIVE_COALESCE": "soon"}, "", "LIVE_COALESCE"},
		"slow payment":  {map[string]string{"DATABASE_URL": "x", "CONFIRM_DELAY": "10m", "HOLD_TTL": "5m"}, "", "CONFIRM_DELAY (10m0s) must be shorter than HOLD_TTL"},
		"replica groups, one shard": {map[string]string{"DATABASE_URL": "x", "DATABASE_REPLICA_URLS": "r0;r1"}, "",
			"';' separates the replicas of several shards"},
		"same shard twice": {map[string]string{"DATABASE_URL": "x", "DATABASE_SHARD_URLS": "a,b,a"}, "",
			"shards 0 and 2 are the same database"},
		"replica groups, too few": {map[string]string{"DATABASE_URL": "x", "DATABASE_SHARD_URLS": "a,b,c", "DATABASE_REPLICA_URLS": "r0;r1"}, "",
			"2 groups for 3 shards"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(env(tc.env), tc.roles)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	cfg, err := loadConfig(env(map[string]string{"DATABASE_URL": "x", "BOOKINGD_ROLES": "projector", "CONFIRM_DELAY": "0s"}), "")
	require.NoError(t, err, "the projector alone needs no JWT secret")
	assert.Zero(t, cfg.ConfirmDelay, "0s turns payments off like 0")
	assert.Equal(t, []string{"projector"}, cfg.Roles)
	assert.Equal(t, ":8080", cfg.HTTPAddr)
	assert.Equal(t, 10*time.Minute, cfg.HoldTTL)
	assert.Equal(t, []string{"x"}, cfg.ShardURLs, "one shard: DATABASE_URL")

	cfg, err = loadConfig(env(map[string]string{"DATABASE_URL": "home", "BOOKINGD_ENV": "dev",
		"DATABASE_SHARD_URLS": "s0, s1,s2,s3", "DATABASE_REPLICA_URLS": "r0a,r0b;r1;;r3"}), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"s0", "s1", "s2", "s3"}, cfg.ShardURLs)
	assert.Equal(t, [][]string{{"r0a", "r0b"}, {"r1"}, nil, {"r3"}}, cfg.ReplicaURLs)
	assert.Equal(t, 4, cfg.replicaCount())
	cfg, err = loadConfig(env(map[string]string{"DATABASE_URL": "x", "BOOKINGD_ENV": "dev", "DATABASE_REPLICA_URLS": "r1, r2"}), "")
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"r1", "r2"}}, cfg.ReplicaURLs)
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// bookingd serves what the projector projected, and stops cleanly.
func TestServesProjectedShows(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	require.NoError(t, err)
	res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{
		Name: "Opening night", ShowType: domain.ShowMovie, StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"A1", "A2"},
	}, ledger.Metadata{})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"DATABASE_URL": url, "HTTP_ADDR": "127.0.0.1:0", "BOOKINGD_ENV": "dev", "RATE_LIMIT_READS_PER_MIN": "100000"}), io.Discard, ready)
	}()
	start := time.Now()
	base := "http://" + <-ready
	t.Logf("ready after %s", time.Since(start))

	resp, _ := get(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = get(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	showURL := fmt.Sprintf("%s/api/shows/%d", base, res.ShowID)
	var body []byte
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, body = get(t, showURL); resp.StatusCode == http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "the projector projected the show")
	t.Logf("projected after %s", time.Since(start))
	var show struct {
		Name  string `json:"name"`
		Seats []struct {
			SeatNumber string `json:"seat_number"`
			Status     string `json:"status"`
		} `json:"seats"`
	}
	require.NoError(t, json.Unmarshal(body, &show))
	assert.Equal(t, "Opening night", show.Name)
	require.Len(t, show.Seats, 2)
	assert.Equal(t, "available", show.Seats[0].Status)

	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	resp, _ = get(t, showURL, "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	resp, _ = get(t, showURL, "If-None-Match", `"other"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, body = get(t, base+"/api/shows?type=movie")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "Opening night")
	for _, path := range []string{"/api/shows/999999", "/api/shows/abc", "/api/nope", "/api"} {
		resp, body = get(t, base+path)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), path)
		assert.Contains(t, string(body), `"status":404`)
	}
	// Everything else is the web app (or the page saying it was not built).
	for _, path := range []string{"/", "/shows/1", "/bookings"} {
		resp, body = get(t, base+path)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), path)
		assert.Contains(t, string(body), "<html", path)
	}
	resp, _ = get(t, base+"/api/shows?type=opera")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = get(t, base+"/api/shows?limit=0")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = get(t, base+"/api/shows?cursor=%21")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, body = get(t, base+"/metrics")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "go_goroutines")

	t.Logf("checks done after %s", time.Since(start))
	cancel()
	require.NoError(t, <-done)
	t.Logf("stopped after %s", time.Since(start))
}

func TestRefusesToStartWithoutDatabase(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), nil, env(map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "BOOKINGD_ENV": "dev"}), io.Discard, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "database")
}

// SIGTERM (here: the context ending) lets a request in flight finish. The
// request is a read waiting for the projector to catch up with the caller's
// own hold — and this process runs no projector.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--roles", "api"}, env(map[string]string{"DATABASE_URL": url, "HTTP_ADDR": "127.0.0.1:0",
			"JWT_SECRET": "0123456789abcdef0123456789abcdef", "HOLD_TTL": "1m"}), io.Discard, ready)
	}()
	base := "http://" + <-ready

	post := func(path, token, body string) *http.Response {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	decode := func(resp *http.Response) map[string]any {
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return m
	}
	require.Equal(t, http.StatusCreated, post("/api/auth/register", "", `{"email":"a@example.com","password":"long enough"}`).StatusCode)
	token := decode(post("/api/auth/login", "", `{"email":"a@example.com","password":"long enough"}`))["token"].(string)

	svc, err := ledger.New(pgtest.Pool(t, url), ledger.DefaultConfig())
	require.NoError(t, err)
	res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{Name: "Late bus", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: []string{"1"}}, ledger.Metadata{})
	require.NoError(t, err)
	resp := post("/api/bookings", token, fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1"]}`, res.ShowID))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	id := decode(resp)["id"].(string)

	type result struct {
		status int
		body   map[string]any
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/api/bookings/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		got <- result{status: resp.StatusCode, body: decode(resp)}
	}()
	// Wait until the server is serving it (the /metrics scrape is the other one).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, body := get(t, base+"/metrics")
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "bookingledger_http_requests_in_flight 2") {
			break
		}
	}
	cancel()
	r := <-got
	require.NoError(t, r.err, "the in-flight request was answered, not cut off: %v", r.err)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "pending", r.body["status"], "answered from the event stream when the projector never came")
	require.NoError(t, <-done)
}

// startBookingd runs bookingd with env on a free port until the test ends.
func startBookingd(t *testing.T, vars map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	vars["HTTP_ADDR"] = "127.0.0.1:0"
	vars["JWT_SECRET"] = "0123456789abcdef0123456789abcdef"
	vars["RATE_LIMIT_READS_PER_MIN"] = "100000"
	go func() { done <- run(ctx, nil, env(vars), io.Discard, ready) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
	return "http://" + <-ready
}

// client registers a user on a running bookingd and books through HTTP.
type client struct {
	t     *testing.T
	base  string
	token string
}

func newClient(t *testing.T, base, email string) *client {
	c := &client{t: t, base: base}
	require.Equal(t, http.StatusCreated, c.call("POST", "/api/auth/register", fmt.Sprintf(`{"email":%q,"password":"long enough"}`, email), nil))
	var login map[string]any
	require.Equal(t, http.StatusOK, c.call("POST", "/api/auth/login", fmt.Sprintf(`{"email":%q,"password":"long enough"}`, email), &login))
	c.token = login["token"].(string)
	return c
}

func (c *client) call(method, path, body string, out any) int {
	c.t.Helper()
	status, err := callAPI(c.base, c.token, method, path, body, out)
	require.NoError(c.t, err)
	return status
}

// callAPI sends one request, with the token when there is one, and decodes
// a 2xx answer into out (when not nil); err is a failure to get an answer.
func callAPI(base, token, method, path, body string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return 0, err
		}
	}
	return resp.StatusCode, nil
}

func scheduleBus(t *testing.T, url string, seats ...string) domain.ShowID {
	t.Helper()
	svc, err := ledger.New(pgtest.Pool(t, url), ledger.DefaultConfig())
	require.NoError(t, err)
	res, err := svc.ScheduleShow(context.Background(), ledger.ScheduleInput{Name: "Bus", ShowType: domain.ShowBus,
		StartTime: time.Now().Add(time.Hour), SeatNumbers: seats}, ledger.Metadata{})
	require.NoError(t, err)
	return res.ShowID
}

// The lifecycle runs by itself: with CONFIRM_DELAY a hold is paid.
func TestHoldIsConfirmedAfterTheDelay(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDB(t)
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "CONFIRM_DELAY": "200ms"})
	show := scheduleBus(t, url, "1", "2")
	c := newClient(t, base, "payer@example.com")
	var b map[string]any
	require.Equal(t, http.StatusCreated, c.call("POST", "/api/bookings", fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1"]}`, show), &b))
	eventuallyStatus(t, c, b["id"].(string), "confirmed")
}

// Without payments, a hold left alone expires and its seats are free again.
func TestHoldExpiresWithoutPayment(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDB(t)
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "CONFIRM_DELAY": "0", "HOLD_TTL": "1s", "EXPIRY_INTERVAL": "200ms"})
	show := scheduleBus(t, url, "1", "2")
	c := newClient(t, base, "idle@example.com")
	var b map[string]any
	require.Equal(t, http.StatusCreated, c.call("POST", "/api/bookings", fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1","2"]}`, show), &b))
	eventuallyStatus(t, c, b["id"].(string), "expired")
	var seatMap struct {
		AvailableSeats int `json:"available_seats"`
		Seats          []struct {
			Status string `json:"status"`
		} `json:"seats"`
	}
	require.Equal(t, http.StatusOK, c.call("GET", fmt.Sprintf("/api/shows/%d", show), "", &seatMap))
	assert.Equal(t, 2, seatMap.AvailableSeats)
	for _, s := range seatMap.Seats {
		assert.Equal(t, "available", s.Status)
	}
	other := newClient(t, base, "next@example.com")
	assert.Equal(t, http.StatusCreated, other.call("POST", "/api/bookings", fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1","2"]}`, show), nil))
}

func eventuallyStatus(t *testing.T, c *client, id, want string) {
	t.Helper()
	var got map[string]any
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = nil
		if c.call("GET", "/api/bookings/"+id, "", &got) == http.StatusOK && got["status"] == want {
			return
		}
	}
	t.Fatalf("booking %s did not become %s within 30s; last seen %v", id, want, got)
}

// The defaults are DESIGN.md's, and each setting is read from its variable.
func TestConfigDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	cfg, err := loadConfig(env(map[string]string{"DATABASE_URL": "x", "JWT_SECRET": secret}), "")
	require.NoError(t, err)
	assert.Equal(t, ":8080", cfg.HTTPAddr)
	assert.Equal(t, 10*time.Minute, cfg.HoldTTL)
	assert.Equal(t, time.Second, cfg.ConfirmDelay)
	assert.Equal(t, 30*time.Second, cfg.ExpiryEvery)
	assert.Equal(t, api.RateLimits{Auth: 5, Bookings: 10, Reads: 100}, cfg.API.RateLimits)
	assert.Equal(t, 3*time.Second, cfg.API.ReadYourWritesWait)
	assert.Equal(t, []string{"api", "projector", "worker"}, cfg.Roles)
	assert.Equal(t, 100*time.Millisecond, cfg.LiveCoalesce)
	assert.Equal(t, api.LiveLimits{MaxFeeds: 50_000, MaxFeedsPerClient: 10}, cfg.API.Live)

	cfg, err = loadConfig(env(map[string]string{"DATABASE_URL": "x", "JWT_SECRET": secret,
		"HTTP_ADDR": ":9000", "HOLD_TTL": "3m", "CONFIRM_DELAY": "2s", "EXPIRY_INTERVAL": "5s",
		"RATE_LIMIT_AUTH_PER_MIN": "7", "RATE_LIMIT_BOOKINGS_PER_MIN": "8", "RATE_LIMIT_READS_PER_MIN": "9",
		"READ_YOUR_WRITES_WAIT": "0", "BOOKINGD_ROLES": "api,worker",
		"LIVE_COALESCE": "0", "LIVE_MAX_FEEDS": "7", "LIVE_MAX_FEEDS_PER_CLIENT": "0"}), "")
	require.NoError(t, err)
	assert.Equal(t, ":9000", cfg.HTTPAddr)
	assert.Equal(t, 3*time.Minute, cfg.HoldTTL)
	assert.Equal(t, 2*time.Second, cfg.ConfirmDelay)
	assert.Equal(t, 5*time.Second, cfg.ExpiryEvery)
	assert.Equal(t, api.RateLimits{Auth: 7, Bookings: 8, Reads: 9}, cfg.API.RateLimits)
	assert.Zero(t, cfg.API.ReadYourWritesWait)
	assert.Equal(t, []string{"api", "worker"}, cfg.Roles)
	assert.Zero(t, cfg.LiveCoalesce, "0: a message per event")
	assert.Equal(t, api.LiveLimits{MaxFeeds: 7, MaxFeedsPerClient: 0}, cfg.API.Live)
}

// -h prints the flags and succeeds without reading any configuration.
func TestHelpFlag(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-h"}, env(nil), &stderr, nil))
	assert.Contains(t, stderr.String(), "-roles")
}
