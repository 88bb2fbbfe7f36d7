package eventstore

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Topic is the watermill topic name of the global stream.
const Topic = "events"

// Metadata keys of the watermill messages made from events. The message
// payload is the event's data and its UUID the event_id.
const (
	MetaEventType      = "event_type"
	MetaStreamID       = "stream_id"
	MetaStreamVersion  = "stream_version"
	MetaGlobalPosition = "global_position"
	MetaTransactionID  = "transaction_id"
	MetaRecordedAt     = "recorded_at"
	MetaEventMetadata  = "event_metadata"
	// MetaShard names the shard whose stream a forwarded event is from
	// (set only when the ledger has several).
	MetaShard = "shard"
)

// WatermillSchema makes the events table a watermill-sql topic, read by
// watermill-sql's Subscriber with consumer groups. It reads the same rows in
// the same order as ReadAll. It cannot publish: events enter the log through
// Store.Append only, which checks stream versions.
type WatermillSchema struct {
	// BatchSize is how many events one subscriber transaction reads (default 100).
	BatchSize int
}

var _ wsql.SchemaAdapter = WatermillSchema{}

// ErrPublishNotSupported: the events topic is written by Store.Append only.
var ErrPublishNotSupported = errors.New("the events topic is append-only through eventstore.Store")

// InsertQuery refuses: see ErrPublishNotSupported.
func (WatermillSchema) InsertQuery(wsql.InsertQueryParams) (wsql.Query, error) {
	return wsql.Query{}, ErrPublishNotSupported
}

// SelectQuery reads the next batch after the consumer group's offset, only
// below the oldest running transaction (see the package doc).
func (s WatermillSchema) SelectQuery(params wsql.SelectQueryParams) (wsql.Query, error) {
	if params.Topic != Topic {
		return wsql.Query{}, fmt.Errorf("unknown topic %q, only %q", params.Topic, Topic)
	}
	next, err := params.OffsetsAdapter.NextOffsetQuery(wsql.NextOffsetQueryParams{
		Topic:         params.Topic,
		ConsumerGroup: params.ConsumerGroup,
	})
	if err != nil {
		return wsql.Query{}, err
	}
	batch := s.BatchSize
	if batch <= 0 {
		batch = 100
	}
	// The offsets row is locked FOR UPDATE, so one consumer of a group reads
	// at a time. The ORDER BY walks the primary key (transaction_id,
	// global_position): no sort, however long the log.
	q := `WITH last_processed AS (` + next.Query + `)
		SELECT ` + selectColumns + ` FROM events
		WHERE (transaction_id, global_position) > (
			(SELECT last_processed_transaction_id FROM last_processed),
			(SELECT coalesce(offset_acked, 0) FROM last_processed))
		  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY events.transaction_id, events.global_position
		LIMIT ` + strconv.Itoa(batch)
	return wsql.Query{Query: q, Args: next.Args}, nil
}

// UnmarshalMessage turns an events row into a watermill message.
func (WatermillSchema) UnmarshalMessage(params wsql.UnmarshalMessageParams) (wsql.Row, error) {
	e, err := scanEvent(params.Row)
	if err != nil {
		return wsql.Row{}, fmt.Errorf("scan event row: %w", err)
	}
	msg := ToMessage(e)
	return wsql.Row{
		Offset:    e.GlobalPosition,
		UUID:      []byte(msg.UUID),
		Payload:   msg.Payload,
		Msg:       msg,
		ExtraData: map[string]any{"transaction_id": wsql.XID8(e.TransactionID)},
	}, nil
}

// SchemaInitializingQueries returns nothing: the migrations own the schema.
func (WatermillSchema) SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}

// SubscribeIsolationLevel is repeatable read, as for watermill-sql's
// PostgreSQL schema: the batch and the offset are read in one snapshot.
func (WatermillSchema) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return stdsql.LevelRepeatableRead
}

// OffsetsAdapter stores consumer groups' checkpoints in consumer_offsets.
func OffsetsAdapter() wsql.DefaultPostgreSQLOffsetsAdapter {
	return wsql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(string) string { return "consumer_offsets" },
	}
}

