// Package shards holds what places a ledger across several PostgreSQL
// databases (DATABASE_SHARD_URLS, DESIGN.md "Scale-out"): show id k lives on
// shard k mod N — its stream, its projections, its consumers — and the
// rules that keep that true and let reads and the stream span the shards.
//
//   - Show ids: each shard's show_ids sequence hands out only ids of its own
//     residue (ConfigureIDs), so an id names its shard without a lookup and
//     shows created on a shard stay there.
//   - Bookings: a booking id carries its shard in its last byte
//     (NewBookingID, BookingShard), so a confirmation or cancellation that
//     names only the booking goes straight to its shard.
//   - Reads across shards: each shard answers the same keyset query and
//     Merge keeps the first page of the union in order; the next cursor is
//     the last item's key, which every shard understands.
//   - The stream across shards: each shard's stream stays ordered and
//     gap-free on its own; a Cursor is one position per shard, so a slow
//     shard never makes a reader skip or repeat another's events.
//
// The package does no IO except ConfigureIDs; wiring it into bookingd is the
// job of the commands that open the shards.
package shards

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bookingledger/ledger/domain"
)

// MaxShards is how many shards booking ids can name (one byte).
const MaxShards = 256

// Of returns the shard of show id among n shards.
func Of(id domain.ShowID, n int) int { return int(int64(id) % int64(n)) }

// DB is what ConfigureIDs needs: a pool or a connection.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ErrForeignShows: a shard holds shows whose ids belong to another shard
// (it was filled before it became shard k of n); moving them is a
// resharding, not a configuration.
var ErrForeignShows = errors.New("the shard holds shows of another shard")

// ConfigureIDs makes shard k of n hand out only show ids ≡ k (mod n) — k,
// k+n, k+2n … (shard 0: n, 2n …) — continuing after every id it handed out
// before. It is idempotent, and refuses a shard that already holds shows of
// another residue. It is one transaction that changes the sequence before
// reading it, which holds off every nextval until it commits, so shows may
// be created meanwhile.
func ConfigureIDs(ctx context.Context, db DB, k, n int) error {
	if n < 1 || n > MaxShards || k < 0 || k >= n {
		return fmt.Errorf("shard %d of %d: want 0 ≤ k < n ≤ %d", k, n, MaxShards)
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return configureIDs(ctx, tx, k, n) })
}

