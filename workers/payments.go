// Package workers runs the booking lifecycle in the background: simulated
// payments that confirm each hold after a delay, the sweep that expires
// holds past their expires_at, and the forwarding of the stream to NATS
// JetStream. Both act only through the ledger's commands,
// so every change they make is an event, and races with clients (a client
// confirming or cancelling the same booking) are settled by stream versions.
package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/ledger"
)

// Names of the payment pipeline. Renaming PaymentsGroup replays the stream
// into the queue (harmless: confirmations are idempotent, but wasteful).
const (
	PaymentsGroup = "payments"
	ConfirmTopic  = "confirm_payment"
)

// Payments simulates payment: each hold is confirmed Delay after it was
// placed. It has two halves, both on watermill-sql:
//
//   - the scheduler, a consumer group of the event stream, turns each
//     SeatLocked into a message on the delayed PostgreSQL queue, due at the
//     hold's time plus Delay, in the same transaction that moves its
//     checkpoint: a crash never loses a payment or schedules one twice;
//   - the confirmer takes due messages off the queue and confirms the
//     booking through the ledger. A crash before its ack redelivers the
//     message; confirming again is refused by the stream (not pending) and
//     acked, so each booking gets at most one BookingConfirmed.
type Payments struct {
	pool    *pgxpool.Pool
	ledger  *ledger.Service
	delay   time.Duration
	poll    time.Duration
	wake    <-chan struct{}
	logger  *slog.Logger
	now     func() time.Time
	outcome *prometheus.CounterVec
}

// PaymentsConfig configures Payments.
type PaymentsConfig struct {
	Delay        time.Duration   // CONFIRM_DELAY; must be positive (0 means: do not run Payments)
	PollInterval time.Duration   // default 100ms; the fallback when Wake is set
	Wake         <-chan struct{} // wakes the scheduler when events are announced (eventstore.Listener.Wake)
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	Now          func() time.Time // default time.Now
}

// NewPayments returns the payment worker.
func NewPayments(pool *pgxpool.Pool, svc *ledger.Service, cfg PaymentsConfig) (*Payments, error) {
	if cfg.Delay <= 0 {
		return nil, errors.New("payments: the confirmation delay must be positive")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Payments{pool: pool, ledger: svc, delay: cfg.Delay, poll: cfg.PollInterval, wake: cfg.Wake, logger: cfg.Logger, now: cfg.Now,
		outcome: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bookingledger_payments_total", Help: "Simulated payments by outcome (confirmed, refused by the stream).",
		}, []string{"outcome"})}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.outcome)
	}
	return p, nil
}

// payment is a confirm_payment message's payload.
type payment struct {
	ShowID    domain.ShowID    `json:"show_id"`
	BookingID domain.BookingID `json:"booking_id"`
}

func (p *Payments) wmLogger() watermill.LoggerAdapter {
	return eventstore.WatermillLogger(p.logger)
}

// Run runs both halves until ctx ends or one fails.
func (p *Payments) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- p.schedule(ctx) }()
	go func() { errs <- p.confirm(ctx) }()
	err := <-errs
	cancel()
	return errors.Join(err, <-errs)
}

