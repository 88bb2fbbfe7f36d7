// Package analytics is a consumer of the event stream that keeps per-show
// figures: seat utilisation, holds placed, confirmed, expired and cancelled,
// conversion rate, and the median time from hold to confirmation.
//
// It is the worked example of consuming the global stream from outside the
// ledger: Consumer is a watermill-sql subscriber with its own consumer group
// ("analytics") that updates its tables in the transaction that moves its
// checkpoint, so a crash at any moment neither loses nor double-counts an
// event. Replay computes the same figures in memory from position 0, with
// no tables: both must agree, and both must agree with a direct count over
// the events table.
//
// On a ledger of several shards each shard's stream has its own consumer
// (the group "analytics" and its tables live in that shard's database), and
// Report and Replay run on each shard; Union joins their figures, whose
// show ids are disjoint (a show lives on one shard).
package analytics

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// ConsumerGroup is the analytics job's consumer group. Renaming it makes the
// job start again from position 0 (on top of its existing tables: don't).
const ConsumerGroup = "analytics"

// ShowStats are one show's figures.
type ShowStats struct {
	ShowID      int64   `json:"show_id"`
	Name        string  `json:"name"`
	ShowType    string  `json:"show_type"`
	TotalSeats  int     `json:"total_seats"`
	SeatsBooked int     `json:"seats_booked"`
	Utilisation float64 `json:"utilisation"` // booked seats / total seats
	Holds       int     `json:"holds"`
	Confirmed   int     `json:"confirmed"`
	Expired     int     `json:"expired"`
	Cancelled   int     `json:"cancelled"`
	Conversion  float64 `json:"conversion"` // confirmed / holds
	// MedianSecondsToConfirm is the median time from a hold to its
	// confirmation, over confirmed holds (0 when there is none).
	MedianSecondsToConfirm float64 `json:"median_seconds_to_confirm"`
}

// finish derives the ratios, rounded so both paths print the same numbers.
func (s *ShowStats) finish(toConfirm []float64) {
	if s.TotalSeats > 0 {
		s.Utilisation = round(float64(s.SeatsBooked) / float64(s.TotalSeats))
	}
	if s.Holds > 0 {
		s.Conversion = round(float64(s.Confirmed) / float64(s.Holds))
	}
	s.MedianSecondsToConfirm = round(median(toConfirm))
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// median interpolates between the two middle values, as PostgreSQL's
// percentile_cont(0.5) does.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	mid := len(v) / 2
	if len(v)%2 == 1 {
		return v[mid]
	}
	return (v[mid-1] + v[mid]) / 2
}

// Consumer keeps the analytics tables from the stream.
type Consumer struct {
	pool   *pgxpool.Pool
	poll   time.Duration
	logger *slog.Logger
}

// NewConsumer returns the live consumer.
func NewConsumer(pool *pgxpool.Pool, poll time.Duration, logger *slog.Logger) *Consumer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	return &Consumer{pool: pool, poll: poll, logger: logger}
}

// Run consumes until ctx ends; a restarted consumer resumes at its checkpoint.
func (c *Consumer) Run(ctx context.Context) error {
	sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(c.pool), eventstore.SubscriberConfig{
		ConsumerGroup: ConsumerGroup, PollInterval: c.poll, BatchSize: 500,
	}, eventstore.WatermillLogger(c.logger))
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := eventstore.Consume(ctx, sub, eventstore.Topic, eventstore.TxHandler(apply)); err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	return nil
}

// apply folds one event into the tables.
func apply(ctx context.Context, tx pgx.Tx, e eventstore.Event) error {
	show, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
	if err != nil {
		return err
	}
	switch ev := ev.(type) {
	case domain.ShowScheduled:
		_, err = tx.Exec(ctx, `INSERT INTO analytics_shows (show_id, name, show_type, total_seats) VALUES ($1, $2, $3, $4)`,
			int64(show), ev.Name, string(ev.ShowType), len(ev.SeatNumbers))
	case domain.SeatLocked:
		_, err = tx.Exec(ctx, `WITH h AS (INSERT INTO analytics_holds (booking_id, show_id, seats, held_at, status)
				VALUES ($1, $2, $3, $4, 'pending'))
			UPDATE analytics_shows SET holds = holds + 1 WHERE show_id = $2`,
			string(ev.BookingID), int64(show), len(ev.SeatNumbers), e.RecordedAt)
	case domain.BookingConfirmed:
		_, err = tx.Exec(ctx, `WITH h AS (UPDATE analytics_holds SET status = 'confirmed', confirmed_at = $2
				WHERE booking_id = $1 RETURNING seats)
			UPDATE analytics_shows SET confirmed = confirmed + 1, seats_booked = seats_booked + (SELECT seats FROM h)
			WHERE show_id = $3`, string(ev.BookingID), e.RecordedAt, int64(show))
	case domain.BookingExpired:
		_, err = tx.Exec(ctx, `WITH h AS (UPDATE analytics_holds SET status = 'expired' WHERE booking_id = $1)
			UPDATE analytics_shows SET expired = expired + 1 WHERE show_id = $2`, string(ev.BookingID), int64(show))
	case domain.BookingCancelled:
		// A cancelled confirmed booking gives its seats back.
		_, err = tx.Exec(ctx, `WITH old AS (SELECT status, seats FROM analytics_holds WHERE booking_id = $1),
				h AS (UPDATE analytics_holds SET status = 'cancelled' WHERE booking_id = $1)
			UPDATE analytics_shows SET cancelled = cancelled + 1,
				seats_booked = seats_booked - coalesce((SELECT seats FROM old WHERE status = 'confirmed'), 0)
			WHERE show_id = $2`, string(ev.BookingID), int64(show))
	}
	if err != nil {
		return fmt.Errorf("analytics %s v%d: %w", e.StreamID, e.StreamVersion, err)
	}
	return nil
}

