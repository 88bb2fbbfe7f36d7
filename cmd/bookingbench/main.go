// Command bookingbench measures booking throughput: the seed design's
// pessimistic-locking transaction against the ledger's command path and the
// full HTTP API, side by side in one process and one run, so their ratios
// hold on a noisy machine. It also measures the projector's lag under the
// ledger's write load, the show read with and without the Redis cache, and
// an on-sale against the real bookingd binary with thousands of live seat
// maps open (-scenario onsale).
//
// Scenarios:
//
//   - spread: 1,000 shows of 100 seats; each booking takes seats of one show.
//   - hot: one show of 10,000 seats that every client books at once.
//
// Each booking takes 1 to 4 seats. The scenario's free seats are shuffled
// once into a queue of bookings that the clients share, so every booking
// asks for seats nobody holds: the run measures throughput, not
// seat-guessing, and it ends early when the seats run out. Every target gets
// the same queue, the same number of clients (-concurrency) and the same
// time (-duration).
//
// Targets, each on its own fresh database, created through -admin-url and
// dropped afterwards (unless -keep):
//
//   - seed: the seed design's transaction, run directly with pgx against its
//     own tables shows, seats and bookings: BEGIN; SELECT … FROM shows … FOR
//     UPDATE; SELECT … FROM seats … FOR UPDATE; check every seat is
//     available; INSERT the booking; UPDATE seats; UPDATE shows'
//     available_seats; COMMIT.
//   - ledger: the project's command path in process, ledger.Service.Hold on
//     the migrated schema (the shows scheduled first with ScheduleShow),
//     with a projections.Projector (PollInterval 10 ms) following the same
//     database through the run, as bookingd runs one.
//   - http: the full API (api.New) on a real 127.0.0.1 listener in this
//     process, without the show cache, one registered user per client
//     logged in with POST /api/auth/login, holds with POST /api/bookings and
//     its JWT. Rate limits are set out of the way. A projector projects the
//     set-up and is stopped before the clients book (holds do not read the
//     projections).
//
// -shards N spreads the ledger target over N databases on the -admin-url
// server (shard k holds the shows whose id ≡ k mod N: shards.ConfigureIDs,
// ledger.Sharded), verifies each shard's events, and reports each shard's
// bookings/s ("shards" and "ledger_per_shard_per_s" in the JSON line; the
// projection lag is shard 0's). The http target stays on one database.
//
// Every target's connection pool holds up to -concurrency connections (the
// seed design needs one per transaction in flight) and is opened before the
// clock starts.
//
// A booking is ok when it was acknowledged (nil error, 201), refused when
// the system said no (seats unavailable, too many conflicts: 409, 503), and
// an error otherwise. Bookings per second are ok bookings over the time from
// the start until the last client finished; p50 and p99 are the latencies of
// ok bookings.
//
// Projection lag (ledger target). Before the clock starts the projector
// projects the set-up (up to a minute). While the clients book, every
// 50 ms, eventstore.Store.Lag gives the age of the oldest committed event
// past the projector's checkpoint (0 when it has projected everything);
// bookingbench reports p50, p99 and max of these ages, the events not
// projected when the last booking finished, and how long after the last
// booking the projector's checkpoint reached the newest committed event
// (eventstore.Store.Last), waiting at most a minute. The projector and the
// samples use a small pool of their own, apart from the clients'.
//
// Replica lag (-replica-url, ledger target). -replica-url names a hot
// standby streaming from the -admin-url server (checked first: it must be in
// recovery, and the primary's pg_stat_replication must list a standby; the
// -admin-url user needs superuser or pg_monitor to see its lag columns).
// Before the clock starts the standby replays the set-up (up to a minute).
// While the clients book, every 100 ms, bookingbench notes the newest
// committed event of shard 0's database on the primary
// (eventstore.Store.Last) and reads the primary's pg_stat_replication:
// write_lag, flush_lag, replay_lag (NULL, once caught up, counts as 0) and
// pg_wal_lsn_diff(sent_lsn, replay_lsn) of the standby (when the primary
// cannot tell which row is the standby, the largest over all its standbys).
// At once, and then every 2 ms while noted events are pending, it asks the
// standby, in the same database, which of them it has, and where its
// projector checkpoint (consumer_offsets, what readpath.AtLeast compares a
// read-your-writes token with) stands. It reports p50, p99 and max of: the
// time from before asking the primary for the event until the standby was
// asked and had it (the replication lag a reader sees), and until the
// standby's projector checkpoint had passed it (how long a read-your-writes
// read waits for that standby: projection lag plus replication) — upper
// bounds by a round trip to each server and up to one poll; and of the
// pg_stat_replication columns. After the last booking it waits up to a
// minute for the standby to catch up with every noted event ("unseen"
// counts those it did not). With -shards the standby replicates every
// shard's database (they share the server's WAL); the noted events are
// shard 0's. The JSON line gets, only with -replica-url:
//
//	"replica_lag_p50_ms","replica_lag_p99_ms","replica_lag_max_ms",
//	"replica_ryw_lag_p99_ms","replica_ryw_lag_max_ms",
//	"replica_write_lag_p99_ms","replica_flush_lag_p99_ms",
//	"replica_replay_lag_p99_ms","replica_replay_lag_max_ms",
//	"replica_bytes_p99","replica_bytes_max","replica_probes","replica_unseen"
//
// Reads (http target, after the booking run). The set-up of the http target
// schedules one more show of 100 seats that nobody books. A second API
// instance is served next to the first, with cache.New on a go-redis client
// to -redis-url (REDIS_URL, default redis://127.0.0.1:6379/0) under a key
// prefix of its own, with the cache's invalidation listener as bookingd
// runs it; the first serves the same show through cache.New(nil, …), so
// from the projection tables on every request. Both must answer the same
// seat map, asked for as a client that accepts gzip: plain JSON from the
// one without cache, gzip (compressed once, when it was cached) from the
// one with it. Then -read-concurrency anonymous clients (default 64) that
// accept gzip GET /api/shows/{id} of that show from the instance without
// cache, from the one with it, then clients that do not accept gzip from
// the one with it, and last the same clients from a bare net/http server
// that writes the cached answer's bytes (no routing, middleware or
// lookup): the most any cache could serve on this machine, which puts the
// ratio in proportion. Rate limits are decided in process there; the same
// clients then read from both APIs again with bookingd's rate limiter on
// that Redis (ratelimit.New on the client, as bookingd runs it with
// REDIS_URL: every read asks Redis), first without the cache, then with
// it. Each phase first runs 0.5 s untimed; then the phases take
// turns, three rounds of a third of -read-duration each (default 3 s in
// all), so that a disturbance of a second or two falls on all of them
// alike. The cache's and the limiter's keys are deleted afterwards. The read clients are one
// keep-alive connection each, writing a request and reading its response
// with a minimal HTTP/1.1 reader that counts the body (as wrk does). There
// are more of them than booking clients because the load generator shares
// the two cores with the server: with 32, a cached read left about a tenth
// of the CPU idle (vmstat), every connection waiting on the other side,
// and measured the two programs' hand-offs rather than the server's
// capacity; with 64 the CPU stays busy in every phase.
//
// After each run bookingbench verifies the database: for ledger and http it
// folds every show's stream from the events table alone and counts seats
// locked by a second live booking (oversold) and ok bookings without their
// SeatLocked event on the right stream (lost); for seed it checks its own
// tables for the same two things. It exits 1 when either is not zero.
//
// Replay (-scenario replay, or all). A fresh database gets about
// -replay-events events (default 1,000,000), generated by PostgreSQL as the
// ledger would have written them: shows of 100 seats, each stream a
// ShowScheduled and then, per pair of seats, a SeatLocked and its
// BookingConfirmed or BookingExpired. projections.Rebuild (what `bookingctl
// replay` runs) then replays them into fresh projection tables, timed, and
// projections.Verify checks the result. Its JSON line:
//
//	{"scenario":"replay","events":…,"shows":…,"replay_s":…,"replay_events_per_s":…,"verify_s":…}
//
// On-sale (-scenario onsale, or all; issue 17). The real bookingd binary,
// built from this module with `go build ./cmd/bookingd` (or -bookingd
// PATH), runs on a fresh database (migrated; dropped afterwards unless
// -keep) and on -redis-url under a key prefix of its own (REDIS_PREFIX; its
// keys are deleted afterwards), with every role, its JSON logs in a file of
// a temporary folder, a random JWT_SECRET and HTTP_ADDR on a free 127.0.0.1
// port. Only the limits are raised: RATE_LIMIT_AUTH_PER_MIN,
// RATE_LIMIT_BOOKINGS_PER_MIN and RATE_LIMIT_READS_PER_MIN to 100,000,000
// (every client comes from one address), LIVE_MAX_FEEDS and
// LIVE_MAX_FEEDS_PER_CLIENT to -watchers + 1,000. bookingd gets no other
// variable, so everything else is its default: CONFIRM_DELAY (1 s: each
// hold is confirmed a second later), HOLD_TTL, LIVE_COALESCE,
// MAX_SEATS_PER_USER … -target does not apply. bookingbench raises its
// open-file limit, which bookingd inherits, to room for every feed on both
// ends (within the hard limit; fewer than -watchers + 1,024 fails).
//
// Before bookingd starts, the ledger in this process schedules one movie
// show of 20,000 seats (max_seats_per_user left to the default) and holds
// 3,000 random seats of it, one each for as many users. 64 clients
// register and log in through the API, one user each, and share a
// shuffled queue of the other seats: each holds one seat at a time (POST
// /api/bookings) and keeps at most 5 holds, cancelling its oldest (POST
// /api/bookings/{id}/cancel) before a 6th and putting that seat at the end
// of the queue (a seat whose hold was refused as busy or over a limit goes
// back too; one whose request failed does not). Holds per second are the
// 201s over the time until the last client finished.
//
// Phase A: the clients book for -onsale-alone (10 s) with nobody watching
// (holds_per_s_alone). Then, as the web app does, bookingbench reads GET
// /api/shows/{id} (once: nothing books meanwhile) and opens -watchers
// (10,000) anonymous feeds GET /api/shows/{id}/live?after=<its version>,
// about 2,000 a second, each a raw HTTP/1.1 request on a TCP connection of
// its own. Connect time is from dialling to the response header; a feed not
// answered 200 within 60 s, or that ends before the run is over, is
// dropped and not reconnected. Phase B: once every feed has connected or
// failed, the clients book for -onsale-watched (30 s) with every feed open
// (holds_per_s), and then 3 s pass.
//
// Delivery. 50 of the watchers, spread over the ramp, parse every
// server-sent event ("snapshot" and "seats" messages) and note when each
// arrived, its version and the seats it lists as locked; the others read
// into a small buffer and discard. The 201 carries no stream version, so
// afterwards the events table gives each phase-B hold's SeatLocked version:
// a hold reaches a sampled watcher with the first message the watcher
// applies (its version above the one the watcher has) whose range of
// versions holds the hold's and that lists its seat as locked, or with a
// snapshot at or above its version — a seat held, cancelled and held again
// is never taken for another of its holds (matchDeliveries).
// delivery_p50_ms and delivery_p99_ms are over every (hold, sampled
// watcher) pair, from the client's 201 to the arrival (a feed faster than
// the 201 counts negative); deliveries_missed counts the pairs not
// delivered by the end of the 3 s. A sampled watcher that never connected
// is left out (it counts as dropped); one whose feed ended misses every
// hold after.
//
// Memory: bookingd's VmRSS (/proc/<pid>/status) every 100 ms;
// rss_kb_per_watcher is its maximum from the first feed to the end of
// phase B, less its value just before the feeds, over the feeds that
// connected. Then internal/audit folds the events table: oversold (a seat
// held by two live bookings) and lost (a 201 without its SeatLocked; the
// 3,000 set-up holds included). Last the feeds are closed and bookingd is
// sent SIGTERM and waited for. Its JSON line, which comes last with -scenario all:
//
//	{"scenario":"onsale","watchers":…,"watchers_connected":…,"watchers_dropped":…,"connect_p50_ms":…,"connect_p99_ms":…,
//	 "delivery_p50_ms":…,"delivery_p99_ms":…,"deliveries_missed":…,"holds_per_s_alone":…,"holds_per_s":…,"holds_ratio":…,
//	 "rss_kb_per_watcher":…,"oversold":0,"lost":0,"watchers_not_connected":…,"sampled_watchers":…,"deliveries":…,
//	 "holds_p99_ms_alone":…,"holds_p99_ms":…,"rss_before_kb":…,"rss_max_kb":…,
//	 "holds_per_s_bound":…,"holds_ratio_bound":…,"bound_msgs_per_s":…,"bound_msg_bytes":…}
//
// (on one line). watchers_dropped counts the feeds not open at the end,
// watchers_not_connected those of them that never connected; holds_ratio
// is holds_per_s over holds_per_s_alone; holds_p99_ms* are the 201s'.
//
// The bound. After phase B the feeds are closed and the clients book for
// -onsale-watched again while a bare fan-out server — bookingbench itself
// in a process of its own: a goroutine and one write a message per
// connection, no hub, database, middleware or encoding — sends as many
// watchers, opened the same way, messages of the mean size and at the rate
// the first sampled watcher got in phase B (bound_msg_bytes,
// bound_msgs_per_s). holds_ratio_bound, its holds/s over
// holds_per_s_alone, is what this machine leaves for booking while any
// server feeds that crowd, the watchers' own reading included: the
// ceiling of holds_ratio here.
//
// Output: per scenario the tables of bookings, projection lag and reads,
// then one JSON line — the last line of the output is the last scenario's:
//
//	{"scenario":"spread","seed_per_s":…,"ledger_per_s":…,"http_per_s":…,"ledger_vs_seed":…,"http_vs_seed":…,"p50_ms":…,"p99_ms":…,"oversold":0,"lost":0,
//	 "lag_p99_ms":…,"lag_max_ms":…,"catchup_ms":…,"reads_cached_per_s":…,"reads_uncached_per_s":…,"cache_ratio":…,
//	 "reads_cached_plain_per_s":…,"cache_ratio_plain":…,"reads_ceiling_per_s":…,
//	 "reads_cached_redis_limits_per_s":…,"reads_uncached_redis_limits_per_s":…,"cache_ratio_redis_limits":…,
//	 "shards":…,"ledger_per_shard_per_s":[…]}
//
// (on one line). p50_ms, p99_ms and the lag figures are the ledger
// target's, in ms; catchup_ms is -1 when the projector did not catch up
// within a minute. The reads are the http target's, in requests/s;
// cache_ratio is cached over uncached (clients that accept gzip; the
// uncached answer is plain JSON either way), cache_ratio_plain the cached
// rate of clients that do not accept gzip over the same uncached rate,
// cache_ratio_redis_limits the two rates with the limits on Redis. oversold and lost
// are summed over the targets. Figures of targets not run are 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func main() {
	if spec := os.Getenv(bareFanoutEnv); spec != "" {
		os.Exit(serveBareFanout(spec))
	}
	// A replay holds the whole read model in memory while it streams the
	// events through; collecting garbage less often is worth the memory
	// for a batch tool. GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // a run failed, or verification found oversold or lost bookings
	exitUsage = 2 // bad flags
)

