package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOnsaleFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags([]string{"-scenario", "onsale"}, os.Getenv, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.onsale.enabled)
	assert.Empty(t, cfg.scenarios, "onsale alone runs no booking scenario")
	assert.Zero(t, cfg.replayEvents, "nor the replay")
	assert.Equal(t, defaultOnsale().watchers, cfg.onsale.watchers)
	assert.Equal(t, 10_000, cfg.onsale.watchers)
	assert.Equal(t, 10*time.Second, cfg.onsale.alone)
	assert.Equal(t, 30*time.Second, cfg.onsale.watched)
	assert.Empty(t, cfg.onsale.bookingd, "bookingd is built from the module")
	assert.Equal(t, onsaleConfig{enabled: true, watchers: 10_000, alone: 10 * time.Second, watched: 30 * time.Second,
		seats: 20_000, preHeld: 3_000, clients: 64}, cfg.onsale, "the issue's figures")

	cfg, err = parseFlags([]string{"-scenario", "onsale", "-watchers", "500", "-onsale-alone", "2s", "-onsale-watched", "5s",
		"-bookingd", "/tmp/bookingd"}, os.Getenv, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 500, cfg.onsale.watchers)
	assert.Equal(t, 2*time.Second, cfg.onsale.alone)
	assert.Equal(t, 5*time.Second, cfg.onsale.watched)
	assert.Equal(t, "/tmp/bookingd", cfg.onsale.bookingd)

	cfg, err = parseFlags([]string{"-scenario", "all"}, os.Getenv, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.onsale.enabled, "make bench runs it")
	assert.Len(t, cfg.scenarios, 2)
	assert.Positive(t, cfg.replayEvents)

	for _, sc := range []string{"spread", "hot", "both", "replay"} {
		cfg, err = parseFlags([]string{"-scenario", sc}, os.Getenv, io.Discard)
		require.NoError(t, err)
		assert.False(t, cfg.onsale.enabled, sc)
	}
}

// The SSE reader dispatches events as EventSource does, in however many
// pieces the stream arrives.
func TestReadSSE(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100_000) // longer than the reader's buffer
	tests := []struct {
		name   string
		stream string
		want   []sseEvent // at is not compared
		err    error
	}{
		{"snapshot then seats", "retry: 2000\n\nevent: snapshot\nid: 120\ndata: {\"version\":120}\n\n: ping\n\nid: 125\nevent: seats\ndata: {\"a\":1}\n\n",
			[]sseEvent{{event: "snapshot", id: "120", data: []byte(`{"version":120}`)}, {event: "seats", id: "125", data: []byte(`{"a":1}`)}}, io.EOF},
		{"CRLF, no space after the colon, joined data lines", "event:seats\r\nid:7\r\ndata:a\r\ndata: b\r\ndata\r\n\r\n",
			[]sseEvent{{event: "seats", id: "7", data: []byte("a\nb\n")}}, io.EOF},
		{"no event field is a message", "data: x\n\n", []sseEvent{{event: "message", data: []byte("x")}}, io.EOF},
		{"no data line dispatches nothing", "event: seats\nid: 3\n\n: ping\n\n", nil, io.EOF},
		{"a line longer than the buffer", "event: snapshot\ndata: " + long + "\n\n",
			[]sseEvent{{event: "snapshot", data: []byte(long)}}, io.EOF},
		{"an event cut off is not dispatched", "event: seats\ndata: {\"a\":1}\n\nevent: seats\ndata: {\"b\"",
			[]sseEvent{{event: "seats", data: []byte(`{"a":1}`)}}, io.ErrUnexpectedEOF},
		{"one field per block", "event: seats\ndata: 1\n\ndata: 2\n\n",
			[]sseEvent{{event: "seats", data: []byte("1")}, {event: "message", data: []byte("2")}}, io.EOF},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tc.name
			r := io.Reader(strings.NewReader(tc.stream))
			if oneByte {
				name, r = name+", a byte at a time", iotest.OneByteReader(r)
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var (
					got   []sseEvent
					clock time.Time
				)
				now := func() time.Time { clock = clock.Add(time.Second); return clock }
				err := readSSE(r, now, func(ev sseEvent) {
					ev.data = bytes.Clone(ev.data) // valid only during the call
					got = append(got, ev)
				})
				require.ErrorIs(t, err, tc.err)
				require.Len(t, got, len(tc.want))
				var last time.Time
				for i, ev := range got {
					assert.Equal(t, tc.want[i].event, ev.event)
					assert.Equal(t, tc.want[i].id, ev.id)
					assert.Equal(t, string(tc.want[i].data), string(ev.data))
					assert.True(t, ev.at.After(last), "each event stamped once, when its block began")
					last = ev.at
				}
			})
		}
	}
}

