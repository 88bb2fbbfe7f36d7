package projections

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
)

// ProjectorConfig tunes the projector.
type ProjectorConfig struct {
	BatchSize    int           // events per transaction (default DefaultBatchSize)
	PollInterval time.Duration // wait when caught up (default 100ms); the fallback when Wake is set
	// Wake ends a caught-up projector's wait as soon as events are
	// announced (eventstore.Listener.Wake).
	Wake <-chan struct{}
	// OnBatch, when set, is told the size of every batch applied and how
	// long applying it took (for metrics).
	OnBatch func(events int, took time.Duration)
}

// DefaultBatchSize is the projector's batch when ProjectorConfig leaves it
// zero. A batch costs a few statements whatever its size (see batchPlan), so
// a large one keeps up with the heaviest write load while the events of a
// quiet stream still go out as soon as they are read.
const DefaultBatchSize = 1000

// Projector keeps the projection tables up to date with the stream.
type Projector struct {
	pool   *pgxpool.Pool
	cfg    ProjectorConfig
	logger *slog.Logger

	mu      sync.Mutex
	tx      pgx.Tx      // the subscriber's current batch transaction
	pending []statement // its events' statements, not sent yet
}

// NewProjector returns a projector over the database in pool.
func NewProjector(pool *pgxpool.Pool, cfg ProjectorConfig, logger *slog.Logger) *Projector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Projector{pool: pool, cfg: cfg, logger: logger}
}

// Run consumes the stream until ctx ends or an event cannot be decoded.
// Several projectors may run at once (one per bookingd): the consumer group's
// checkpoint row is locked while a batch is applied, so each event is applied
// by exactly one of them.
//
// The events of a batch are not sent one by one: their statements queue up
// and go to PostgreSQL in one round trip (a pgx batch) right before the
// subscriber stores the batch's checkpoint, in the same transaction. When
// they fail (a database error, an event out of order), watermill-sql rolls
// the whole batch back with its checkpoint, logs the error and tries the
// batch again a second later: the tables and the checkpoint always agree,
// and no event is skipped or applied twice; the projector stays at that
// batch (its lag grows, which the lag metrics show) until it can apply it.
func (p *Projector) Run(ctx context.Context) error {
	sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(p.pool), eventstore.SubscriberConfig{
		ConsumerGroup: ConsumerGroup,
		BatchSize:     cmp.Or(p.cfg.BatchSize, DefaultBatchSize),
		PollInterval:  p.cfg.PollInterval,
		Wake:          p.cfg.Wake,
		Offsets:       flushBeforeAck{DefaultPostgreSQLOffsetsAdapter: eventstore.OffsetsAdapter(), p: p},
	}, eventstore.WatermillLogger(p.logger))
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	if err := eventstore.Consume(ctx, sub, eventstore.Topic, p.queue); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	return nil
}

// queue turns an event into its statement, to be sent with its batch.
func (p *Projector) queue(msg *message.Message) error {
	tx, err := eventstore.PgxTx(msg)
	if err != nil {
		return err
	}
	e, err := eventstore.FromMessage(msg)
	if err != nil {
		return err
	}
	st, err := statementFor(e)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tx != tx { // a new batch: whatever was pending belonged to a finished one
		p.tx, p.pending = tx, nil
	}
	p.pending = append(p.pending, st)
	return nil
}

// flush sends the pending statements in one round trip and checks them.
func (p *Projector) flush() error {
	p.mu.Lock()
	tx, pending := p.tx, p.pending
	p.pending = nil
	p.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := applyBatch(ctx, tx, pending); err != nil {
		return err
	}
	if p.cfg.OnBatch != nil {
		p.cfg.OnBatch(len(pending), time.Since(start))
	}
	return nil
}

// flushBeforeAck sends the batch's statements when watermill-sql asks for
// the query that stores the checkpoint: after the batch's last event was
// handed out, before the checkpoint is written, in the same transaction.
type flushBeforeAck struct {
	wsql.DefaultPostgreSQLOffsetsAdapter
	p *Projector
}

func (f flushBeforeAck) AckMessageQuery(params wsql.AckMessageQueryParams) (wsql.Query, error) {
	if err := f.p.flush(); err != nil {
		return wsql.Query{}, err
	}
	return f.DefaultPostgreSQLOffsetsAdapter.AckMessageQuery(params)
}
