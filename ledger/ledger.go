// Package ledger is where commands are handled: it is the application layer
// between the API (or bookingctl) and the event store.
//
// For every command it takes the show's state at a known stream version
// (kept in memory, loaded from the stream on first use), lets the domain
// decide, and appends the resulting events expecting that version. When
// another writer — another goroutine or another bookingd process — appended
// first, the append fails with a version conflict; the service then catches
// up from the stream and decides again, a bounded number of times. A refusal
// is only given after catching up, so a stale cache never refuses a command
// the stream would accept. Commands for one show that arrive while an append
// is in flight are decided in order and appended together, in one statement
// and one commit (group commit, batch.go).
//
// The projections are never consulted here: they lag the stream.
package ledger

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/shards"
)

// ErrTooManyConflicts: the stream kept moving while the command was retried.
// The API answers it with 503 and Retry-After.
var ErrTooManyConflicts = errors.New("too many concurrent changes to this show, try again")

// Config tunes the service. The zero value is not valid; use DefaultConfig.
type Config struct {
	HoldTTL     time.Duration // how long a hold lasts before it can expire
	MaxRetries  int           // decide-append attempts after a version conflict
	CachedShows int           // shows whose state is kept in memory
}

// DefaultConfig is the configuration DESIGN.md describes.
func DefaultConfig() Config {
	return Config{HoldTTL: 10 * time.Minute, MaxRetries: 8, CachedShows: 10_000}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.HoldTTL <= 0:
		return errors.New("ledger: HoldTTL must be positive")
	case c.MaxRetries < 0:
		return errors.New("ledger: MaxRetries must not be negative")
	case c.CachedShows <= 0:
		return errors.New("ledger: CachedShows must be positive")
	}
	return nil
}

