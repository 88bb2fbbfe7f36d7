package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/users"
)

// sse is a client of a live feed.
type sse struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	lines  chan string
}

func (e *env) openLive(path string, header ...string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.Equal(e.t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sse{t: e.t, resp: resp, cancel: cancel, lines: make(chan string, 1024)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	e.t.Cleanup(s.close)
	return s
}

func (s *sse) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next message's id and data (bounded wait).
func (s *sse) next() (int, live.Change) {
	s.t.Helper()
	var (
		id     = -1
		data   string
		timer  = time.NewTimer(30 * time.Second)
		gotMsg bool
	)
	defer timer.Stop()
	for !gotMsg {
		select {
		case line, ok := <-s.lines:
			require.True(s.t, ok, "the feed ended")
			switch {
			case strings.HasPrefix(line, "id: "):
				n, err := strconv.Atoi(strings.TrimPrefix(line, "id: "))
				require.NoError(s.t, err)
				id = n
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && data != "":
				gotMsg = true
			}
		case <-timer.C:
			s.t.Fatal("no live message within 30 s")
		}
	}
	var c live.Change
	require.NoError(s.t, json.Unmarshal([]byte(data), &c))
	require.Equal(s.t, id, c.Version, "the message id is the stream version")
	return id, c
}

func seatsOf(c live.Change) map[string]string {
	out := map[string]string{}
	for _, s := range c.Seats {
		out[s.SeatNumber] = s.Status
	}
	return out
}

// A seat map open in a browser follows every hold, confirmation and
// cancellation, in version order; a reconnect with Last-Event-ID resumes
// right after the last message, repeating and skipping nothing.
func TestLiveSeatMap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"name": "live", "show_type": "bus", "total_seats": 4})

	feed := e.openLive(fmt.Sprintf("/api/shows/%d/live?after=1", show))
	r := e.do("POST", "/api/bookings", alice, hold(show, "1", "2"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	booking := r.json(t)["id"].(string)

	v, c := feed.next()
	assert.Equal(t, 2, v)
	assert.Equal(t, "SeatLocked", c.Type)
	assert.Equal(t, booking, c.BookingID)
	assert.Equal(t, map[string]string{"1": "locked", "2": "locked"}, seatsOf(c))
	assert.Equal(t, 2, c.AvailableSeats)

	require.Equal(t, http.StatusOK, e.do("POST", "/api/bookings/"+booking+"/confirm", alice, nil).status)
	v, c = feed.next()
	assert.Equal(t, 3, v)
	assert.Equal(t, map[string]string{"1": "booked", "2": "booked"}, seatsOf(c), "a confirmation names the booking's seats")

	require.Equal(t, http.StatusOK, e.do("POST", "/api/bookings/"+booking+"/cancel", alice, nil).status)
	v, c = feed.next()
	assert.Equal(t, 4, v)
	assert.Equal(t, map[string]string{"1": "available", "2": "available"}, seatsOf(c))
	assert.Equal(t, 4, c.AvailableSeats)
	feed.close()

	// A browser reconnecting after version 2 gets 3 and 4 again, from the
	// store, then what happens next.
	again := e.openLive(fmt.Sprintf("/api/shows/%d/live?after=1", show), "Last-Event-ID", "2")
	v, _ = again.next()
	assert.Equal(t, 3, v, "Last-Event-ID wins over after")
	v, _ = again.next()
	assert.Equal(t, 4, v)
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "3")).status)
	v, c = again.next()
	assert.Equal(t, 5, v)
	assert.Equal(t, map[string]string{"3": "locked"}, seatsOf(c))

	requireProblem(t, e.do("GET", "/api/shows/999999/live", "", nil), http.StatusNotFound)
	requireProblem(t, e.do("GET", fmt.Sprintf("/api/shows/%d/live?after=-1", show), "", nil), http.StatusBadRequest)
	requireProblem(t, e.do("GET", fmt.Sprintf("/api/shows/%d/live", show), "", nil, "Last-Event-ID", "x"), http.StatusBadRequest)
}
