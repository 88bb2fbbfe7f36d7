package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/migrations"
)

// freeAddr is a 127.0.0.1 address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// eventuallyMetric polls url's metrics until one line starts with prefix
// and reports a positive value (bounded).
func eventuallyMetric(t *testing.T, url, prefix string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := get(t, url)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, prefix) && !strings.HasSuffix(line, " 0") {
				return
			}
		}
		require.False(t, time.Now().After(deadline), "no positive %s in %s", prefix, url)
		time.Sleep(20 * time.Millisecond)
	}
}

// What an operator uses: the healthcheck command, the profiler only on the
// admin listener, and metrics of pools, group commit and projector batches.
func TestOperatorEndpoints(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDB(t)
	admin := freeAddr(t)
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "ADMIN_ADDR": admin, "CONFIRM_DELAY": "0"})

	require.NoError(t, healthcheck(context.Background(), []string{"--url", base + "/readyz"}, os.Getenv, io.Discard))
	port := base[strings.LastIndex(base, ":"):]
	require.NoError(t, healthcheck(context.Background(), nil, env(map[string]string{"HTTP_ADDR": port}), io.Discard),
		"without --url it asks HTTP_ADDR's port on the loopback")
	err := healthcheck(context.Background(), []string{"--url", "http://" + freeAddr(t) + "/readyz"}, os.Getenv, io.Discard)
	require.Error(t, err, "nothing listens there")
	assert.Contains(t, err.Error(), "healthcheck")

	resp, body := get(t, "http://"+admin+"/debug/pprof/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "goroutine")
	resp, body = get(t, base+"/debug/pprof/")
	assert.NotContains(t, string(body), "goroutine", "the public listener has no profiler")
	resp, _ = get(t, base+"/debug/pprof/profile?seconds=1")
	assert.NotEqual(t, "application/octet-stream", resp.Header.Get("Content-Type"), "the public listener has no profiler")

	show := scheduleBus(t, url, "1", "2")
	c := newClient(t, base, "ops@example.com")
	var booking map[string]any
	require.Equal(t, http.StatusCreated, c.call("POST", "/api/bookings", fmt.Sprintf(`{"show_id":%d,"seat_numbers":["1"]}`, show), &booking))

	eventuallyMetric(t, base+"/metrics", `bookingledger_append_batch_commands_count`)
	eventuallyMetric(t, base+"/metrics", `bookingledger_append_statement_shows_count`)
	eventuallyMetric(t, base+"/metrics", `bookingledger_projector_batch_events_count`)
	eventuallyMetric(t, base+"/metrics", `bookingledger_db_pool_total_conns{pool="primary"}`)
	eventuallyMetric(t, base+"/metrics", `bookingledger_db_pool_max_conns{pool="projector"}`)
	eventuallyMetric(t, "http://"+admin+"/metrics", `bookingledger_append_batch_commands_count`)
}

// A process without the API answers the probes Kubernetes and Compose use.
func TestWorkerRoleAnswersProbes(t *testing.T) {
	t.Parallel()
	_, url := pgtest.NewDB(t)
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "BOOKINGD_ROLES": "worker,projector"})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, _ := get(t, base+path)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	require.NoError(t, healthcheck(context.Background(), []string{"--url", base + "/readyz"}, os.Getenv, io.Discard))
	eventuallyMetric(t, base+"/metrics", `bookingledger_db_pool_max_conns{pool="primary"}`)
	resp, _ := get(t, base+"/api/shows")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
}

// Before the schema is migrated a worker runs but is not ready; once
// `bookingctl migrate` has run it is.
func TestNotReadyUntilMigrated(t *testing.T) {
	t.Parallel()
	url := pgtest.CreateDB(t)
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "BOOKINGD_ROLES": "worker", "CONFIRM_DELAY": "0"})
	resp, body := get(t, base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), "errors are RFC 9457 problems")
	assert.Contains(t, string(body), "migrate")
	_, err := migrations.Up(context.Background(), pgtest.Pool(t, url))
	require.NoError(t, err)
	resp, _ = get(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
