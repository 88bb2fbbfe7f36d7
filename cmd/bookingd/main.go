// Command bookingd runs the booking ledger: the HTTP API and the projector
// that keeps the read tables up to date. BOOKINGD_ROLES (or --roles) selects
// which of them this process runs, so each can be scaled on its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/projections"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookingd:", err)
		os.Exit(1)
	}
}

// run starts the configured roles and blocks until ctx ends. When ready is
// not nil, the API's listening address is sent on it once it accepts.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("bookingd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	roles := fs.String("roles", "", "comma-separated roles to run: api, projector (default: all; env BOOKINGD_ROLES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv, *roles)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if cfg.has("projector") {
		wg.Go(func() { superviseProjector(ctx, pool, cfg, logger) })
	}
	if cfg.has("api") {
		wg.Go(func() { errs <- serve(ctx, cfg, pool, logger, ready) })
	}
	logger.Info("bookingd started", "roles", cfg.Roles, "http_addr", cfg.HTTPAddr)

	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	cancel() // a failed role stops the others
	wg.Wait()
	logger.Info("bookingd stopped")
	return err
}

// superviseProjector runs the projector and restarts it after a failure,
// backing off up to 30s, until ctx ends.
func superviseProjector(ctx context.Context, pool *pgxpool.Pool, cfg config, logger *slog.Logger) {
	p := projections.NewProjector(pool, projections.ProjectorConfig{PollInterval: cfg.PollInterval}, logger)
	backoff := time.Second
	for {
		err := p.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		logger.Error("projector stopped; restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func serve(ctx context.Context, cfg config, pool *pgxpool.Pool, logger *slog.Logger, ready chan<- string) error {
	srv := &http.Server{
		Handler:           api.New(api.Deps{Reader: projections.NewReader(pool), DB: pool, Logger: logger}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
