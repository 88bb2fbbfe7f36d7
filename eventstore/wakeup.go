package eventstore

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5"

	"github.com/bookingledger/ledger/internal/pglisten"
)

// AppendedChannel is the PostgreSQL NOTIFY channel on which appenders
// announce that events were committed, so that consumers of the stream wake
// at once instead of waiting out their poll interval.
//
// The NOTIFY is not sent by the appending transaction: PostgreSQL serializes
// the commits of every transaction that notifies, which would undo group
// commit. An Announcer sends it after the commit, in its own statement, at
// most once per interval however many appends there were. A lost
// announcement only costs a poll interval; it never loses an event.
const AppendedChannel = "events_appended"

// Announcer sends coalesced NOTIFYs on AppendedChannel after appends.
type Announcer struct {
	db     Conn
	every  time.Duration
	kick   chan struct{}
	logger *slog.Logger
}

// NewAnnouncer returns an announcer that notifies through db at most once
// per every (0 means back to back).
func NewAnnouncer(db Conn, every time.Duration, logger *slog.Logger) *Announcer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Announcer{db: db, every: every, kick: make(chan struct{}, 1), logger: logger}
}

// Announce asks for a NOTIFY; it never blocks. Announcements that arrive
// while one is pending are folded into it.
func (a *Announcer) Announce() {
	if a == nil {
		return
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run sends the announcements until ctx ends.
func (a *Announcer) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		if _, err := a.db.Exec(ctx, `SELECT pg_notify('`+AppendedChannel+`', '')`); err != nil && ctx.Err() == nil {
			a.logger.Warn("announce appended events", "err", err) // consumers still poll
		}
		if a.every > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(a.every):
			}
		}
	}
}

// Listener LISTENs on AppendedChannel and wakes the subscribers registered
// with Wake.
type Listener struct {
	connect func(context.Context) (*pgx.Conn, error)
	logger  *slog.Logger

	mu    sync.Mutex
	wakes []chan struct{}
}

// NewListener returns a listener that opens its own connection with connect
// (a LISTEN holds a connection for good; it is not taken from a pool).
func NewListener(connect func(context.Context) (*pgx.Conn, error), logger *slog.Logger) *Listener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{connect: connect, logger: logger}
}

// Wake registers a subscriber and returns its wake-up channel. The channel
// is a latch: a notification that arrives while nobody waits on it is kept,
// so a subscriber that was busy querying wakes right away and queries again
// rather than missing the events announced meanwhile.
func (l *Listener) Wake() <-chan struct{} {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.wakes = append(l.wakes, ch)
	l.mu.Unlock()
	return ch
}

func (l *Listener) wakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.wakes {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run listens until ctx ends, reconnecting with backoff. Every (re)connect
// wakes everyone, as announcements may have been missed while disconnected.
func (l *Listener) Run(ctx context.Context) {
	pglisten.Run(ctx, pglisten.Config{
		Channel:   AppendedChannel,
		Connect:   l.connect,
		Listening: l.wakeAll,
		Notify:    func(context.Context, string) { l.wakeAll() },
		Logger:    l.logger,
	})
}

// wakeBackoff is watermill-sql's BackoffManager for a subscriber with a
// wake-up channel. A caught-up subscriber waits for the channel or the poll
// interval, whichever comes first. An announced event is not always readable
// at once: the stream is read only below the oldest transaction still
// running anywhere on the server (see Store.ReadAll), so after a wake-up, or
// after finding events, an empty query is retried soon and then less and
// less often (from eagerRetry, doubling up to the poll interval) before the
// subscriber goes back to waiting. It serves one subscription.
type wakeBackoff struct {
	wake  <-chan struct{}
	poll  time.Duration
	retry time.Duration
	// closed ends the wait when the subscriber closes.
	closed <-chan struct{}
	eager  time.Duration // the next empty query's wait; 0 when idle
}

const eagerRetry = 10 * time.Millisecond

func (b *wakeBackoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if err != nil {
		logger.Error("Error querying for messages", err, watermill.LogFields{"wait_time": b.retry})
		return b.retry
	}
	if !noMsg {
		b.eager = eagerRetry
		return 0
	}
	wait := b.poll
	if b.eager > 0 {
		wait = min(b.eager, b.poll)
		b.eager *= 2
		if b.eager > b.poll {
			b.eager = 0
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-b.wake:
		b.eager = eagerRetry
	case <-t.C:
	case <-b.closed:
	}
	return 0
}
