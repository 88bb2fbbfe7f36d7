package api_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/users"
)

func TestRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRateLimits(3, 2, 4))
	admin, _ := e.login(users.RoleAdmin) // one login: the auth budget (3 per IP) has 2 left
	alice, _ := e.login(users.RoleUser)  // 1 left
	show := e.createShow(admin, map[string]any{"total_seats": 10})

	// Bookings: 2 a minute per user.
	assert.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "1")).status)
	assert.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "2")).status)
	r := e.do("POST", "/api/bookings", alice, hold(show, "3"))
	requireProblem(t, r, http.StatusTooManyRequests)
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	assert.Positive(t, retry)
	assert.LessOrEqual(t, retry, 60)

	// Auth: per client IP when anonymous; the budget ran out after 3 calls.
	r = e.do("POST", "/api/auth/login", "", map[string]string{"email": "x@example.com", "password": "whatever1"})
	assert.Equal(t, http.StatusUnauthorized, r.status, "the third auth call still counts as allowed")
	requireProblem(t, e.do("POST", "/api/auth/login", "", map[string]string{"email": "x@example.com", "password": "whatever1"}), http.StatusTooManyRequests)

	// Reads: per user when authenticated, so alice's budget is not bob's.
	for range 4 {
		require.Equal(t, http.StatusOK, e.do("GET", "/api/bookings", alice, nil).status)
	}
	requireProblem(t, e.do("GET", "/api/bookings", alice, nil), http.StatusTooManyRequests)
	assert.Equal(t, http.StatusOK, e.do("GET", "/api/shows", admin, nil).status)

	body := string(e.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`bookingledger_ratelimit_rejections_total{class="bookings"} 1`,
		`bookingledger_booking_outcomes_total{command="hold",outcome="held"} 2`,
	} {
		assert.True(t, strings.Contains(body, want), "metrics lack %s", want)
	}
}

// With Redis gone the API keeps answering, limiting in-process; the cache
// and consistency tokens fall back too.
func TestRedisStoppedMidTest(t *testing.T) {
	t.Parallel()
	addr, stop := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	e := newEnv(t, withRedis(rdb), withRateLimits(100, 3, 1000))
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 10})
	e.waitShow(show, 1)
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "1")).status)

	stop()
	r := e.do("GET", fmt.Sprintf("/api/shows/%d", show), "", nil)
	assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, http.StatusOK, e.do("GET", "/api/shows", "", nil).status)
	r = e.do("POST", "/api/bookings", alice, hold(show, "2"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.json(t)["id"].(string)
	assert.Equal(t, http.StatusOK, e.do("GET", "/api/bookings/"+id, alice, nil).status, "read-your-writes without Redis")
	// The in-process fallback still limits: 3 a minute, counted afresh.
	statuses := map[int]int{}
	for i := range 5 {
		statuses[e.do("POST", "/api/bookings", alice, hold(show, strconv.Itoa(3+i))).status]++
	}
	assert.Positive(t, statuses[http.StatusTooManyRequests], "%v", statuses)
	assert.Zero(t, statuses[http.StatusInternalServerError], "%v", statuses)
}

func TestBodiesAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, _ := e.login(users.RoleUser)

	huge := `{"show_id": 1, "seat_numbers": ["` + strings.Repeat("A", 1<<20) + `"]}`
	p := requireProblem(t, e.do("POST", "/api/bookings", alice, huge), http.StatusRequestEntityTooLarge)
	assert.Contains(t, p["detail"], "1048576")
	requireProblem(t, e.do("POST", "/api/bookings", alice, huge, "Idempotency-Key", "big"), http.StatusRequestEntityTooLarge)
	requireProblem(t, e.do("POST", "/api/auth/register", "", huge), http.StatusRequestEntityTooLarge)

	r := e.do("GET", "/api/nowhere", "", nil)
	p = requireProblem(t, r, http.StatusNotFound)
	assert.NotEmpty(t, p["request_id"])
	assert.Equal(t, p["request_id"], r.header.Get("X-Request-Id"))
	requireProblem(t, e.do("PUT", "/api/bookings", alice, nil), http.StatusMethodNotAllowed)
	requireProblem(t, e.do("BREW", "/api/bookings", alice, nil), http.StatusMethodNotAllowed)

	assert.Equal(t, http.StatusOK, e.do("GET", "/healthz", "", nil).status)
	assert.Equal(t, http.StatusOK, e.do("GET", "/readyz", "", nil).status)
	metrics := string(e.do("GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`bookingledger_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`bookingledger_http_requests_total{method="POST",route="/api/bookings",status="413"} 2`,
		`bookingledger_http_request_duration_seconds_count{method="GET",route="/healthz"} 1`,
		`bookingledger_http_requests_total{method="other",route="unmatched",status="405"} 1`, // invented methods share one label
	} {
		assert.True(t, strings.Contains(metrics, want), "metrics lack %s", want)
	}
}

func TestPanicsBecomeProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.deps
	d.Users = nil // register will dereference it
	broken := newServer(t, d)
	r := broken.do("POST", "/api/auth/register", "", map[string]string{"email": "a@example.com", "password": "long enough"})
	p := requireProblem(t, r, http.StatusInternalServerError)
	assert.NotContains(t, string(r.body), "nil pointer", "no internals in the answer")
	assert.NotEmpty(t, p["request_id"])
}

// The auth budget belongs to the client IP, whatever token the client sends,
// and behind a trusted proxy the IP is the one the proxy appended last.
func TestAuthLimitIsPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRateLimits(3, 100, 100), func(d *api.Deps, _ *ledger.Config) { d.Config.TrustProxyHeaders = true })
	login := map[string]string{"email": "x@example.com", "password": "whatever1"}
	tokenA := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "0190c6e4-0000-7000-8000-000000000001",
		"role": "user", "iss": "bookingledger", "exp": time.Now().Add(time.Hour).Unix()})
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, e.do("POST", "/api/auth/login", tokenA, login, "X-Forwarded-For", "1.1.1.1, 10.0.0.7").status)
	}
	// A spoofed first hop or a token does not buy a new budget; another
	// client (another last hop) has its own.
	requireProblem(t, e.do("POST", "/api/auth/login", "", login, "X-Forwarded-For", "9.9.9.9, 10.0.0.7"), http.StatusTooManyRequests)
	assert.Equal(t, http.StatusUnauthorized, e.do("POST", "/api/auth/login", "", login, "X-Forwarded-For", "10.0.0.8").status)
}

func TestMethodsAndHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("DELETE", "/api/shows", "", nil)
	requireProblem(t, r, http.StatusMethodNotAllowed)
	assert.Equal(t, "GET, HEAD, POST", r.header.Get("Allow"))
	assert.Equal(t, http.StatusOK, e.do("HEAD", "/api/shows", "", nil).status)
	r = e.do("POST", "/api/auth/register", "", `{"email": 5, "password": "x"}`)
	p := requireProblem(t, r, http.StatusBadRequest)
	assert.Equal(t, "email must be a string", p["detail"], "no Go type names in the answer")
}
