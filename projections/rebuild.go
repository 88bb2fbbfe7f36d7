package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// ConsumerGroup is the projector's consumer group on the global stream.
// Renaming it makes the projector replay the whole stream.
const ConsumerGroup = "projections"

// Progress is told how many events have been folded so far.
type Progress func(events int)

const replayBatch = 5000

// replay folds the global stream after from, up to and including until,
// into m and returns the checkpoint reached (see eventstore.ReadRange for
// poll). Reading, decoding and folding overlap: one goroutine reads batches,
// the batches' events are decoded on every core, and m folds them in order.
func replay(ctx context.Context, store *eventstore.Store, m *Model, from, until eventstore.Checkpoint, poll time.Duration, progress Progress) (eventstore.Checkpoint, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []eventstore.Event, 2)
	var (
		cp      eventstore.Checkpoint
		readErr error
	)
	go func() {
		defer close(batches)
		cp, readErr = store.ReadRange(ctx, from, until, replayBatch, poll, func(events []eventstore.Event) error {
			select {
			case batches <- events:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for events := range batches {
		decoded, err := decodeAll(events)
		if err == nil {
			for i, e := range events {
				if err = m.apply(e, decoded[i].show, decoded[i].event); err != nil {
					break
				}
			}
		}
		if err != nil {
			cancel()
			for range batches { // let the reader finish
			}
			return from, err
		}
		if progress != nil {
			progress(m.Events())
		}
	}
	return cp, readErr
}

type decodedEvent struct {
	show  domain.ShowID
	event domain.Event
}

// decodeAll decodes events on every core, keeping their order.
func decodeAll(events []eventstore.Event) ([]decodedEvent, error) {
	out := make([]decodedEvent, len(events))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(events)/256))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(events); i += workers {
				e := events[i]
				show, ev, err := domain.DecodeShowEvent(e.StreamID, e.Type, e.Data)
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = decodedEvent{show, ev}
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// RebuildStats reports a rebuild.
type RebuildStats struct {
	Events     int
	Checkpoint eventstore.Checkpoint
	Elapsed    time.Duration
}

// Rebuild replaces the live projection tables with a fresh replay of the
// stream and moves the projector's checkpoint to where the replay ended.
//
// The replay reads outside any transaction (a transaction with an xid would
// hold back every stream reader on the server, itself included). Only the
// swap — truncate, copy, set the checkpoint — is one transaction, holding the
// projector's checkpoint row: a running projector waits, then continues after
// the rebuilt position, redoing whatever it had applied past it.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, progress Progress) (RebuildStats, error) {
	start := time.Now()
	store := eventstore.New(pool)
	last, err := store.Last(ctx)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	m := NewModel()
	cp, err := replay(ctx, store, m, eventstore.Checkpoint{}, last, 10*time.Millisecond, progress)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO consumer_offsets (consumer_group, offset_acked, last_processed_transaction_id)
			VALUES ($1, 0, '0') ON CONFLICT (consumer_group) DO NOTHING`, ConsumerGroup); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM consumer_offsets WHERE consumer_group = $1 FOR UPDATE`, ConsumerGroup); err != nil {
			return fmt.Errorf("lock the projector's checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `TRUNCATE bookings, seats, shows`); err != nil {
			return err
		}
		if err := withoutIndexes(ctx, tx, []string{"seats", "bookings"}, func() error { return m.Write(ctx, tx) }); err != nil {
			return err
		}
		return eventstore.New(tx).SetConsumerCheckpoint(ctx, ConsumerGroup, cp)
	})
	if err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	return RebuildStats{Events: m.Events(), Checkpoint: cp, Elapsed: time.Since(start)}, nil
}

// withoutIndexes runs fill with the indexes of tables dropped and builds
// them again afterwards, all in tx: building an index from a full table
// sorts once, which is several times faster than updating it row by row
// while a million rows are copied in. The definitions are read from the
// catalog, so the migrations stay the one place that declares them.
func withoutIndexes(ctx context.Context, tx pgx.Tx, tables []string, fill func() error) error {
	rows, err := tx.Query(ctx, `
		SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.relname, con.conname),
		       format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.relname, con.conname, pg_get_constraintdef(con.oid))
		FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
		WHERE c.relname = ANY($1) AND c.relnamespace = current_schema()::regnamespace AND con.contype IN ('p', 'u')
		UNION ALL
		SELECT format('DROP INDEX %I.%I', i.schemaname, i.indexname), i.indexdef
		FROM pg_indexes i
		WHERE i.tablename = ANY($1) AND i.schemaname = current_schema()
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = to_regclass(format('%I.%I', i.schemaname, i.indexname)))`, tables)
	if err != nil {
		return fmt.Errorf("read index definitions: %w", err)
	}
	var drops, creates []string
	for rows.Next() {
		var drop, create string
		if err := rows.Scan(&drop, &create); err != nil {
			rows.Close()
			return fmt.Errorf("read index definitions: %w", err)
		}
		drops, creates = append(drops, drop), append(creates, create)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read index definitions: %w", err)
	}
	for _, q := range drops {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := fill(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL maintenance_work_mem = '256MB'`); err != nil {
		return err
	}
	for _, q := range creates {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// Difference is one row that differs between the live tables and a replay.
type Difference struct {
	Table string
	// Kind is "missing" for a row the replay has and the live table lacks
	// (or has with other values), "unexpected" for the reverse.
	Kind string
	Row  string // the row as JSON
}

func (d Difference) String() string { return fmt.Sprintf("%s %s: %s", d.Table, d.Kind, d.Row) }

// VerifyReport is what Verify found.
type VerifyReport struct {
	Events      int                   // events replayed
	Checkpoint  eventstore.Checkpoint // where the live projection and the replay were compared
	Head        eventstore.Checkpoint // the last committed event when the comparison was made
	Differences []Difference          // empty when the projections are right; at most MaxDifferences per table and kind
	Elapsed     time.Duration
}

// MaxDifferences caps how many rows of each table and kind Verify reports.
const MaxDifferences = 20

// Verify replays the stream up to the projector's checkpoint and compares
// the result with the live tables, all in one read-only repeatable-read
// snapshot: the checkpoint, the events and the tables agree with each other
// however busy the ledger is. It writes nothing (and so takes no xid that
// would hold back the stream's readers).
func Verify(ctx context.Context, pool *pgxpool.Pool, progress Progress) (VerifyReport, error) {
	start := time.Now()
	var report VerifyReport
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		store := eventstore.New(tx)
		cp, err := store.ConsumerCheckpoint(ctx, ConsumerGroup)
		if err != nil {
			return err
		}
		if report.Head, err = store.Last(ctx); err != nil {
			return err
		}
		replayed := NewModel()
		// The projector read these events below its xmin, so this later
		// snapshot sees all of them: no waiting.
		if report.Checkpoint, err = replay(ctx, store, replayed, eventstore.Checkpoint{}, cp, 0, progress); err != nil {
			return err
		}
		if report.Checkpoint != cp {
			return fmt.Errorf("replay stopped at position %d before the projector's %d", report.Checkpoint.Position, cp.Position)
		}
		live, err := loadModel(ctx, tx)
		if err != nil {
			return err
		}
		report.Events = replayed.Events()
		report.Differences = diff(replayed, live)
		return nil
	})
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify: %w", err)
	}
	report.Elapsed = time.Since(start)
	return report, nil
}