// SubscriberConfig is the watermill-sql subscriber configuration for a
// consumer group of the global stream.
type SubscriberConfig struct {
	ConsumerGroup string
	BatchSize     int           // events per transaction; default 100
	PollInterval  time.Duration // wait when caught up; default 100ms
	// Schema reads the events table; default WatermillSchema (ForwardSchema
	// makes forwarder envelopes).
	Schema wsql.SchemaAdapter
	// Offsets stores the group's checkpoint; default OffsetsAdapter().
	Offsets wsql.OffsetsAdapter
	// Wake, when set, ends the wait between queries of a caught-up
	// subscriber early (Listener.Wake); PollInterval is then the fallback.
	Wake <-chan struct{}
}

// NewSubscriber returns a watermill subscriber of Topic for one consumer
// group. Each batch is read in one transaction that also commits the group's
// offset; a handler gets it with watermill-sql's TxFromContext(msg.Context()),
// so writes made there commit together with the offset (exactly-once effects).
//
// To stop such a consumer safely, call Close between messages — never cancel
// the Subscribe context while a handler still uses the batch transaction:
// watermill-sql would commit or roll it back under the handler's feet.
func NewSubscriber(db wsql.Beginner, cfg SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if cfg.ConsumerGroup == "" {
		return nil, errors.New("subscriber: consumer group is required")
	}
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	var offsets wsql.OffsetsAdapter = OffsetsAdapter()
	if cfg.Offsets != nil {
		offsets = cfg.Offsets
	}
	schema := cfg.Schema
	if schema == nil {
		schema = WatermillSchema{BatchSize: cfg.BatchSize}
	}
	// No ack deadline: when it fires, watermill-sql ends the batch
	// transaction while the handler may still be using it. Consumers bound
	// their own work instead (see projections.Projector).
	deadline := time.Duration(0)
	const retry = time.Second
	s := &Subscriber{closed: make(chan struct{})}
	var backoff wsql.BackoffManager
	if cfg.Wake != nil {
		backoff = &wakeBackoff{wake: cfg.Wake, poll: poll, retry: retry, closed: s.closed}
	}
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  cfg.ConsumerGroup,
		AckDeadline:    &deadline,
		PollInterval:   poll,
		ResendInterval: poll,
		RetryInterval:  retry,
		BackoffManager: backoff,
		SchemaAdapter:  schema,
		OffsetsAdapter: offsets,
	}, logger)
	if err != nil {
		return nil, err
	}
	s.Subscriber = sub
	return s, nil
}

// Subscriber is watermill-sql's subscriber whose Close also ends a wait for
// a wake-up.
type Subscriber struct {
	*wsql.Subscriber
	closed chan struct{}
	once   sync.Once
}

// Close stops the subscriber (see wsql.Subscriber.Close).
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Subscriber.Close()
}

// ForwardSchema reads the events table as envelopes of watermill's
// forwarder component (components/forwarder), addressed to Destination: a
// forwarder subscribed with it republishes the stream, message for message,
// on another Pub/Sub (NATS JetStream, Kafka …).
type ForwardSchema struct {
	WatermillSchema
	Destination string
	Shard       string // when set, every message's MetaShard
}

// forwarderEnvelope is the JSON the forwarder unwraps.
type forwarderEnvelope struct {
	DestinationTopic string            `json:"destination_topic"`
	UUID             string            `json:"uuid"`
	Payload          []byte            `json:"payload"`
	Metadata         map[string]string `json:"metadata"`
}

// UnmarshalMessage wraps the event's message in an envelope.
func (s ForwardSchema) UnmarshalMessage(params wsql.UnmarshalMessageParams) (wsql.Row, error) {
	row, err := s.WatermillSchema.UnmarshalMessage(params)
	if err != nil {
		return row, err
	}
	if s.Shard != "" {
		row.Msg.Metadata.Set(MetaShard, s.Shard)
	}
	env, err := json.Marshal(forwarderEnvelope{DestinationTopic: s.Destination, UUID: row.Msg.UUID,
		Payload: row.Msg.Payload, Metadata: row.Msg.Metadata})
	if err != nil {
		return row, err
	}
	row.Msg = message.NewMessage(row.Msg.UUID, env)
	row.Payload = env
	return row, nil
}

