// Command bookingctl operates a booking ledger: schema migrations, users,
// demo data, projection replay and verification, show history and export of
// the event stream. Run it without arguments for help.
//
// On a ledger of several shards (DATABASE_SHARD_URLS, see sharded.go) the
// commands that read or write streams act on every shard, each on its own
// stream; export and import between deployments of different shard counts
// are the copy step of resharding (see importEvents).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	// A replay holds the whole read model in memory while it streams the
	// events through; collecting garbage less often is worth the memory
	// for a batch tool. GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed, or verify found differences
	exitUsage = 2 // bad arguments or configuration
)

// usageError is bad input from the command line; it exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const usage = `bookingctl operates a booking ledger.

Usage:
  bookingctl <command> [flags]

Commands:
  migrate                                  apply the database schema
  users create --email E --password P --role user|admin|auditor
  seed-demo                                schedule a few movies, bus trips and doctor slots
  replay                                   rebuild the projection tables from the events
  verify                                   replay in memory and diff with the live tables, in one snapshot
  history --show ID [--as-of RFC3339]      a show's events and its seat map at that moment
  export [--after POS] [--limit N]         the global stream as NDJSON, in stream order
                                           (several shards: --after CURSOR, one position per shard: "12,0,7,3";
                                           each line names its shard; the cursor to continue from goes to stderr)
  import [--file F]                        append an export (NDJSON, stdin by default) as it was; then run replay
                                           (several shards: each event to its show's shard, whatever shards it came from)
  consumers [list]                         every consumer group of the stream, where it stands and how far behind
                                           (several shards: also each shard's user index, kept in DATABASE_URL)
  consumers reset --group G (--to-end | --after POS) [--shard K]   move a group (stop its consumers first);
                                           with several shards --after needs --shard
  consumers delete --group G [--shard K]   forget a group: its next consumer starts from the beginning
  rebase-xids                              after a pg_dump restored into another cluster: renumber the stored
                                           transaction ids into this server's past, keeping every order and checkpoint

Environment:
  DATABASE_URL          PostgreSQL connection string (required); users live there
  DATABASE_SHARD_URLS   comma-separated shards (show id k on shard k mod N; default: DATABASE_URL alone):
                        migrate sets each one up (schema, show ids of its residue); seed-demo spreads its shows
                        over them; replay, verify, export, import, consumers and rebase-xids act on every shard
                        (one line per shard, "shard K: …"); history reads the show's shard.
                        A shard that does not answer: replay, verify, consumers and rebase-xids go on with
                        the others, print "shard K: unreachable: …" and exit 1; export, import and seed-demo
                        need every shard and change nothing
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	env := &cli{getenv: getenv, stdout: stdout, stderr: stderr}
	defer env.close()

	var err error
	switch args[0] {
	case "migrate":
		err = env.migrate(ctx, args[1:])
	case "users":
		err = env.users(ctx, args[1:])
	case "seed-demo":
		err = env.seedDemo(ctx, args[1:])
	case "replay":
		err = env.replay(ctx, args[1:])
	case "verify":
		err = env.verify(ctx, args[1:])
	case "history":
		err = env.history(ctx, args[1:])
	case "export":
		err = env.export(ctx, args[1:])
	case "import":
		err = env.importEvents(ctx, args[1:])
	case "rebase-xids":
		err = env.rebaseXIDs(ctx, args[1:])
	case "consumers":
		err = env.consumers(ctx, args[1:])
	default:
		err = usagef("unknown command %q (run bookingctl help)", args[0])
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "bookingctl:", err)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		fmt.Fprintln(stderr, "bookingctl: the database has no ledger schema yet; run: bookingctl migrate")
	}
	if ue := (*usageError)(nil); errors.As(err, &ue) {
		return exitUsage
	}
	return exitFail
}
