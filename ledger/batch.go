package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
)

// Group commit. Commands for one show are decided one after another against
// its in-memory state, and those that arrive while an append is in flight
// queue up: the next append takes them all, decided in order against the
// state as each earlier one leaves it, in one INSERT and one commit. Under
// load a hot show commits a batch per round trip instead of a command per
// round trip; alone, a command goes out at once. The stream's expected
// version still guards every append, so another process writing the same
// show makes the batch catch up and decide again.

// maxBatch bounds how many commands one append carries.
const maxBatch = 256

type request struct {
	command func(now time.Time) domain.Command
	meta    json.RawMessage
	done    chan outcome
}

type outcome struct {
	res Result
	err error
}

func (s *Service) execute(ctx context.Context, id domain.ShowID, meta Metadata, command func(now time.Time) domain.Command) (Result, error) {
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return Result{}, fmt.Errorf("metadata: %w", err)
	}
	req := &request{command: command, meta: metaJSON, done: make(chan outcome, 1)}
	e := s.cache.entry(id)
	e.qmu.Lock()
	e.queue = append(e.queue, req)
	lead := !e.leading
	e.leading = true
	e.qmu.Unlock()
	if lead {
		// The leader works for everyone queued, so its own request's
		// cancellation must not cut the others' append short; and its own
		// request is answered by the time lead returns, whatever ctx says.
		s.lead(context.WithoutCancel(ctx), id, e)
		out := <-req.done
		return out.res, out.err
	}
	select {
	case out := <-req.done:
		return out.res, out.err
	case <-ctx.Done():
		// The command may still be decided and committed: like a lost
		// answer, the caller learns the outcome from the stream.
		return Result{}, ctx.Err()
	}
}

// lead runs the show's next batch, which holds the calling leader's own
// request: a leader is a caller whose request found the queue empty, and
// nothing is queued before it. When more requests are queued by then, a
// new goroutine leads them, so that no caller waits for the commands that
// came after its own while the show stays busy.
func (s *Service) lead(ctx context.Context, id domain.ShowID, e *cacheEntry) {
	if s.runNextBatch(ctx, id, e) {
		s.spawn(func() { s.leadOn(ctx, id, e) })
	}
}

// leadOn runs the show's batches until its queue is empty.
func (s *Service) leadOn(ctx context.Context, id domain.ShowID, e *cacheEntry) {
	for s.runNextBatch(ctx, id, e) {
	}
}

// runNextBatch takes the next batch off the show's queue, runs it and
// answers its requests. It returns whether more requests are queued; when
// none is, the show has no leader any more.
func (s *Service) runNextBatch(ctx context.Context, id domain.ShowID, e *cacheEntry) (more bool) {
	e.qmu.Lock()
	batch := e.queue[:min(len(e.queue), maxBatch)]
	e.queue = e.queue[len(batch):]
	e.qmu.Unlock()
	if len(batch) > 0 {
		e.mu.Lock()
		results := s.runBatch(ctx, id, e, batch)
		e.mu.Unlock()
		for i, r := range batch {
			r.done <- results[i]
		}
	}
	e.qmu.Lock()
	defer e.qmu.Unlock()
	if len(e.queue) == 0 {
		e.leading = false
		return false
	}
	return true
}

