package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// seedSchema is the seed design's booking tables: mutable rows, a counter of
// free seats per show, row locks for consistency.
const seedSchema = `
CREATE TABLE shows (
    id              bigint PRIMARY KEY,
    name            text   NOT NULL,
    total_seats     int    NOT NULL,
    available_seats int    NOT NULL CHECK (available_seats >= 0)
);
CREATE TABLE bookings (
    id           uuid        PRIMARY KEY,
    show_id      bigint      NOT NULL REFERENCES shows (id),
    user_id      uuid        NOT NULL,
    seat_numbers text[]      NOT NULL,
    status       text        NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE seats (
    show_id     bigint NOT NULL REFERENCES shows (id),
    seat_number text   NOT NULL,
    status      text   NOT NULL DEFAULT 'available',
    booking_id  uuid   REFERENCES bookings (id),
    PRIMARY KEY (show_id, seat_number)
);`

// seedHoldTTL is how long the seed design's holds last.
const seedHoldTTL = 10 * time.Minute

type seedTarget struct {
	pool *pgxpool.Pool
}

// newSeed creates the seed design's tables and fills them with the
// scenario's shows (ids 1 … shows) and seats.
func newSeed(ctx context.Context, pool *pgxpool.Pool, sc scenario, labels []string) (*seedTarget, error) {
	if _, err := pool.Exec(ctx, seedSchema); err != nil {
		return nil, fmt.Errorf("seed schema: %w", err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"shows"}, []string{"id", "name", "total_seats", "available_seats"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i == sc.shows {
					return nil, nil
				}
				i++
				return []any{int64(i), fmt.Sprintf("Bench show %d", i), len(labels), len(labels)}, nil
			}
		}())); err != nil {
		return nil, fmt.Errorf("seed shows: %w", err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"seats"}, []string{"show_id", "seat_number"},
		pgx.CopyFromFunc(func() func() ([]any, error) {
			n := 0
			return func() ([]any, error) {
				if n == sc.shows*len(labels) {
					return nil, nil
				}
				show, seat := n/len(labels), n%len(labels)
				n++
				return []any{int64(show + 1), labels[seat]}, nil
			}
		}())); err != nil {
		return nil, fmt.Errorf("seed seats: %w", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		return nil, fmt.Errorf("seed analyze: %w", err)
	}
	return &seedTarget{pool: pool}, nil
}

func (s *seedTarget) clients(_ context.Context, n int) ([]bookFunc, error) {
	out := make([]bookFunc, n)
	for i := range out {
		user := uuid.New()
		out[i] = func(ctx context.Context, j job) (string, error) { return s.book(ctx, user, j) }
	}
	return out, nil
}

// book is the seed design's transaction: lock the show, lock the seats,
// check them, write the booking, the seats and the show's counter.
func (s *seedTarget) book(ctx context.Context, user uuid.UUID, j job) (string, error) {
	show := int64(j.show + 1)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit

	var available int
	if err := tx.QueryRow(ctx, `SELECT available_seats FROM shows WHERE id = $1 FOR UPDATE`, show).Scan(&available); err != nil {
		return "", fmt.Errorf("lock show %d: %w", show, err)
	}
	rows, err := tx.Query(ctx, `SELECT seat_number, status FROM seats
		WHERE show_id = $1 AND seat_number = ANY($2) FOR UPDATE`, show, j.seats)
	if err != nil {
		return "", fmt.Errorf("lock seats: %w", err)
	}
	free := 0
	for rows.Next() {
		var number, status string
		if err := rows.Scan(&number, &status); err != nil {
			rows.Close()
			return "", fmt.Errorf("lock seats: %w", err)
		}
		if status == "available" {
			free++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("lock seats: %w", err)
	}
	if free != len(j.seats) || available < len(j.seats) {
		return "", fmt.Errorf("%w: %d of %d seats of show %d available", errRefused, free, len(j.seats), show)
	}

	id := uuid.Must(uuid.NewV7())
	if _, err := tx.Exec(ctx, `INSERT INTO bookings (id, show_id, user_id, seat_numbers, status, expires_at)
		VALUES ($1, $2, $3, $4, 'pending', $5)`, id, show, user, j.seats, time.Now().Add(seedHoldTTL)); err != nil {
		return "", fmt.Errorf("insert booking: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE seats SET status = 'locked', booking_id = $3
		WHERE show_id = $1 AND seat_number = ANY($2)`, show, j.seats, id); err != nil {
		return "", fmt.Errorf("update seats: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE shows SET available_seats = available_seats - $2 WHERE id = $1`, show, len(j.seats)); err != nil {
		return "", fmt.Errorf("update show: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	return id.String(), nil
}

// verify checks the seed's tables: no seat in two live bookings, every
// acknowledged booking stored, live, on its show and holding all its seats,
// and the counters agreeing with the seats.
func (s *seedTarget) verify(ctx context.Context, ok []success) (verdict, error) {
	var v verdict
	// Statistics from before the run say bookings is empty.
	if _, err := s.pool.Exec(ctx, `ANALYZE`); err != nil {
		return v, fmt.Errorf("analyze: %w", err)
	}
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT b.show_id, seat FROM bookings b CROSS JOIN LATERAL unnest(b.seat_numbers) AS seat
		WHERE b.status IN ('pending', 'confirmed')
		GROUP BY b.show_id, seat HAVING count(*) > 1) AS twice`).Scan(&v.oversold)
	if err != nil {
		return v, fmt.Errorf("oversold seats: %w", err)
	}

	ids := make([]uuid.UUID, len(ok))
	shows := make([]int64, len(ok))
	for i, o := range ok {
		id, err := uuid.Parse(o.id)
		if err != nil {
			return v, fmt.Errorf("booking id %q: %w", o.id, err)
		}
		ids[i], shows[i] = id, int64(o.show+1)
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::uuid[], $2::bigint[]) AS ok(id, show_id)
		WHERE NOT EXISTS (
			SELECT 1 FROM bookings b
			WHERE b.id = ok.id AND b.show_id = ok.show_id AND b.status IN ('pending', 'confirmed')
			  AND NOT EXISTS (SELECT 1 FROM seats s WHERE s.show_id = b.show_id
			                  AND s.seat_number = ANY(b.seat_numbers) AND s.booking_id IS DISTINCT FROM b.id)
			  AND (SELECT count(*) FROM seats s WHERE s.show_id = b.show_id
			       AND s.seat_number = ANY(b.seat_numbers)) = cardinality(b.seat_numbers))`, ids, shows).Scan(&v.lost)
	if err != nil {
		return v, fmt.Errorf("lost bookings: %w", err)
	}

	var wrongCounters int
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM shows sh
		WHERE sh.available_seats <> (SELECT count(*) FROM seats s WHERE s.show_id = sh.id AND s.status = 'available')`).Scan(&wrongCounters)
	if err != nil {
		return v, fmt.Errorf("seat counters: %w", err)
	}
	if wrongCounters > 0 {
		return v, errors.New("seed: shows.available_seats disagrees with the seats table")
	}
	return v, nil
}

func (s *seedTarget) close() {}
