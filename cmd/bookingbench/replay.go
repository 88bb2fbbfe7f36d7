package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/projections"
)

// replaySeats is the size of every show of the replay scenario: each show's
// stream is its ShowScheduled and then, for every pair of seats, a
// SeatLocked followed by a BookingConfirmed (four pairs in five) or a
// BookingExpired (the fifth), so replaySeats+1 events per show.
const replaySeats = 100

// generateEventsSQL appends the streams of shows $1 … $2 to the events
// table in one statement, in stream order. The events are what the ledger
// would have written (the same types and JSON), made by PostgreSQL so that
// a million of them take seconds, not the minutes of booking them.
const generateEventsSQL = `
INSERT INTO events (stream_id, stream_version, event_id, event_type, data)
SELECT 'show-' || s, v, gen_random_uuid(), t, d FROM (
  SELECT s, 1 AS v, 'ShowScheduled' AS t,
    jsonb_build_object('show_id', s, 'name', 'Replay show ' || s, 'show_type', 'movie', 'start_time', '2027-01-01T20:00:00Z',
      'seat_numbers', (SELECT jsonb_agg('S' || k ORDER BY k) FROM generate_series(1, $3::int) k)) AS d
  FROM generate_series($1::bigint, $2::bigint) s
  UNION ALL
  SELECT s, 2 * k + e,
    CASE WHEN e = 0 THEN 'SeatLocked' WHEN k % 5 = 0 THEN 'BookingExpired' ELSE 'BookingConfirmed' END,
    CASE WHEN e = 0 THEN jsonb_build_object('booking_id', md5('b' || s || '-' || k)::uuid, 'user_id', md5('u' || (k % 50))::uuid,
           'seat_numbers', jsonb_build_array('S' || (2 * k - 1), 'S' || (2 * k)), 'expires_at', '2027-01-01T19:00:00Z')
         WHEN k % 5 = 0 THEN jsonb_build_object('booking_id', md5('b' || s || '-' || k)::uuid,
           'seat_numbers', jsonb_build_array('S' || (2 * k - 1), 'S' || (2 * k)))
         ELSE jsonb_build_object('booking_id', md5('b' || s || '-' || k)::uuid, 'confirmed_at', '2026-12-01T10:00:00Z') END
  FROM generate_series($1::bigint, $2::bigint) s, generate_series(1, $3::int / 2) k, generate_series(0, 1) e
) x ORDER BY s, v`

// replayResult is the replay scenario's outcome.
type replayResult struct {
	Scenario  string  `json:"scenario"`
	Events    int     `json:"events"`
	Shows     int     `json:"shows"`
	ReplayS   float64 `json:"replay_s"`
	PerSecond float64 `json:"replay_events_per_s"`
	VerifyS   float64 `json:"verify_s"`
}

// benchReplay generates about cfg.replayEvents events on a fresh database,
// rebuilds the projections from them with projections.Rebuild (what
// `bookingctl replay` runs), times it, and checks the result with
// projections.Verify.
func benchReplay(ctx context.Context, cfg config, stdout io.Writer, progress func(string, ...any)) (replayResult, error) {
	shows := max(1, cfg.replayEvents/(replaySeats+1))
	r := replayResult{Scenario: "replay", Shows: shows}
	dbName, done, err := scratchDB(ctx, cfg, "bookingbench_replay", func(format string, args ...any) { progress("replay: "+format, args...) })
	if err != nil {
		return r, err
	}
	defer done()
	pool, err := openPool(ctx, cfg.adminURL, dbName, 4)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		return r, err
	}

	progress("replay: generating %d shows × %d seats, %d events", shows, replaySeats, shows*(replaySeats+1))
	const chunk = 1000 // shows per statement
	for from := 1; from <= shows; from += chunk {
		if _, err := pool.Exec(ctx, generateEventsSQL, from, min(from+chunk-1, shows), replaySeats); err != nil {
			return r, fmt.Errorf("generate events: %w", err)
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		return r, err
	}
	// The generated million events are still being written out by the
	// checkpointer; the replay is timed on a settled server, as a replay
	// of an existing log would run. CHECKPOINT needs a superuser or the
	// pg_checkpoint role: without it the replay is timed all the same.
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		progress("replay: no checkpoint before the replay (%v)", err)
	}

	progress("replay: rebuilding the projections")
	rs, err := projections.Rebuild(ctx, pool, nil)
	if err != nil {
		return r, err
	}
	r.Events, r.ReplayS = rs.Events, round(rs.Elapsed.Seconds(), 2)
	r.PerSecond = round(float64(rs.Events)/rs.Elapsed.Seconds(), 0)
	progress("replay: %d events in %.2fs: %.0f events/s", r.Events, r.ReplayS, r.PerSecond)

	start := time.Now()
	report, err := projections.Verify(ctx, pool, nil)
	if err != nil {
		return r, err
	}
	r.VerifyS = round(time.Since(start).Seconds(), 2)
	if len(report.Differences) > 0 {
		return r, fmt.Errorf("replay: the rebuilt projections differ from a replay: %v", report.Differences[0])
	}
	if report.Events != r.Events {
		return r, fmt.Errorf("replay: verify replayed %d events, the rebuild %d", report.Events, r.Events)
	}

	if !cfg.jsonOnly {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tevents\tshows\treplay s\tevents/s\tverify s\t")
		fmt.Fprintf(tw, "replay\t%d\t%d\t%.2f\t%.0f\t%.2f\t\n", r.Events, r.Shows, r.ReplayS, r.PerSecond, r.VerifyS)
		if err := tw.Flush(); err != nil {
			return r, err
		}
	}
	line, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return r, err
}
