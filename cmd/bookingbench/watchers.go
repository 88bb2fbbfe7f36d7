package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// watcherSet is the crowd on the live seat map: one raw HTTP/1.1
// connection per feed. Most only read and discard; the sampled ones parse
// every message and note when it arrived.
type watcherSet struct {
	closing atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	errs    []error // why watchers failed or ended, the first few

	connect   []time.Duration // by watcher; 0 until it connected
	failed    atomic.Int64
	ended     atomic.Int64
	samples   []*watcherSample
	attempted sync.WaitGroup // connected or failed
	running   sync.WaitGroup // goroutines alive
}

// watcherSample is what a sampled watcher received; read after the
// watchers stopped.
type watcherSample struct {
	connected bool
	msgs      []liveMessage
	err       error // the first message it could not decode
}

// openWatchers opens n feeds of path on addr, about perSecond a second,
// sampled of them (spread over the ramp) parsing what they receive, and
// returns once each one has connected or failed.
func openWatchers(ctx context.Context, addr, path string, n, sampled, perSecond int) *watcherSet {
	w := &watcherSet{connect: make([]time.Duration, n)}
	request := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nUser-Agent: bookingbench\r\n\r\n")
	every := max(1, n/max(1, sampled))
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))); wait > 0 {
			if sleepCtx(ctx, wait) != nil {
				w.failed.Add(int64(n - i))
				break
			}
		}
		var s *watcherSample
		if i%every == 0 && len(w.samples) < sampled {
			s = &watcherSample{}
			w.samples = append(w.samples, s)
		}
		w.attempted.Add(1)
		w.running.Add(1)
		go w.watch(ctx, i, addr, request, s)
	}
	w.attempted.Wait()
	return w
}

// watch is one watcher: dial, ask, read the header, then read until the
// connection ends. A watcher that fails or ends before close is not
// reconnected.
func (w *watcherSet) watch(ctx context.Context, i int, addr string, request []byte, s *watcherSample) {
	defer w.running.Done()
	attempted := sync.OnceFunc(w.attempted.Done)
	defer attempted()
	began := time.Now()
	dialer := net.Dialer{Timeout: onsaleConnectBound}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		w.failed.Add(1)
		w.note(err)
		return
	}
	defer conn.Close()
	w.mu.Lock()
	w.conns = append(w.conns, conn)
	closing := w.closing.Load()
	w.mu.Unlock()
	if closing {
		return
	}
	_ = conn.SetDeadline(began.Add(onsaleConnectBound))
	// Room for a coalesced message of a busy show in one read (a few kB),
	// without copying it out: the others read it in small pieces from there.
	br := bufio.NewReaderSize(conn, 8<<10)
	var resp *http.Response
	if _, err = conn.Write(request); err == nil {
		resp, err = http.ReadResponse(br, nil)
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		err = fmt.Errorf("answered %s: %s", resp.Status, b)
	}
	if err != nil {
		if !w.closing.Load() {
			w.failed.Add(1)
			w.note(err)
		}
		return
	}
	w.connect[i] = max(time.Since(began), time.Nanosecond)
	_ = conn.SetDeadline(time.Time{})
	if s != nil {
		s.connected = true
	}
	attempted()

	if s != nil {
		err = readSSE(resp.Body, time.Now, func(ev sseEvent) {
			m, ok, derr := decodeLive(ev)
			switch {
			case derr != nil:
				if s.err == nil {
					s.err = derr
				}
			case ok:
				s.msgs = append(s.msgs, m)
			}
		})
	} else {
		// What is buffered, then straight from the connection in reads as
		// large as a coalesced message: one system call a message, as a
		// browser's socket reads.
		_, err = io.Copy(io.Discard, io.MultiReader(io.LimitReader(br, int64(br.Buffered())), conn))
	}
	if !w.closing.Load() {
		w.ended.Add(1)
		w.note(fmt.Errorf("a feed ended: %w", err))
	}
}

func (w *watcherSet) note(err error) {
	w.mu.Lock()
	if len(w.errs) < 5 {
		w.errs = append(w.errs, err)
	}
	w.mu.Unlock()
}

func (w *watcherSet) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) == 0 {
		return nil
	}
	return w.errs[0]
}

// connectTimes are the connected watchers' times from dialling to the
// response header, sorted.
func (w *watcherSet) connectTimes() []time.Duration {
	var out []time.Duration
	for _, d := range w.connect {
		if d > 0 {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// close closes every feed and waits for the watchers to stop. Calling it
// again does nothing.
func (w *watcherSet) close() {
	w.mu.Lock()
	if w.closing.Swap(true) {
		w.mu.Unlock()
		return
	}
	for _, c := range w.conns {
		_ = c.Close()
	}
	w.mu.Unlock()
	w.running.Wait()
}

// sseEvent is one dispatched server-sent event: its type ("message" when
// the stream names none), id and data, and when its first line arrived.
type sseEvent struct {
	at          time.Time
	event, id   string
	data        []byte // valid only during the emit call
	hasDataLine bool
}

// readSSE reads a text/event-stream from r (the body, already de-chunked)
// until it ends and calls emit for each event, as the WHATWG EventSource
// parser dispatches them: lines end in LF or CRLF, a blank line dispatches
// the event when it has data, lines starting with ':' are comments, data
// lines are joined with '\n', one space after the colon is dropped, a line
// without a colon is a field with no value. An event cut off by the end of
// the stream is not dispatched. now stamps each event with the time its
// first line was read. It returns the read error that ended the stream
// (io.EOF at a clean end).
func readSSE(r io.Reader, now func() time.Time, emit func(sseEvent)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		ev      sseEvent
		data    []byte
		line    []byte
		started bool
	)
	for {
		var err error
		if line, err = readLine(br, line[:0]); err != nil {
			return err
		}
		if !started {
			ev.at, started = now(), true
		}
		if len(line) == 0 {
			if ev.hasDataLine {
				if ev.event == "" {
					ev.event = "message"
				}
				ev.data = data
				emit(ev)
			}
			ev, data, started = sseEvent{}, data[:0], false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			ev.event = string(value)
		case "id":
			ev.id = string(value)
		case "data":
			if ev.hasDataLine {
				data = append(data, '\n')
			}
			data = append(data, value...)
			ev.hasDataLine = true
		}
	}
}

// readLine appends the next line of br, without its line ending, to buf.
// A last line without one is an error (io.ErrUnexpectedEOF).
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, io.ErrUnexpectedEOF
		case err != nil:
			return buf, err
		}
		buf = buf[:len(buf)-1]
		return bytes.TrimSuffix(buf, []byte("\r")), nil
	}
}