// runBatch decides and appends a batch, retrying on version conflicts.
func (s *Service) runBatch(ctx context.Context, id domain.ShowID, e *cacheEntry, batch []*request) []outcome {
	fail := func(err error) []outcome {
		out := make([]outcome, len(batch))
		for i := range out {
			out[i].err = err
		}
		return out
	}
	// readAt is the clock just before e.show was last read from the stream
	// in this call; zero while it is the state kept in memory.
	var readAt time.Time
	read := func() (moved bool, err error) {
		readAt = s.now()
		return s.catchUp(ctx, e, id)
	}
	for attempt := 0; ; attempt++ {
		if e.show == nil || !e.show.Scheduled() {
			// Unknown shows are not trusted from cache: load every time.
			if _, err := read(); err != nil {
				return fail(err)
			}
		}
		out, data, counts, apply := s.decideBatch(e.show, batch)
		if len(data) == 0 {
			if s.onRefusals != nil {
				s.onRefusals()
			}
			// Only refusals. Decided on the stream as just read, they stand
			// if the read's moment refuses them alike: however busy the show
			// is since, that read is their moment. Decided on the state kept
			// in memory, they stand if the stream has not moved.
			if !readAt.IsZero() && s.refusedAlike(e.show, batch, out, readAt) {
				return out
			}
			moved, err := read()
			if err != nil {
				return fail(err)
			}
			if !moved {
				return out
			}
			if attempt < s.cfg.MaxRetries {
				continue
			}
			// Decided on a state the stream has left: a refusal for what the
			// show's state decides is not sure, one of the command itself
			// (unknown seats, a malformed request) is.
			for i := range out {
				if !errors.Is(out[i].err, domain.ErrInvalidCommand) {
					out[i].err = fmt.Errorf("%s: %w", id.StreamID(), ErrTooManyConflicts)
				}
			}
			return out
		}
		sa := eventstore.StreamAppend{Stream: id.StreamID(), ExpectedVersion: e.show.Version(), Events: data}
		var (
			stored []eventstore.Event
			err    error
		)
		if attempt == 0 {
			stored, err = s.appender.append(ctx, sa)
		} else {
			// Decided again on a state just caught up: appended at once, not
			// after the group in flight, so that another process writing
			// this show has the least time to move it again.
			actx, cancel := context.WithTimeout(ctx, statementTimeout) // the show is locked meanwhile
			stored, err = s.store.Append(actx, sa.Stream, sa.ExpectedVersion, sa.Events)
			cancel()
		}
		if errors.Is(err, eventstore.ErrVersionConflict) {
			if s.onConflict != nil {
				s.onConflict()
			}
			if _, err := read(); err != nil {
				return fail(err)
			}
			if attempt < s.cfg.MaxRetries {
				continue
			}
			return fail(fmt.Errorf("%s: %w", id.StreamID(), ErrTooManyConflicts))
		}
		if err != nil {
			// The append may or may not have committed: forget the state so
			// the next command reloads it.
			e.show = nil
			return fail(err)
		}
		s.announcer.Announce()
		if s.onBatch != nil {
			s.onBatch(len(batch))
		}
		// The append proved the state was current, so the refusals in the
		// batch were decided on fresh state too.
		e.show = apply()
		next := 0
		for i := range out {
			if out[i].err != nil {
				continue
			}
			out[i].res.ShowID = id
			out[i].res.Events = stored[next : next+counts[i]]
			next += counts[i]
		}
		return out
	}
}

// refusedAlike reports whether every command of batch, all refused on show
// as out says, is refused the same way (the same error, the same seats) at
// the fixed time at, taken just before show was read. Each rule compares
// the time with a deadline (a hold's expiry, the show's start), so a
// command refused alike at at and at the time of out is refused alike at
// every moment between: at the read too, whose state show is. A refusal
// that the time between changed (a hold that expired after the read, and
// that another process may have confirmed since) is not sure.
func (s *Service) refusedAlike(show *domain.Show, batch []*request, out []outcome, at time.Time) bool {
	at = at.UTC().Truncate(time.Microsecond)
	for i, r := range batch {
		// All were refused, so each was decided on show itself.
		_, err := domain.Decide(show, r.command(at))
		if err == nil || err.Error() != out[i].err.Error() {
			return false
		}
	}
	return true
}

// decideBatch decides each request in order against the state as the
// requests before it leave it. It returns each request's outcome (refusals
// filled in; results completed by the caller after the append), the events
// to append, how many each request contributed, and apply, which moves the
// cached state past the batch once the append succeeded. A batch of one
// decides on the cached state itself; larger batches on a copy, so a failed
// append leaves the cache as it was.
func (s *Service) decideBatch(show *domain.Show, batch []*request) (out []outcome, data []eventstore.EventData, counts []int, apply func() *domain.Show) {
	out = make([]outcome, len(batch))
	counts = make([]int, len(batch))
	working := show
	if len(batch) > 1 {
		working = show.Clone()
	}
	var decided []domain.Event
	for i, r := range batch {
		// Microseconds: what PostgreSQL keeps, so every view of a time agrees.
		events, err := domain.Decide(working, r.command(s.now().UTC().Truncate(time.Microsecond)))
		if err == nil {
			var d []eventstore.EventData
			if d, err = encode(events, r.meta); err == nil {
				data = append(data, d...)
				counts[i] = len(events)
				out[i].res.Version = working.Version() + len(events)
				if len(batch) > 1 {
					for _, ev := range events {
						working.Evolve(ev)
					}
				} else {
					decided = events
				}
			}
		}
		out[i].err = err
	}
	return out, data, counts, func() *domain.Show {
		for _, ev := range decided { // a batch of one: evolve the cached state now
			working.Evolve(ev)
		}
		return working
	}
}
