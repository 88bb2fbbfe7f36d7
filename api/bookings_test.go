package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/users"
)

func hold(show int64, seats ...string) map[string]any {
	return map[string]any{"show_id": show, "seat_numbers": seats}
}

func TestBookingLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	auditor, _ := e.login(users.RoleAuditor)
	alice, aliceID := e.login(users.RoleUser)
	bob, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 10})

	r := e.do("POST", "/api/bookings", alice, hold(show, "1", "2"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	b := r.json(t)
	id := b["id"].(string)
	assert.Equal(t, "pending", b["status"])
	assert.Equal(t, aliceID, b["user_id"])
	assert.EqualValues(t, show, b["show_id"])
	assert.Equal(t, []any{"1", "2"}, b["seat_numbers"])
	expires, err := time.Parse(time.RFC3339Nano, b["expires_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), expires, time.Minute)
	assert.Equal(t, "/api/bookings/"+id, r.header.Get("Location"))

	// Read-your-writes: the very next reads see the hold.
	r = e.do("GET", "/api/bookings/"+id, alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "pending", r.json(t)["status"])
	r = e.do("GET", "/api/bookings", alice, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, r.json(t)["bookings"], 1)

	// Others: users get 404 (no existence leak); admins and auditors read it.
	theirs := requireProblem(t, e.do("GET", "/api/bookings/"+id, bob, nil), http.StatusNotFound)
	nobodys := requireProblem(t, e.do("GET", "/api/bookings/"+strings.Replace(id, id[len(id)-4:], "0000", 1), bob, nil), http.StatusNotFound)
	assert.Equal(t, strings.Replace(theirs["detail"].(string), id[len(id)-4:], "0000", 1), nobodys["detail"], "someone else's booking reads like a missing one")
	assert.Equal(t, http.StatusOK, e.do("GET", "/api/bookings/"+id, admin, nil).status)
	assert.Equal(t, http.StatusOK, e.do("GET", "/api/bookings/"+id, auditor, nil).status)
	requireProblem(t, e.do("GET", "/api/bookings/not-a-uuid", alice, nil), http.StatusNotFound)
	requireProblem(t, e.do("GET", "/api/bookings/0190c6e4-0000-7000-8000-000000000009", alice, nil), http.StatusNotFound)
	r = e.do("GET", "/api/bookings", bob, nil)
	assert.JSONEq(t, `{"bookings": []}`, string(r.body))

	// Only the owner pays; another user cannot even see the booking.
	requireProblem(t, e.do("POST", "/api/bookings/"+id+"/confirm", bob, nil), http.StatusNotFound)
	requireProblem(t, e.do("POST", "/api/bookings/"+id+"/confirm", admin, nil), http.StatusForbidden)
	requireProblem(t, e.do("POST", "/api/bookings/"+id+"/cancel", auditor, nil), http.StatusForbidden)
	r = e.do("POST", "/api/bookings/"+id+"/confirm", alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "confirmed", r.json(t)["status"])
	assert.NotEmpty(t, r.json(t)["confirmed_at"])
	requireProblem(t, e.do("POST", "/api/bookings/"+id+"/confirm", alice, nil), http.StatusConflict)

	r = e.do("GET", "/api/bookings/"+id, alice, nil)
	assert.Equal(t, "confirmed", r.json(t)["status"], "read-your-writes after confirm")

	// An admin may cancel anyone's booking; the seats come free.
	r = e.do("POST", "/api/bookings/"+id+"/cancel", admin, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "cancelled", r.json(t)["status"])
	requireProblem(t, e.do("POST", "/api/bookings/"+id+"/cancel", alice, nil), http.StatusConflict)
	r = e.do("POST", "/api/bookings", bob, hold(show, "1", "2"))
	assert.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	requireProblem(t, e.do("POST", "/api/bookings/nope/cancel", alice, nil), http.StatusNotFound)
}

func TestHoldRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	bob, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"seat_numbers": []string{"A1", "A2", "A3", "A4"}})
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "A1", "A2")).status)

	p := requireProblem(t, e.do("POST", "/api/bookings", bob, hold(show, "A3", "A2", "A1")), http.StatusConflict)
	assert.Equal(t, []any{"A2", "A1"}, p["unavailable_seats"], "exactly the taken seats, in the order asked")

	tests := []struct {
		name string
		body any
		want int
	}{
		{"unknown show", hold(999999, "A1"), 404},
		{"no seats", hold(show), 422},
		{"null seats", map[string]any{"show_id": show, "seat_numbers": nil}, 422},
		{"duplicate seats", hold(show, "A3", "A3"), 422},
		{"unknown seat", hold(show, "Z9"), 422},
		{"empty label", hold(show, ""), 422},
		{"no show", map[string]any{"seat_numbers": []string{"A3"}}, 422},
		{"negative show", hold(-4, "A3"), 422},
		{"show id as string", map[string]any{"show_id": "1", "seat_numbers": []string{"A3"}}, 400},
		{"seats as string", map[string]any{"show_id": show, "seat_numbers": "A3"}, 400},
		{"unknown field", map[string]any{"show_id": show, "seat_numbers": []string{"A3"}, "price": 1}, 400},
		{"malformed", `{"show_id": `, 400},
		{"empty body", ``, 400},
		{"array body", `[]`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, e.do("POST", "/api/bookings", bob, tc.body), tc.want)
		})
	}
	r := e.do("POST", "/api/bookings", bob, `{"show_id": 1}`, "Content-Type", "text/plain")
	requireProblem(t, r, http.StatusBadRequest)
}

func TestConfirmAfterExpiryIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 2})
	r := e.do("POST", "/api/bookings", alice, hold(show, "1"))
	require.Equal(t, http.StatusCreated, r.status)
	id := r.json(t)["id"].(string)

	e.clock.Advance(11 * time.Minute) // the default hold is 10 minutes
	p := requireProblem(t, e.do("POST", "/api/bookings/"+id+"/confirm", alice, nil), http.StatusConflict)
	assert.Contains(t, p["detail"], "expired")
	// Someone else may take the seat now, even before the expiry sweep.
	bob, _ := e.login(users.RoleUser)
	assert.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", bob, hold(show, "1")).status)
}

// 30 clients race for the same seats: exactly one wins, the others get 409
// naming the seats, nobody gets a server error.
func TestThirtyClientsRaceForTheSameSeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"total_seats": 8})
	tokens := make([]string, 30)
	for i := range tokens {
		tokens[i], _ = e.login(users.RoleUser)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		start    = make(chan struct{})
	)
	for _, tok := range tokens {
		wg.Go(func() {
			<-start
			r := e.do("POST", "/api/bookings", tok, hold(show, "3", "4"))
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
			if r.status == http.StatusConflict {
				assert.Equal(t, []any{"3", "4"}, r.json(t)["unavailable_seats"])
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: 29}, statuses)
	var locked int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type = 'SeatLocked'`).Scan(&locked))
	assert.Equal(t, 1, locked)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, aliceID := e.login(users.RoleUser)
	bob, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 6})

	first := e.do("POST", "/api/bookings", alice, hold(show, "1"), "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusCreated, first.status, "%s", first.body)
	again := e.do("POST", "/api/bookings", alice, hold(show, "1"), "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusCreated, again.status, "%s", again.body)
	assert.JSONEq(t, string(first.body), string(again.body), "the first answer, replayed")
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	assert.Equal(t, first.header.Get("Location"), again.header.Get("Location"))

	// Another instance of the API on the same database replays it too.
	h2 := e.deps
	other := newServer(t, h2)
	r := other.do("POST", "/api/bookings", alice, hold(show, "1"), "Idempotency-Key", "k-1")
	assert.JSONEq(t, string(first.body), string(r.body))

	requireProblem(t, e.do("POST", "/api/bookings", alice, hold(show, "2"), "Idempotency-Key", "k-1"), http.StatusUnprocessableEntity)
	// Keys are per user: bob's k-1 is his own.
	assert.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", bob, hold(show, "2"), "Idempotency-Key", "k-1").status)
	// A refusal is an answer too, and is replayed.
	refused := e.do("POST", "/api/bookings", alice, hold(show, "2"), "Idempotency-Key", "k-2")
	requireProblem(t, refused, http.StatusConflict)
	assert.JSONEq(t, string(refused.body), string(e.do("POST", "/api/bookings", alice, hold(show, "2"), "Idempotency-Key", "k-2").body))

	// A first request still running makes a retry wait: 409.
	_, err := e.pool.Exec(context.Background(), `INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, 'k-3', '\x00')`, aliceID)
	require.NoError(t, err)
	requireProblem(t, e.do("POST", "/api/bookings", alice, hold(show, "3"), "Idempotency-Key", "k-3"), http.StatusConflict)
	// …unless that first request died: after its lease the key is free again.
	_, err = e.pool.Exec(context.Background(), `UPDATE idempotency_keys SET created_at = now() - interval '3 minutes' WHERE key = 'k-3'`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "3"), "Idempotency-Key", "k-3").status)
	requireProblem(t, e.do("POST", "/api/bookings", alice, hold(show, "3"), "Idempotency-Key", strings.Repeat("k", 256)), http.StatusBadRequest)

	var locked int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type = 'SeatLocked'`).Scan(&locked))
	assert.Equal(t, 3, locked, "retries booked nothing more")
}

// Read-your-writes while the projector lags: the client's next reads wait
// for the projection to include its own hold instead of answering without it.
func TestReadYourWritesWhileProjectionsLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 4})
	e.waitShow(show, 1)

	e.stopProjector()
	r := e.do("POST", "/api/bookings", alice, hold(show, "2"))
	require.Equal(t, http.StatusCreated, r.status)
	id := r.json(t)["id"].(string)
	var count int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM bookings`).Scan(&count))
	require.Zero(t, count, "the projection does not have the hold yet")

	go func() {
		time.Sleep(200 * time.Millisecond)
		e.startProjector()
	}()
	r = e.do("GET", "/api/bookings/"+id, alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "pending", r.json(t)["status"])
	r = e.do("GET", fmt.Sprintf("/api/shows/%d", show), alice, nil)
	assert.Equal(t, "locked", seatStatuses(r.json(t))["2"], "the seat map never shows the caller's own seat as free")
}

// When the projector is stalled beyond the read-your-writes wait, a client
// still sees its own booking as it is: read from the event stream.
func TestOwnBookingFromTheStreamWhenProjectionsStall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(d *api.Deps, _ *ledger.Config) { d.Config.ReadYourWritesWait = 50 * time.Millisecond })
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	bob, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 4})
	e.waitShow(show, 1)
	e.stopProjector()

	r := e.do("POST", "/api/bookings", alice, hold(show, "1"))
	require.Equal(t, http.StatusCreated, r.status)
	id := r.json(t)["id"].(string)
	require.Equal(t, http.StatusOK, e.do("POST", "/api/bookings/"+id+"/confirm", alice, nil).status)

	r = e.do("GET", "/api/bookings/"+id, alice, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "confirmed", r.json(t)["status"])
	requireProblem(t, e.do("GET", "/api/bookings/"+id, bob, nil), http.StatusNotFound)
}
