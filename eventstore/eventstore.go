// Package eventstore is the append-only event log on PostgreSQL (pgx/v5).
//
// Every show has a stream ("show-<id>") whose events carry versions 1, 2, 3 …
// without gaps. Append takes the version the caller decided from and refuses
// with a *VersionConflictError when the stream has moved on: the expected
// version is checked in the INSERT itself and the unique index on
// (stream_id, stream_version) stops two writers that checked at the same time.
//
// All streams together form the global stream, ordered by
// (transaction_id, global_position). The transaction_id column is an xid8
// filled by pg_current_xact_id(); ReadAll returns only events of transactions
// older than pg_snapshot_xmin(pg_current_snapshot()), so a reader never
// advances past an event whose transaction is still running and commits late
// (the sequence-gap problem). A Checkpoint is the pair of the last event read.
//
// The events table is also the watermill topic: WatermillSchema adapts it for
// watermill-sql's subscriber, so consumers get exactly the committed events
// with no second write (no outbox copy) and no dual-write gap.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrVersionConflict is the category of *VersionConflictError.
var ErrVersionConflict = errors.New("version conflict")

// VersionConflictError says an append expected a stream at one version and
// found it at another. Actual is -1 when it is not known: the append lost a
// race at the unique index, or AppendStreams found the stream elsewhere.
type VersionConflictError struct {
	Stream   string
	Expected int
	Actual   int
}

func (e *VersionConflictError) Error() string {
	if e.Actual < 0 {
		return fmt.Sprintf("stream %s: expected version %d, another writer appended first", e.Stream, e.Expected)
	}
	return fmt.Sprintf("stream %s: expected version %d, stream is at %d", e.Stream, e.Expected, e.Actual)
}

func (e *VersionConflictError) Unwrap() error { return ErrVersionConflict }

// EventData is an event to append.
type EventData struct {
	ID       uuid.UUID       // unique; callers use UUIDv7
	Type     string          // event_type
	Data     json.RawMessage // JSON object
	Metadata json.RawMessage // JSON object (user, request id …); nil means {}
}

// Event is a stored event. Its JSON form (the columns of the events table)
// is what auditors and exports see.
type Event struct {
	GlobalPosition int64           `json:"global_position"`
	TransactionID  uint64          `json:"transaction_id"`
	StreamID       string          `json:"stream_id"`
	StreamVersion  int             `json:"stream_version"`
	ID             uuid.UUID       `json:"event_id"`
	Type           string          `json:"event_type"`
	Data           json.RawMessage `json:"data"`
	Metadata       json.RawMessage `json:"metadata"`
	RecordedAt     time.Time       `json:"recorded_at"`
}

// Checkpoint returns the position of the global stream just after e.
func (e Event) Checkpoint() Checkpoint {
	return Checkpoint{TransactionID: e.TransactionID, Position: e.GlobalPosition}
}

// Checkpoint is a position in the global stream: the (transaction_id,
// global_position) of the last event read. The zero value is the start.
type Checkpoint struct {
	TransactionID uint64
	Position      int64
}

// Conn is what the store needs of a database: a *pgxpool.Pool, a *pgx.Conn or
// a pgx.Tx (to append inside a caller's transaction).
type Conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var _ Conn = (*pgxpool.Pool)(nil)

// Store reads and appends events.
type Store struct {
	db Conn
}

// New returns a store on db.
func New(db Conn) *Store { return &Store{db: db} }

const appendSQL = `
INSERT INTO events (stream_id, stream_version, event_id, event_type, data, metadata)
SELECT $1, $2::int + e.ord::int, e.id, e.type, e.data, e.meta
FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[]) WITH ORDINALITY AS e(id, type, data, meta, ord)
WHERE (SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1) = $2
RETURNING global_position, transaction_id::text::bigint, stream_version, recorded_at`

