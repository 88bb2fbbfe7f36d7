package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/users"
)

// A show's seats per user: set at creation (the server's default when the
// body names none), shown with the show and in the list, and a hold past it
// is a 409 problem of its own type naming the cap and what the caller holds.
func TestSeatCapThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	bob, _ := e.login(users.RoleUser)

	r := e.do("POST", "/api/shows", admin, map[string]any{"name": "Default", "show_type": "bus",
		"start_time": "2031-01-01T20:00:00Z", "total_seats": 12})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	assert.EqualValues(t, 10, r.json(t)["max_seats_per_user"], "the server's default")
	for _, tc := range []struct {
		name string
		cap  any
	}{{"negative", -1}, {"above the largest show", 100_001}} {
		p := requireProblem(t, e.do("POST", "/api/shows", admin, map[string]any{"name": "x", "show_type": "bus",
			"start_time": "2031-01-01T20:00:00Z", "total_seats": 4, "max_seats_per_user": tc.cap}), http.StatusUnprocessableEntity)
		assert.Contains(t, p["detail"], "max_seats_per_user", tc.name)
	}
	uncapped := e.createShow(admin, map[string]any{"total_seats": 20, "max_seats_per_user": 0})
	show := e.createShow(admin, map[string]any{"total_seats": 6, "max_seats_per_user": 3})

	r = e.do("GET", fmt.Sprintf("/api/shows/%d", show), admin, nil) // the admin reads its own write
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.EqualValues(t, 3, r.json(t)["max_seats_per_user"])
	caps := map[float64]any{} // show id -> its max_seats_per_user in the list
	eventually(t, "both shows are listed", func() bool {
		r := e.do("GET", "/api/shows?limit=100", "", nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		for _, s := range r.json(t)["shows"].([]any) {
			caps[s.(map[string]any)["id"].(float64)] = s.(map[string]any)["max_seats_per_user"]
		}
		return caps[float64(show)] != nil && caps[float64(uncapped)] != nil
	})
	assert.EqualValues(t, 3, caps[float64(show)])
	assert.EqualValues(t, 0, caps[float64(uncapped)])

	capped := func(r response, limit, held int) {
		t.Helper()
		p := requireProblem(t, r, http.StatusConflict)
		assert.Equal(t, "/problems/seat-limit", p["type"])
		assert.Equal(t, "Seat limit reached", p["title"])
		assert.EqualValues(t, limit, p["limit"])
		assert.EqualValues(t, held, p["held"], "held is present even when 0")
		assert.NotContains(t, p, "unavailable_seats")
	}
	capped(e.do("POST", "/api/bookings", alice, hold(show, "1", "2", "3", "4")), 3, 0)
	r = e.do("POST", "/api/bookings", alice, hold(show, "1", "2"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	first := r.json(t)["id"].(string)
	capped(e.do("POST", "/api/bookings", alice, hold(show, "3", "4")), 3, 2)
	// Over the cap and for a taken seat: the cap decides.
	capped(e.do("POST", "/api/bookings", alice, hold(show, "2", "5")), 3, 2)
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "3")).status)
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", bob, hold(show, "4", "5", "6")).status,
		"bob's allowance is his own")

	// Cancelling gives the seats back to alice's allowance.
	require.Equal(t, http.StatusOK, e.do("POST", "/api/bookings/"+first+"/cancel", alice, nil).status)
	assert.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "1", "2")).status)
	capped(e.do("POST", "/api/bookings", alice, hold(show, "1")), 3, 3)

	// Without a cap one user may hold as many as a hold allows.
	r = e.do("POST", "/api/bookings", alice, hold(uncapped, "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"))
	assert.Equal(t, http.StatusCreated, r.status, "%s", r.body)
}
