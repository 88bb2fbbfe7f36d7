// Package live fans the event stream out to the seat maps people have open:
// GET /api/shows/{id}/live is a server-sent event stream of a show's seat
// changes.
//
// Each bookingd process runs one Hub. It tails the global stream (waking on
// the appenders' announcements, polling as a fallback) and hands every event
// to the subscribers of its show, so a seat map follows changes made through
// any process. A Feed turns a show's events into seat changes: it folds the
// show's stream from the start (to know which seats a confirmation books),
// sends what came after the version the client already has, then what the
// Hub delivers, in version order, never skipping or repeating a version. A
// subscriber that falls too far behind is dropped; its client reconnects
// with Last-Event-ID and the Feed resumes from the event store.
package live

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bookingledger/ledger/eventstore"
)

// subscriberBuffer is how many events a subscriber may fall behind before it
// is dropped (its client reconnects and resumes from the store).
const subscriberBuffer = 1024

// Hub tails the global stream and delivers each event to the subscribers of
// its stream. It is safe for concurrent use.
type Hub struct {
	store  *eventstore.Store
	wake   <-chan struct{}
	poll   time.Duration
	buffer int // per subscriber
	logger *slog.Logger
	// started, when set (tests), is closed once Run has chosen where to
	// start reading.
	started chan struct{}

	mu     sync.Mutex
	subs   map[string]map[*Subscription]struct{}
	closed bool
}

// NewHub returns a hub reading store; wake (may be nil) ends its wait for
// new events early (eventstore.Listener.Wake), poll is the fallback.
func NewHub(store *eventstore.Store, wake <-chan struct{}, poll time.Duration) *Hub {
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	return &Hub{store: store, wake: wake, poll: poll, buffer: subscriberBuffer, logger: slog.New(slog.DiscardHandler),
		subs: map[string]map[*Subscription]struct{}{}}
}

// WithLogger makes the hub log the database errors it rides out.
func (h *Hub) WithLogger(l *slog.Logger) *Hub {
	h.logger = l
	return h
}

// maxRetry bounds how long the hub waits before reading again after the
// database failed: live seat maps come back within about a second of it.
const maxRetry = time.Second

// Subscription receives the events of one stream appended after it was made
// (and possibly a few from just before: a Feed drops what it has sent).
type Subscription struct {
	hub    *Hub
	stream string
	c      chan eventstore.Event
	done   chan struct{} // closed when the hub drops the subscription
	once   sync.Once
	// resync is signalled when the hub chose where to start reading after
	// this subscription was made: events committed in between reach it
	// from the store, not from the hub.
	resync chan struct{}
}

// Resync is signalled when the subscriber must read the store for events
// the hub will not deliver (Feed catches up).
func (s *Subscription) Resync() <-chan struct{} { return s.resync }

// Events delivers the stream's events in order.
func (s *Subscription) Events() <-chan eventstore.Event { return s.c }

// Dropped is closed when the hub stopped delivering: it was closed, or the
// subscriber fell behind.
func (s *Subscription) Dropped() <-chan struct{} { return s.done }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs[s.stream], s)
	if len(s.hub.subs[s.stream]) == 0 {
		delete(s.hub.subs, s.stream)
	}
	s.hub.mu.Unlock()
	s.drop()
}

func (s *Subscription) drop() { s.once.Do(func() { close(s.done) }) }

// Subscribe starts delivering stream's events.
func (h *Hub) Subscribe(stream string) *Subscription {
	s := &Subscription{hub: h, stream: stream, c: make(chan eventstore.Event, h.buffer), done: make(chan struct{}),
		resync: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.drop()
		return s
	}
	if h.subs[stream] == nil {
		h.subs[stream] = map[*Subscription]struct{}{}
	}
	h.subs[stream][s] = struct{}{}
	return s
}

// Run tails the stream from its current end until ctx ends. When reading
// fails (the database is down) it drops every subscription — their clients
// reconnect and resume from the store — and tries again within a second,
// taking new subscriptions meanwhile. Run may be called again after it
// returned.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	h.closed = false
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.closed = true
		for _, subs := range h.subs {
			for s := range subs {
				s.drop()
			}
		}
		h.subs = map[string]map[*Subscription]struct{}{}
		h.mu.Unlock()
	}()
	// From the settled end, not the last event: an older transaction may
	// still be adding events before the last one. What a feed already has
	// from the store is dropped by its version check.
	retry := 50 * time.Millisecond
	failed := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		h.logger.Warn("live hub: reading the stream failed; feeds dropped, retrying", "err", err, "retry_in", retry)
		h.dropAll()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(retry):
		}
		retry = min(2*retry, maxRetry)
		return true
	}
	var cp eventstore.Checkpoint
	for {
		var err error
		if cp, err = h.store.Settled(ctx); err == nil {
			break
		}
		if !failed(err) {
			return nil
		}
	}
	// Subscriptions made before cp was chosen may have loaded the store
	// before events the hub now starts after: they catch up from it.
	h.mu.Lock()
	for _, subs := range h.subs {
		for s := range subs {
			select {
			case s.resync <- struct{}{}:
			default:
			}
		}
	}
	h.mu.Unlock()
	if h.started != nil {
		close(h.started)
	}
	timer := time.NewTimer(h.poll)
	defer timer.Stop()
	for {
		events, err := h.store.ReadAll(ctx, cp, 1000)
		if err != nil {
			if !failed(err) {
				return nil
			}
			continue
		}
		retry = 50 * time.Millisecond
		for _, e := range events {
			h.deliver(e)
			cp = e.Checkpoint()
		}
		if len(events) == 1000 {
			continue
		}
		timer.Reset(h.poll)
		select {
		case <-ctx.Done():
			return nil
		case <-h.wake:
		case <-timer.C:
		}
	}
}

// dropAll drops every subscription: what they would have been sent next
// may be lost; their clients resume from the store.
func (h *Hub) dropAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for s := range subs {
			s.drop()
		}
	}
	h.subs = map[string]map[*Subscription]struct{}{}
}

func (h *Hub) deliver(e eventstore.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[e.StreamID] {
		select {
		case s.c <- e:
		default: // too far behind: its client resumes from the store
			delete(h.subs[e.StreamID], s)
			s.drop()
		}
	}
	if len(h.subs[e.StreamID]) == 0 {
		delete(h.subs, e.StreamID)
	}
}
