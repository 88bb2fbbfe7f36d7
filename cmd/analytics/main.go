// Command analytics is the booking ledger's analytics job: a consumer of the
// event stream that keeps per-show figures and prints them.
//
//	analytics run [--every 10s]   consume the stream live (consumer group "analytics"), printing the figures
//	analytics report [--json]     print the figures the live consumer has reached
//	analytics replay [--json]     compute the figures from position 0, in memory, and print them
//
// DATABASE_URL names the ledger's database. On a ledger of several shards
// DATABASE_SHARD_URLS lists them (shard k at index k): run keeps one consumer
// per shard in this process, each consuming its shard's stream into its
// shard's tables (the group "analytics" lives in each shard's database),
// and report and replay join the figures of every shard (a show lives on
// one shard). Each of them needs every shard: when one does not answer it
// fails at the start, naming each such shard.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/analytics"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/shardcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "analytics:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

const usage = "usage: analytics run [--every 10s] | report [--json] | replay [--json]   " +
	"(DATABASE_URL must be set; DATABASE_SHARD_URLS, comma-separated, names the shards of a sharded ledger)"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "run", "report", "replay":
	default: // refused before any connection is made
		return unknownCommand(args[0])
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	every := fs.Duration("every", 10*time.Second, "with run: how often to print the figures")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) { // analytics report -h
			fmt.Fprintln(stdout, usage)
			return nil
		}
		return usageError{fmt.Errorf("%v; %s", err, usage)}
	}
	if fs.NArg() > 0 || *every <= 0 {
		return usageError{errors.New(usage)}
	}
	pools, err := connect(ctx, getenv)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	if err := reachable(ctx, args[0], pools); err != nil {
		return err
	}
	if args[0] != "report" {
		for k, pool := range pools {
			if err := eventstore.New(pool).CheckTransactionIDs(ctx); err != nil {
				return shardcli.OnShard(k, len(pools), err)
			}
		}
	}

	print := func(stats []analytics.ShowStats) error {
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"shows": stats})
		}
		return printTable(stdout, stats)
	}
	switch args[0] {
	case "report":
		stats, err := report(ctx, pools)
		if err != nil {
			return err
		}
		return print(stats)
	case "replay":
		stats, err := replay(ctx, pools)
		if err != nil {
			return err
		}
		return print(stats)
	case "run":
		logger := slog.New(slog.NewJSONHandler(stderr, nil))
		done := consume(ctx, pools, logger)
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case err := <-done:
				if err != nil {
					return err
				}
				stats, rerr := report(context.WithoutCancel(ctx), pools)
				if rerr != nil {
					return rerr
				}
				return print(stats)
			case <-t.C:
				stats, err := report(ctx, pools)
				if ctx.Err() != nil {
					continue // stopping: the final report follows
				}
				if err != nil {
					return err
				}
				if err := print(stats); err != nil {
					return err
				}
			}
		}
	default:
		return unknownCommand(args[0])
	}
}

func unknownCommand(name string) error {
	return usageError{fmt.Errorf("unknown command %q; %s", name, usage)}
}

// connect opens the shards: DATABASE_SHARD_URLS, or DATABASE_URL alone.
func connect(ctx context.Context, getenv func(string) string) ([]*pgxpool.Pool, error) {
	var urls []string
	for _, u := range strings.Split(getenv("DATABASE_SHARD_URLS"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	name := func(k int) string { return fmt.Sprintf("DATABASE_SHARD_URLS, shard %d", k) }
	if len(urls) == 0 {
		url := getenv("DATABASE_URL")
		if url == "" {
			return nil, usageError{errors.New("DATABASE_URL is not set")}
		}
		urls = []string{url}
		name = func(int) string { return "DATABASE_URL" }
	}
	cfgs := make([]*pgxpool.Config, len(urls))
	for k, u := range urls {
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", name(k), err)}
		}
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = shardcli.ConnectTimeout
		}
		cfgs[k] = cfg
	}
	pools := make([]*pgxpool.Pool, 0, len(urls))
	for k, cfg := range cfgs {
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			for _, p := range pools {
				p.Close()
			}
			return nil, usageError{fmt.Errorf("%s: %w", name(k), err)}
		}
		pools = append(pools, pool)
	}
	return pools, nil
}