func configureIDs(ctx context.Context, db pgx.Tx, k, n int) error {
	// First: ALTER SEQUENCE locks the sequence against nextval until commit.
	if _, err := db.Exec(ctx, fmt.Sprintf(`ALTER SEQUENCE show_ids INCREMENT BY %d`, n)); err != nil {
		return fmt.Errorf("shard %d of %d: %w", k, n, err)
	}
	var foreign int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = $1
		AND (data ->> 'show_id')::bigint % $2 <> $3`, domain.TypeShowScheduled, n, k).Scan(&foreign); err != nil {
		return fmt.Errorf("shard %d of %d: %w", k, n, err)
	}
	if foreign > 0 {
		return fmt.Errorf("shard %d of %d: %w (%d shows)", k, n, ErrForeignShows, foreign)
	}
	// The sequence's own state (its next value) and the largest show id
	// stored bound what was handed out.
	var (
		last, increment, stored int64
		called                  bool
	)
	err := db.QueryRow(ctx, `SELECT s.last_value, s.is_called, q.increment_by,
			coalesce((SELECT max((data ->> 'show_id')::bigint) FROM events WHERE event_type = $1), 0)
		FROM show_ids s, pg_sequences q
		WHERE q.schemaname = current_schema() AND q.sequencename = 'show_ids'`, domain.TypeShowScheduled).
		Scan(&last, &called, &increment, &stored)
	if err != nil {
		return fmt.Errorf("shard %d of %d: read show_ids: %w", k, n, err)
	}
	// The sequence's increment is already n (set above); last_value is what
	// it handed out last under the old one.
	seqNext := last // what nextval would return now
	if called {
		seqNext = last + increment
	}
	next := NextID(max(seqNext-1, stored), k, n)
	if seqNext == next {
		return nil // already configured
	}
	if _, err := db.Exec(ctx, `SELECT setval('show_ids', $1, false)`, next); err != nil {
		return fmt.Errorf("shard %d of %d: %w", k, n, err)
	}
	return nil
}

// ErrLayout: a database is not set up as shard k of n — its show id
// sequence hands out another residue, or it holds another shard's shows.
var ErrLayout = errors.New("the database is not set up as this shard")

// CheckIDs reports, without changing anything, whether db is set up as
// shard k of n: its show id sequence steps by n and hands out ids ≡ k
// (mod n) next. bookingd refuses to start on a shard list that does not
// match how the shards were migrated (reordered, or grown without
// bookingctl migrate). A step that is a multiple of n passes: while shard k
// of n is split into k and k+n (docs/scaling.md) it steps by 2n and the
// running deployment goes on. It does not look for other shards' shows:
// the old shards still hold the moving ones then. One shard (n = 1)
// always matches.
func CheckIDs(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, k, n int) error {
	if n == 1 {
		return nil
	}
	var (
		last, increment int64
		called          bool
	)
	err := db.QueryRow(ctx, `SELECT s.last_value, s.is_called, q.increment_by
		FROM show_ids s, pg_sequences q
		WHERE q.schemaname = current_schema() AND q.sequencename = 'show_ids'`).
		Scan(&last, &called, &increment)
	if err != nil {
		return fmt.Errorf("shard %d of %d: read show_ids: %w", k, n, err)
	}
	next := last
	if called {
		next = last + increment
	}
	// A step that is a multiple of n is a shard being split (docs/scaling.md,
	// resharding step 2): it hands out ids of its own residue still.
	switch {
	case increment == 1:
		return fmt.Errorf("shard %d of %d: %w: it was never set up as a shard (run bookingctl migrate with DATABASE_SHARD_URLS)", k, n, ErrLayout)
	case increment%int64(n) != 0:
		return fmt.Errorf("shard %d of %d: %w: it was set up as one of %d shards (show ids in steps of %d); adding or removing shards is a resharding (docs/scaling.md)",
			k, n, ErrLayout, increment, increment)
	case next%int64(n) != int64(k):
		return fmt.Errorf("shard %d of %d: %w: it hands out the show ids of shard %d — the list is in another order than the one bookingctl migrate set up; put this database at position %d",
			k, n, ErrLayout, next%int64(n), next%int64(n))
	}
	return nil
}

// NextID is the smallest positive id above used that shard k of n owns.
func NextID(used int64, k, n int) int64 {
	next := used + 1
	if r := next % int64(n); r != int64(k) {
		next += (int64(k) - r + int64(n)) % int64(n)
	}
	if next <= 0 {
		next += int64(n)
	}
	return next
}

// NewBookingID is a UUIDv7 (time-ordered, as the ledger's booking ids are)
// whose last byte names shard k.
func NewBookingID(k int) uuid.UUID {
	id := uuid.Must(uuid.NewV7())
	id[15] = byte(k)
	return id
}

// BookingShard is the shard a booking id names among n, and false when the
// byte names no shard of n. An id made before sharding (or under another n)
// has a random last byte that may name a wrong shard: a caller that does not
// find the booking on the named shard looks on every shard.
func BookingShard(id uuid.UUID, n int) (int, bool) {
	k := int(id[15])
	return k, k < n
}

// Merge returns, in order, the first limit items of the union of pages,
// each already sorted by cmp and each the first limit items of its shard
// after the same cursor: those hold the union's first limit items.
func Merge[T any](pages [][]T, compare func(a, b T) int, limit int) []T {
	var all []T
	for _, p := range pages {
		all = append(all, p...)
	}
	slices.SortStableFunc(all, compare)
	if len(all) > limit {
		all = all[:limit]
	}
	return all
}

// Cursor is a reader's place in the streams of n shards: the global
// position of the last event it has of each (0: none yet).
type Cursor []int64

// String is the cursor as clients pass it: the positions joined by commas
// ("12,0,7,3"); one shard's cursor is its plain position.
func (c Cursor) String() string {
	parts := make([]string, len(c))
	for i, p := range c {
		parts[i] = strconv.FormatInt(p, 10)
	}
	return strings.Join(parts, ",")
}

// ParseCursor reads a cursor of n shards. An empty string or "0" is the
// start.
func ParseCursor(s string, n int) (Cursor, error) {
	c := make(Cursor, n)
	if s == "" || s == "0" {
		return c, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("cursor %q: want %d positions, one per shard, separated by commas", s, n)
	}
	for i, p := range parts {
		v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("cursor %q: position %d is not a whole number ≥ 0", s, i+1)
		}
		c[i] = v
	}
	return c, nil
}

// Advance returns c with shard k at the event at position pos, the last one
// read from it. (Not the largest position read: a shard's stream is in
// commit order, where concurrent transactions interleave positions; a
// position is resolved to its place in the stream by
// eventstore.Store.CheckpointAt.)
func (c Cursor) Advance(k int, pos int64) Cursor {
	out := slices.Clone(c)
	out[k] = pos
	return out
}