// usageError is bad input on the command line; it exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "bookingbench: %v (bookingbench -h lists the flags)\n", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "bookingbench:", err)
		return exitFail
	}
}

// defaultAdminURL is used when neither -admin-url nor TEST_DATABASE_URL is set.
const defaultAdminURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// defaultRedisURL is used when neither -redis-url nor REDIS_URL is set.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

// run parses the flags and runs the benchmark.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	if _, err = bench(ctx, cfg, stdout, stderr); err != nil || !cfg.onsale.enabled {
		return err
	}
	_, err = benchOnsale(ctx, cfg, stdout, func(format string, args ...any) {
		if !cfg.jsonOnly {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	})
	return err
}

// config is what the flags say.
type config struct {
	scenarios   []scenario
	targets     []string
	concurrency int
	duration    time.Duration
	adminURL    string
	redisURL    string
	// readDuration is how long each read phase is timed, over its turns.
	readDuration time.Duration
	// readConcurrency is the number of read clients.
	readConcurrency int
	keep            bool
	jsonOnly        bool
	// replayEvents is the size of the replay scenario's stream; 0 skips it.
	replayEvents int
	// shards is how many databases the ledger target spreads its shows over.
	shards int
	// replicaURL, when set, is a hot standby of the adminURL server whose
	// lag the ledger target measures.
	replicaURL string
	// onsale is the on-sale scenario against the real bookingd (onsale.go).
	onsale onsaleConfig
}