// ToMessage converts a stored event into a watermill message.
func ToMessage(e Event) *message.Message {
	msg := message.NewMessage(e.ID.String(), message.Payload(e.Data))
	msg.Metadata.Set(MetaEventType, e.Type)
	msg.Metadata.Set(MetaStreamID, e.StreamID)
	msg.Metadata.Set(MetaStreamVersion, strconv.Itoa(e.StreamVersion))
	msg.Metadata.Set(MetaGlobalPosition, strconv.FormatInt(e.GlobalPosition, 10))
	msg.Metadata.Set(MetaTransactionID, strconv.FormatUint(e.TransactionID, 10))
	msg.Metadata.Set(MetaRecordedAt, e.RecordedAt.UTC().Format(time.RFC3339Nano))
	msg.Metadata.Set(MetaEventMetadata, string(e.Metadata))
	return msg
}

// FromMessage is the inverse of ToMessage.
func FromMessage(msg *message.Message) (Event, error) {
	var (
		e    Event
		err  error
		errs []error
	)
	e.ID, err = uuid.Parse(msg.UUID)
	errs = append(errs, err)
	e.Type = msg.Metadata.Get(MetaEventType)
	e.StreamID = msg.Metadata.Get(MetaStreamID)
	e.StreamVersion, err = strconv.Atoi(msg.Metadata.Get(MetaStreamVersion))
	errs = append(errs, err)
	e.GlobalPosition, err = strconv.ParseInt(msg.Metadata.Get(MetaGlobalPosition), 10, 64)
	errs = append(errs, err)
	e.TransactionID, err = strconv.ParseUint(msg.Metadata.Get(MetaTransactionID), 10, 64)
	errs = append(errs, err)
	e.RecordedAt, err = time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetaRecordedAt))
	errs = append(errs, err)
	e.Data = json.RawMessage(msg.Payload)
	e.Metadata = json.RawMessage(msg.Metadata.Get(MetaEventMetadata))
	if err := errors.Join(errs...); err != nil {
		return Event{}, fmt.Errorf("message %s is not an event: %w", msg.UUID, err)
	}
	return e, nil
}

// WatermillLogger adapts logger for watermill, whose Info lines (one per
// subscription step) are logged at Debug.
func WatermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}

// Consume hands the messages of topic to handle one at a time, acking each
// one handle accepts, until ctx ends (nil) or handle fails (its error, the
// message unacked). The subscription is closed between messages, never while
// handle may still use the message's transaction (watermill-sql would commit
// or roll it back under the handler's feet), and never before the
// subscriber has taken the last ack: watermill-sql's subscriber sees an ack
// only when its goroutine next looks, and if by then the subscription is
// closed as well it picks one of the two at random; picking the close, it
// commits the batch's transaction, the acked message's writes included,
// without moving the offset past it, and the message is handled again.
// watermill-sql ends a message's context once it has taken the ack, which
// is what Consume waits for: its subscribers (the only kind Consume is for)
// always end it. handle leaves acking to Consume: a Nack would stall it
// (watermill-sql resends on the same context), an Ack before an error would
// bring the race back.
func Consume(ctx context.Context, sub message.Subscriber, topic string, handle func(*message.Message) error) error {
	msgs, err := sub.Subscribe(context.WithoutCancel(ctx), topic)
	if err != nil {
		_ = sub.Close()
		return fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	defer func() { _ = sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-msgs:
			if !ok {
				return fmt.Errorf("subscription to %s ended", topic)
			}
			if err := handle(msg); err != nil {
				return fmt.Errorf("message %s: %w", msg.UUID, err)
			}
			msg.Ack()
			if done := msg.Context().Done(); done != nil {
				<-done
			}
		}
	}
}

// PgxTx returns the pgx transaction watermill-sql's subscriber runs msg's
// batch in (see NewSubscriber).
func PgxTx(msg *message.Message) (pgx.Tx, error) {
	tx, ok := wsql.TxFromContext(msg.Context())
	if !ok {
		return nil, errors.New("message without its subscriber transaction")
	}
	switch t := tx.(type) {
	case *wsql.PgxTx:
		return t.Tx, nil
	case wsql.PgxTx:
		return t.Tx, nil
	}
	return nil, fmt.Errorf("subscriber transaction is %T, not pgx", tx)
}

// TxHandler turns a function applying one event inside the subscriber's
// transaction into a handler for Consume.
func TxHandler(apply func(ctx context.Context, tx pgx.Tx, e Event) error) func(*message.Message) error {
	return func(msg *message.Message) error {
		tx, err := PgxTx(msg)
		if err != nil {
			return err
		}
		e, err := FromMessage(msg)
		if err != nil {
			return err
		}
		return apply(msg.Context(), tx, e)
	}
}
