// Package live fans the event stream out to the seat maps people have open:
// GET /api/shows/{id}/live is a server-sent event stream of a show's seat
// changes.
//
// Each bookingd process runs one Hub per shard. It keeps, for every show
// somebody watches, one folded seat map and a bounded ring of its recent
// changes, shared by all of that show's feeds: the first feed of a show
// loads its stream once (concurrent first feeds share the load), and the
// hub follows it from then on by tailing the global stream (woken by the
// appenders' announcements, polling as a fallback). A show nobody has
// watched for a while is evicted. A feed never reads PostgreSQL.
//
// Changes are encoded once per show, not once per feed: the changes that
// arrive within the coalescing window become one server-sent event whose
// bytes every feed writes. A feed whose client has a version the ring
// still covers gets the messages after it; any other gets one snapshot of
// the whole seat map first. Applying a message's seat changes in order to
// any seat map at a version between the message's start and end gives the
// seat map at its end, so a message may overlap what a client has.
//
// A feed keeps no backlog of its own: it reads the shared ring from its
// version. One that falls behind the ring gets a fresh snapshot; one that
// falls behind again right after a snapshot is closed (its client
// reconnects). The hub wakes a show's feeds when nothing did for a while,
// so each sends a keep-alive. A Gate caps the feeds a process and each
// client may open.
package live

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// Store is what a hub reads: one show's stream when a show is first
// watched, and the global stream after that.
type Store interface {
	Load(ctx context.Context, stream string, afterVersion int) ([]eventstore.Event, error)
	Settled(ctx context.Context) (eventstore.Checkpoint, error)
	ReadAll(ctx context.Context, after eventstore.Checkpoint, limit int) ([]eventstore.Event, error)
}

// Config tunes a hub. A zero Ring, Poll, Evict or Logger means its
// default.
type Config struct {
	// Coalesce is how long a change may wait for others to go out in one
	// message: a ceiling on the latency it adds (0: every event is its own
	// message).
	Coalesce time.Duration
	// Ring is how many messages of each show the hub keeps for clients that
	// resume (default 1024).
	Ring int
	// Poll is how often the hub reads the stream when nothing wakes it
	// (default 100 ms).
	Poll time.Duration
	// Evict is how long a show stays loaded after its last feed closed
	// (default 1 min).
	Evict time.Duration
	// KeepAlive is how long a show's feeds may go without being woken: then
	// they send a keep-alive comment (default 15 s).
	KeepAlive time.Duration
	// Logger receives the database errors the hub rides out.
	Logger *slog.Logger
}

// DefaultConfig is bookingd's: changes coalesced within 100 ms.
func DefaultConfig() Config { return Config{Coalesce: 100 * time.Millisecond} }