// Report reads the figures the live consumer keeps, by show id.
func Report(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]ShowStats, error) {
	rows, err := db.Query(ctx, `SELECT s.show_id, s.name, s.show_type, s.total_seats, s.seats_booked, s.holds,
			s.confirmed, s.expired, s.cancelled,
			coalesce((SELECT array_agg(extract(epoch FROM h.confirmed_at - h.held_at)::float8)
				FROM analytics_holds h WHERE h.show_id = s.show_id AND h.confirmed_at IS NOT NULL), '{}')
		FROM analytics_shows s ORDER BY s.show_id`)
	if err != nil {
		return nil, fmt.Errorf("analytics report: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ShowStats, error) {
		var (
			s         ShowStats
			toConfirm []float64
		)
		err := row.Scan(&s.ShowID, &s.Name, &s.ShowType, &s.TotalSeats, &s.SeatsBooked, &s.Holds,
			&s.Confirmed, &s.Expired, &s.Cancelled, &toConfirm)
		s.finish(toConfirm)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("analytics report: %w", err)
	}
	return out, nil
}

// Replay computes the figures from position 0 up to the last event committed
// when it starts, in memory.
func Replay(ctx context.Context, store *eventstore.Store) ([]ShowStats, error) {
	last, err := store.Last(ctx)
	if err != nil {
		return nil, err
	}
	type hold struct {
		show      int64
		seats     int
		heldAt    time.Time
		confirmed bool
	}
	shows := map[int64]*ShowStats{}
	holds := map[domain.BookingID]*hold{}
	toConfirm := map[int64][]float64{}
	_, err = store.ReadRange(ctx, eventstore.Checkpoint{}, last, 5000, 10*time.Millisecond, func(events []eventstore.Event) error {
		for _, e := range events {
			id, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
			if err != nil {
				return err
			}
			show := int64(id)
			switch ev := ev.(type) {
			case domain.ShowScheduled:
				shows[show] = &ShowStats{ShowID: show, Name: ev.Name, ShowType: string(ev.ShowType), TotalSeats: len(ev.SeatNumbers)}
			case domain.SeatLocked:
				holds[ev.BookingID] = &hold{show: show, seats: len(ev.SeatNumbers), heldAt: e.RecordedAt}
				shows[show].Holds++
			case domain.BookingConfirmed:
				h := holds[ev.BookingID]
				h.confirmed = true
				shows[show].Confirmed++
				shows[show].SeatsBooked += h.seats
				toConfirm[show] = append(toConfirm[show], e.RecordedAt.Sub(h.heldAt).Seconds())
			case domain.BookingExpired:
				shows[show].Expired++
			case domain.BookingCancelled:
				h := holds[ev.BookingID]
				shows[show].Cancelled++
				if h.confirmed {
					shows[show].SeatsBooked -= h.seats
					h.confirmed = false
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("analytics replay: %w", err)
	}
	out := make([]ShowStats, 0, len(shows))
	for _, id := range slices.Sorted(maps.Keys(shows)) {
		s := *shows[id]
		s.finish(toConfirm[id])
		out = append(out, s)
	}
	return out, nil
}

// Union joins the figures of several shards into one list by show id. A show
// lives on one shard, so no show appears twice.
func Union(parts ...[]ShowStats) []ShowStats {
	out := make([]ShowStats, 0)
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.SortStableFunc(out, func(a, b ShowStats) int { return cmp.Compare(a.ShowID, b.ShowID) })
	return out
}