// Append adds events to stream, which must be at expectedVersion (0 for a new
// stream). The events get versions expectedVersion+1 … in order. It returns
// the stored events, or a *VersionConflictError when the stream is elsewhere.
func (s *Store) Append(ctx context.Context, stream string, expectedVersion int, events []EventData) ([]Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	if err := checkEvents(stream, events); err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(events))
	types := make([]string, len(events))
	data := make([]string, len(events))
	meta := make([]string, len(events))
	for i, e := range events {
		ids[i], types[i], data[i], meta[i] = e.ID, e.Type, string(e.Data), metadataOf(e)
	}

	rows, err := s.db.Query(ctx, appendSQL, stream, expectedVersion, ids, types, data, meta)
	if err != nil {
		return nil, fmt.Errorf("append %s: %w", stream, err)
	}
	out := make([]Event, 0, len(events))
	for rows.Next() {
		ev := Event{StreamID: stream}
		if err := rows.Scan(&ev.GlobalPosition, &ev.TransactionID, &ev.StreamVersion, &ev.RecordedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("append %s: %w", stream, err)
		}
		ev.RecordedAt = ev.RecordedAt.UTC()
		out = append(out, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		if lostVersionRace(err) {
			return nil, &VersionConflictError{Stream: stream, Expected: expectedVersion, Actual: -1}
		}
		return nil, fmt.Errorf("append %s: %w", stream, err)
	}
	if len(out) == 0 {
		actual, err := s.Version(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("append %s: %w", stream, err)
		}
		return nil, &VersionConflictError{Stream: stream, Expected: expectedVersion, Actual: actual}
	}
	completeStored(out, events)
	return out, nil
}

// lostVersionRace reports whether err is an append losing a stream's next
// version, at the unique index, to a writer that checked at the same time.
func lostVersionRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_version_key"
}

// checkEvents reports the first of a stream's events that cannot be stored.
func checkEvents(stream string, events []EventData) error {
	for i, e := range events {
		if e.ID == uuid.Nil || e.Type == "" || len(e.Data) == 0 {
			return fmt.Errorf("append %s: event %d needs an id, a type and data", stream, i)
		}
	}
	return nil
}

// metadataOf is what the metadata column keeps for e.
func metadataOf(e EventData) string {
	if len(e.Metadata) == 0 {
		return "{}"
	}
	return string(e.Metadata)
}

// completeStored puts the rows an append returned for one stream in version
// order (RETURNING promises none) and fills in what the append was given.
func completeStored(stored []Event, events []EventData) {
	slices.SortFunc(stored, func(a, b Event) int { return a.StreamVersion - b.StreamVersion })
	for i := range stored {
		e := events[i]
		stored[i].ID, stored[i].Type, stored[i].Data, stored[i].Metadata = e.ID, e.Type, e.Data, json.RawMessage(metadataOf(e))
	}
}