func (c Config) withDefaults() Config {
	c.Coalesce = max(c.Coalesce, 0)
	if c.Ring <= 0 {
		c.Ring = 1024
	}
	if c.Poll <= 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.Evict <= 0 {
		c.Evict = time.Minute
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Errors of Open and Feed.Next.
var (
	// ErrNoShow: the show has no stream.
	ErrNoShow = errors.New("no such show")
	// ErrDropped: the hub stopped serving the feed (it stopped, or the feed
	// could not keep up even after a snapshot); the client should reconnect.
	ErrDropped = errors.New("live: feed dropped")
)

// loadTimeout bounds a show's first load, which runs for every feed
// waiting on it and so outlives any one of their requests.
const loadTimeout = 30 * time.Second

// maxRetry bounds how long the hub waits before reading again after the
// database failed.
const maxRetry = time.Second

// Hub keeps the seat maps of the shows being watched and follows the
// stream for them. It is safe for concurrent use.
type Hub struct {
	store Store
	wake  <-chan struct{}
	cfg   Config
	// started, when set (tests), is closed once Run has chosen where to
	// start reading.
	started chan struct{}

	mu      sync.Mutex
	shows   map[string]*show // by stream
	stopped bool             // Run returned: nothing would keep a new show up to date
}

// NewHub returns a hub reading store; wake (may be nil) ends its wait for
// new events early (eventstore.Listener.Wake).
func NewHub(store Store, wake <-chan struct{}, cfg Config) *Hub {
	return &Hub{store: store, wake: wake, cfg: cfg.withDefaults(), shows: map[string]*show{}}
}

// Open starts a feed of show id for a client that has its seat map at
// version after (0: none). The first feed of a show loads it; the others
// share what is loaded. ErrNoShow when the show does not exist.
func (h *Hub) Open(ctx context.Context, id domain.ShowID, after int) (*Feed, error) {
	stream := id.StreamID()
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil, ErrDropped
	}
	sh := h.shows[stream]
	if sh == nil {
		sh = newShow(id, h.cfg)
		h.shows[stream] = sh
		go h.load(sh)
	}
	sh.feeds++
	h.mu.Unlock()
	f := &Feed{hub: h, show: sh, sent: after}
	select {
	case <-sh.ready:
	case <-ctx.Done():
		f.Close()
		return nil, ctx.Err()
	}
	if sh.loadErr != nil {
		f.Close()
		return nil, sh.loadErr
	}
	return f, nil
}

// load folds a newly watched show from the store, then marks it ready.
// A failed load is forgotten, so the next feed tries again.
func (h *Hub) load(sh *show) {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	if err := h.catchUp(ctx, sh); err != nil {
		h.mu.Lock()
		if h.shows[sh.stream] == sh {
			delete(h.shows, sh.stream)
		}
		h.mu.Unlock()
		sh.fail(err)
	}
}

// catchUp reads the show's events after the version it has, again while
// something asked for it meanwhile (Run started, whose starting point may
// lie after events the show lacks, or a gap). A show being loaded is
// marked ready in the same step that finds nothing more to read.
func (h *Hub) catchUp(ctx context.Context, sh *show) error {
	for {
		sh.mu.Lock()
		sh.resync = false
		after := sh.state.Version()
		sh.mu.Unlock()
		events, err := h.store.Load(ctx, sh.stream, after)
		if err != nil {
			return err
		}
		sh.mu.Lock()
		done, err := sh.caughtUp(events)
		sh.mu.Unlock()
		if err != nil || done {
			return err
		}
	}
}

// Watched is how many shows the hub keeps, and how many feeds are open on
// them.
func (h *Hub) Watched() (shows, feeds int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sh := range h.shows {
		feeds += sh.feeds
	}
	return len(h.shows), feeds
}

// closeFeed forgets one feed of sh; the show is evicted later if it was
// the last.
func (h *Hub) closeFeed(sh *show) {
	h.mu.Lock()
	sh.feeds--
	if sh.feeds == 0 {
		sh.idleSince = time.Now()
	}
	h.mu.Unlock()
}

// evictIdle forgets the shows nobody has watched for cfg.Evict.
func (h *Hub) evictIdle(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for stream, sh := range h.shows {
		if sh.feeds == 0 && sh.isReady() && now.Sub(sh.idleSince) >= h.cfg.Evict {
			delete(h.shows, stream)
			sh.close()
		}
	}
}

// keepAlive wakes the feeds of the shows whose feeds were not woken for
// cfg.KeepAlive.
func (h *Hub) keepAlive(now time.Time) {
	for _, sh := range h.kept() {
		sh.keepAlive(now, h.cfg.KeepAlive)
	}
}

// kept lists the shows the hub keeps now.
func (h *Hub) kept() []*show {
	h.mu.Lock()
	defer h.mu.Unlock()
	shows := make([]*show, 0, len(h.shows))
	for _, sh := range h.shows {
		shows = append(shows, sh)
	}
	return shows
}

// Run follows the global stream from its settled end until ctx ends,
// keeping every watched show up to date. It rides out database errors,
// retrying within a second; open feeds stay open meanwhile and get what
// they missed once the hub reads again. When Run returns it ends every
// feed (their clients reconnect); it may be called again.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = false
	h.mu.Unlock()
	defer h.stop()
	// Idle feeds' keep-alives and evictions go on while the database is
	// down too.
	lastSweep, lastKeepAlive := time.Now(), time.Now()
	tend := func() {
		now := time.Now()
		if now.Sub(lastSweep) >= h.cfg.Evict/4 {
			h.evictIdle(now)
			lastSweep = now
		}
		if now.Sub(lastKeepAlive) >= min(time.Second, h.cfg.KeepAlive) {
			h.keepAlive(now)
			lastKeepAlive = now
		}
	}
	retry := 50 * time.Millisecond
	failed := func(err error) bool {
		tend()
		if ctx.Err() != nil {
			return false
		}
		h.cfg.Logger.Warn("live hub: reading the stream failed; retrying", "err", err, "retry_in", retry)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(retry):
		}
		retry = min(2*retry, maxRetry)
		return true
	}
	// From the settled end, not the last event: an older transaction may
	// still be adding events before the last one.
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
	// Shows loaded before cp was chosen may lack events the hub now starts
	// after: they read them from the store.
	for _, sh := range h.kept() {
		if !sh.markResync() {
			continue // loading: its loader reads again
		}
		if err := h.catchUp(ctx, sh); err != nil {
			h.drop(sh, err) // its clients reconnect and load it anew
		}
	}
	if h.started != nil {
		close(h.started)
	}
	timer := time.NewTimer(h.cfg.Poll)
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
			h.deliver(ctx, e)
			cp = e.Checkpoint()
		}
		tend()
		if len(events) == 1000 {
			continue
		}
		timer.Reset(h.cfg.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-h.wake:
		case <-timer.C:
		}
	}
}

// stop ends every feed and forgets every show: without Run, nothing keeps
// them up to date.
func (h *Hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for stream, sh := range h.shows {
		delete(h.shows, stream)
		sh.close()
	}
}

// deliver applies e to its show, if anybody watches it. A gap in the
// show's versions (it cannot happen while the hub reads in order) is
// filled from the store rather than skipped.
func (h *Hub) deliver(ctx context.Context, e eventstore.Event) {
	h.mu.Lock()
	sh := h.shows[e.StreamID]
	h.mu.Unlock()
	if sh == nil {
		return
	}
	sh.mu.Lock()
	gap, err := sh.offer(e)
	sh.mu.Unlock()
	if err == nil && gap {
		err = h.catchUp(ctx, sh)
	}
	if err != nil {
		h.drop(sh, err)
	}
}

// drop forgets a show that could not be kept up to date and ends its
// feeds; their clients reconnect and the show is loaded anew.
func (h *Hub) drop(sh *show, err error) {
	h.cfg.Logger.Warn("live hub: a show's feeds were ended", "stream", sh.stream, "err", err)
	h.mu.Lock()
	if h.shows[sh.stream] == sh {
		delete(h.shows, sh.stream)
	}
	h.mu.Unlock()
	sh.close()
}
