package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The global stream is ordered by (transaction_id, global_position), and a
// reader only reads below pg_snapshot_xmin: both assume the stored
// transaction ids come from this server's own transaction counter. A
// physical restore (a base backup with WAL, point-in-time recovery, a
// promoted replica) keeps the counter, so nothing changes. A logical one —
// pg_dump of the ledger restored into another cluster — does not: the new
// server's counter is usually far below the ids stored in events and
// consumer_offsets, so every restored event looks like it belongs to a
// transaction that has not started yet, no reader ever gets past it, and new
// appends sort before it. Rebase repairs that.

// ErrForeignTransactionIDs: the events carry transaction ids this server has
// not reached yet (a logical restore from another cluster); run Rebase
// (bookingctl rebase-xids) before using the ledger.
var ErrForeignTransactionIDs = errors.New("the events carry transaction ids from another PostgreSQL cluster (a logical restore); run `bookingctl rebase-xids` first")

// CheckTransactionIDs returns ErrForeignTransactionIDs when the stored
// transaction ids are ahead of the server's counter.
func (s *Store) CheckTransactionIDs(ctx context.Context) error {
	var stored, next uint64
	err := s.db.QueryRow(ctx, `SELECT coalesce((SELECT max(transaction_id) FROM events)::text::bigint, 0),
		pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&stored, &next)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return nil // not migrated yet: nothing stored
	}
	if err != nil {
		return fmt.Errorf("check transaction ids: %w", err)
	}
	if stored >= next {
		return fmt.Errorf("%w (largest stored %d, server's next %d)", ErrForeignTransactionIDs, stored, next)
	}
	return nil
}

// RebaseStats reports a Rebase.
type RebaseStats struct {
	Rebased      bool  // false: the ids were already this server's
	Transactions int64 // distinct stored transaction ids
	Burned       int64 // transaction ids consumed to get the counter past them
	Checkpoints  int64 // consumer groups whose checkpoint was translated
}

// Rebase gives the restored events transaction ids from this server's past,
// keeping their order: the k-th smallest stored id becomes k+2 (the first
// normal transaction id is 3), and every consumer group's checkpoint follows
// its event, so each consumer resumes exactly where it was. When the server
// has not yet used that many ids, Rebase first consumes enough of them
// (subtransactions that each write one row of a temporary table). Appends
// must be stopped while it runs; it locks the events table, and it is one
// transaction: it either rebases everything or nothing.
func Rebase(ctx context.Context, pool *pgxpool.Pool) (RebaseStats, error) {
	var st RebaseStats
	if err := New(pool).CheckTransactionIDs(ctx); err == nil {
		return st, nil
	} else if !errors.Is(err, ErrForeignTransactionIDs) {
		return st, err
	}
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT transaction_id) FROM events`).Scan(&st.Transactions); err != nil {
		return st, fmt.Errorf("rebase: %w", err)
	}
	// The new ids are 3 … Transactions+2; the rebasing transaction's own id
	// must be above them, so that once it commits they are all in the past.
	var next int64
	if err := pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&next); err != nil {
		return st, fmt.Errorf("rebase: %w", err)
	}
	if need := st.Transactions + 3 - next; need > 0 {
		if err := burnTransactionIDs(ctx, pool, need+100); err != nil {
			return st, err
		}
		st.Burned = need + 100
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE events, consumer_offsets IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		// Under the lock: nothing was appended since the ids were counted,
		// and this transaction's own id is above every new one.
		var fits bool
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT transaction_id) + 2 < pg_current_xact_id()::text::bigint FROM events`).Scan(&fits); err != nil {
			return err
		}
		if !fits {
			return errors.New("events were appended while rebasing (stop every bookingd and bookingctl first); nothing was changed")
		}
		for _, q := range []string{
			`CREATE TEMP TABLE xid_map ON COMMIT DROP AS
				SELECT transaction_id AS old, (row_number() OVER (ORDER BY transaction_id) + 2)::text::xid8 AS new
				FROM (SELECT DISTINCT transaction_id FROM events) d`,
			`CREATE UNIQUE INDEX ON xid_map (old)`,
			// Old and new ids can overlap while rows are rewritten one by
			// one, so the primary key (the stream's order) is rebuilt after.
			`ALTER TABLE events DROP CONSTRAINT events_pkey`,
			`UPDATE events e SET transaction_id = m.new FROM xid_map m WHERE e.transaction_id = m.old`,
			`ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (transaction_id, global_position)`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%.60s…: %w", q, err)
			}
		}
		// A checkpoint names the transaction of the last event it consumed
		// (or 0 before the first): anything else cannot be translated.
		var orphans int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM consumer_offsets c
			WHERE c.last_processed_transaction_id <> '0' AND NOT EXISTS (SELECT 1 FROM xid_map m WHERE m.old = c.last_processed_transaction_id)`).Scan(&orphans); err != nil {
			return err
		}
		if orphans > 0 {
			return fmt.Errorf("%d consumer checkpoints name a transaction no event has; nothing was changed", orphans)
		}
		tag, err := tx.Exec(ctx, `UPDATE consumer_offsets c SET last_processed_transaction_id = m.new
			FROM xid_map m WHERE c.last_processed_transaction_id = m.old`)
		if err != nil {
			return err
		}
		st.Checkpoints = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("rebase: %w", err)
	}
	st.Rebased = true
	return st, New(pool).CheckTransactionIDs(ctx)
}