// Target names, in the order -target all runs them.
const (
	targetSeed   = "seed"
	targetLedger = "ledger"
	targetHTTP   = "http"
)

var allTargets = []string{targetSeed, targetLedger, targetHTTP}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bookingbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "bookingbench measures bookings per second of the seed's locking design, the ledger and the HTTP API.\n\nUsage:\n  bookingbench [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	adminDefault := getenv("TEST_DATABASE_URL")
	if adminDefault == "" {
		adminDefault = defaultAdminURL
	}
	redisDefault := getenv("REDIS_URL")
	if redisDefault == "" {
		redisDefault = defaultRedisURL
	}
	var (
		sc  = fs.String("scenario", "both", "spread (1,000 shows × 100 seats), hot (one show of 10,000 seats), both, replay (rebuild the projections from -replay-events events), onsale (the real bookingd with -watchers live feeds) or all")
		tg  = fs.String("target", "all", "seed, ledger, http or all (one after another)")
		cfg config
	)
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "concurrent clients")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long each target runs in each scenario (less when the seats run out)")
	fs.StringVar(&cfg.adminURL, "admin-url", adminDefault, "PostgreSQL connection used to create and drop the benchmark's databases (default: TEST_DATABASE_URL)")
	fs.StringVar(&cfg.redisURL, "redis-url", redisDefault, "Redis of the http target's show cache; its keys get a unique prefix and are deleted afterwards (default: REDIS_URL)")
	fs.DurationVar(&cfg.readDuration, "read-duration", 3*time.Second, "how long each read phase of the http target lasts in all (without the cache, with it, without gzip, the bare server), in three turns")
	fs.IntVar(&cfg.readConcurrency, "read-concurrency", 64, "concurrent read clients (keep-alive connections) of the http target's read phases")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the databases instead of dropping them")
	fs.BoolVar(&cfg.jsonOnly, "json-only", false, "print only the JSON lines")
	replayEvents := fs.Int("replay-events", 1_000_000, "events the replay scenario generates and replays")
	fs.IntVar(&cfg.shards, "shards", 1, "databases the ledger target spreads its shows over (show id mod N), reporting each one's bookings/s")
	fs.StringVar(&cfg.replicaURL, "replica-url", "", "a hot standby streaming from the -admin-url server: the ledger target measures its lag under the write load (off when empty)")
	cfg.onsale = defaultOnsale()
	fs.IntVar(&cfg.onsale.watchers, "watchers", cfg.onsale.watchers, "live feeds the onsale scenario opens")
	fs.DurationVar(&cfg.onsale.alone, "onsale-alone", cfg.onsale.alone, "how long the onsale scenario books without watchers (holds_per_s_alone)")
	fs.DurationVar(&cfg.onsale.watched, "onsale-watched", cfg.onsale.watched, "how long the onsale scenario books with every feed open (holds_per_s)")
	fs.StringVar(&cfg.onsale.bookingd, "bookingd", "", "the bookingd binary the onsale scenario runs (default: go build ./cmd/bookingd of this module)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return config{}, usagef("unexpected argument %q", fs.Arg(0))
	}
	switch *sc {
	case "spread":
		cfg.scenarios = []scenario{spread}
	case "hot":
		cfg.scenarios = []scenario{hot}
	case "both":
		cfg.scenarios = []scenario{spread, hot}
	case "replay":
		cfg.replayEvents = *replayEvents
	case "onsale":
		cfg.onsale.enabled = true
	case "all":
		cfg.scenarios, cfg.replayEvents, cfg.onsale.enabled = []scenario{spread, hot}, *replayEvents, true
	default:
		return config{}, usagef("-scenario must be spread, hot, both, replay, onsale or all, not %q", *sc)
	}
	// Each feed is a connection from a port of 127.0.0.1's ephemeral range
	// (net.ipv4.ip_local_port_range, about 28,000 by default).
	if cfg.onsale.watchers < 1 || cfg.onsale.watchers > 25_000 {
		return config{}, usagef("-watchers must be 1 to 25000, not %d", cfg.onsale.watchers)
	}
	if cfg.onsale.alone <= 0 || cfg.onsale.watched <= 0 {
		return config{}, usagef("-onsale-alone and -onsale-watched must be positive, not %s and %s", cfg.onsale.alone, cfg.onsale.watched)
	}
	if *replayEvents < replaySeats+1 || *replayEvents > 100_000_000 {
		return config{}, usagef("-replay-events must be %d to 100000000, not %d", replaySeats+1, *replayEvents)
	}
	switch *tg {
	case targetSeed, targetLedger, targetHTTP:
		cfg.targets = []string{*tg}
	case "all":
		cfg.targets = allTargets
	default:
		return config{}, usagef("-target must be seed, ledger, http or all, not %q", *tg)
	}
	if cfg.shards < 1 || cfg.shards > 16 {
		return config{}, usagef("-shards must be 1 to 16, not %d", cfg.shards)
	}
	if cfg.concurrency < 1 || cfg.concurrency > 1000 {
		return config{}, usagef("-concurrency must be 1 to 1000, not %d", cfg.concurrency)
	}
	if cfg.duration <= 0 {
		return config{}, usagef("-duration must be positive, not %s", cfg.duration)
	}
	if cfg.readConcurrency < 1 || cfg.readConcurrency > 1000 {
		return config{}, usagef("-read-concurrency must be 1 to 1000, not %d", cfg.readConcurrency)
	}
	if cfg.readDuration <= 0 {
		return config{}, usagef("-read-duration must be positive, not %s", cfg.readDuration)
	}
	if _, err := pgx.ParseConfig(cfg.adminURL); err != nil {
		return config{}, usagef("-admin-url: %v", err)
	}
	if _, err := redis.ParseURL(cfg.redisURL); err != nil {
		return config{}, usagef("-redis-url: %v", err)
	}
	if cfg.replicaURL != "" {
		if _, err := pgx.ParseConfig(cfg.replicaURL); err != nil {
			return config{}, usagef("-replica-url: %v", err)
		}
		if len(cfg.scenarios) == 0 || !slices.Contains(cfg.targets, targetLedger) {
			return config{}, usagef("-replica-url is measured by the ledger target in the spread or hot scenario: use -target ledger or all, and -scenario spread, hot, both or all")
		}
	}
	return cfg, nil
}
