package projections

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
)

// ProjectorConfig tunes the projector.
type ProjectorConfig struct {
	BatchSize    int           // events per transaction (default 100)
	PollInterval time.Duration // wait when caught up (default 100ms)
}

// Projector keeps the projection tables up to date with the stream.
type Projector struct {
	pool   *pgxpool.Pool
	cfg    ProjectorConfig
	logger *slog.Logger
}

// NewProjector returns a projector over the database in pool.
func NewProjector(pool *pgxpool.Pool, cfg ProjectorConfig, logger *slog.Logger) *Projector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Projector{pool: pool, cfg: cfg, logger: logger}
}

// Run consumes the stream until ctx ends or an event cannot be projected.
// Several projectors may run at once (one per bookingd): the consumer group's
// checkpoint row is locked while a batch is applied, so each event is applied
// by exactly one of them.
//
// An event that fails to project stops Run with its error. Its batch then
// commits up to the event before it (watermill-sql commits the acked prefix)
// or, when the failure aborted the transaction, rolls back whole: either way
// the tables and the checkpoint agree, and a restarted projector retries the
// event and never skips it.
func (p *Projector) Run(ctx context.Context) error {
	sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(p.pool), eventstore.SubscriberConfig{
		ConsumerGroup: ConsumerGroup,
		BatchSize:     p.cfg.BatchSize,
		PollInterval:  p.cfg.PollInterval,
	}, watermill.NewSlogLoggerWithLevelMapping(p.logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}))
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	err = eventstore.Consume(ctx, sub, eventstore.Topic, eventstore.TxHandler(func(ctx context.Context, tx pgx.Tx, e eventstore.Event) error {
		return Apply(ctx, tx, e)
	}))
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	return nil
}
