package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/ledger"
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

// liveMsg is one message of a live feed. A snapshot's data has the same
// fields as a seats message's.
type liveMsg struct {
	id    int
	event string
	data  live.Message
}

func (e *env) openLive(path string, header ...string) *sse {
	e.t.Helper()
	s, err := dialLive(e.srv.Client(), e.srv.URL+path, header...)
	require.NoError(e.t, err)
	s.t = e.t
	e.t.Cleanup(s.close)
	return s
}

// dialLive opens a live feed; it is safe from any goroutine.
func dialLive(client *http.Client, url string, header ...string) (*sse, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		resp.Body.Close()
		return nil, fmt.Errorf("live feed answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{resp: resp, cancel: cancel, lines: make(chan string, 1024)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s, nil
}

func (s *sse) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// read returns the next message (bounded wait); it is safe from any
// goroutine.
func (s *sse) read() (liveMsg, error) {
	m := liveMsg{id: -1}
	var data string
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return m, fmt.Errorf("the feed ended")
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				n, err := strconv.Atoi(strings.TrimPrefix(line, "id: "))
				if err != nil {
					return m, err
				}
				m.id = n
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && data != "":
				if err := json.Unmarshal([]byte(data), &m.data); err != nil {
					return m, err
				}
				if m.id != m.data.Version {
					return m, fmt.Errorf("message id %d, version %d", m.id, m.data.Version)
				}
				return m, nil
			}
		case <-timer.C:
			return m, fmt.Errorf("no live message within 30 s")
		}
	}
}

// next returns the next message of event type seats.
func (s *sse) next() (int, live.Message) {
	s.t.Helper()
	m, err := s.read()
	require.NoError(s.t, err)
	require.Equal(s.t, live.EventSeats, m.event)
	return m.id, m.data
}

func seatsOf(c live.Message) map[string]string {
	out := map[string]string{}
	for _, s := range c.Seats {
		out[s.SeatNumber] = s.Status
	}
	return out
}

// A seat map open in a browser follows every hold, confirmation and
// cancellation, in version order; a reconnect with Last-Event-ID resumes
// right after the last message, repeating and skipping nothing; a client
// without a version gets the seat map first, the same the show read gives.
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

	// A browser reconnecting after version 2 gets 3 and 4 again, then what
	// happens next.
	again := e.openLive(fmt.Sprintf("/api/shows/%d/live?after=1", show), "Last-Event-ID", "2")
	v, _ = again.next()
	assert.Equal(t, 3, v, "Last-Event-ID wins over after")
	v, _ = again.next()
	assert.Equal(t, 4, v)
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "3")).status)
	v, c = again.next()
	assert.Equal(t, 5, v)
	assert.Equal(t, map[string]string{"3": "locked"}, seatsOf(c))

	// No version: the whole seat map at the hub's version, then changes.
	fresh := e.openLive(fmt.Sprintf("/api/shows/%d/live", show))
	snap, err := fresh.read()
	require.NoError(t, err)
	assert.Equal(t, live.EventSnapshot, snap.event)
	assert.Equal(t, 5, snap.id)
	assert.Equal(t, 3, snap.data.AvailableSeats)
	var read map[string]any
	require.Eventually(t, func() bool {
		read = e.do("GET", fmt.Sprintf("/api/shows/%d", show), "", nil).json(t)
		return read["version"].(float64) == 5
	}, 30*time.Second, 10*time.Millisecond, "the projection reaches version 5")
	var projected []live.SeatChange
	for _, s := range read["seats"].([]any) {
		s := s.(map[string]any)
		projected = append(projected, live.SeatChange{SeatNumber: s["seat_number"].(string), Status: s["status"].(string)})
	}
	assert.Equal(t, projected, snap.data.Seats, "the snapshot is the projection's seat map at its version")
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "4")).status)
	v, c = fresh.next()
	assert.Equal(t, 6, v)
	assert.Equal(t, map[string]string{"4": "locked"}, seatsOf(c))

	requireProblem(t, e.do("GET", "/api/shows/999999/live", "", nil), http.StatusNotFound)
	requireProblem(t, e.do("GET", fmt.Sprintf("/api/shows/%d/live?after=-1", show), "", nil), http.StatusBadRequest)
	requireProblem(t, e.do("GET", fmt.Sprintf("/api/shows/%d/live", show), "", nil, "Last-Event-ID", "x"), http.StatusBadRequest)
}

func withLiveLimits(maxFeeds, perClient int) envOption {
	return func(d *api.Deps, _ *ledger.Config) {
		d.Config.Live = api.LiveLimits{MaxFeeds: maxFeeds, MaxFeedsPerClient: perClient}
	}
}

// Live feeds are capped per client (a user, or an IP address when
// anonymous: 429) and per process (503), both with Retry-After; a closed
// feed frees its place.
func TestLiveFeedCaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLiveLimits(3, 2))
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 2})
	path := fmt.Sprintf("/api/shows/%d/live?after=1", show)

	e.openLive(path)
	second := e.openLive(path)
	r := e.do("GET", path, "", nil)
	requireProblem(t, r, http.StatusTooManyRequests)
	assert.NotEmpty(t, r.header.Get("Retry-After"))

	e.openLive(path, "Authorization", "Bearer "+alice) // a user has an allowance of its own
	r = e.do("GET", path, alice, nil)
	requireProblem(t, r, http.StatusServiceUnavailable)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.EqualValues(t, 3, e.metric("bookingledger_live_feeds"))
	assert.EqualValues(t, 1, e.metric("bookingledger_live_shows"))

	second.close()
	require.Eventually(t, func() bool {
		s, err := dialLive(e.srv.Client(), e.srv.URL+path, "Authorization", "Bearer "+alice)
		if err != nil {
			return false
		}
		s.close()
		return true
	}, 30*time.Second, 10*time.Millisecond, "a closed feed frees its place")
}