// reachable checks that every shard answers, asking them all at once. The
// figures of report and replay join every shard's (a shard left out would
// drop its shows without a word), and run reports them as it goes; so each
// of them needs every shard, and fails naming each one that does not answer.
func reachable(ctx context.Context, cmd string, pools []*pgxpool.Pool) error {
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for k, pool := range pools {
		wg.Go(func() { errs[k] = pool.Ping(ctx) })
	}
	wg.Wait()
	if len(pools) == 1 {
		if errs[0] != nil {
			return fmt.Errorf("connect to the database: %w", errs[0])
		}
		return nil
	}
	var (
		down  []int
		lines []string
	)
	for k, err := range errs {
		if err != nil {
			down = append(down, k)
			lines = append(lines, fmt.Sprintf("shard %d: unreachable: %s", k, shardcli.ShortError(err)))
		}
	}
	if len(down) == 0 {
		return nil
	}
	verb := "does"
	if len(down) > 1 {
		verb = "do"
	}
	return fmt.Errorf("%s needs every shard, and %s %s not answer:\n%s", cmd, shardcli.Names(down), verb, strings.Join(lines, "\n"))
}

// report joins the live figures of every shard.
func report(ctx context.Context, pools []*pgxpool.Pool) ([]analytics.ShowStats, error) {
	if len(pools) == 1 {
		return analytics.Report(ctx, pools[0])
	}
	parts := make([][]analytics.ShowStats, len(pools))
	for k, pool := range pools {
		var err error
		if parts[k], err = analytics.Report(ctx, pool); err != nil {
			return nil, shardcli.OnShard(k, len(pools), err)
		}
	}
	return analytics.Union(parts...), nil
}

// replay computes the figures of every shard from its stream and joins them.
func replay(ctx context.Context, pools []*pgxpool.Pool) ([]analytics.ShowStats, error) {
	if len(pools) == 1 {
		return analytics.Replay(ctx, eventstore.New(pools[0]))
	}
	parts := make([][]analytics.ShowStats, len(pools))
	for k, pool := range pools {
		var err error
		if parts[k], err = analytics.Replay(ctx, eventstore.New(pool)); err != nil {
			return nil, shardcli.OnShard(k, len(pools), err)
		}
	}
	return analytics.Union(parts...), nil
}

// consume runs one consumer per shard until ctx ends or one of them fails,
// which stops the others; the channel then gets the first failure (nil when
// ctx ended).
func consume(ctx context.Context, pools []*pgxpool.Pool, logger *slog.Logger) <-chan error {
	ctx, cancel := context.WithCancel(ctx)
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for k, pool := range pools {
		l := logger
		if len(pools) > 1 {
			l = logger.With("shard", k)
		}
		wg.Go(func() {
			if err := analytics.NewConsumer(pool, 0, l).Run(ctx); err != nil {
				errs[k] = shardcli.OnShard(k, len(pools), err)
				cancel()
			}
		})
	}
	done := make(chan error, 1)
	go func() {
		wg.Wait()
		cancel()
		done <- errors.Join(errs...)
	}()
	return done
}

func printTable(w io.Writer, stats []analytics.ShowStats) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SHOW\tTYPE\tSEATS\tBOOKED\tUTILISATION\tHOLDS\tCONFIRMED\tEXPIRED\tCANCELLED\tCONVERSION\tMEDIAN s TO CONFIRM\t")
	for _, s := range stats {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f%%\t%d\t%d\t%d\t%d\t%.1f%%\t%.3f\t\n", s.ShowID, s.ShowType, s.TotalSeats, s.SeatsBooked,
			100*s.Utilisation, s.Holds, s.Confirmed, s.Expired, s.Cancelled, 100*s.Conversion, s.MedianSecondsToConfirm)
	}
	return tw.Flush()
}
