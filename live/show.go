package live

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// SeatChange is a seat's new status.
type SeatChange struct {
	SeatNumber string `json:"seat_number"`
	Status     string `json:"status"`
}

// Message is the data of a live message. In a "seats" message, Seats
// are every seat change of the show's stream after the previous message,
// up to Version, in order (a seat changed twice is named twice; its last
// entry is its status at Version). In a "snapshot" message, Seats are every
// seat of the show at Version, in the show's seat order.
type Message struct {
	ShowID         int64        `json:"show_id"`
	Version        int          `json:"version"`
	AvailableSeats int          `json:"available_seats"`
	Seats          []SeatChange `json:"seats"`
}

// Server-sent event names.
const (
	EventSeats    = "seats"
	EventSnapshot = "snapshot"
)

// maxEarly bounds the events kept for a show while it loads; past it they
// are read again from the store.
const maxEarly = 10_000

// message is one encoded "seats" message: the changes of versions
// (from, to].
type message struct {
	from, to int
	frame    []byte
}

// show is the state the hub keeps for one watched show.
type show struct {
	id     domain.ShowID
	stream string
	window time.Duration // coalescing window; 0: one message per event
	ready  chan struct{} // closed once loaded, or when the load failed
	// loadErr is set before ready is closed when the load failed.
	loadErr error

	// Guarded by the hub's mutex.
	feeds     int
	idleSince time.Time

	mu     sync.Mutex
	state  *domain.Show
	loaded bool
	// recording: the seats an event changes join a message. The first load
	// folds all but the show's last events quietly.
	recording bool
	closed    bool
	resync    bool               // read the store again before trusting the state
	early     []eventstore.Event // delivered while loading
	ring      []message          // circular, oldest at ring[head]
	head, n   int
	flushed   int           // the version the newest message ends at
	pending   []SeatChange  // changes after flushed, not yet a message
	timer     *time.Timer   // flushes pending after the window
	armed     bool          // the timer runs
	changed   chan struct{} // closed (and replaced) to wake the feeds
	woken     time.Time     // when the feeds were last woken
	snap      []byte        // the snapshot frame at snapAt
	snapAt    int
}

func newShow(id domain.ShowID, cfg Config) *show {
	sh := &show{id: id, stream: id.StreamID(), window: cfg.Coalesce, ready: make(chan struct{}),
		state: domain.NewShow(), ring: make([]message, cfg.Ring), changed: make(chan struct{})}
	if sh.window > 0 {
		sh.timer = time.AfterFunc(sh.window, sh.flushNow)
		sh.timer.Stop()
	}
	return sh
}

func (sh *show) version() int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.state.Version()
}

func (sh *show) isReady() bool {
	select {
	case <-sh.ready:
		return true
	default:
		return false
	}
}

// fail ends a load that did not succeed.
func (sh *show) fail(err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.loadErr = err
	close(sh.ready)
	sh.closeLocked()
}

// close drops the show: its feeds end.
func (sh *show) close() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.closeLocked()
}

func (sh *show) closeLocked() {
	if sh.closed {
		return
	}
	sh.closed = true
	if sh.timer != nil {
		sh.timer.Stop()
	}
	sh.wake()
}

// markResync asks for the store to be read again and reports whether the
// caller should do it (a show still loading does it itself).
func (sh *show) markResync() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.resync = true
	return sh.loaded && !sh.closed
}

// caughtUp applies the events read from the store, then those the hub
// delivered meanwhile, and reports whether nothing more needs reading;
// the first time, it marks the show ready. Called with sh.mu held.
func (sh *show) caughtUp(events []eventstore.Event) (bool, error) {
	if !sh.recording {
		// The show's last events become messages of their own, so a client
		// that read the show a moment before the hub loaded it resumes from
		// the ring instead of needing a snapshot.
		quiet := max(1, len(events)-len(sh.ring)) // ShowScheduled changes no seat
		quiet = min(quiet, len(events))
		if err := sh.applyAll(events[:quiet]); err != nil {
			return true, err
		}
		sh.recording = true
		sh.flushed = sh.state.Version()
		for _, e := range events[quiet:] {
			if err := sh.applyAll([]eventstore.Event{e}); err != nil {
				return true, err
			}
			sh.flush()
		}
		events = nil
	}
	if err := sh.applyAll(events); err != nil {
		return true, err
	}
	for len(sh.early) > 0 {
		e := sh.early[0]
		if e.StreamVersion > sh.state.Version()+1 {
			sh.resync = true
			break
		}
		sh.early = sh.early[1:]
		if err := sh.applyAll([]eventstore.Event{e}); err != nil {
			return true, err
		}
	}
	if sh.resync {
		return false, nil
	}
	sh.early = nil
	if !sh.loaded {
		if sh.state.Version() == 0 {
			return true, fmt.Errorf("show %d: %w", sh.id, ErrNoShow)
		}
		sh.loaded = true
		close(sh.ready)
	}
	return true, nil
}

// applyAll folds the events after the state's version, in order.
func (sh *show) applyAll(events []eventstore.Event) error {
	for _, e := range events {
		if e.StreamVersion <= sh.state.Version() {
			continue
		}
		if e.StreamVersion != sh.state.Version()+1 {
			return fmt.Errorf("%s: version %d after %d", sh.stream, e.StreamVersion, sh.state.Version())
		}
		if err := sh.apply(e); err != nil {
			return err
		}
	}
	return nil
}

