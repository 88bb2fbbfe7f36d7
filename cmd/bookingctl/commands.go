package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/shards"
	"github.com/bookingledger/ledger/users"
)

// cli holds what every command shares: the environment and a lazily opened pool.
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	pool           *pgxpool.Pool
}

func (c *cli) close() {
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

func (c *cli) seedDemo(ctx context.Context, args []string) error {
	if err := c.flags("seed-demo", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	pool, err := c.ledgerDB(ctx)
	if err != nil {
		return err
	}
	// Seed when no show is still ahead, so a demo a week later has shows again.
	var upcoming int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = $1
		AND (data ->> 'start_time')::timestamptz > now()`, domain.TypeShowScheduled).Scan(&upcoming); err != nil {
		return fmt.Errorf("seed-demo: %w", err)
	}
	if upcoming > 0 {
		fmt.Fprintf(c.stdout, "the ledger already has %d upcoming shows; seed-demo adds nothing\n", upcoming)
		return nil
	}
	svc, err := ledger.New(pool, ledger.DefaultConfig())
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
	fmt.Fprintln(w, "ID\tTYPE\tSTARTS\tSEATS\tNAME")
	for _, d := range demo {
		seats, err := domain.GenerateSeatLabels(d.typ, d.seats)
		if err != nil {
			return err
		}
		res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{Name: d.name, ShowType: d.typ, StartTime: d.start, SeatNumbers: seats},
			ledger.Metadata{RequestID: "bookingctl seed-demo"})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", res.ShowID, d.typ, d.start.Format(time.RFC3339), d.seats, d.name)
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

func (c *cli) replay(ctx context.Context, args []string) error {
	if err := c.flags("replay", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	pool, err := c.ledgerDB(ctx)
	if err != nil {
		return err
	}
	progress, done := c.progress("replayed")
	stats, err := projections.Rebuild(ctx, pool, progress)
	done()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "rebuilt projections from %d events in %s (%.0f events/s); projector continues after position %d\n",
		stats.Events, stats.Elapsed.Round(time.Millisecond), rate(stats.Events, stats.Elapsed), stats.Checkpoint.Position)
	return nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (c *cli) verify(ctx context.Context, args []string) error {
	if err := c.flags("verify", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	pool, err := c.ledgerDB(ctx)
	if err != nil {
		return err
	}
	progress, done := c.progress("replayed")
	report, err := projections.Verify(ctx, pool, progress)
	done()
	if err != nil {
		return err
	}
	if len(report.Differences) > 0 {
		for _, d := range report.Differences {
			fmt.Fprintln(c.stdout, d)
		}
		return fmt.Errorf("verify: %d differences between the projections and a replay of %d events (at most %d shown per table and kind)",
			len(report.Differences), report.Events, projections.MaxDifferences)
	}
	fmt.Fprintf(c.stdout, "ok: projections equal a replay of %d events (projector at position %d) in %s\n",
		report.Events, report.Checkpoint.Position, report.Elapsed.Round(time.Millisecond))
	if report.Checkpoint != report.Head {
		fmt.Fprintf(c.stdout, "note: the projector is behind the stream (stream head at position %d); events after it were not compared\n",
			report.Head.Position)
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
	pool, err := c.db(ctx)
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

func (c *cli) export(ctx context.Context, args []string) error {
	var after, limit int64
	if err := c.flags("export", args, func(fs *flag.FlagSet) {
		fs.Int64Var(&after, "after", 0, "")
		fs.Int64Var(&limit, "limit", 0, "")
	}); err != nil {
		return err
	}
	if after < 0 || limit < 0 {
		return usagef("export: --after and --limit must not be negative")
	}
	pool, err := c.ledgerDB(ctx)
	if err != nil {
		return err
	}
	store := eventstore.New(pool)
	cp, err := store.CheckpointAt(ctx, after)
	if errors.Is(err, eventstore.ErrPositionNotFound) {
		return usagef("export: --after %d: no event has that position; use 0 or a global_position from an earlier export", after)
	}
	if err != nil {
		return err
	}
	// The end is the last event committed when export starts, so a busy
	// ledger cannot keep it running forever; run it again with --after to
	// continue. Reaching it may take a moment: ReadAll waits for older
	// transactions still running on the server.
	head, err := store.Last(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	progress, done := c.progress("exported")
	defer done()
	var n int64
	errEnough := errors.New("limit reached")
	_, err = store.ReadRange(ctx, cp, head, 1000, 10*time.Millisecond, func(events []eventstore.Event) error {
		for _, e := range events {
			if limit > 0 && n >= limit {
				return errEnough
			}
			if err := enc.Encode(e); err != nil {
				return err
			}
			n++
		}
		if progress != nil {
			progress(int(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return err
	}
	return nil
}

// importBatch is how many events one import transaction appends.
const importBatch = 5000

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
	pool, err := c.ledgerDB(ctx)
	if err != nil {
		return err
	}
	progress, done := c.progress("imported")
	defer done()
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	var (
		batch       []eventstore.Event
		read, added int
		line        int
	)
	flush := func() error {
		k, err := eventstore.Import(ctx, pool, batch)
		if err != nil {
			return fmt.Errorf("%w (the events before this batch of %d are in; fix the input and run the same import again: what is in already is skipped)", err, len(batch))
		}
		read += len(batch)
		added += k
		batch = batch[:0]
		if progress != nil {
			progress(read)
		}
		return nil
	}
	for {
		var e eventstore.Event
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return fmt.Errorf("import: event %d of the input: %w (%d events before it are in; fix the input and run the same import again: what is in already is skipped)", line, err, read)
		}
		batch = append(batch, e)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	done()
	fmt.Fprintf(c.stdout, "imported %d events (%d of the %d read were here already); run bookingctl replay to build the projections, and see `bookingctl consumers` for the other consumer groups\n",
		added, read-added, read)
	return nil
}

func (c *cli) rebaseXIDs(ctx context.Context, args []string) error {
	if err := c.flags("rebase-xids", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	pool, err := c.db(ctx)
	if err != nil {
		return err
	}
	st, err := eventstore.Rebase(ctx, pool)
	if err != nil {
		return err
	}
	if !st.Rebased {
		fmt.Fprintln(c.stdout, "ok: the stored transaction ids are this server's; nothing to do")
		return nil
	}
	fmt.Fprintf(c.stdout, "rebased %d transaction ids (consumed %d to get past them) and %d consumer checkpoints; every consumer resumes where it was\n",
		st.Transactions, st.Burned, st.Checkpoints)
	fmt.Fprintln(c.stdout, "next: delete the ledger's Redis keys (cached reads and read-your-writes tokens name the old ids), then bookingctl verify")
	return nil
}

func (c *cli) consumers(ctx context.Context, args []string) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	var (
		group  string
		toEnd  bool
		after  int64 = -1
		define       = func(fs *flag.FlagSet) {
			fs.StringVar(&group, "group", "", "")
			if sub == "reset" {
				fs.BoolVar(&toEnd, "to-end", false, "")
				fs.Int64Var(&after, "after", -1, "")
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
	pool, err := c.ledgerDB(ctx)
	if err != nil {
		return err
	}
	store := eventstore.New(pool)
	switch sub {
	case "delete":
		ok, err := store.DeleteConsumerGroup(ctx, group)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("consumers delete: no consumer group %q", group)
		}
		fmt.Fprintf(c.stdout, "deleted %s: its next consumer starts from the beginning of the stream\n", group)
		return nil
	case "reset":
		cp, err := store.Last(ctx)
		if err != nil {
			return err
		}
		if !toEnd {
			if cp, err = store.CheckpointAt(ctx, after); errors.Is(err, eventstore.ErrPositionNotFound) {
				return usagef("consumers reset: --after %d: no event has that position", after)
			} else if err != nil {
				return err
			}
		}
		if err := store.SetConsumerCheckpoint(ctx, group, cp); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s continues after position %d\n", group, cp.Position)
		return nil
	}
	groups, err := store.ConsumerGroups(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tAFTER POSITION\tEVENTS BEHIND\tOLDEST UNCONSUMED")
	for _, g := range groups {
		cp, err := store.ConsumerCheckpoint(ctx, g)
		if err != nil {
			return err
		}
		n, age, err := store.Lag(ctx, g)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", g, cp.Position, n, age.Round(time.Millisecond))
	}
	return tw.Flush()
}
