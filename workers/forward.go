package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/bookingledger/ledger/eventstore"
)

// ForwarderGroup is the NATS forwarder's consumer group on the event stream.
const ForwarderGroup = "nats-forwarder"

// NATSConfig configures the forwarding of the stream to NATS JetStream.
type NATSConfig struct {
	URL   string // NATS_URL, e.g. nats://127.0.0.1:4222
	Topic string // NATS_TOPIC: the JetStream stream and subject (default bookingledger_events)
	Poll  time.Duration
	Wake  <-chan struct{} // wakes the forwarder when events are announced (eventstore.Listener.Wake)
	// Shard, on a ledger of several shards, is this database's index: every
	// message carries it as the eventstore.MetaShard header (global
	// positions repeat across shards; a consumer keeps one per shard).
	Shard  string
	Logger *slog.Logger
}

// ForwardToNATS republishes the global stream, in order, to a NATS
// JetStream stream, through watermill's forwarder: a consumer group of the
// events table (read as forwarder envelopes) feeds a watermill-nats
// publisher. Each event is published before its checkpoint moves
// (at-least-once), with its event id as the JetStream message id, so
// JetStream drops the duplicates a restart could send within its
// deduplication window. Messages carry the event's data as payload and its
// stream id, version, position and type (and, on several shards, the
// shard) as headers. Each shard runs its own forwarder into the same
// JetStream stream: each shard's events stay in order among themselves;
// there is no order across shards.
func ForwardToNATS(ctx context.Context, pool *pgxpool.Pool, cfg NATSConfig) error {
	if cfg.URL == "" {
		return errors.New("forward: NATS URL is required")
	}
	if cfg.Topic == "" {
		cfg.Topic = "bookingledger_events"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	logger := eventstore.WatermillLogger(cfg.Logger)
	pub, err := wnats.NewPublisher(wnats.PublisherConfig{
		URL:         cfg.URL,
		NatsOptions: []nats.Option{nats.Name("bookingd-forwarder"), nats.MaxReconnects(-1)},
		JetStream:   wnats.JetStreamConfig{AutoProvision: true, TrackMsgId: true},
	}, logger)
	if err != nil {
		return fmt.Errorf("forward: connect to NATS: %w", err)
	}
	defer func() { _ = pub.Close() }()
	sub, err := eventstore.NewSubscriber(wsql.BeginnerFromPgx(pool), eventstore.SubscriberConfig{
		ConsumerGroup: ForwarderGroup,
		PollInterval:  cfg.Poll,
		Wake:          cfg.Wake,
		Schema:        eventstore.ForwardSchema{Destination: cfg.Topic, Shard: cfg.Shard},
	}, logger)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	fwd, err := forwarder.NewForwarder(sub, pub, logger, forwarder.Config{ForwarderTopic: eventstore.Topic})
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	if err := fwd.Run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("forward: %w", err)
	}
	return nil
}
