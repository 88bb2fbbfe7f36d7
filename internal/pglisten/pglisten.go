// Package pglisten keeps a PostgreSQL LISTEN going: it connects, listens on
// a channel, hands every notification to a callback, and after a lost
// connection connects again with backoff. The show cache's invalidation and
// the stream's wake-up both run on it.
package pglisten

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is one listener.
type Config struct {
	Channel string
	// Connect opens the listener's own connection (a LISTEN holds one for
	// good; it is not taken from a pool).
	Connect func(context.Context) (*pgx.Conn, error)
	// Listening is called each time the LISTEN is in place, after a
	// reconnect too: notifications sent while disconnected are lost, which
	// it may make up for.
	Listening func()
	// Stopped is called each time the connection is lost (may be nil).
	Stopped func()
	// Notify is called with each notification's payload.
	Notify func(ctx context.Context, payload string)
	Logger *slog.Logger // reconnects are logged as warnings (nil: not logged)
}

// Run listens until ctx ends, reconnecting after failures with backoff from
// 100 ms up to 10 s.
func Run(ctx context.Context, c Config) {
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := once(ctx, c)
		if c.Stopped != nil {
			c.Stopped()
		}
		if ctx.Err() != nil {
			return
		}
		logger.Warn("listener on "+c.Channel+" stopped; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func once(ctx context.Context, c Config) error {
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{c.Channel}.Sanitize()); err != nil {
		return err
	}
	if c.Listening != nil {
		c.Listening()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		c.Notify(ctx, n.Payload)
	}
}
