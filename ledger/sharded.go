package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/shards"
)

// Sharded is the command side of a ledger on several databases: one Service
// per shard (each made WithShard(k) on shard k's database), and every
// command sent to the shard of its show (shards.Of). Each shard keeps its
// own show cache and group commit, so batching works per shard. New shows
// go to the shards in turn; a booking named only by its id is found on the
// shard its id names, or, for an id that names none (made before
// sharding), on every shard.
type Sharded struct {
	shards []*Service
	next   atomic.Uint64
}

// NewSharded routes over services, shard k at index k.
func NewSharded(services ...*Service) (*Sharded, error) {
	if len(services) == 0 || len(services) > shards.MaxShards {
		return nil, fmt.Errorf("sharded ledger: want 1 to %d shards, got %d", shards.MaxShards, len(services))
	}
	return &Sharded{shards: services}, nil
}

// N is the number of shards.
func (s *Sharded) N() int { return len(s.shards) }

// For is the service of show's shard.
func (s *Sharded) For(show domain.ShowID) *Service { return s.shards[shards.Of(show, len(s.shards))] }

// Shard is the service of shard k.
func (s *Sharded) Shard(k int) *Service { return s.shards[k] }

// ScheduleShow schedules a show on the next shard in turn; its id, from
// that shard's sequence, names the shard (shards.ConfigureIDs).
func (s *Sharded) ScheduleShow(ctx context.Context, in ScheduleInput, meta Metadata) (Result, error) {
	k := int((s.next.Add(1) - 1) % uint64(len(s.shards)))
	res, err := s.shards[k].ScheduleShow(ctx, in, meta)
	if err == nil && shards.Of(res.ShowID, len(s.shards)) != k {
		// The shard's sequence was not set up for this layout: the show
		// is recorded, but on a shard its id does not name.
		return res, fmt.Errorf("show %d was created on shard %d, which its id does not name: run bookingctl migrate with DATABASE_SHARD_URLS", res.ShowID, k)
	}
	return res, err
}

// Hold places a hold on the show's shard.
func (s *Sharded) Hold(ctx context.Context, show domain.ShowID, user domain.UserID, seats []string, meta Metadata) (domain.Booking, Result, error) {
	return s.For(show).Hold(ctx, show, user, seats, meta)
}

// Confirm confirms a booking on its show's shard.
func (s *Sharded) Confirm(ctx context.Context, show domain.ShowID, booking domain.BookingID, meta Metadata) (Result, error) {
	return s.For(show).Confirm(ctx, show, booking, meta)
}

// Expire expires a hold on its show's shard.
func (s *Sharded) Expire(ctx context.Context, show domain.ShowID, booking domain.BookingID, meta Metadata) (Result, error) {
	return s.For(show).Expire(ctx, show, booking, meta)
}

// Cancel cancels a booking on its show's shard.
func (s *Sharded) Cancel(ctx context.Context, show domain.ShowID, booking domain.BookingID, meta Metadata) (Result, error) {
	return s.For(show).Cancel(ctx, show, booking, meta)
}

// Booking returns a booking from its show's shard.
func (s *Sharded) Booking(ctx context.Context, show domain.ShowID, id domain.BookingID) (domain.Booking, error) {
	return s.For(show).Booking(ctx, show, id)
}

// ShowOfBooking finds a booking's show: on the shard its id names first,
// then on every other shard (ids made before sharding name none reliably).
func (s *Sharded) ShowOfBooking(ctx context.Context, booking domain.BookingID) (domain.ShowID, error) {
	order := make([]int, 0, len(s.shards))
	if id, err := uuid.Parse(string(booking)); err == nil {
		if k, ok := shards.BookingShard(id, len(s.shards)); ok {
			order = append(order, k)
		}
	}
	for k := range s.shards {
		if len(order) == 0 || k != order[0] {
			order = append(order, k)
		}
	}
	for _, k := range order {
		show, err := s.shards[k].ShowOfBooking(ctx, booking)
		var notFound *domain.BookingNotFoundError
		if errors.As(err, &notFound) {
			continue
		}
		return show, err
	}
	return 0, &domain.BookingNotFoundError{BookingID: booking}
}