// appendStreamsSQL appends to several streams in one statement: the rows of
// every stream found at its expected version, none of the others.
const appendStreamsSQL = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])
		WITH ORDINALITY AS e(stream, expected, ord, id, type, data, meta, n)
), current AS (
	SELECT s.stream FROM (SELECT DISTINCT stream, expected FROM input) s
	WHERE (SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = s.stream) = s.expected
)
INSERT INTO events (stream_id, stream_version, event_id, event_type, data, metadata)
SELECT i.stream, i.expected + i.ord, i.id, i.type, i.data, i.meta
FROM input i JOIN current c ON c.stream = i.stream
ORDER BY i.n
RETURNING stream_id, global_position, transaction_id::text::bigint, stream_version, recorded_at`

// StreamAppend is one stream's part of AppendStreams: what Append takes.
type StreamAppend struct {
	Stream          string
	ExpectedVersion int
	Events          []EventData
}

// AppendResult is one stream's outcome of AppendStreams: its stored events,
// or the error Append would have returned (a *VersionConflictError when the
// stream was elsewhere).
type AppendResult struct {
	Events []Event
	Err    error
}

// AppendStreams appends to several streams, each as Append would, in one
// statement and so in one transaction (one commit for all, on a pool): the
// streams found at their expected version get their events, the others a
// *VersionConflictError (Actual -1: the stream is elsewhere). The streams
// must be distinct.
//
// A statement that fails with an error of its own (PostgreSQL severity
// ERROR: nothing of it was kept, the session goes on) does not fail the
// group: when a concurrent writer won a stream's version at the unique
// index, the statement is sent once more, on a snapshot that sees the
// winner, and then (or for any other such error, e.g. a trigger refusing
// one stream) each stream is appended on its own, so every stream gets its
// own outcome. Other errors (a lost connection, a timeout) may leave the
// commit unknown and are returned for all. On a pgx.Tx a failed statement
// aborts the transaction, and the appends on their own fail too: use a
// pool. Rows are inserted in stream order, so that statements of several
// processes take their index locks in one order.
func (s *Store) AppendStreams(ctx context.Context, appends []StreamAppend) ([]AppendResult, error) {
	order := make([]int, len(appends))
	total := 0
	for i, a := range appends {
		order[i] = i
		total += len(a.Events)
		if len(a.Events) == 0 {
			return nil, fmt.Errorf("append %s: no events", a.Stream)
		}
		if err := checkEvents(a.Stream, a.Events); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(appends[a].Stream, appends[b].Stream) })
	for k := 1; k < len(order); k++ {
		if appends[order[k]].Stream == appends[order[k-1]].Stream {
			return nil, fmt.Errorf("append %s: the stream is given twice", appends[order[k]].Stream)
		}
	}
	var (
		streams         = make([]string, 0, total)
		expected, ord   = make([]int, 0, total), make([]int, 0, total)
		ids             = make([]uuid.UUID, 0, total)
		types, data, md = make([]string, 0, total), make([]string, 0, total), make([]string, 0, total)
	)
	for _, i := range order {
		a := appends[i]
		for j, e := range a.Events {
			streams, expected, ord = append(streams, a.Stream), append(expected, a.ExpectedVersion), append(ord, j+1)
			ids, types, data = append(ids, e.ID), append(types, e.Type), append(data, string(e.Data))
			md = append(md, metadataOf(e))
		}
	}

	args := []any{streams, expected, ord, ids, types, data, md}
	out, err := s.appendStreams(ctx, appends, args)
	if lostVersionRace(err) {
		out, err = s.appendStreams(ctx, appends, args) // the winner has committed: its stream now conflicts alone
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Severity == "ERROR" {
		out = make([]AppendResult, len(appends))
		for i, a := range appends {
			out[i].Events, out[i].Err = s.Append(ctx, a.Stream, a.ExpectedVersion, a.Events)
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("append %d streams: %w", len(appends), err)
	}
	return out, nil
}

// appendStreams runs appendStreamsSQL once.
func (s *Store) appendStreams(ctx context.Context, appends []StreamAppend, args []any) ([]AppendResult, error) {
	rows, err := s.db.Query(ctx, appendStreamsSQL, args...)
	if err != nil {
		return nil, err
	}
	index := make(map[string]int, len(appends))
	for i, a := range appends {
		index[a.Stream] = i
	}
	out := make([]AppendResult, len(appends))
	for rows.Next() {
		var ev Event
		if err := rows.Scan(&ev.StreamID, &ev.GlobalPosition, &ev.TransactionID, &ev.StreamVersion, &ev.RecordedAt); err != nil {
			rows.Close()
			return nil, err
		}
		ev.RecordedAt = ev.RecordedAt.UTC()
		i := index[ev.StreamID]
		out[i].Events = append(out[i].Events, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, a := range appends {
		if len(out[i].Events) == 0 {
			out[i].Err = &VersionConflictError{Stream: a.Stream, Expected: a.ExpectedVersion, Actual: -1}
			continue
		}
		completeStored(out[i].Events, a.Events)
	}
	return out, nil
}

// Version returns the current version of a stream (0 when it has no events).
func (s *Store) Version(ctx context.Context, stream string) (int, error) {
	var v int
	err := s.db.QueryRow(ctx, `SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1`, stream).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("version of %s: %w", stream, err)
	}
	return v, nil
}

// selectColumns are an event's columns. The xid8 is read as text; its alias
// must not be "transaction_id", or ORDER BY transaction_id would sort by the
// cast instead of walking the primary key.
const selectColumns = `global_position, transaction_id::text::bigint AS txid, stream_id, stream_version,
	event_id, event_type, data, metadata, recorded_at`

// Load returns the events of stream after afterVersion, in version order.
func (s *Store) Load(ctx context.Context, stream string, afterVersion int) ([]Event, error) {
	return s.LoadRange(ctx, stream, afterVersion, 0)
}

// LoadRange returns at most limit events of stream after afterVersion, in
// version order; limit 0 means all.
func (s *Store) LoadRange(ctx context.Context, stream string, afterVersion, limit int) ([]Event, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := s.db.Query(ctx, `SELECT `+selectColumns+` FROM events
		WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT $3`, stream, afterVersion, lim)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	events, err := collect(rows)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	return events, nil
}

// ReadAll returns up to limit events of the global stream after checkpoint,
// in stream order. It never returns an event while an older transaction that
// could still add events before it is running, so advancing a checkpoint to
// the last event returned never skips anything.
func (s *Store) ReadAll(ctx context.Context, after Checkpoint, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read all: limit must be positive, got %d", limit)
	}
	rows, err := s.db.Query(ctx, `SELECT `+selectColumns+` FROM events
		WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
		  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY events.transaction_id, events.global_position
		LIMIT $3`, fmt.Sprint(after.TransactionID), after.Position, limit)
	if err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	events, err := collect(rows)
	if err != nil {
		return nil, fmt.Errorf("read all: %w", err)
	}
	return events, nil
}

// ErrPositionNotFound: CheckpointAt was given a position no event has.
var ErrPositionNotFound = errors.New("no event at this position")

// CheckpointAt returns the checkpoint just after the event at global position
// pos, so clients can resume from a plain position. Position 0 is the start.
func (s *Store) CheckpointAt(ctx context.Context, pos int64) (Checkpoint, error) {
	if pos == 0 {
		return Checkpoint{}, nil
	}
	var cp Checkpoint
	err := s.db.QueryRow(ctx, `SELECT transaction_id::text::bigint, global_position FROM events WHERE global_position = $1`, pos).
		Scan(&cp.TransactionID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("checkpoint at %d: %w", pos, ErrPositionNotFound)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint at %d: %w", pos, err)
	}
	return cp, nil
}

func collect(rows pgx.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// scanEvent reads one row of selectColumns.
func scanEvent(row interface{ Scan(...any) error }) (Event, error) {
	var (
		e              Event
		data, metadata []byte // not json.RawMessage: pgx would run json.Unmarshal to fill it
	)
	err := row.Scan(&e.GlobalPosition, &e.TransactionID, &e.StreamID, &e.StreamVersion,
		&e.ID, &e.Type, &data, &metadata, &e.RecordedAt)
	e.Data, e.Metadata = data, metadata
	e.RecordedAt = e.RecordedAt.UTC()
	return e, err
}

// ConsumerCheckpoint returns where a consumer group of the global stream
// stands (the zero Checkpoint when it has not consumed anything).
func (s *Store) ConsumerCheckpoint(ctx context.Context, group string) (Checkpoint, error) {
	var cp Checkpoint
	err := s.db.QueryRow(ctx, `SELECT last_processed_transaction_id::text::bigint, coalesce(offset_acked, 0)
		FROM consumer_offsets WHERE consumer_group = $1`, group).Scan(&cp.TransactionID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint of %s: %w", group, err)
	}
	return cp, nil
}

// SetConsumerCheckpoint moves a consumer group to cp. Run it in the
// transaction that wrote what the group's events produced.
func (s *Store) SetConsumerCheckpoint(ctx context.Context, group string, cp Checkpoint) error {
	_, err := s.db.Exec(ctx, `INSERT INTO consumer_offsets (consumer_group, offset_acked, last_processed_transaction_id)
		VALUES ($1, $2, $3::text::xid8)
		ON CONFLICT (consumer_group) DO UPDATE SET offset_acked = excluded.offset_acked,
			last_processed_transaction_id = excluded.last_processed_transaction_id`,
		group, cp.Position, fmt.Sprint(cp.TransactionID))
	if err != nil {
		return fmt.Errorf("set checkpoint of %s: %w", group, err)
	}
	return nil
}

// Last returns the checkpoint of the last committed event, whether or not a
// reader may read it yet. A reader that goes on polling ReadAll until
// it reaches Last has read everything committed when Last was called.
func (s *Store) Last(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	err := s.db.QueryRow(ctx, `SELECT transaction_id::text::bigint AS txid, global_position FROM events
		ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1`).Scan(&cp.TransactionID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("last event: %w", err)
	}
	return cp, nil
}

// Settled returns the checkpoint of the last event a reader may read now:
// the newest one below every transaction still running on the server
// (pg_snapshot_xmin). A reader that starts there misses nothing that commits
// later, which starting at Last could (a transaction older than Last's
// may still be adding events before it).
func (s *Store) Settled(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	err := s.db.QueryRow(ctx, `SELECT transaction_id::text::bigint, global_position FROM events
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&cp.TransactionID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("settled checkpoint: %w", err)
	}
	return cp, nil
}