func TestDecodeLive(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		ev      sseEvent
		want    liveMessage
		isLive  bool
		wantErr bool
	}{
		{"coalesced seats", sseEvent{event: "seats", id: "125",
			data: []byte(`{"show_id":7,"version":125,"available_seats":19878,"seats":[{"seat_number":"A1","status":"locked"},{"seat_number":"B4","status":"available"},{"seat_number":"A1","status":"booked"},{"seat_number":"C2","status":"locked"}]}`)},
			liveMessage{version: 125, locked: []string{"A1", "C2"}}, true, false},
		{"the old message of one event", sseEvent{event: "seats", id: "9",
			data: []byte(`{"show_id":7,"version":9,"type":"SeatLocked","booking_id":"b","seats":[{"seat_number":"A1","status":"locked"}],"available_seats":3}`)},
			liveMessage{version: 9, locked: []string{"A1"}}, true, false},
		{"a snapshot keeps no seats", sseEvent{event: "snapshot", id: "120",
			data: []byte(`{"show_id":7,"version":120,"available_seats":1,"seats":[{"seat_number":"A1","status":"locked"},{"seat_number":"A2","status":"available"}]}`)},
			liveMessage{snapshot: true, version: 120}, true, false},
		{"the version from the id", sseEvent{event: "seats", id: "42", data: []byte(`{"seats":[]}`)},
			liveMessage{version: 42}, true, false},
		{"another event", sseEvent{event: "message", data: []byte(`hello`)}, liveMessage{}, false, false},
		{"not JSON", sseEvent{event: "seats", id: "1", data: []byte(`{`)}, liveMessage{}, false, true},
		{"no version at all", sseEvent{event: "seats", data: []byte(`{"seats":[]}`)}, liveMessage{}, false, true},
		{"a bad id", sseEvent{event: "snapshot", id: "x", data: []byte(`{}`)}, liveMessage{}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.ev.at = at
			m, ok, err := decodeLive(tc.ev)
			if tc.wantErr {
				require.Error(t, err)
				assert.False(t, ok)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.isLive, ok)
			if ok {
				tc.want.at = at
				assert.Equal(t, len(tc.ev.data)+len(tc.ev.id)+len(tc.ev.event)+len("id: \nevent: \ndata: \n\n"), m.bytes,
					"the size of the event as sent")
				m.bytes = 0
				assert.Equal(t, tc.want, m)
			}
		})
	}
}

// Deliveries are matched by the holds' stream versions: a seat held,
// cancelled and held again is never taken for another of its holds.
func TestMatchDeliveries(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	msg := func(arrived, version int, locked ...string) liveMessage {
		return liveMessage{at: ms(arrived), version: version, locked: locked}
	}
	snapshot := func(arrived, version int) liveMessage {
		return liveMessage{at: ms(arrived), version: version, snapshot: true}
	}
	type hold = deliveredHold
	tests := []struct {
		name    string
		holds   []hold
		after   int
		msgs    []liveMessage
		latency []time.Duration // in the holds' version order
		missed  int
	}{
		{
			name:    "one message per hold",
			holds:   []hold{{"A1", 11, ms(0)}, {"A2", 12, ms(5)}},
			after:   10,
			msgs:    []liveMessage{msg(20, 11, "A1"), msg(30, 12, "A2")},
			latency: []time.Duration{20 * time.Millisecond, 25 * time.Millisecond},
		},
		{
			name: "held, cancelled and held again within one coalesced message",
			// A1 held at 11, cancelled at 12, held at 13: both holds are in it.
			holds:   []hold{{"A1", 11, ms(0)}, {"A1", 13, ms(10)}},
			after:   10,
			msgs:    []liveMessage{msg(100, 13, "A1", "A1")},
			latency: []time.Duration{100 * time.Millisecond, 90 * time.Millisecond},
		},
		{
			name: "a later hold of the same seat is not taken for a missing one",
			// The message covering version 11 lacks A1; the one covering 15
			// lists A1 for the second hold only.
			holds:   []hold{{"A1", 11, ms(0)}, {"A1", 15, ms(50)}},
			after:   10,
			msgs:    []liveMessage{msg(20, 12, "B1"), msg(80, 15, "A1")},
			latency: []time.Duration{30 * time.Millisecond},
			missed:  1,
		},
		{
			name:    "stale and overlapping messages are not applied",
			holds:   []hold{{"A1", 11, ms(0)}, {"A2", 14, ms(0)}},
			after:   10,
			msgs:    []liveMessage{msg(5, 9, "A1"), msg(10, 12, "A1"), msg(15, 12, "A1"), msg(40, 14, "A1", "A2")},
			latency: []time.Duration{10 * time.Millisecond, 40 * time.Millisecond},
		},
		{
			name:    "a snapshot delivers what is at or below its version and not yet delivered",
			holds:   []hold{{"A1", 11, ms(0)}, {"A2", 12, ms(0)}, {"A3", 13, ms(0)}, {"A4", 30, ms(0)}},
			after:   10,
			msgs:    []liveMessage{msg(10, 11, "A1"), msg(20, 12, "X"), snapshot(50, 20)},
			latency: []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
			missed:  1, // A4 at 30, above every message
		},
		{
			name:    "a feed faster than the 201 counts negative",
			holds:   []hold{{"A1", 11, ms(30)}},
			after:   10,
			msgs:    []liveMessage{msg(20, 11, "A1")},
			latency: []time.Duration{-10 * time.Millisecond},
		},
		{
			name:   "a hold not on the stream, or before the feed, is missed",
			holds:  []hold{{"A1", 0, ms(0)}, {"A2", 10, ms(0)}},
			after:  10,
			msgs:   []liveMessage{msg(20, 11, "A1", "A2")},
			missed: 2,
		},
		{
			name:   "a watcher that received nothing misses everything",
			holds:  []hold{{"A1", 11, ms(0)}, {"A2", 12, ms(0)}},
			after:  10,
			missed: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			latencies, missed := matchDeliveries(tc.holds, tc.after, tc.msgs)
			assert.Equal(t, tc.latency, latencies)
			assert.Equal(t, tc.missed, missed)
		})
	}
}

