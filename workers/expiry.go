package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/ledger"
)

// expiryLock is the advisory lock key one sweeper holds at a time.
const expiryLock int64 = 0x626b6c6578707279 // "bklexpry"

// Expiry expires holds past their expires_at, every Interval. With several
// bookingd processes, one sweeps at a time (a session advisory lock); the
// others skip that round. Candidates come from the bookings projection,
// which may lag; the ledger decides on the stream, so a hold confirmed or
// cancelled meanwhile is left alone and a hold is never expired twice.
type Expiry struct {
	pool     *pgxpool.Pool
	keys     *pgxpool.Pool // where idempotency keys are purged
	ledger   *ledger.Service
	interval time.Duration
	keysTTL  time.Duration
	batch    int
	now      func() time.Time
	logger   *slog.Logger

	sweeps   prometheus.Counter
	expired  prometheus.Counter
	failures prometheus.Counter
	duration prometheus.Histogram
}

// ExpiryConfig configures Expiry.
type ExpiryConfig struct {
	Interval time.Duration // EXPIRY_INTERVAL, default 30s
	// IdempotencyTTL, when set, also purges Idempotency-Key answers older
	// than it at each sweep, from Keys (default: the sweep's own database;
	// on several shards, the home database).
	IdempotencyTTL time.Duration
	Keys           *pgxpool.Pool
	Batch          int // holds per query, default 500
	Now            func() time.Time
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// NewExpiry returns the expiry sweeper.
func NewExpiry(pool *pgxpool.Pool, svc *ledger.Service, cfg ExpiryConfig) *Expiry {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Keys == nil {
		cfg.Keys = pool
	}
	x := &Expiry{pool: pool, keys: cfg.Keys, ledger: svc, interval: cfg.Interval, keysTTL: cfg.IdempotencyTTL, batch: cfg.Batch, now: cfg.Now, logger: cfg.Logger,
		sweeps:   prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_expiry_sweeps_total", Help: "Expiry sweeps run by this process."}),
		expired:  prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_expired_holds_total", Help: "Holds this process expired."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "bookingledger_expiry_failures_total", Help: "Holds a sweep failed to expire (retried next sweep)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bookingledger_expiry_sweep_seconds", Help: "Duration of expiry sweeps.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(x.sweeps, x.expired, x.failures, x.duration)
	}
	return x
}

// Run sweeps every interval until ctx ends.
func (x *Expiry) Run(ctx context.Context) error {
	t := time.NewTicker(x.interval)
	defer t.Stop()
	for {
		n, err := x.Sweep(ctx)
		switch {
		case errors.Is(err, ErrSweepBusy):
			x.logger.DebugContext(ctx, "another process is sweeping")
		case err != nil && ctx.Err() == nil:
			x.logger.ErrorContext(ctx, "expiry sweep failed", "err", err)
		case n > 0:
			x.logger.InfoContext(ctx, "expired holds", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ErrSweepBusy: another process holds the sweep lock.
var ErrSweepBusy = errors.New("another process is sweeping")

// Sweep expires every hold due now and reports how many it expired. It
// returns ErrSweepBusy, expiring nothing, while another process sweeps.
func (x *Expiry) Sweep(ctx context.Context) (int, error) {
	conn, err := x.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("expiry: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, expiryLock).Scan(&locked); err != nil {
		return 0, fmt.Errorf("expiry: %w", err)
	}
	if !locked {
		return 0, ErrSweepBusy
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, expiryLock); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // closing the session releases the lock
		}
	}()
	start := time.Now()
	x.sweeps.Inc()
	defer func() { x.duration.Observe(time.Since(start).Seconds()) }()
	if x.keysTTL > 0 {
		// Best effort: the keys may live in another database (the home
		// database of a sharded ledger), whose trouble must not keep this
		// shard's holds from expiring.
		if _, err := x.keys.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`,
			x.keysTTL.Seconds()); err != nil && ctx.Err() == nil {
			x.logger.Warn("purging idempotency keys failed; expiring holds anyway", "err", err)
		}
	}

	expired := 0
	var after struct {
		at time.Time
		id string
	}
	for {
		// Keyset pagination: holds the stream refuses to expire (already
		// confirmed, projection lagging) are passed over, not retried.
		rows, err := conn.Query(ctx, `SELECT id::text, show_id, expires_at FROM bookings
			WHERE status = 'pending' AND expires_at <= $1 AND (expires_at, id::text) > ($2, $3)
			ORDER BY expires_at, id::text LIMIT $4`, x.now(), after.at, after.id, x.batch)
		if err != nil {
			return expired, fmt.Errorf("expiry: %w", err)
		}
		type due struct {
			id   domain.BookingID
			show domain.ShowID
		}
		var batch []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.id, &d.show, &after.at); err != nil {
				rows.Close()
				return expired, fmt.Errorf("expiry: %w", err)
			}
			after.id = string(d.id)
			batch = append(batch, d)
		}
		if err := rows.Err(); err != nil {
			return expired, fmt.Errorf("expiry: %w", err)
		}
		for _, d := range batch {
			_, err := x.ledger.Expire(ctx, d.show, d.id, ledger.Metadata{RequestID: "expiry"})
			switch {
			case err == nil:
				expired++
				x.expired.Inc()
				x.logger.InfoContext(ctx, "hold expired", "booking_id", d.id, "show_id", d.show)
			case errors.Is(err, domain.ErrBookingNotPending), errors.Is(err, domain.ErrHoldNotExpired), errors.Is(err, domain.ErrBookingNotFound):
				// settled on the stream already; the projection has not caught up
			case ctx.Err() != nil:
				return expired, ctx.Err()
			default:
				// One busy show must not hold back the others: the next sweep
				// tries this hold again.
				x.failures.Inc()
				x.logger.WarnContext(ctx, "expiring a hold failed", "booking_id", d.id, "show_id", d.show, "err", err)
			}
		}
		if len(batch) < x.batch {
			return expired, nil
		}
	}
}
