package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// UserIndex keeps, in the home database of a ledger on several shards,
// user_bookings: every booking of one shard, so that a user's bookings on
// every shard page from one table (Reader.IndexedUserBookings) instead of a
// query per shard. One UserIndex runs per shard. It reads the shard's
// stream and applies each batch in one home transaction that also records
// how far it got (user_index_positions), so every event is applied exactly
// once and a restart resumes where the last commit ended. Several may run
// for the same shard (one per bookingd): the position row is locked while
// a batch is applied.
type UserIndex struct {
	home   *pgxpool.Pool
	shard  *eventstore.Store
	k      int
	cfg    UserIndexConfig
	logger *slog.Logger
}

// UserIndexConfig tunes a UserIndex.
type UserIndexConfig struct {
	BatchSize    int             // events per transaction (default DefaultBatchSize)
	PollInterval time.Duration   // wait when caught up (default 100ms); the fallback when Wake is set
	Wake         <-chan struct{} // ends a caught-up wait when the shard announces events
}

// NewUserIndex returns the index consumer of shard k's stream.
func NewUserIndex(home *pgxpool.Pool, shard *eventstore.Store, k int, cfg UserIndexConfig, logger *slog.Logger) *UserIndex {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &UserIndex{home: home, shard: shard, k: k, cfg: cfg, logger: logger}
}

// Run indexes the shard's stream until ctx ends.
func (x *UserIndex) Run(ctx context.Context) error {
	for {
		n, err := x.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-x.cfg.Wake:
		case <-time.After(x.cfg.PollInterval):
		}
	}
}

// Step applies the next batch of the shard's stream and reports how many
// events it applied. It reads the shard outside any transaction of the
// home database, so a slow shard holds no lock and no transaction id
// there, then applies the batch in a short home transaction that first
// checks that no other consumer moved the position meanwhile (then it
// applies nothing and reports 0; the next Step reads again).
func (x *UserIndex) Step(ctx context.Context) (int, error) {
	applied, err := x.step(ctx)
	if err != nil {
		return 0, fmt.Errorf("user index of shard %d: %w", x.k, err)
	}
	return applied, nil
}