// Less reports whether c comes before d in the global stream.
func (c Checkpoint) Less(d Checkpoint) bool {
	if c.TransactionID != d.TransactionID {
		return c.TransactionID < d.TransactionID
	}
	return c.Position < d.Position
}

// ErrIncomplete: ReadRange could not reach its end without waiting, and was
// told not to wait.
var ErrIncomplete = errors.New("the stream could not be read to the end without waiting")

// ReadRange reads the global stream after from up to and including until,
// handing fn one batch at a time, and returns the checkpoint reached. When
// the next events are not readable yet (an older transaction is still
// running on the server) it polls every poll, or fails with ErrIncomplete
// when poll is 0 (inside a snapshot, waiting would never end).
func (s *Store) ReadRange(ctx context.Context, from, until Checkpoint, batch int, poll time.Duration, fn func([]Event) error) (Checkpoint, error) {
	cp := from
	for cp.Less(until) {
		events, err := s.ReadAll(ctx, cp, batch)
		if err != nil {
			return cp, err
		}
		if len(events) == 0 {
			if poll <= 0 {
				return cp, fmt.Errorf("read to position %d: %w", until.Position, ErrIncomplete)
			}
			select {
			case <-ctx.Done():
				return cp, ctx.Err()
			case <-time.After(poll):
			}
			continue
		}
		n := len(events)
		for n > 0 && until.Less(events[n-1].Checkpoint()) {
			n--
		}
		if n > 0 {
			if err := fn(events[:n]); err != nil {
				return cp, err
			}
			cp = events[n-1].Checkpoint()
		}
		if n < len(events) {
			return cp, nil
		}
	}
	return cp, nil
}

