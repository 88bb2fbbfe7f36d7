package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/eventstore"
)

// ConsumerGroup is the projector's consumer group on the global stream.
// Renaming it makes the projector replay the whole stream.
const ConsumerGroup = "projections"

// tables are the projection tables, in the order they are written.
var tables = []string{"shows", "seats", "bookings"}

// Progress is told how many events have been folded so far.
type Progress func(events int)

// replay folds the global stream after from, up to and including until, into
// m, and returns the checkpoint reached.
func replay(ctx context.Context, store *eventstore.Store, m *Model, from, until eventstore.Checkpoint, progress Progress) (eventstore.Checkpoint, error) {
	const batch = 5000
	cp := from
	for cp.Less(until) {
		events, err := store.ReadAll(ctx, cp, batch)
		if err != nil {
			return cp, err
		}
		if len(events) == 0 {
			// Events up to until were readable once, but an older
			// transaction is still settling on the server: wait for it.
			select {
			case <-ctx.Done():
				return cp, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		for _, e := range events {
			if until.Less(e.Checkpoint()) {
				return cp, nil
			}
			if err := m.Apply(e); err != nil {
				return cp, err
			}
			cp = e.Checkpoint()
		}
		if progress != nil {
			progress(m.Events())
		}
	}
	return cp, nil
}

// RebuildStats reports a rebuild.
type RebuildStats struct {
	Events     int
	Checkpoint eventstore.Checkpoint
	Elapsed    time.Duration
}

// Rebuild replaces the live projection tables with a fresh replay of the whole
// stream and moves the projector's checkpoint to where the replay ended, in
// one transaction. A running projector waits (its checkpoint row is locked)
// and then continues after the rebuilt position; readers wait for the commit.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, progress Progress) (RebuildStats, error) {
	start := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return RebuildStats{}, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	store := eventstore.New(pool)
	if _, err := tx.Exec(ctx, `INSERT INTO consumer_offsets (consumer_group, offset_acked, last_processed_transaction_id)
		VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, ConsumerGroup); err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM consumer_offsets WHERE consumer_group = $1 FOR UPDATE`, ConsumerGroup); err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: lock projector: %w", err)
	}
	last, err := store.Last(ctx)
	if err != nil {
		return RebuildStats{}, err
	}
	m := NewModel()
	cp, err := replay(ctx, store, m, eventstore.Checkpoint{}, last, progress)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	if _, err := tx.Exec(ctx, `TRUNCATE bookings, seats, shows`); err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	if err := m.Write(ctx, tx); err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	if err := store.WithConn(tx).SetConsumerCheckpoint(ctx, ConsumerGroup, cp); err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return RebuildStats{}, fmt.Errorf("rebuild: commit: %w", err)
	}
	return RebuildStats{Events: m.Events(), Checkpoint: cp, Elapsed: time.Since(start)}, nil
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
	Differences []Difference          // empty when the projections are right
	Elapsed     time.Duration
}

// ErrMovingTarget: the projector kept advancing while Verify tried to compare.
var ErrMovingTarget = errors.New("verify: the projector kept moving; try again or stop it")

// maxDifferences caps how many rows of each table and kind are reported.
const maxDifferences = 20

// Verify replays the stream up to the projector's checkpoint into a scratch
// schema and diffs it against the live tables, in one snapshot of both. It
// writes nothing to the live tables; the scratch schema is dropped after.
func Verify(ctx context.Context, pool *pgxpool.Pool, progress Progress) (VerifyReport, error) {
	start := time.Now()
	store := eventstore.New(pool)
	scratch := fmt.Sprintf("verify_%d", time.Now().UnixNano())
	if err := createScratch(ctx, pool, scratch); err != nil {
		return VerifyReport{}, err
	}
	defer func() {
		_, _ = pool.Exec(context.WithoutCancel(ctx), `DROP SCHEMA IF EXISTS `+scratch+` CASCADE`)
	}()

	m := NewModel()
	var cp eventstore.Checkpoint
	for attempt := 0; attempt < 20; attempt++ {
		target, err := store.ConsumerCheckpoint(ctx, ConsumerGroup)
		if err != nil {
			return VerifyReport{}, err
		}
		if cp, err = replay(ctx, store, m, cp, target, progress); err != nil {
			return VerifyReport{}, fmt.Errorf("verify: %w", err)
		}
		if err := writeScratch(ctx, pool, scratch, m); err != nil {
			return VerifyReport{}, err
		}
		report, same, err := compare(ctx, pool, scratch, cp)
		if err != nil {
			return VerifyReport{}, err
		}
		if same {
			report.Events, report.Elapsed = m.Events(), time.Since(start)
			return report, nil
		}
	}
	return VerifyReport{}, ErrMovingTarget
}

func createScratch(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	q := `CREATE SCHEMA ` + schema + `;`
	for _, t := range tables {
		q += ` CREATE TABLE ` + schema + `.` + t + ` (LIKE public.` + t + `);`
	}
	if _, err := pool.Exec(ctx, q); err != nil {
		return fmt.Errorf("verify: scratch schema: %w", err)
	}
	return nil
}

func writeScratch(ctx context.Context, pool *pgxpool.Pool, schema string, m *Model) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = `+schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `TRUNCATE bookings, seats, shows`); err != nil {
			return err
		}
		return m.Write(ctx, tx)
	})
}

// compare diffs scratch against public in one repeatable-read snapshot, if
// the projector's checkpoint in that snapshot is cp; otherwise same is false.
func compare(ctx context.Context, pool *pgxpool.Pool, scratch string, cp eventstore.Checkpoint) (report VerifyReport, same bool, err error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return VerifyReport{}, false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	store := eventstore.New(tx)
	now, err := store.ConsumerCheckpoint(ctx, ConsumerGroup)
	if err != nil || now != cp {
		return VerifyReport{}, false, err
	}
	report = VerifyReport{Checkpoint: cp}
	if report.Head, err = store.Last(ctx); err != nil {
		return VerifyReport{}, false, err
	}
	for _, t := range tables {
		for _, d := range []struct{ kind, from, minus string }{
			{"missing", scratch, "public"},
			{"unexpected", "public", scratch},
		} {
			rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT row_to_json(d)::text FROM
				(SELECT * FROM %s.%s EXCEPT ALL SELECT * FROM %s.%s) d LIMIT %d`, d.from, t, d.minus, t, maxDifferences))
			if err != nil {
				return VerifyReport{}, false, fmt.Errorf("verify %s: %w", t, err)
			}
			found, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return VerifyReport{}, false, fmt.Errorf("verify %s: %w", t, err)
			}
			for _, row := range found {
				report.Differences = append(report.Differences, Difference{Table: t, Kind: d.kind, Row: row})
			}
		}
	}
	return report, true, nil
}