func (p *Payments) schedule(ctx context.Context) error {
	sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(p.pool), eventstore.SubscriberConfig{
		ConsumerGroup: PaymentsGroup, PollInterval: p.poll, Wake: p.wake,
	}, p.wmLogger())
	if err != nil {
		return fmt.Errorf("payments: %w", err)
	}
	return eventstore.Consume(ctx, sub, eventstore.Topic, func(msg *message.Message) error {
		if msg.Metadata.Get(eventstore.MetaEventType) != domain.TypeSeatLocked {
			return nil
		}
		e, err := eventstore.FromMessage(msg)
		if err != nil {
			return err
		}
		show, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
		if err != nil {
			return err
		}
		hold, ok := ev.(domain.SeatLocked)
		if !ok {
			return fmt.Errorf("event %s: %s is not a SeatLocked", e.ID, e.Type)
		}
		due := e.RecordedAt.Add(p.delay)
		if !due.Before(hold.ExpiresAt) || !p.now().Before(hold.ExpiresAt) {
			return nil // the hold ends before it could be paid (e.g. replaying old history)
		}
		tx, err := eventstore.PgxTx(msg)
		if err != nil {
			return err
		}
		pub, err := wsql.NewDelayedPostgreSQLPublisher(wsql.TxFromPgx(tx), wsql.DelayedPostgreSQLPublisherConfig{
			OverridePublisherConfig: func(c *wsql.PublisherConfig) error { c.AutoInitializeSchema = false; return nil },
			Logger:                  p.wmLogger(),
		})
		if err != nil {
			return err
		}
		body, err := json.Marshal(payment{ShowID: show, BookingID: hold.BookingID})
		if err != nil {
			return err
		}
		// The message id is derived from the event, so a schedule that is
		// replayed names the same payment.
		out := message.NewMessage(uuid.NewSHA1(e.ID, []byte("confirm")).String(), body)
		// delay.Message keeps whole seconds; the queue compares timestamps,
		// so give it the exact moment.
		out.Metadata.Set(delay.DelayedUntilKey, due.UTC().Format(time.RFC3339Nano))
		out.Metadata.Set(delay.DelayedForKey, p.delay.String())
		return pub.Publish(ConfirmTopic, out)
	})
}

func (p *Payments) confirm(ctx context.Context) error {
	// watermill-sql's delayed subscriber, with one message per batch: its
	// queue offsets adapter acks (deletes) every row of a batch, even those
	// never handed out when the handler stops midway, so a larger batch
	// could drop payments at a shutdown or an error.
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(p.pool), wsql.SubscriberConfig{
		SchemaAdapter: wsql.PostgreSQLQueueSchema{
			GenerateWhereClause: func(wsql.GenerateWhereClauseParams) (string, []any) {
				return fmt.Sprintf("(metadata->>'%s')::timestamptz < NOW()", delay.DelayedUntilKey), nil
			},
			SubscribeBatchSize: 1,
		},
		OffsetsAdapter: wsql.PostgreSQLQueueOffsetsAdapter{DeleteOnAck: true},
		PollInterval:   p.poll,
	}, p.wmLogger())
	if err != nil {
		return fmt.Errorf("payments: %w", err)
	}
	return eventstore.Consume(ctx, sub, ConfirmTopic, func(msg *message.Message) error {
		// The message's context outlives a stop of the worker: a payment
		// being made is finished, not cut off.
		ctx := msg.Context()
		var pay payment
		if err := json.Unmarshal(msg.Payload, &pay); err != nil {
			p.logger.ErrorContext(ctx, "dropping a malformed payment message", "message_uuid", msg.UUID, "err", err)
			return nil
		}
		var err error
		for attempt := range 5 { // a busy show: try again before giving up the worker
			_, err = p.ledger.Confirm(ctx, pay.ShowID, pay.BookingID, ledger.Metadata{RequestID: "payments"})
			if !errors.Is(err, ledger.ErrTooManyConflicts) {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
			}
		}
		switch {
		case err == nil:
			p.outcome.WithLabelValues("confirmed").Inc()
			p.logger.InfoContext(ctx, "payment confirmed", "booking_id", pay.BookingID, "show_id", pay.ShowID)
			return nil
		case errors.Is(err, domain.ErrBookingNotPending), errors.Is(err, domain.ErrHoldExpired),
			errors.Is(err, domain.ErrShowStarted), errors.Is(err, domain.ErrBookingNotFound), errors.Is(err, domain.ErrShowNotFound):
			// The stream already settled it (cancelled, expired, or confirmed
			// by the client or by an earlier delivery of this message).
			p.outcome.WithLabelValues("refused").Inc()
			return nil
		default:
			return err // not acked: redelivered after the restart
		}
	})
}