// burnTransactionIDs consumes n transaction ids in one transaction: each
// subtransaction that writes gets an id of its own.
func burnTransactionIDs(ctx context.Context, pool *pgxpool.Pool, n int64) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE xid_burn (n int) ON COMMIT DROP`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`DO $$
			BEGIN
				FOR i IN 1..%d LOOP
					BEGIN
						INSERT INTO xid_burn VALUES (i);
					EXCEPTION WHEN others THEN RAISE;
					END;
				END LOOP;
			END $$`, n))
		if err != nil {
			return fmt.Errorf("advance the transaction counter by %d: %w", n, err)
		}
		return nil
	})
}

// Import appends events exported by another ledger (bookingctl export) as
// they were: their positions, ids, types, data, metadata and times. It is one
// transaction. Every stream must continue exactly where this ledger's copy
// of it ends (the first event of a stream it does not have yet is version 1);
// an event this ledger already has — the same stream, version and event id —
// is skipped, so an import that failed halfway is resumed by running it again
// and a repeated import adds nothing, while a different event at a version
// already taken is refused. Positions need not increase through the input:
// an export is in stream order, where concurrent transactions interleave
// positions. The identity sequence of global_position and the show id
// sequence move past what was imported, so new appends and new shows do not
// collide with it. Import returns how many events it added.
//
// The imported events get this server's transaction id, so they sort after
// everything already here and before anything appended later: within one
// import transaction in order of position, which within each stream is
// version order.
func Import(ctx context.Context, pool *pgxpool.Pool, events []Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	added := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE events IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		streams := map[string]int{}
		var ids []string
		for _, e := range events {
			if _, ok := streams[e.StreamID]; !ok {
				streams[e.StreamID] = 0
				ids = append(ids, e.StreamID)
			}
		}
		rows, err := tx.Query(ctx, `SELECT stream_id, max(stream_version) FROM events WHERE stream_id = ANY($1) GROUP BY stream_id`, ids)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var v int
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return err
			}
			streams[id] = v
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var (
			copyRows [][]any
			last     int64
		)
		for _, e := range events {
			switch {
			case e.ID == uuid.Nil || e.Type == "" || len(e.Data) == 0 || e.StreamID == "" || e.GlobalPosition <= 0:
				return fmt.Errorf("the event at position %d needs a stream_id, a global_position, an event_id, an event_type and data", e.GlobalPosition)
			case e.StreamVersion <= streams[e.StreamID]:
				var stored uuid.UUID
				if err := tx.QueryRow(ctx, `SELECT event_id FROM events WHERE stream_id = $1 AND stream_version = $2`,
					e.StreamID, e.StreamVersion).Scan(&stored); err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				if stored != e.ID {
					return fmt.Errorf("%s v%d is already here as another event (%s, not %s): this export is not this ledger's history", e.StreamID, e.StreamVersion, stored, e.ID)
				}
				continue // imported before
			case e.StreamVersion != streams[e.StreamID]+1:
				return fmt.Errorf("%s v%d does not continue the stream (here at v%d)", e.StreamID, e.StreamVersion, streams[e.StreamID])
			}
			streams[e.StreamID] = e.StreamVersion
			last = max(last, e.GlobalPosition)
			meta := e.Metadata
			if len(meta) == 0 {
				meta = []byte("{}")
			}
			copyRows = append(copyRows, []any{e.GlobalPosition, e.StreamID, e.StreamVersion, [16]byte(e.ID), e.Type, string(e.Data), string(meta), e.RecordedAt})
		}
		if len(copyRows) == 0 {
			return nil
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"global_position", "stream_id", "stream_version", "event_id", "event_type", "data", "metadata", "recorded_at"},
			pgx.CopyFromRows(copyRows)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('events', 'global_position'),
				greatest($1, (SELECT max(global_position) FROM events))),
			setval('show_ids', greatest((SELECT last_value FROM show_ids),
				(SELECT coalesce(max(substr(stream_id, 6)::bigint), 1) FROM events WHERE stream_id LIKE 'show-%')))`, last)
		if err != nil {
			return fmt.Errorf("move the sequences: %w", err)
		}
		added = len(copyRows)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	return added, nil
}
