package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/shardcli"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/shards"
	"github.com/bookingledger/ledger/users"
)

// cli holds what every command shares: the environment and lazily opened
// pools, of DATABASE_URL and of each shard (see sharded.go).
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	pool           *pgxpool.Pool

	shardList  []string        // the shards' URLs, "" for DATABASE_URL
	shardPools []*pgxpool.Pool // shard k at index k, once opened
	owned      []*pgxpool.Pool // the shard pools that are not pool
}

func (c *cli) close() {
	for _, p := range c.owned {
		p.Close()
	}
	if c.pool != nil {
		c.pool.Close()
	}
}

func (c *cli) db(ctx context.Context) (*pgxpool.Pool, error) {
	if c.pool != nil {
		return c.pool, nil
	}
	url := c.getenv("DATABASE_URL")
	if url == "" {
		return nil, usagef("DATABASE_URL is not set (e.g. postgres://booking:booking@127.0.0.1:5432/booking)")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, usagef("DATABASE_URL: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	c.pool = pool
	return pool, nil
}

// ledgerDB is db for the commands that read or write the stream: it
// refuses a database whose stored transaction ids are another cluster's
// (see bookingctl rebase-xids).
func (c *cli) ledgerDB(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := c.db(ctx)
	if err != nil {
		return nil, err
	}
	if err := eventstore.New(pool).CheckTransactionIDs(ctx); err != nil {
		return nil, err
	}
	return pool, nil
}

// flags parses a command's flags; extra positional arguments are an error.
func (c *cli) flags(name string, args []string, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil {
		return usagef("%s: %v", name, err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return nil
}

func (c *cli) migrate(ctx context.Context, args []string) error {
	if err := c.flags("migrate", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	pool, err := c.db(ctx)
	if err != nil {
		return err
	}
	v, err := migrations.Up(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "schema at version %d\n", v)
	// Each shard gets the schema and a show id sequence of its own residue.
	urls := splitURLs(c.getenv("DATABASE_SHARD_URLS"))
	for k, u := range urls {
		if err := migrateShard(ctx, u, k, len(urls)); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "shard %d of %d: schema at version %d, show ids ≡ %d (mod %d)\n", k, len(urls), v, k, len(urls))
	}
	return nil
}

func migrateShard(ctx context.Context, url string, k, n int) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return usagef("DATABASE_SHARD_URLS, shard %d: %v", k, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("shard %d: %w", k, err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		return fmt.Errorf("shard %d: %w", k, err)
	}
	return shards.ConfigureIDs(ctx, pool, k, n)
}

// splitURLs reads a comma-separated list of connection strings.
func splitURLs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func (c *cli) users(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return usagef("users: the only subcommand is: users create --email E --password P --role user|admin|auditor")
	}
	var email, password, role string
	if err := c.flags("users create", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "")
		fs.StringVar(&password, "password", "", "")
		fs.StringVar(&role, "role", "user", "")
	}); err != nil {
		return err
	}
	r, err := users.ParseRole(role)
	if err != nil {
		return usagef("users create: %v", err)
	}
	if email == "" || password == "" {
		return usagef("users create: --email and --password are required")
	}
	pool, err := c.db(ctx)
	if err != nil {
		return err
	}
	u, err := users.NewStore(pool).Create(ctx, email, password, r)
	if errors.Is(err, users.ErrInvalid) {
		return usagef("users create: %v", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created %s %s (%s)\n", u.Role, u.Email, u.ID)
	return nil
}

// demoSeatsPerUser caps the seats one user may hold or have bought on each
// demo show: bookingd's default for new shows (MAX_SEATS_PER_USER).
const demoSeatsPerUser = 10

// seedDemo schedules its shows through ledger.Sharded, so they spread over
// the shards (users, which it does not create, live on DATABASE_URL).
func (c *cli) seedDemo(ctx context.Context, args []string) error {
	if err := c.flags("seed-demo", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	pools, err := c.ledgerShards(ctx)
	if err != nil {
		return err
	}
	// Seed when no show is still ahead, so a demo a week later has shows again.
	var upcoming int
	for k, pool := range pools {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = $1
			AND (data ->> 'start_time')::timestamptz > now()`, domain.TypeShowScheduled).Scan(&n); err != nil {
			return fmt.Errorf("seed-demo: %w", shardcli.OnShard(k, len(pools), err))
		}
		upcoming += n
	}
	if upcoming > 0 {
		fmt.Fprintf(c.stdout, "the ledger already has %d upcoming shows; seed-demo adds nothing\n", upcoming)
		return nil
	}
	services := make([]*ledger.Service, len(pools))
	for k, pool := range pools {
		var opts []ledger.Option
		if len(pools) > 1 {
			opts = append(opts, ledger.WithShard(k))
		}
		if services[k], err = ledger.New(pool, ledger.DefaultConfig(), opts...); err != nil {
			return err
		}
	}
	svc, err := ledger.NewSharded(services...)
	if err != nil {
		return err
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	demo := []struct {
		name  string
		typ   domain.ShowType
		start time.Time
		seats int
	}{
		{"Metropolis (restored)", domain.ShowMovie, day.Add(19 * time.Hour), 120},
		{"The Grand Budapest Hotel", domain.ShowMovie, day.Add(24*time.Hour + 21*time.Hour), 80},
		{"Lisbon → Porto express", domain.ShowBus, day.Add(8 * time.Hour), 48},
		{"Berlin → Prague night bus", domain.ShowBus, day.Add(24*time.Hour + 23*time.Hour), 52},
		{"Dr. Okafor, general practice", domain.ShowDoctor, day.Add(8 * time.Hour), 32},
		{"Dr. Lindqvist, dermatology", domain.ShowDoctor, day.Add(48*time.Hour + 8*time.Hour), 24},
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tSTARTS\tSEATS\tPER USER\tNAME")
	for _, d := range demo {
		seats, err := domain.GenerateSeatLabels(d.typ, d.seats)
		if err != nil {
			return err
		}
		res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: d.name, ShowType: d.typ, StartTime: d.start, SeatNumbers: seats,
			MaxSeatsPerUser: demoSeatsPerUser}, ledger.Metadata{RequestID: "bookingctl seed-demo"})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\t%s\n", res.ShowID, d.typ, d.start.Format(time.RFC3339), d.seats, demoSeatsPerUser, d.name)
	}
	return w.Flush()
}

// progress prints a replay's progress on a terminal, at most a few times a
// second; on anything else it prints nothing.
func (c *cli) progress(verb string) (projections.Progress, func()) {
	f, ok := c.stderr.(*os.File)
	if !ok {
		return nil, func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil, func() {}
	}
	start, last := time.Now(), time.Time{}
	printed := false
	return func(n int) {
			if time.Since(last) < 200*time.Millisecond {
				return
			}
			last, printed = time.Now(), true
			rate := float64(n) / time.Since(start).Seconds()
			fmt.Fprintf(f, "\r%s %d events (%.0f/s)   ", verb, n, rate)
		}, func() {
			if printed {
				fmt.Fprintln(f)
				printed = false
			}
		}
}

// replay rebuilds the projections of every shard from its own stream; it
// goes on with the shards that answer, and fails at the end naming the
// others.
func (c *cli) replay(ctx context.Context, args []string) error {
	if err := c.flags("replay", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	return c.eachShard(ctx, true, func(k, n int, pool *pgxpool.Pool) error {
		return c.replayShard(ctx, pool, shardcli.Label(k, n))
	})
}

// eachShard runs fn on every shard that answers (checked for foreign
// transaction ids when checkXIDs), one after another, printing a line for
// each that does not; it fails at the end naming every shard that did not
// answer or whose fn failed.
func (c *cli) eachShard(ctx context.Context, checkXIDs bool, fn func(k, n int, pool *pgxpool.Pool) error) error {
	pools, failed, err := c.reachableShards(ctx, nil, checkXIDs)
	if err != nil {
		return err
	}
	var errs []error
	for k, pool := range pools {
		if err := failed[k]; err != nil {
			fmt.Fprintln(c.stdout, err)
			errs = append(errs, err)
			continue
		}
		if err := fn(k, len(pools), pool); err != nil {
			errs = append(errs, shardcli.OnShard(k, len(pools), err))
		}
	}
	return errors.Join(errs...)
}

func (c *cli) replayShard(ctx context.Context, pool *pgxpool.Pool, prefix string) error {
	progress, done := c.progress(prefix + "replayed")
	stats, err := projections.Rebuild(ctx, pool, progress)
	done()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%srebuilt projections from %d events in %s (%.0f events/s); projector continues after position %d\n",
		prefix, stats.Events, stats.Elapsed.Round(time.Millisecond), rate(stats.Events, stats.Elapsed), stats.Checkpoint.Position)
	return nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// verify checks the projections of every shard against a replay of its own
// stream; it fails when any shard differs or does not answer, naming each
// such shard (the others are checked all the same).
func (c *cli) verify(ctx context.Context, args []string) error {
	if err := c.flags("verify", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	return c.eachShard(ctx, true, func(k, n int, pool *pgxpool.Pool) error {
		return c.verifyShard(ctx, pool, shardcli.Label(k, n))
	})
}

func (c *cli) verifyShard(ctx context.Context, pool *pgxpool.Pool, prefix string) error {
	progress, done := c.progress(prefix + "replayed")
	report, err := projections.Verify(ctx, pool, progress)
	done()
	if err != nil {
		return err
	}
	if len(report.Differences) > 0 {
		for _, d := range report.Differences {
			fmt.Fprintln(c.stdout, prefix+d.String())
		}
		return fmt.Errorf("verify: %d differences between the projections and a replay of %d events (at most %d shown per table and kind)",
			len(report.Differences), report.Events, projections.MaxDifferences)
	}
	fmt.Fprintf(c.stdout, "%sok: projections equal a replay of %d events (projector at position %d) in %s\n",
		prefix, report.Events, report.Checkpoint.Position, report.Elapsed.Round(time.Millisecond))
	if report.Checkpoint != report.Head {
		fmt.Fprintf(c.stdout, "%snote: the projector is behind the stream (stream head at position %d); events after it were not compared\n",
			prefix, report.Head.Position)
	}
	return nil
}

func (c *cli) history(ctx context.Context, args []string) error {
	var (
		show int64
		asOf string
	)
	if err := c.flags("history", args, func(fs *flag.FlagSet) {
		fs.Int64Var(&show, "show", 0, "")
		fs.StringVar(&asOf, "as-of", "", "")
	}); err != nil {
		return err
	}
	if show <= 0 {
		return usagef("history: --show must be a show id (a positive integer)")
	}
	var until time.Time
	if asOf != "" {
		t, err := time.Parse(time.RFC3339Nano, asOf)
		if err != nil {
			return usagef("history: --as-of must be RFC 3339, like 2026-11-26T18:00:00Z: %v", err)
		}
		until = t
	}
	n, err := c.shardCount()
	if err != nil {
		return err
	}
	pool, err := c.shard(ctx, shards.Of(domain.ShowID(show), n)) // the show's stream lives on its shard
	if err != nil {
		return err
	}
	events, err := eventstore.New(pool).Load(ctx, domain.ShowID(show).StreamID(), 0)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return fmt.Errorf("history: show %d: %w", show, domain.ErrShowNotFound)
	}
	state := domain.NewShow()
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tPOSITION\tRECORDED AT\tTYPE\tDATA")
	for _, e := range events {
		if !until.IsZero() && e.RecordedAt.After(until) {
			break
		}
		ev, err := domain.UnmarshalEvent(e.Type, e.Data)
		if err != nil {
			return err
		}
		state.Evolve(ev)
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\n", e.StreamVersion, e.GlobalPosition, e.RecordedAt.UTC().Format(time.RFC3339Nano), e.Type, e.Data)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !state.Scheduled() {
		fmt.Fprintf(c.stdout, "\nshow %d was not scheduled yet at %s\n", show, asOf)
		return nil
	}
	when := "now"
	if !until.IsZero() {
		when = "as of " + until.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(c.stdout, "\nseat map %s (version %d, %d of %d available):\n", when, state.Version(), state.AvailableSeats(), len(state.SeatNumbers()))
	byStatus := map[domain.SeatStatus][]string{}
	for _, s := range state.SeatMap() {
		label := s.Number
		if s.BookingID != "" {
			label += " (" + string(s.BookingID) + ")"
		}
		byStatus[s.Status] = append(byStatus[s.Status], label)
	}
	for _, st := range []domain.SeatStatus{domain.SeatStatusAvailable, domain.SeatStatusLocked, domain.SeatStatusBooked} {
		fmt.Fprintf(c.stdout, "  %-9s %3d  %s\n", st, len(byStatus[st]), strings.Join(byStatus[st], ", "))
	}
	return nil
}

// shardEvent is an exported event of a ledger of several shards: the event
// and the index of the shard whose stream holds it. (An export of one shard
// is the bare events, as it always was.)
type shardEvent struct {
	eventstore.Event
	Shard *int `json:"shard,omitempty"`
}

// export writes the stream as NDJSON. With several shards it writes each
// shard's events after its position in --after (a shards.Cursor), in that
// shard's stream order, shard after shard, each line naming its shard; then
// it prints on stderr the cursor that continues exactly after them.
func (c *cli) export(ctx context.Context, args []string) error {
	var (
		after string
		limit int64
	)
	if err := c.flags("export", args, func(fs *flag.FlagSet) {
		fs.StringVar(&after, "after", "", "")
		fs.Int64Var(&limit, "limit", 0, "")
	}); err != nil {
		return err
	}
	n, err := c.shardCount()
	if err != nil {
		return err
	}
	var cursor shards.Cursor
	if n == 1 {
		var pos int64
		if after != "" {
			if pos, err = strconv.ParseInt(after, 10, 64); err != nil {
				return usagef("export: --after %q: want a position (a global_position from an earlier export)", after)
			}
		}
		cursor = shards.Cursor{pos}
	} else if cursor, err = shards.ParseCursor(after, n); err != nil {
		return usagef("export: --after: %v (the \"next --after\" an earlier export printed, or 0 for every shard)", err)
	}
	if cursor[0] < 0 || limit < 0 {
		return usagef("export: --after and --limit must not be negative")
	}
	// Every shard or nothing: an export that left a shard out would look
	// like a whole copy of the stream.
	pools, failed, err := c.reachableShards(ctx, nil, true)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("export: nothing exported: an export needs every shard and %s failed; run the same export (--after %s) again when every shard answers:\n%w",
			shardcli.Names(slices.Collect(maps.Keys(failed))), cursor, shardErrors(failed))
	}
	// Each shard's end is its last event committed when export starts, so a
	// busy ledger cannot keep it running forever; run it again with --after
	// to continue. Reaching it may take a moment: ReadAll waits for older
	// transactions still running on the server.
	stores := make([]*eventstore.Store, n)
	from := make([]eventstore.Checkpoint, n)
	heads := make([]eventstore.Checkpoint, n)
	for k, pool := range pools {
		stores[k] = eventstore.New(pool)
		from[k], err = stores[k].CheckpointAt(ctx, cursor[k])
		if errors.Is(err, eventstore.ErrPositionNotFound) {
			if n == 1 {
				return usagef("export: --after %d: no event has that position; use 0 or a global_position from an earlier export", cursor[k])
			}
			return usagef("export: --after %s: shard %d has no event at position %d; use 0 or the cursor an earlier export printed", after, k, cursor[k])
		}
		if err != nil {
			return shardcli.OnShard(k, n, err)
		}
	}
	for k := range stores {
		if heads[k], err = stores[k].Last(ctx); err != nil {
			return shardcli.OnShard(k, n, err)
		}
	}
	enc := json.NewEncoder(c.stdout)
	progress, done := c.progress("exported")
	defer done()
	var count int64
	next := cursor
	errEnough := errors.New("limit reached")
	for k, store := range stores {
		shard := k
		_, err = store.ReadRange(ctx, from[k], heads[k], 1000, 10*time.Millisecond, func(events []eventstore.Event) error {
			for _, e := range events {
				if limit > 0 && count >= limit {
					return errEnough
				}
				var line any = e
				if n > 1 {
					line = shardEvent{Event: e, Shard: &shard}
				}
				if err := enc.Encode(line); err != nil {
					return err
				}
				next = next.Advance(k, e.GlobalPosition)
				count++
			}
			if progress != nil {
				progress(int(count))
			}
			return nil
		})
		if errors.Is(err, errEnough) {
			break
		}
		if err != nil {
			return shardcli.OnShard(k, n, err)
		}
	}
	if n > 1 {
		done()
		fmt.Fprintf(c.stderr, "next --after %s\n", next)
	}
	return nil
}

// importBatch is how many events one import transaction appends.
const importBatch = 5000

// importEvents appends an export (NDJSON) as it was: each event to the shard
// of its stream's show, shards.Of(show, M) among this deployment's M shards,
// whatever shard the line names. Show ids are kept, and each lands on the
// shard its id names here, so an export of a ledger of N shards imported
// into a fresh (migrated) deployment of M shards is the copy step of
// resharding; replay every shard after it. An export of one shard keeps its
// positions; the events of a sharded export (lines with "shard") get new
// positions on their shard, taken from its sequence in input order so each
// stream keeps its order, because the source shards' positions overlap (the
// source's cursors and consumer checkpoints do not carry over). Like the
// import of one shard it is resumable (run the same import again: what is in
// already is skipped) and takes the streams interleaved in any order, each
// stream's events in its own order.
func (c *cli) importEvents(ctx context.Context, args []string) error {
	var file string
	if err := c.flags("import", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "")
	}); err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return usagef("import: %v", err)
		}
		defer f.Close()
		in = f
	}
	pools, err := c.ledgerShards(ctx)
	if err != nil {
		return err
	}
	n := len(pools)
	progress, done := c.progress("imported")
	defer done()
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	type batch struct {
		events []eventstore.Event
		fresh  []int // the events that get new positions (of a sharded export)
	}
	var (
		batches     = make([]batch, n)
		read, added int
		line        int
	)
	flush := func(k int) error {
		b := &batches[k]
		if len(b.fresh) > 0 {
			positions, err := reservePositions(ctx, pools[k], len(b.fresh))
			if err != nil {
				return shardcli.OnShard(k, n, err)
			}
			for i, j := range b.fresh {
				b.events[j].GlobalPosition = positions[i]
			}
		}
		added1, err := eventstore.Import(ctx, pools[k], b.events)
		if err != nil {
			return shardcli.OnShard(k, n, fmt.Errorf("%w (the events before this batch of %d are in; fix the input and run the same import again: what is in already is skipped)", err, len(b.events)))
		}
		read += len(b.events)
		added += added1
		b.events, b.fresh = b.events[:0], b.fresh[:0]
		if progress != nil {
			progress(read)
		}
		return nil
	}
	for {
		var e shardEvent
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return fmt.Errorf("import: event %d of the input: %w (%d events before it are in; fix the input and run the same import again: what is in already is skipped)", line, err, read)
		}
		k := 0
		if n > 1 {
			show, err := domain.ParseStreamID(e.StreamID)
			if err != nil {
				return fmt.Errorf("import: event %d of the input: %w: it has no shard (%d events before it are in)", line, err, read)
			}
			k = shards.Of(show, n)
		}
		b := &batches[k]
		if e.Shard != nil {
			b.fresh = append(b.fresh, len(b.events))
		}
		b.events = append(b.events, e.Event)
		if len(b.events) == importBatch {
			if err := flush(k); err != nil {
				return err
			}
		}
	}
	for k := range batches {
		if err := flush(k); err != nil {
			return err
		}
	}
	done()
	fmt.Fprintf(c.stdout, "imported %d events (%d of the %d read were here already); run bookingctl replay to build the projections, and see `bookingctl consumers` for the other consumer groups\n",
		added, read-added, read)
	return nil
}

// reservePositions takes count new global positions from a shard's sequence,
// in increasing order: no append can take them.
func reservePositions(ctx context.Context, pool *pgxpool.Pool, count int) ([]int64, error) {
	rows, err := pool.Query(ctx, `SELECT nextval(pg_get_serial_sequence('events', 'global_position')) FROM generate_series(1, $1)`, count)
	if err != nil {
		return nil, fmt.Errorf("import: reserve positions: %w", err)
	}
	positions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("import: reserve positions: %w", err)
	}
	slices.Sort(positions)
	return positions, nil
}

// rebaseXIDs renumbers the stored transaction ids of every shard that
// answers; it fails at the end naming the others.
func (c *cli) rebaseXIDs(ctx context.Context, args []string) error {
	if err := c.flags("rebase-xids", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	rebased := false
	err := c.eachShard(ctx, false, func(k, n int, pool *pgxpool.Pool) error {
		st, err := eventstore.Rebase(ctx, pool)
		if err != nil {
			return err
		}
		if !st.Rebased {
			fmt.Fprintf(c.stdout, "%sok: the stored transaction ids are this server's; nothing to do\n", shardcli.Label(k, n))
			return nil
		}
		rebased = true
		fmt.Fprintf(c.stdout, "%srebased %d transaction ids (consumed %d to get past them) and %d consumer checkpoints; every consumer resumes where it was\n",
			shardcli.Label(k, n), st.Transactions, st.Burned, st.Checkpoints)
		return nil
	})
	if rebased {
		fmt.Fprintln(c.stdout, "next: delete the ledger's Redis keys (cached reads and read-your-writes tokens name the old ids), then bookingctl verify")
	}
	return err
}

// consumers lists, moves or forgets the consumer groups of every shard's
// stream (each shard keeps its own checkpoints); --shard k limits reset and
// delete to one.
func (c *cli) consumers(ctx context.Context, args []string) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	var (
		group  string
		toEnd  bool
		after  int64 = -1
		only         = -1
		define       = func(fs *flag.FlagSet) {
			fs.StringVar(&group, "group", "", "")
			if sub == "reset" {
				fs.BoolVar(&toEnd, "to-end", false, "")
				fs.Int64Var(&after, "after", -1, "")
			}
			if sub != "list" {
				fs.IntVar(&only, "shard", -1, "")
			}
		}
	)
	switch sub {
	case "list", "reset", "delete":
	default:
		return usagef("consumers: unknown subcommand %q (list, reset, delete)", sub)
	}
	if err := c.flags("consumers "+sub, args, define); err != nil {
		return err
	}
	if sub != "list" && group == "" {
		return usagef("consumers %s: --group is required", sub)
	}
	if sub == "reset" && toEnd == (after >= 0) {
		return usagef("consumers reset: give exactly one of --to-end and --after POS")
	}
	n, err := c.shardCount()
	if err != nil {
		return err
	}
	if only >= n || (only < 0 && only != -1) {
		return usagef("consumers %s: --shard %d: there are %d shards (0 to %d)", sub, only, n, n-1)
	}
	if sub == "reset" && after >= 0 && n > 1 && only < 0 {
		return usagef("consumers reset: --after POS is a position of one shard's stream: give --shard k too (or --to-end, for every shard)")
	}
	// The shards that answer are listed, moved or cleared; the command then
	// fails naming the others. --shard K connects to shard K alone.
	var ks []int
	if only >= 0 {
		ks = []int{only}
	}
	pools, failed, err := c.reachableShards(ctx, ks, true)
	if err != nil {
		return err
	}
	if sub == "list" {
		return c.listConsumers(ctx, pools, failed)
	}
	var (
		errs    []error
		targets []int
	)
	for k := range pools {
		if only >= 0 && k != only {
			continue
		}
		if err := failed[k]; err != nil {
			fmt.Fprintln(c.stdout, err)
			errs = append(errs, err)
			continue
		}
		targets = append(targets, k)
	}
	switch sub {
	case "delete":
		found := false
		for _, k := range targets {
			ok, err := eventstore.New(pools[k]).DeleteConsumerGroup(ctx, group)
			if err != nil {
				errs = append(errs, shardcli.OnShard(k, n, err))
				continue
			}
			if ok {
				found = true
				fmt.Fprintf(c.stdout, "%sdeleted %s: its next consumer starts from the beginning of the stream\n", shardcli.Label(k, n), group)
			}
		}
		switch {
		case found || len(targets) == 0:
		case only >= 0 && n > 1:
			errs = append(errs, fmt.Errorf("consumers delete: no consumer group %q on shard %d", group, only))
		case len(errs) > 0:
			errs = append(errs, fmt.Errorf("consumers delete: no consumer group %q on the shards that answered", group))
		default:
			errs = append(errs, fmt.Errorf("consumers delete: no consumer group %q", group))
		}
		return errors.Join(errs...)
	default: // reset
		for _, k := range targets {
			store := eventstore.New(pools[k])
			cp, err := store.Last(ctx)
			if err != nil {
				errs = append(errs, shardcli.OnShard(k, n, err))
				continue
			}
			if !toEnd {
				if cp, err = store.CheckpointAt(ctx, after); errors.Is(err, eventstore.ErrPositionNotFound) {
					if n > 1 {
						return usagef("consumers reset: --after %d: no event of shard %d has that position", after, k)
					}
					return usagef("consumers reset: --after %d: no event has that position", after)
				} else if err != nil {
					errs = append(errs, shardcli.OnShard(k, n, err))
					continue
				}
			}
			if err := store.SetConsumerCheckpoint(ctx, group, cp); err != nil {
				errs = append(errs, shardcli.OnShard(k, n, err))
				continue
			}
			fmt.Fprintf(c.stdout, "%s%s continues after position %d\n", shardcli.Label(k, n), group, cp.Position)
		}
		return errors.Join(errs...)
	}
}

// consumerRow is a line of bookingctl consumers: a group of a shard, where
// it stands and how far behind the shard's stream it is.
type consumerRow struct {
	group  string
	after  string // the position it continues after
	events int64  // committed events after it
	age    time.Duration
}

// userIndexGroup is how bookingctl consumers names the user index, whose
// position is not a consumer group's (it lives in the home database).
const userIndexGroup = "user-index"

// listConsumers prints the consumer groups of every shard that answered
// and, with several shards, each shard's user index; under the table, a
// line for each shard that failed says why, and the command then fails
// naming it.
func (c *cli) listConsumers(ctx context.Context, pools []*pgxpool.Pool, failed map[int]error) error {
	n := len(pools)
	var (
		errs     []error
		index    map[int]projections.IndexPosition
		indexErr error
	)
	if n > 1 {
		index, indexErr = c.userIndexPositions(ctx)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if n > 1 {
		fmt.Fprint(tw, "SHARD\t")
	}
	fmt.Fprintln(tw, "GROUP\tAFTER POSITION\tEVENTS BEHIND\tOLDEST UNCONSUMED")
	for k, pool := range pools {
		err := failed[k]
		var rows []consumerRow
		if err == nil {
			rows, err = consumerRows(ctx, pool)
		}
		if err == nil && n > 1 && indexErr == nil {
			var row consumerRow
			at, ran := index[k]
			row, err = userIndexRow(ctx, pool, at, ran)
			rows = append(rows, row)
		}
		if err != nil {
			if n == 1 {
				return err
			}
			if failed[k] == nil {
				err = shardcli.OnShard(k, n, err)
			}
			errs = append(errs, err) // printed after the table
			continue
		}
		for _, r := range rows {
			if n > 1 {
				fmt.Fprintf(tw, "%d\t", k)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.group, r.after, r.events, r.age.Round(time.Millisecond))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if indexErr != nil {
		errs = append(errs, indexErr)
	}
	for _, err := range errs {
		fmt.Fprintln(c.stdout, err)
	}
	return errors.Join(errs...)
}

// consumerRows are the consumer groups of one shard's stream.
func consumerRows(ctx context.Context, pool *pgxpool.Pool) ([]consumerRow, error) {
	store := eventstore.New(pool)
	groups, err := store.ConsumerGroups(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]consumerRow, 0, len(groups)+1)
	for _, g := range groups {
		cp, err := store.ConsumerCheckpoint(ctx, g)
		if err != nil {
			return nil, err
		}
		events, age, err := store.Lag(ctx, g)
		if err != nil {
			return nil, err
		}
		rows = append(rows, consumerRow{g, strconv.FormatInt(cp.Position, 10), events, age})
	}
	return rows, nil
}

// userIndexPositions reads how far each shard's user index has got, from
// the home database (DATABASE_URL).
func (c *cli) userIndexPositions(ctx context.Context) (map[int]projections.IndexPosition, error) {
	home, err := c.db(ctx)
	if ce := (*pgconn.ConnectError)(nil); errors.As(err, &ce) {
		return nil, fmt.Errorf("%s (home database): unreachable: %s", userIndexGroup, shardcli.ShortError(err))
	}
	if err != nil {
		return nil, fmt.Errorf("%s (home database): %w", userIndexGroup, err)
	}
	index, err := projections.UserIndexPositions(ctx, home)
	if err != nil {
		return nil, fmt.Errorf("%s (home database): %w", userIndexGroup, err)
	}
	return index, nil
}

// userIndexRow is where a shard's user index stands, at from the home
// database (ran: it has a row there), and how far behind the shard's stream
// it is (projections.UserIndexLag: from where the index goes on).
func userIndexRow(ctx context.Context, shard *pgxpool.Pool, at projections.IndexPosition, ran bool) (consumerRow, error) {
	row := consumerRow{group: userIndexGroup, after: "never ran"}
	if ran {
		row.after = strconv.FormatInt(at.Position, 10)
		if !at.CaughtUp {
			row.after += " (filling: not used yet)"
		}
	}
	var err error
	if row.events, row.age, err = projections.UserIndexLag(ctx, eventstore.New(shard), at.Checkpoint); err != nil {
		return row, fmt.Errorf("%s: %w", userIndexGroup, err)
	}
	return row, nil
}
