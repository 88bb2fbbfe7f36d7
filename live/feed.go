package live

import (
	"context"
	"sync"
)

// Feed is one client's view of one show: where the client stands in the
// show's messages. It holds no messages of its own.
type Feed struct {
	hub  *Hub
	show *show
	sent int // the version the client has
	// snapshotted: the last thing sent was a snapshot. A feed that falls
	// behind the ring again before taking a message cannot keep up.
	snapshotted bool
	out         [][]byte
	once        sync.Once
}

// Close ends the feed.
func (f *Feed) Close() { f.once.Do(func() { f.hub.closeFeed(f.show) }) }

// Version is the version the client has once it took what Next returned.
func (f *Feed) Version() int { return f.sent }

// Next returns the server-sent events to write next, as encoded once for
// every feed of the show (the caller must not modify them): the messages
// after the client's version or, when the hub no longer has them all, a
// snapshot of the seat map. It waits for changes. It returns nil and no
// error when it woke with nothing to send (the hub's keep-alive: time to
// send a comment), ctx's error when ctx ends, and ErrDropped when the hub
// ended the feed or the client fell behind again right after a snapshot.
// The slice is reused by the next call.
func (f *Feed) Next(ctx context.Context) ([][]byte, error) {
	sh := f.show
	clear(f.out) // no frame outlives its message's time in the ring
	if cap(f.out) > 64 {
		f.out = nil // a big catch-up's room is not kept for the feed's life
	}
	for woke := false; ; woke = true {
		sh.mu.Lock()
		if sh.closed {
			sh.mu.Unlock()
			return nil, ErrDropped
		}
		out, to, resync := sh.since(f.sent, f.out[:0])
		switch {
		case resync && f.snapshotted:
			sh.mu.Unlock()
			return nil, ErrDropped
		case resync:
			snap, v := sh.snapshot()
			sh.mu.Unlock()
			f.out, f.sent, f.snapshotted = append(out, snap), v, true
			return f.out, nil
		case len(out) > 0:
			sh.mu.Unlock()
			f.out, f.sent, f.snapshotted = out, to, false
			return f.out, nil
		case woke:
			sh.mu.Unlock()
			return nil, nil
		}
		changed := sh.changed
		sh.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}