// A smoke run of the on-sale scenario on a small show against bookingd
// built from this module: every feed connects and stays open, sampled
// watchers see the holds, nothing is oversold or lost, and the JSON line
// has the fields. Correctness only, never timings.
func TestOnsaleScenario(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs bookingd")
	}
	cfg, err := parseFlags([]string{"-scenario", "onsale", "-watchers", "20", "-onsale-alone", "1s", "-onsale-watched", "2s"}, os.Getenv, io.Discard)
	require.NoError(t, err)
	cfg.onsale.seats, cfg.onsale.preHeld, cfg.onsale.clients = 400, 50, 4
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var stdout, stderr bytes.Buffer
	r, err := benchOnsale(ctx, cfg, &stdout, func(format string, args ...any) { fmt.Fprintf(&stderr, format+"\n", args...) })
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	t.Logf("%s", stdout.String())
	assert.Equal(t, 20, r.connected)
	assert.Zero(t, r.dropped(), "%v", r.firstFail)
	assert.Positive(t, r.alone.holds)
	assert.Positive(t, r.watched.holds)
	assert.Positive(t, r.watched.cancels, "clients keep at most %d holds", onsaleKeep)
	assert.Zero(t, r.alone.errs, "%v", r.alone.firstErr)
	assert.Zero(t, r.watched.errs, "%v", r.watched.firstErr)
	assert.Equal(t, 20, r.sampled, "up to 50 watchers are sampled")
	assert.Positive(t, len(r.deliveries))
	assert.NoError(t, r.decodeErr)
	assert.Positive(t, r.rssBefore)
	assert.Zero(t, r.oversold)
	assert.Zero(t, r.lost)

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	assert.Contains(t, stdout.String(), "holds/s")
	assert.Contains(t, stdout.String(), "delivery p99 ms")
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last), "the last line is JSON")
	for _, key := range []string{"scenario", "watchers", "watchers_connected", "watchers_dropped", "connect_p50_ms", "connect_p99_ms",
		"delivery_p50_ms", "delivery_p99_ms", "deliveries_missed", "holds_per_s_alone", "holds_per_s", "holds_ratio",
		"rss_kb_per_watcher", "oversold", "lost"} {
		assert.Contains(t, last, key)
	}
	assert.True(t, strings.HasPrefix(lines[len(lines)-1], `{"scenario":"onsale","watchers":20,`), "the issue's fields come first")
	assert.Positive(t, r.bound.holds, "the bound phase booked while a bare server fed the watchers")
	assert.Positive(t, r.boundMsgBytes)
	assert.EqualValues(t, 20, last["watchers_connected"])
}

// The bare fan-out server sends every connection each message, after an
// HTTP head, as a live feed does.
func TestBareFanout(t *testing.T) {
	t.Parallel()
	b, err := startBareFanout(500, 5*time.Millisecond)
	require.NoError(t, err)
	defer b.close()
	conn, err := net.Dial("tcp", b.addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var msgs []liveMessage
	err = readSSE(resp.Body, time.Now, func(ev sseEvent) {
		if len(msgs) < 3 {
			msgs = append(msgs, liveMessage{bytes: len(ev.data), at: ev.at})
		}
		if len(msgs) == 3 {
			conn.Close()
		}
	})
	require.Len(t, msgs, 3, "%v", err)
	for _, m := range msgs {
		assert.InDelta(t, 460, m.bytes, 1, "the data of a 500-byte message")
	}
}

func TestFeedRate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	msgs := []liveMessage{
		{at: t0, bytes: 100, snapshot: true},
		{at: t0.Add(time.Second), bytes: 100},
		{at: t0.Add(2 * time.Second), bytes: 300},
		{at: t0.Add(5 * time.Second), bytes: 999}, // after the phase
	}
	perSec, size := feedRate(msgs, t0, t0.Add(4*time.Second))
	assert.InDelta(t, 0.5, perSec, 1e-9, "two seats messages in four seconds; the snapshot does not count")
	assert.Equal(t, 200, size)
	perSec, size = feedRate(nil, t0, t0.Add(time.Second))
	assert.Zero(t, perSec)
	assert.Zero(t, size)
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(bareFanoutEnv); spec != "" { // boundPhase runs this binary as its server
		os.Exit(serveBareFanout(spec))
	}
	os.Exit(m.Run())
}