// Several hundred clients on a real listener follow a busy show: each
// gets every seat change, in version order, and ends on the show's
// version with the seat map the stream gives.
func TestManyLiveClientsFollowABusyShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLiveLimits(0, 0))
	admin, _ := e.login(users.RoleAdmin)
	seats := 40
	show := e.createShow(admin, map[string]any{"total_seats": seats})
	path := fmt.Sprintf("/api/shows/%d/live?after=1", show)

	const clients = 300
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = 0, clients
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	feeds := make([]*sse, clients)
	var wg sync.WaitGroup
	for i := range feeds {
		wg.Go(func() {
			s, err := dialLive(hc, e.srv.URL+path)
			if assert.NoError(t, err) {
				feeds[i] = s
			}
		})
	}
	wg.Wait()
	for _, f := range feeds {
		require.NotNil(t, f)
		defer f.close()
	}

	// Four users hold, cancel and hold again at once.
	tokens := make([]string, 4)
	for i := range tokens {
		tokens[i], _ = e.login(users.RoleUser)
	}
	for i, token := range tokens {
		wg.Go(func() {
			for k := range 10 {
				seat := strconv.Itoa(1 + (i*10+k)%seats)
				r := e.do("POST", "/api/bookings", token, hold(show, seat))
				if !assert.Equal(t, http.StatusCreated, r.status, "%s", r.body) {
					return
				}
				if k%2 == 0 {
					r = e.do("POST", "/api/bookings/"+r.json(t)["id"].(string)+"/cancel", token, nil)
					assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
				}
			}
		})
	}
	wg.Wait()

	// The stream, as an auditor reads it, gives every seat change.
	events := e.do("GET", fmt.Sprintf("/api/shows/%d/events", show), admin, nil).json(t)["events"].([]any)
	final := len(events)
	require.Equal(t, 1+40+20, final, "forty holds and twenty cancellations")
	var want []live.SeatChange
	for _, ev := range events[1:] {
		ev := ev.(map[string]any)
		status := map[string]string{"SeatLocked": "locked", "BookingCancelled": "available"}[ev["event_type"].(string)]
		for _, n := range ev["data"].(map[string]any)["seat_numbers"].([]any) {
			want = append(want, live.SeatChange{SeatNumber: n.(string), Status: status})
		}
	}
	for i, f := range feeds {
		wg.Go(func() {
			var got []live.SeatChange
			last := 1
			for last < final {
				m, err := f.read()
				if !assert.NoError(t, err, "client %d", i) {
					return
				}
				if !assert.Equal(t, live.EventSeats, m.event) || !assert.Greater(t, m.id, last, "in version order") {
					return
				}
				got = append(got, m.data.Seats...)
				last = m.id
			}
			assert.Equal(t, want, got, "client %d: every seat change, in order", i)
		})
	}
	wg.Wait()
}

// Over HTTP/2 the connection cannot be taken over: the feed writes through
// the ResponseWriter, the same messages.
func TestLiveOverHTTP2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	alice, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"total_seats": 2})
	h2 := httptest.NewUnstartedServer(e.srv.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	s, err := dialLive(h2.Client(), fmt.Sprintf("%s/api/shows/%d/live", h2.URL, show))
	require.NoError(t, err)
	defer s.close()
	require.Equal(t, 2, s.resp.ProtoMajor)
	snap, err := s.read()
	require.NoError(t, err)
	assert.Equal(t, live.EventSnapshot, snap.event)
	assert.Equal(t, 1, snap.id)
	require.Equal(t, http.StatusCreated, e.do("POST", "/api/bookings", alice, hold(show, "2")).status)
	m, err := s.read()
	require.NoError(t, err)
	assert.Equal(t, live.EventSeats, m.event)
	assert.Equal(t, 2, m.id)
	assert.Equal(t, map[string]string{"2": "locked"}, seatsOf(m.data))
}

// rawRequest sends a request on a connection of its own and returns it,
// to read the answer byte for byte.
func rawRequest(t *testing.T, srv *httptest.Server, method, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	return c
}

// Idle feeds keep getting keep-alive comments, every feed, every time (a
// write must not use up the frames every feed shares).
func TestLiveKeepAlivesKeepComing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"total_seats": 2})
	d := e.deps
	d.Registry = nil
	d.Live = live.NewHub(e.svc.Store(), nil, live.Config{Poll: 10 * time.Millisecond, KeepAlive: 20 * time.Millisecond})
	h, err := api.New(d)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Live.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	var readers sync.WaitGroup
	for i := range 3 {
		readers.Go(func() {
			sc := bufio.NewScanner(rawRequest(t, srv, "GET", fmt.Sprintf("/api/shows/%d/live?after=1", show)))
			pings := 0
			for pings < 3 && sc.Scan() {
				if sc.Text() == ": ping" {
					pings++
				}
			}
			assert.Equal(t, 3, pings, "feed %d: %v", i, sc.Err())
		})
	}
	readers.Wait()
}

// HEAD answers the head a GET would get, without a body or a feed.
func TestLiveHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLiveLimits(0, 1))
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"total_seats": 2})
	path := fmt.Sprintf("/api/shows/%d/live", show)
	c := rawRequest(t, e.srv, "HEAD", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "HEAD"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
	rest, _ := io.ReadAll(c)
	assert.Empty(t, rest, "no body")
	e.openLive(path) // the HEAD took no place of the client's one
}