// offer takes an event the hub read from the global stream and reports a
// gap before it (the store must fill it). Called with sh.mu held.
func (sh *show) offer(e eventstore.Event) (gap bool, err error) {
	if sh.closed {
		return false, nil
	}
	if !sh.loaded {
		if len(sh.early) < maxEarly {
			sh.early = append(sh.early, e)
		} else {
			sh.resync = true
		}
		return false, nil
	}
	switch v := sh.state.Version(); {
	case e.StreamVersion <= v:
		return false, nil
	case e.StreamVersion > v+1:
		return true, nil
	}
	return false, sh.apply(e)
}

// apply folds e; once the show is loaded, the seats e changed join the
// next message.
func (sh *show) apply(e eventstore.Event) error {
	_, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
	if err != nil {
		return err
	}
	if !sh.recording {
		sh.state.Evolve(ev)
		return nil
	}
	var seats []string
	switch ev := ev.(type) {
	case domain.SeatLocked:
		seats = ev.SeatNumbers
	case domain.BookingConfirmed:
		b, _ := sh.state.Booking(ev.BookingID)
		seats = b.SeatNumbers
	case domain.BookingExpired:
		seats = ev.SeatNumbers
	case domain.BookingCancelled:
		seats = ev.SeatNumbers
	}
	sh.state.Evolve(ev)
	for _, n := range seats {
		sh.pending = append(sh.pending, SeatChange{SeatNumber: n, Status: string(sh.state.SeatStatus(n))})
	}
	switch {
	case sh.window == 0:
		sh.flush()
	case !sh.armed: // the first change since the last message
		sh.armed = true
		sh.timer.Reset(sh.window)
	}
	return nil
}

func (sh *show) flushNow() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.flush()
}

// flush turns the pending changes into one message, encoded once, and
// wakes the feeds. Called with sh.mu held.
func (sh *show) flush() {
	sh.armed = false
	v := sh.state.Version()
	if sh.closed || v == sh.flushed {
		return
	}
	data, err := json.Marshal(Message{ShowID: int64(sh.id), Version: v, AvailableSeats: sh.state.AvailableSeats(),
		Seats: sh.pending})
	if err != nil { // strings and ints: cannot happen
		panic(err)
	}
	m := message{from: sh.flushed, to: v, frame: frame(EventSeats, v, data)}
	if sh.n < len(sh.ring) {
		sh.ring[(sh.head+sh.n)%len(sh.ring)] = m
		sh.n++
	} else {
		sh.ring[sh.head] = m
		sh.head = (sh.head + 1) % len(sh.ring)
	}
	sh.flushed = v
	sh.pending = sh.pending[:0:0]
	sh.wake()
}

// wake wakes every feed of the show: to send what is new, to send a
// keep-alive when nothing is, or to end. Called with sh.mu held.
func (sh *show) wake() {
	close(sh.changed)
	sh.changed = make(chan struct{})
	sh.woken = time.Now()
}

// keepAlive wakes the feeds if nothing woke them for d: each sends a
// keep-alive, so proxies keep the connections and dead clients are found.
func (sh *show) keepAlive(now time.Time, d time.Duration) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.closed && now.Sub(sh.woken) >= d {
		sh.wake()
	}
}

// at is the i-th oldest message of the ring.
func (sh *show) at(i int) *message { return &sh.ring[(sh.head+i)%len(sh.ring)] }

// oldest is the version the ring's oldest message starts after: a client
// at that version or later resumes from the ring. Called with sh.mu held.
func (sh *show) oldest() int {
	if sh.n > 0 {
		return sh.at(0).from
	}
	return sh.flushed
}

// since appends to out the frames a client at version after needs, and
// returns the version they bring it to. resync is true when the client
// has no seat map (version 0) or the ring no longer covers after: it needs
// a snapshot. Called with sh.mu held.
func (sh *show) since(after int, out [][]byte) (_ [][]byte, to int, resync bool) {
	if after == 0 || after < sh.oldest() {
		return out, after, true
	}
	// The first message that ends after the client's version.
	lo, hi := 0, sh.n
	for lo < hi {
		mid := (lo + hi) / 2
		if sh.at(mid).to > after {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	to = after
	for i := lo; i < sh.n; i++ {
		m := sh.at(i)
		out = append(out, m.frame)
		to = m.to
	}
	return out, to, false
}

// snapshot is a snapshot frame: the one encoded last while the ring still
// covers its version (a client resumes from the ring after it), else a new
// one at the state's version. Called with sh.mu held.
func (sh *show) snapshot() ([]byte, int) {
	v := sh.state.Version()
	if sh.snap == nil || sh.snapAt < sh.oldest() {
		seatMap := sh.state.SeatMap()
		seats := make([]SeatChange, len(seatMap))
		for i, s := range seatMap {
			seats[i] = SeatChange{SeatNumber: s.Number, Status: string(s.Status)}
		}
		data, err := json.Marshal(Message{ShowID: int64(sh.id), Version: v, AvailableSeats: sh.state.AvailableSeats(), Seats: seats})
		if err != nil {
			panic(err)
		}
		sh.snap, sh.snapAt = frame(EventSnapshot, v, data), v
	}
	return sh.snap, sh.snapAt
}

// frame is a server-sent event: its id is the stream version.
func frame(event string, version int, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(event)+32)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, "\nevent: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