// Metadata travels with every event: who asked and in which request.
type Metadata struct {
	UserID    string `json:"user_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// DB is what the service needs of the database: the event store's queries
// (show ids come from a sequence through the same connection).
type DB = eventstore.Conn

// Service handles commands. It is safe for concurrent use.
type Service struct {
	store *eventstore.Store
	db    DB
	cfg   Config
	now   func() time.Time
	cache *showCache

	appender   *appender // group commit across shows (group.go)
	onConflict func()
	announcer  *eventstore.Announcer // nil: appends are not announced
	onBatch    func(commands int)
	// onRefusals runs when a batch decided only refusals, before they are
	// checked against the stream (tests).
	onRefusals func()
	// newBookingID makes a hold's booking id (a UUIDv7; WithShard marks it).
	newBookingID func() uuid.UUID
	// spawn starts the goroutine that leads a busy show's later requests
	// (batch.go); tests run it themselves.
	spawn func(func())
}

// Option changes a Service at construction.
type Option func(*Service)

// WithClock makes the service read time from now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithConflictHook calls f each time an append loses a version race and the
// command is decided again (for metrics).
func WithConflictHook(f func()) Option { return func(s *Service) { s.onConflict = f } }

// WithBatchHook calls f with the number of commands of each show's batch,
// decided together and appended at once (group commit), for metrics.
func WithBatchHook(f func(commands int)) Option { return func(s *Service) { s.onBatch = f } }

// WithGroupHook calls f with the number of shows of each append statement
// (group commit across shows, group.go), for metrics.
func WithGroupHook(f func(shows int)) Option { return func(s *Service) { s.appender.onGroup = f } }

// WithShard makes the service shard k of a sharded ledger: its booking ids
// name the shard (shards.NewBookingID), so a command that names only the
// booking finds its shard without asking every one.
func WithShard(k int) Option {
	return func(s *Service) { s.newBookingID = func() uuid.UUID { return shards.NewBookingID(k) } }
}

// WithAnnouncer announces every committed append through a, so consumers of
// the stream in every process wake at once (see eventstore.Announcer).
func WithAnnouncer(a *eventstore.Announcer) Option { return func(s *Service) { s.announcer = a } }

// New returns a service over the event store in db.
func New(db DB, cfg Config, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{store: eventstore.New(db), db: db, cfg: cfg, now: time.Now, cache: newShowCache(cfg.CachedShows),
		newBookingID: func() uuid.UUID { return uuid.Must(uuid.NewV7()) }, spawn: func(f func()) { go f() }}
	s.appender = &appender{store: s.store}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Store returns the event store the service appends to.
func (s *Service) Store() *eventstore.Store { return s.store }

// ScheduleInput describes a new show. MaxSeatsPerUser caps the seats one
// user may hold or have bought on it at once; 0 (the zero value) is no cap.
type ScheduleInput struct {
	Name            string
	ShowType        domain.ShowType
	StartTime       time.Time
	SeatNumbers     []string
	MaxSeatsPerUser int
}

// Result is what a command produced: the show's version right after it and
// the stored events.
type Result struct {
	ShowID  domain.ShowID
	Version int
	Events  []eventstore.Event
}

// Last is the command's last stored event; its checkpoint is the token for
// reading one's own writes. A command always stores at least one event.
func (r Result) Last() eventstore.Event {
	return r.Events[len(r.Events)-1]
}

// ScheduleShow allocates a show id and opens the show's stream.
func (s *Service) ScheduleShow(ctx context.Context, in ScheduleInput, meta Metadata) (Result, error) {
	var id domain.ShowID
	if err := s.db.QueryRow(ctx, `SELECT nextval('show_ids')`).Scan(&id); err != nil {
		return Result{}, fmt.Errorf("allocate show id: %w", err)
	}
	return s.execute(ctx, id, meta, func(now time.Time) domain.Command {
		return domain.ScheduleShow{
			ShowID: id, Name: in.Name, ShowType: in.ShowType,
			StartTime: in.StartTime, SeatNumbers: in.SeatNumbers, MaxSeatsPerUser: in.MaxSeatsPerUser, Now: now,
		}
	})
}

// Hold places a hold on seats of a show for a user. The returned booking is
// pending until its ExpiresAt.
func (s *Service) Hold(ctx context.Context, show domain.ShowID, user domain.UserID, seats []string, meta Metadata) (domain.Booking, Result, error) {
	parsed, err := uuid.Parse(string(user))
	if err != nil {
		return domain.Booking{}, Result{}, &domain.InvalidCommandError{Field: "user_id", Reason: "must be a UUID"}
	}
	user = domain.UserID(parsed.String()) // canonical: what the projections' uuid columns accept
	id := domain.BookingID(s.newBookingID().String())
	res, err := s.execute(ctx, show, meta, func(now time.Time) domain.Command {
		return domain.LockSeats{BookingID: id, UserID: user, SeatNumbers: seats, HoldTTL: s.cfg.HoldTTL, Now: now}
	})
	if err != nil {
		return domain.Booking{}, Result{}, err
	}
	b, err := bookingFrom(res, id)
	return b, res, err
}

// Confirm records payment for a pending hold.
func (s *Service) Confirm(ctx context.Context, show domain.ShowID, booking domain.BookingID, meta Metadata) (Result, error) {
	return s.execute(ctx, show, meta, func(now time.Time) domain.Command {
		return domain.ConfirmBooking{BookingID: booking, Now: now}
	})
}

// Expire releases a hold whose time is up.
func (s *Service) Expire(ctx context.Context, show domain.ShowID, booking domain.BookingID, meta Metadata) (Result, error) {
	return s.execute(ctx, show, meta, func(now time.Time) domain.Command {
		return domain.ExpireBooking{BookingID: booking, Now: now}
	})
}

// Cancel releases a pending or confirmed booking.
func (s *Service) Cancel(ctx context.Context, show domain.ShowID, booking domain.BookingID, meta Metadata) (Result, error) {
	return s.execute(ctx, show, meta, func(now time.Time) domain.Command {
		return domain.CancelBooking{BookingID: booking, Now: now}
	})
}

// ShowOfBooking finds the show a booking belongs to, from the event log
// (never stale, unlike the projections). It returns domain.ErrBookingNotFound
// wrapped in a *domain.BookingNotFoundError for unknown or malformed ids.
func (s *Service) ShowOfBooking(ctx context.Context, booking domain.BookingID) (domain.ShowID, error) {
	var stream string
	err := s.db.QueryRow(ctx, `SELECT stream_id FROM events
		WHERE event_type = 'SeatLocked' AND data ->> 'booking_id' = $1`, string(booking)).Scan(&stream)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, &domain.BookingNotFoundError{BookingID: booking}
	}
	if err != nil {
		return 0, fmt.Errorf("find booking %s: %w", booking, err)
	}
	return domain.ParseStreamID(stream)
}

// Booking returns a booking of a show as the stream has it now, from the
// cached state caught up with the stream (one small query).
func (s *Service) Booking(ctx context.Context, show domain.ShowID, id domain.BookingID) (domain.Booking, error) {
	e := s.cache.entry(show)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := s.catchUp(ctx, e, show); err != nil {
		return domain.Booking{}, err
	}
	if !e.show.Scheduled() {
		return domain.Booking{}, fmt.Errorf("show %d: %w", show, domain.ErrShowNotFound)
	}
	b, ok := e.show.Booking(id)
	if !ok {
		return domain.Booking{}, &domain.BookingNotFoundError{BookingID: id}
	}
	return b, nil
}

// Show folds a show's whole stream into a fresh state for the caller (an
// audit of the stream as it is now). It does not touch the cache.
func (s *Service) Show(ctx context.Context, id domain.ShowID) (*domain.Show, error) {
	events, err := s.store.Load(ctx, id.StreamID(), 0)
	if err != nil {
		return nil, err
	}
	show, err := foldStored(events)
	if err != nil {
		return nil, err
	}
	if !show.Scheduled() {
		return nil, fmt.Errorf("show %d: %w", id, domain.ErrShowNotFound)
	}
	return show, nil
}

// catchUp folds the stream's events after the cached version into e and
// reports whether there were any.
func (s *Service) catchUp(ctx context.Context, e *cacheEntry, id domain.ShowID) (bool, error) {
	if e.show == nil {
		e.show = domain.NewShow()
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout) // the show is locked meanwhile
	defer cancel()
	stored, err := s.store.Load(ctx, id.StreamID(), e.show.Version())
	if err != nil {
		return false, err
	}
	if err := evolve(e.show, stored); err != nil {
		e.show = nil
		return false, err
	}
	return len(stored) > 0, nil
}

// evolve folds stored events into show.
func evolve(show *domain.Show, events []eventstore.Event) error {
	for _, ev := range events {
		de, err := domain.UnmarshalEvent(ev.Type, ev.Data)
		if err != nil {
			return fmt.Errorf("%s v%d: %w", ev.StreamID, ev.StreamVersion, err)
		}
		show.Evolve(de)
	}
	return nil
}

func foldStored(events []eventstore.Event) (*domain.Show, error) {
	show := domain.NewShow()
	return show, evolve(show, events)
}

func encode(events []domain.Event, meta json.RawMessage) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, len(events))
	for i, ev := range events {
		data, err := domain.MarshalEvent(ev)
		if err != nil {
			return nil, err
		}
		out[i] = eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: ev.EventType(), Data: data, Metadata: meta}
	}
	return out, nil
}

func bookingFrom(res Result, id domain.BookingID) (domain.Booking, error) {
	for _, ev := range res.Events {
		if ev.Type != domain.TypeSeatLocked {
			continue
		}
		de, err := domain.UnmarshalEvent(ev.Type, ev.Data)
		if err != nil {
			return domain.Booking{}, err
		}
		if l := de.(domain.SeatLocked); l.BookingID == id {
			return domain.Booking{ID: id, UserID: l.UserID, SeatNumbers: l.SeatNumbers, Status: domain.StatusPending, ExpiresAt: l.ExpiresAt}, nil
		}
	}
	return domain.Booking{}, fmt.Errorf("hold %s: no SeatLocked event stored", id)
}

// showCache keeps the most recently used shows' states, each behind its own
// mutex so commands on one show are decided one at a time in this process.
type showCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // of domain.ShowID, most recent first
	entries map[domain.ShowID]*cacheEntry
}

type cacheEntry struct {
	mu   sync.Mutex   // held by the batch leader while it decides and appends
	show *domain.Show // nil: not loaded, or unknown after a failed append
	elem *list.Element

	qmu     sync.Mutex // guards queue and leading
	queue   []*request
	leading bool
}

func newShowCache(max int) *showCache {
	return &showCache{max: max, order: list.New(), entries: make(map[domain.ShowID]*cacheEntry)}
}

func (c *showCache) entry(id domain.ShowID) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok {
		c.order.MoveToFront(e.elem)
		return e
	}
	e := &cacheEntry{}
	e.elem = c.order.PushFront(id)
	c.entries[id] = e
	for c.order.Len() > c.max {
		// An evicted entry still in use by a command finishes its work on
		// its own; the next command on that show loads a fresh one.
		oldest := c.order.Back()
		delete(c.entries, oldest.Value.(domain.ShowID))
		c.order.Remove(oldest)
	}
	return e
}
