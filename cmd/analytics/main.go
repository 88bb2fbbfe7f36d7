// Command analytics is the booking ledger's analytics job: a consumer of the
// event stream that keeps per-show figures and prints them.
//
//	analytics run [--every 10s]   consume the stream live (consumer group "analytics"), printing the figures
//	analytics report [--json]     print the figures the live consumer has reached
//	analytics replay [--json]     compute the figures from position 0, in memory, and print them
//
// DATABASE_URL names the ledger's database.
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
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/analytics"
	"github.com/bookingledger/ledger/eventstore"
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

const usage = "usage: analytics run [--every 10s] | report [--json] | replay [--json]   (DATABASE_URL must be set)"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	every := fs.Duration("every", 10*time.Second, "with run: how often to print the figures")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{fmt.Errorf("%v; %s", err, usage)}
	}
	if fs.NArg() > 0 || *every <= 0 {
		return usageError{errors.New(usage)}
	}
	url := getenv("DATABASE_URL")
	if url == "" {
		return usageError{errors.New("DATABASE_URL is not set")}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return usageError{fmt.Errorf("DATABASE_URL: %w", err)}
	}
	defer pool.Close()
	if args[0] != "report" {
		if err := eventstore.New(pool).CheckTransactionIDs(ctx); err != nil {
			return err
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
		stats, err := analytics.Report(ctx, pool)
		if err != nil {
			return err
		}
		return print(stats)
	case "replay":
		stats, err := analytics.Replay(ctx, eventstore.New(pool))
		if err != nil {
			return err
		}
		return print(stats)
	case "run":
		logger := slog.New(slog.NewJSONHandler(stderr, nil))
		consumer := analytics.NewConsumer(pool, 0, logger)
		done := make(chan error, 1)
		go func() { done <- consumer.Run(ctx) }()
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case err := <-done:
				if err != nil {
					return err
				}
				stats, rerr := analytics.Report(context.WithoutCancel(ctx), pool)
				if rerr != nil {
					return rerr
				}
				return print(stats)
			case <-t.C:
				stats, err := analytics.Report(ctx, pool)
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
		return usageError{fmt.Errorf("unknown command %q; %s", args[0], usage)}
	}
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