// liveMessage is what a sampled watcher keeps of a live-feed message (see
// the protocol in main.go's doc comment): when it arrived, whether it is a
// snapshot, its stream version, and for a seats message the seats it
// lists as locked, in order.
type liveMessage struct {
	at       time.Time
	bytes    int // of the event as sent, about
	snapshot bool
	version  int
	locked   []string
}

// decodeLive reads a live feed's "seats" or "snapshot" event; any other
// event is not one (false). The version is the data's, or else the id's.
func decodeLive(ev sseEvent) (liveMessage, bool, error) {
	m := liveMessage{at: ev.at, bytes: len(ev.data) + len(ev.id) + len(ev.event) + len("id: \nevent: \ndata: \n\n")}
	switch ev.event {
	case "snapshot":
		m.snapshot = true
		var body struct {
			Version int `json:"version"`
		}
		if err := json.Unmarshal(ev.data, &body); err != nil {
			return m, false, fmt.Errorf("snapshot %s: %w", ev.id, err)
		}
		m.version = body.Version
	case "seats":
		var body struct {
			Version int `json:"version"`
			Seats   []struct {
				SeatNumber string `json:"seat_number"`
				Status     string `json:"status"`
			} `json:"seats"`
		}
		if err := json.Unmarshal(ev.data, &body); err != nil {
			return m, false, fmt.Errorf("seats %s: %w", ev.id, err)
		}
		m.version = body.Version
		for _, s := range body.Seats {
			if s.Status == "locked" {
				m.locked = append(m.locked, s.SeatNumber)
			}
		}
	default:
		return m, false, nil
	}
	if m.version == 0 && ev.id != "" {
		v, err := strconv.Atoi(ev.id)
		if err != nil {
			return m, false, fmt.Errorf("%s id %q: %w", ev.event, ev.id, err)
		}
		m.version = v
	}
	if m.version <= 0 {
		return m, false, fmt.Errorf("%s without a version (id %q)", ev.event, ev.id)
	}
	return m, true, nil
}

// deliveredHold is a hold to look for at a watcher: its seat, the stream
// version of its SeatLocked (0: not on the stream), and when its client had
// the 201.
type deliveredHold struct {
	seat    string
	version int
	acked   time.Time
}

// matchDeliveries finds each hold in one watcher's messages (in arrival
// order; the watcher opened the feed after version after) and returns, for
// those delivered, the time from the 201 to the arrival (negative when the
// feed was faster than the client's answer), and how many were never
// delivered.
//
// The 201 does not carry the stream version, so the run reads each hold's
// SeatLocked version from the events table afterwards, and versions decide,
// not seats and times alone: a seat can be held, cancelled and held again
// within a message or across messages. A watcher applies a message only
// when its version is above the version it has (a message may overlap what
// it has); an applied seats message carries every change of the versions
// from the watcher's version (exclusive) to its own (inclusive), in order.
// A hold is delivered by the applied seats message whose range holds its
// version when that message lists its seat as locked; a hold whose message
// does not list it is not delivered by a later seats message (that one
// covers later versions, a later hold of the seat perhaps). An applied
// snapshot replaces the watcher's seat map with the show at its version: it
// delivers every hold at or below its version not delivered before.
func matchDeliveries(holds []deliveredHold, after int, msgs []liveMessage) (latencies []time.Duration, missed int) {
	byVersion := make([]deliveredHold, 0, len(holds))
	for _, h := range holds {
		if h.version > after {
			byVersion = append(byVersion, h)
		} else {
			missed++ // not on the stream, or before the feed began
		}
	}
	slices.SortFunc(byVersion, func(a, b deliveredHold) int { return a.version - b.version })
	delivered := make([]bool, len(byVersion))
	// upTo is the index of the first hold above version v.
	upTo := func(v int) int {
		i, _ := slices.BinarySearchFunc(byVersion, v+1, func(h deliveredHold, v int) int { return h.version - v })
		return i
	}
	have := after
	for _, m := range msgs {
		if m.version <= have {
			continue
		}
		lo, hi := upTo(have), upTo(m.version)
		if m.snapshot {
			lo = 0
		}
		for i := lo; i < hi; i++ {
			if !delivered[i] && (m.snapshot || slices.Contains(m.locked, byVersion[i].seat)) {
				delivered[i] = true
				latencies = append(latencies, m.at.Sub(byVersion[i].acked))
			}
		}
		have = m.version
	}
	for _, d := range delivered {
		if !d {
			missed++
		}
	}
	return latencies, missed
}
