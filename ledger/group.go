package ledger

import (
	"context"
	"sync"
	"time"

	"github.com/bookingledger/ledger/eventstore"
)

// Group commit across shows. Each show's leader (batch.go) decides its
// commands and hands the events to the service's appender. Appends of
// different shows that wait together go out as one statement
// (eventstore.Store.AppendStreams), so one commit carries many shows'
// bookings: under a load spread over many shows a commit costs a fraction
// of a booking instead of one each. A service sends one such statement at a
// time (maxAppenders): the appends that arrive meanwhile make the next
// group; alone, an append goes out at once. Each stream's expected version
// is still checked in the statement, so a show that another process moved
// gets its conflict while the rest of the group commits, and is decided
// again and appended on its own (runBatch), not queued behind the next
// group.

const (
	// maxAppenders bounds the append statements in flight at once. One
	// makes the largest groups; measured with bookingbench -scenario spread
	// -target ledger on 2 cores, it beat two and four (fewer, larger
	// commits, and less projector lag).
	maxAppenders = 1
	// maxGroup bounds how many shows one statement carries.
	maxGroup = 128
	// statementTimeout bounds each statement the service sends for a show:
	// one that hangs (a connection gone silent) would hold back every show
	// of the group, or the show whose state it holds. An append that times
	// out fails as "may or may not have committed".
	statementTimeout = 30 * time.Second
)

type appendRequest struct {
	eventstore.StreamAppend
	done chan eventstore.AppendResult
}

// appender groups the appends of one service's shows.
type appender struct {
	store   *eventstore.Store
	onGroup func(shows int) // told the shows of each statement that ran; nil: not counted

	mu      sync.Mutex
	pending []*appendRequest
	running int
}

// append appends one stream's events with whatever other streams' appends
// are waiting, and returns its outcome. It waits for the outcome even when
// ctx ends: the statement carries other shows' appends too, and the caller
// must know whether its own committed.
func (a *appender) append(ctx context.Context, sa eventstore.StreamAppend) ([]eventstore.Event, error) {
	req := &appendRequest{StreamAppend: sa, done: make(chan eventstore.AppendResult, 1)}
	a.mu.Lock()
	a.pending = append(a.pending, req)
	start := a.running < maxAppenders
	if start {
		a.running++
	}
	a.mu.Unlock()
	if start {
		go a.run(context.WithoutCancel(ctx)) // the group is not one caller's to cancel
	}
	res := <-req.done
	return res.Events, res.Err
}

// run sends groups of pending appends until none is left.
func (a *appender) run(ctx context.Context) {
	for {
		group := a.take()
		if len(group) == 0 {
			return
		}
		a.send(ctx, group)
	}
}

// take removes the next group from the pending appends: up to maxGroup, of
// distinct streams (a show evicted from the service's cache while its
// leader was busy may have a second leader for a moment; its append waits
// for the next group, where its expected version is checked against what
// the first one left). With none left it ends the runner.
func (a *appender) take() []*appendRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var group []*appendRequest
	seen := make(map[string]bool, min(len(a.pending), maxGroup))
	rest := a.pending[:0]
	for _, r := range a.pending {
		if len(group) < maxGroup && !seen[r.Stream] {
			seen[r.Stream] = true
			group = append(group, r)
		} else {
			rest = append(rest, r)
		}
	}
	clear(a.pending[len(rest):]) // no pointers kept past the slice's end
	a.pending = rest
	if len(group) == 0 {
		a.running--
	}
	return group
}

func (a *appender) send(ctx context.Context, group []*appendRequest) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	if len(group) == 1 {
		r := group[0]
		events, err := a.store.Append(ctx, r.Stream, r.ExpectedVersion, r.Events)
		if err == nil && a.onGroup != nil {
			a.onGroup(1)
		}
		r.done <- eventstore.AppendResult{Events: events, Err: err}
		return
	}
	appends := make([]eventstore.StreamAppend, len(group))
	for i, r := range group {
		appends[i] = r.StreamAppend
	}
	results, err := a.store.AppendStreams(ctx, appends)
	if err != nil {
		for _, r := range group {
			r.done <- eventstore.AppendResult{Err: err}
		}
		return
	}
	if a.onGroup != nil {
		a.onGroup(len(group))
	}
	for i, r := range group {
		r.done <- results[i]
	}
}