// Lag reports how far a consumer group is behind the stream: how many
// committed events it has not consumed, and the age of the oldest of them
// (0 when none).
func (s *Store) Lag(ctx context.Context, group string) (events int64, behind time.Duration, err error) {
	cp, err := s.ConsumerCheckpoint(ctx, group)
	if err != nil {
		return 0, 0, err
	}
	events, behind, err = s.LagAfter(ctx, cp)
	if err != nil {
		return 0, 0, fmt.Errorf("lag of %s: %w", group, err)
	}
	return events, behind, nil
}

// LagAfter reports how many committed events follow cp, and the age of the
// oldest of them (0 when none): the lag of a reader that keeps its place
// elsewhere (the user index of a sharded ledger).
func (s *Store) LagAfter(ctx context.Context, cp Checkpoint) (events int64, behind time.Duration, err error) {
	var seconds float64
	err = s.db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8
		FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)`,
		fmt.Sprint(cp.TransactionID), cp.Position).Scan(&events, &seconds)
	if err != nil {
		return 0, 0, fmt.Errorf("lag after %d: %w", cp.Position, err)
	}
	return events, time.Duration(seconds * float64(time.Second)), nil
}

// ConsumerGroups lists the consumer groups that have a checkpoint.
func (s *Store) ConsumerGroups(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT consumer_group FROM consumer_offsets ORDER BY consumer_group`)
	if err != nil {
		return nil, fmt.Errorf("consumer groups: %w", err)
	}
	groups, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("consumer groups: %w", err)
	}
	return groups, nil
}

// DeleteConsumerGroup forgets a consumer group's checkpoint: its next
// consumer starts from the beginning of the stream. It reports whether the
// group existed.
func (s *Store) DeleteConsumerGroup(ctx context.Context, group string) (bool, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM consumer_offsets WHERE consumer_group = $1`, group)
	if err != nil {
		return false, fmt.Errorf("delete consumer group %s: %w", group, err)
	}
	return tag.RowsAffected() > 0, nil
}
