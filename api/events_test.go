package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/users"
)

func eventTypes(t *testing.T, r response) []string {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var out []string
	for _, e := range r.json(t)["events"].([]any) {
		out = append(out, e.(map[string]any)["event_type"].(string))
	}
	return out
}

func TestAuditorStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	auditor, _ := e.login(users.RoleAuditor)
	alice, aliceID := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 3})
	r := e.do("POST", "/api/bookings", alice, hold(show, "1"), "X-Request-Id", "req-42")
	require.Equal(t, http.StatusCreated, r.status)
	id := r.json(t)["id"].(string)
	require.Equal(t, http.StatusOK, e.do("POST", "/api/bookings/"+id+"/confirm", alice, nil).status)

	path := fmt.Sprintf("/api/shows/%d/events", show)
	r = e.do("GET", path, auditor, nil)
	assert.Equal(t, []string{"ShowScheduled", "SeatLocked", "BookingConfirmed"}, eventTypes(t, r))
	events := r.json(t)["events"].([]any)
	locked := events[1].(map[string]any)
	assert.EqualValues(t, 2, locked["stream_version"])
	assert.Positive(t, locked["global_position"])
	assert.NotEmpty(t, locked["recorded_at"])
	assert.Equal(t, id, locked["data"].(map[string]any)["booking_id"])
	assert.Equal(t, aliceID, locked["metadata"].(map[string]any)["user_id"])
	assert.Equal(t, "req-42", locked["metadata"].(map[string]any)["request_id"], "the client's request id travels with the event")
	long := strings.Repeat("x", 200)
	r = e.do("GET", "/healthz", "", nil, "X-Request-Id", long)
	replaced := r.header.Get("X-Request-Id")
	assert.NotEqual(t, long, replaced, "unreasonable ids are replaced")
	assert.NotEmpty(t, replaced)
	r = e.do("GET", "/healthz", "", nil, "X-Request-Id", "caf\u00e9")
	assert.NotEqual(t, "caf\u00e9", r.header.Get("X-Request-Id"), "ids outside printable ASCII are replaced")
	made := map[string]bool{replaced: true, r.header.Get("X-Request-Id"): true}
	for range 3 {
		made[e.do("GET", "/healthz", "", nil).header.Get("X-Request-Id")] = true
	}
	assert.Len(t, made, 5, "every request without a usable id gets a new one")

	assert.Equal(t, []string{"SeatLocked", "BookingConfirmed"}, eventTypes(t, e.do("GET", path+"?after_version=1", auditor, nil)))
	assert.Equal(t, []string{"SeatLocked"}, eventTypes(t, e.do("GET", path+"?after_version=1&limit=1", auditor, nil)))
	requireProblem(t, e.do("GET", "/api/shows/999999/events", auditor, nil), http.StatusNotFound)
	requireProblem(t, e.do("GET", path+"?limit=0", auditor, nil), http.StatusBadRequest)

	// The global stream is read behind the xmin fence: transactions still
	// running anywhere on the server (other tests) hold it back a moment.
	readUntil := func(path string, n int) response {
		var r response
		eventually(t, "the global stream", func() bool {
			r = e.do("GET", path, auditor, nil)
			return len(eventTypes(t, r)) >= n
		})
		return r
	}
	r = readUntil("/api/events?after=0&limit=2", 2)
	assert.Equal(t, []string{"ShowScheduled", "SeatLocked"}, eventTypes(t, r))
	next := int64(r.json(t)["next_after"].(float64))
	r = readUntil(fmt.Sprintf("/api/events?after=%d", next), 1)
	assert.Equal(t, []string{"BookingConfirmed"}, eventTypes(t, r), "resuming after a position continues exactly there")
	last := int64(r.json(t)["next_after"].(float64))
	r = e.do("GET", fmt.Sprintf("/api/events?after=%d", last), auditor, nil)
	assert.Empty(t, eventTypes(t, r))
	assert.EqualValues(t, last, r.json(t)["next_after"])
	for _, q := range []string{"after=999999", "after=-1", "after=x", "limit=0", "limit=1001"} {
		requireProblem(t, e.do("GET", "/api/events?"+q, auditor, nil), http.StatusBadRequest)
	}
}

func TestReadyNeedsMigrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	unmigrated, err := pgxpool.New(context.Background(), pgtest.CreateDB(t))
	require.NoError(t, err)
	t.Cleanup(unmigrated.Close)
	d := e.deps
	d.Primary = unmigrated
	other := newServer(t, d)
	p := requireProblem(t, other.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable)
	assert.Contains(t, p["detail"], "migrate")
	assert.Equal(t, http.StatusOK, other.do("GET", "/healthz", "", nil).status)
}

// A long poll answers as soon as an event arrives.
func TestGlobalStreamLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	auditor, _ := e.login(users.RoleAuditor)
	e.createShow(admin, map[string]any{"total_seats": 2})
	var first response
	eventually(t, "the first event", func() bool {
		first = e.do("GET", "/api/events?after=0", auditor, nil)
		return len(eventTypes(t, first)) == 1
	})
	last := int64(first.json(t)["next_after"].(float64))

	got := make(chan response, 1)
	go func() { got <- e.do("GET", fmt.Sprintf("/api/events?after=%d&wait=20s", last), auditor, nil) }()
	e.createShow(admin, map[string]any{"total_seats": 3})
	r := <-got
	assert.Equal(t, []string{"ShowScheduled"}, eventTypes(t, r), "the waiting request got the new event")
	for _, q := range []string{"wait=1h", "wait=-1s", "wait=soon"} {
		requireProblem(t, e.do("GET", "/api/events?after=0&"+q, auditor, nil), http.StatusBadRequest)
	}
	// An empty wait answers at once with nothing new.
	r = e.do("GET", fmt.Sprintf("/api/events?after=%d", int64(r.json(t)["next_after"].(float64))), auditor, nil)
	assert.Empty(t, eventTypes(t, r))
}