func (x *UserIndex) step(ctx context.Context) (int, error) {
	if _, err := x.home.Exec(ctx, `INSERT INTO user_index_positions (shard, transaction_id, global_position)
		VALUES ($1, 0, 0) ON CONFLICT (shard) DO NOTHING`, x.k); err != nil {
		return 0, err
	}
	var (
		stored   eventstore.Checkpoint
		xid      int64
		caughtUp bool
	)
	if err := x.home.QueryRow(ctx, `SELECT transaction_id, global_position, caught_up FROM user_index_positions WHERE shard = $1`,
		x.k).Scan(&xid, &stored.Position, &caughtUp); err != nil {
		return 0, err
	}
	stored.TransactionID = uint64(xid)
	from, err := resumeAt(ctx, x.shard, stored) // written back corrected below
	if err != nil {
		return 0, err
	}
	events, err := x.shard.ReadAll(ctx, from, x.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	to := from
	if len(events) > 0 {
		to = events[len(events)-1].Checkpoint()
	}
	if len(events) == 0 && to == stored && caughtUp {
		return 0, nil
	}
	batch := &pgx.Batch{}
	for _, e := range events {
		if err := queueIndexed(batch, e); err != nil {
			return 0, err
		}
	}
	// Caught up: this batch reached the end of what the shard could be read
	// to just now.
	done := len(events) < x.cfg.BatchSize
	moved := false
	err = pgx.BeginFunc(ctx, x.home, func(tx pgx.Tx) error {
		var xid, pos int64
		if err := tx.QueryRow(ctx, `SELECT transaction_id, global_position FROM user_index_positions WHERE shard = $1 FOR UPDATE`,
			x.k).Scan(&xid, &pos); err != nil {
			return err
		}
		if (eventstore.Checkpoint{TransactionID: uint64(xid), Position: pos}) != stored {
			moved = true // another consumer applied this batch first
			return nil
		}
		batch.Queue(`UPDATE user_index_positions SET transaction_id = $2, global_position = $3, caught_up = caught_up OR $4
			WHERE shard = $1`, x.k, int64(to.TransactionID), to.Position, done)
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil || moved {
		return 0, err
	}
	return len(events), nil
}

// resumeAt is where the index goes on in shard's stream from its stored
// pair: after the event at the stored position, whose transaction id may
// have been rebased since; or after the stored pair itself when that event
// is gone (its show moved to another shard).
func resumeAt(ctx context.Context, shard *eventstore.Store, stored eventstore.Checkpoint) (eventstore.Checkpoint, error) {
	from, err := shard.CheckpointAt(ctx, stored.Position)
	if errors.Is(err, eventstore.ErrPositionNotFound) {
		return stored, nil
	}
	return from, err
}

// UserIndexLag is how far the index, standing at at (zero: never ran), is
// behind shard's stream: the events after where it goes on, and the age of
// the oldest of them.
func UserIndexLag(ctx context.Context, shard *eventstore.Store, at eventstore.Checkpoint) (events int64, behind time.Duration, err error) {
	from, err := resumeAt(ctx, shard, at)
	if err != nil {
		return 0, 0, err
	}
	return shard.LagAfter(ctx, from)
}

// queueIndexed queues what event e changes in user_bookings; each change
// is guarded by the booking's version, so applying an event twice changes
// nothing.
func queueIndexed(b *pgx.Batch, e eventstore.Event) error {
	show, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
	if err != nil {
		return err
	}
	at, v := e.RecordedAt, e.StreamVersion
	switch ev := ev.(type) {
	case domain.SeatLocked:
		b.Queue(`INSERT INTO user_bookings (id, show_id, user_id, seat_numbers, status, created_at, expires_at, version)
			VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
			string(ev.BookingID), int64(show), string(ev.UserID), ev.SeatNumbers, at, ev.ExpiresAt, v)
	case domain.BookingConfirmed:
		b.Queue(`UPDATE user_bookings SET status = 'confirmed', confirmed_at = $2, version = $3
			WHERE id = $1 AND version < $3`, string(ev.BookingID), ev.ConfirmedAt, v)
	case domain.BookingExpired:
		b.Queue(`UPDATE user_bookings SET status = 'expired', expired_at = $2, version = $3
			WHERE id = $1 AND version < $3`, string(ev.BookingID), at, v)
	case domain.BookingCancelled:
		b.Queue(`UPDATE user_bookings SET status = 'cancelled', cancelled_at = $2, version = $3
			WHERE id = $1 AND version < $3`, string(ev.BookingID), at, v)
	}
	return nil
}

// IndexPosition is where the user index stands on one shard's stream.
type IndexPosition struct {
	eventstore.Checkpoint
	// CaughtUp: the index has read the shard's stream to its end at least
	// once; until then it cannot answer for the shard.
	CaughtUp bool
}

// UserIndexPositions is where the index stands on each shard's stream, by
// shard; a shard whose index consumer never ran is missing.
func UserIndexPositions(ctx context.Context, db Querier) (map[int]IndexPosition, error) {
	rows, err := db.Query(ctx, `SELECT shard, transaction_id, global_position, caught_up FROM user_index_positions`)
	if err != nil {
		return nil, fmt.Errorf("user index positions: %w", err)
	}
	out := map[int]IndexPosition{}
	var (
		k       int
		tx, pos int64
		caught  bool
	)
	_, err = pgx.ForEachRow(rows, []any{&k, &tx, &pos, &caught}, func() error {
		out[k] = IndexPosition{Checkpoint: eventstore.Checkpoint{TransactionID: uint64(tx), Position: pos}, CaughtUp: caught}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("user index positions: %w", err)
	}
	return out, nil
}

// IndexedUserBookings is UserBookings on the home database's user_bookings:
// a user's bookings on every shard, newest first, in one query.
func (r *Reader) IndexedUserBookings(ctx context.Context, userID string, f BookingFilter) (BookingPage, error) {
	return r.userBookings(ctx, "user_bookings", userID, f)
}
