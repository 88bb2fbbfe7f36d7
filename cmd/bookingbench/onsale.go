package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/audit"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/shards"
)

// The on-sale scenario (issue 17): the real bookingd, one big show, a crowd
// on its live seat map while clients hold seats. main.go's doc comment says
// what it measures; the figures below are the issue's.
const (
	onsaleKeep         = 5                // holds a client keeps; it cancels the oldest before a 6th
	onsaleSampled      = 50               // watchers that parse and record every message
	onsaleRampPerS     = 2_000            // feeds opened per second
	onsaleWait         = 3 * time.Second  // after the watched phase, for the last deliveries
	onsaleConnectBound = 60 * time.Second // a feed not answered by then failed
	onsaleReadyBound   = 60 * time.Second // bookingd ready, the set-up projected
	onsaleStopBound    = 30 * time.Second // bookingd's graceful stop, then SIGKILL
	onsaleRSSEvery     = 100 * time.Millisecond
	onsaleRateLimit    = 100_000_000 // per minute: the limits out of the way
)

// onsaleConfig is the scenario's part of the flags; seats, preHeld and
// clients are the and change only in tests.
type onsaleConfig struct {
	enabled  bool
	watchers int
	alone    time.Duration // phase A: booking without watchers
	watched  time.Duration // phase B: booking with every feed open
	bookingd string        // a prebuilt binary; empty: go build ./cmd/bookingd
	seats    int           // of the show
	preHeld  int           // holds on its stream before bookingd starts, one seat each
	clients  int           // booking clients, one user each
}

func defaultOnsale() onsaleConfig {
	return onsaleConfig{watchers: 10_000, alone: 10 * time.Second, watched: 30 * time.Second,
		seats: 20_000, preHeld: 3_000, clients: 64}
}

// onsaleResult is one run of the scenario.
type onsaleResult struct {
	watchers  int
	connected int // answered 200
	failed    int // not connected: an error, another status, or no answer within onsaleConnectBound
	ended     int // connected, then ended before the bench closed it
	connect   []time.Duration
	firstFail error // why the first watcher failed or ended

	alone, watched phaseStats
	// bound: booking while a bare fan-out server feeds the same crowd at
	// the rate and size bookingd's feeds had (boundPhase).
	bound         phaseStats
	boundMsgsPerS float64
	boundMsgBytes int

	sampled    int             // watchers that connected and recorded their messages
	deliveries []time.Duration // from a hold's 201 to its arrival, per (hold, sampled watcher)
	missed     int             // (hold, sampled watcher) pairs never delivered
	decodeErr  error           // the first message a sampled watcher could not read

	rssBefore, rssMax int64 // bookingd's VmRSS in kB: before the feeds, and its most with them open
	verdict
}

// dropped is every watcher that is not watching at the end: never
// connected, or its feed ended.
func (r onsaleResult) dropped() int { return r.failed + r.ended }

func (r onsaleResult) rssPerWatcher() float64 {
	if r.connected == 0 {
		return 0
	}
	return float64(r.rssMax-r.rssBefore) / float64(r.connected)
}

func (r onsaleResult) holdsRatio() float64 { return ratioTo(r.watched, r.alone) }

func ratioTo(p, alone phaseStats) float64 {
	if a := alone.perSec(); a > 0 {
		return p.perSec() / a
	}
	return 0
}

// onsaleSummary is the scenario's JSON line; the fields first.
type onsaleSummary struct {
	Scenario          string  `json:"scenario"`
	Watchers          int     `json:"watchers"`
	WatchersConnected int     `json:"watchers_connected"`
	WatchersDropped   int     `json:"watchers_dropped"`
	ConnectP50ms      float64 `json:"connect_p50_ms"`
	ConnectP99ms      float64 `json:"connect_p99_ms"`
	DeliveryP50ms     float64 `json:"delivery_p50_ms"`
	DeliveryP99ms     float64 `json:"delivery_p99_ms"`
	DeliveriesMissed  int     `json:"deliveries_missed"`
	HoldsPerSAlone    float64 `json:"holds_per_s_alone"`
	HoldsPerS         float64 `json:"holds_per_s"`
	HoldsRatio        float64 `json:"holds_ratio"`
	RSSKBPerWatcher   float64 `json:"rss_kb_per_watcher"`
	Oversold          int     `json:"oversold"`
	Lost              int     `json:"lost"`
	// The watchers that never connected (part of watchers_dropped), the
	// pairs measured, the holds' latencies (201s, ms) and bookingd's memory.
	WatchersNotConnected int     `json:"watchers_not_connected"`
	SampledWatchers      int     `json:"sampled_watchers"`
	Deliveries           int     `json:"deliveries"`
	HoldsP99msAlone      float64 `json:"holds_p99_ms_alone"`
	HoldsP99ms           float64 `json:"holds_p99_ms"`
	RSSBeforeKB          int64   `json:"rss_before_kb"`
	RSSMaxKB             int64   `json:"rss_max_kb"`
	// The bound: holds/s while a bare fan-out server feeds as many
	// watchers messages of the size and at the rate bookingd's had.
	HoldsPerSBound  float64 `json:"holds_per_s_bound"`
	HoldsRatioBound float64 `json:"holds_ratio_bound"`
	BoundMsgsPerS   float64 `json:"bound_msgs_per_s"`
	BoundMsgBytes   int     `json:"bound_msg_bytes"`
}

func (r onsaleResult) summary() onsaleSummary {
	return onsaleSummary{
		Scenario: "onsale", Watchers: r.watchers, WatchersConnected: r.connected, WatchersDropped: r.dropped(),
		ConnectP50ms: round(percentile(r.connect, 0.50), 1), ConnectP99ms: round(percentile(r.connect, 0.99), 1),
		DeliveryP50ms: round(percentile(r.deliveries, 0.50), 1), DeliveryP99ms: round(percentile(r.deliveries, 0.99), 1),
		DeliveriesMissed: r.missed,
		HoldsPerSAlone:   round(r.alone.perSec(), 1), HoldsPerS: round(r.watched.perSec(), 1), HoldsRatio: round(r.holdsRatio(), 2),
		RSSKBPerWatcher: round(r.rssPerWatcher(), 1),
		Oversold:        r.oversold, Lost: r.lost,
		WatchersNotConnected: r.failed, SampledWatchers: r.sampled, Deliveries: len(r.deliveries),
		HoldsP99msAlone: round(percentile(r.alone.latencies, 0.99), 1), HoldsP99ms: round(percentile(r.watched.latencies, 0.99), 1),
		RSSBeforeKB: r.rssBefore, RSSMaxKB: r.rssMax,
		HoldsPerSBound: round(r.bound.perSec(), 1), HoldsRatioBound: round(ratioTo(r.bound, r.alone), 2),
		BoundMsgsPerS: round(r.boundMsgsPerS, 1), BoundMsgBytes: r.boundMsgBytes,
	}
}

// benchOnsale runs the scenario, prints its tables (unless -json-only) and
// its JSON line, and fails when verification found oversold or lost holds.
func benchOnsale(ctx context.Context, cfg config, stdout io.Writer, progress func(string, ...any)) (onsaleResult, error) {
	r, err := runOnsale(ctx, cfg, func(format string, args ...any) { progress("onsale: "+format, args...) })
	if err != nil {
		return r, fmt.Errorf("onsale: %w", err)
	}
	if !cfg.jsonOnly {
		if err := printOnsale(stdout, r); err != nil {
			return r, err
		}
	}
	line, err := json.Marshal(r.summary())
	if err != nil {
		return r, err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return r, err
	}
	if r.oversold != 0 || r.lost != 0 {
		return r, fmt.Errorf("verification failed: onsale: %d oversold, %d lost", r.oversold, r.lost)
	}
	return r, nil
}

// runOnsale sets up, runs and tears down one on-sale run.
func runOnsale(ctx context.Context, cfg config, progress func(string, ...any)) (r onsaleResult, err error) {
	oc := cfg.onsale
	r.watchers = oc.watchers
	fileLimit, err := raiseFileLimit(uint64(oc.watchers))
	if err != nil {
		return r, err
	}
	progress("open-file limit %d", fileLimit)

	tmp, err := os.MkdirTemp("", "bookingbench-onsale-")
	if err != nil {
		return r, err
	}
	defer func() {
		if cfg.keep {
			progress("kept %s (bookingd's log)", tmp)
			return
		}
		_ = os.RemoveAll(tmp)
	}()
	bin := oc.bookingd
	if bin == "" {
		began := time.Now()
		if bin, err = buildBookingd(ctx, tmp); err != nil {
			return r, err
		}
		progress("built bookingd in %.1fs", time.Since(began).Seconds())
	}

	dbName, err := createDB(ctx, cfg.adminURL, "bookingbench_onsale")
	if err != nil {
		return r, err
	}
	defer func() {
		if cfg.keep {
			progress("kept database %s", dbName)
			return
		}
		if derr := dropDB(ctx, cfg.adminURL, dbName); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	pool, err := openPool(ctx, cfg.adminURL, dbName, 16)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	began := time.Now()
	set, err := setUpOnsale(ctx, pool, oc)
	if err != nil {
		return r, fmt.Errorf("set up: %w", err)
	}
	progress("show %d: %d seats, %d held, in %.1fs", set.show, oc.seats, oc.preHeld, time.Since(began).Seconds())

	// bookingd's cache and rate limiter keys, under a prefix of the run's own.
	rdb, prefix, err := openRedis(ctx, cfg.redisURL, 1)
	if err != nil {
		return r, err
	}
	defer func() { err = errors.Join(err, closeRedis(ctx, rdb, prefix)) }()

	dbURL, err := databaseURL(cfg.adminURL, dbName)
	if err != nil {
		return r, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	feeds := strconv.Itoa(oc.watchers + 1000)
	limit := strconv.Itoa(onsaleRateLimit)
	// Only these variables: nothing of the caller's environment changes
	// bookingd's defaults (CONFIRM_DELAY, LIVE_COALESCE, HOLD_TTL …).
	env := []string{
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + cfg.redisURL, "REDIS_PREFIX=" + prefix,
		"JWT_SECRET=" + hex.EncodeToString(secret),
		"RATE_LIMIT_AUTH_PER_MIN=" + limit, "RATE_LIMIT_BOOKINGS_PER_MIN=" + limit, "RATE_LIMIT_READS_PER_MIN=" + limit,
		"LIVE_MAX_FEEDS=" + feeds, "LIVE_MAX_FEEDS_PER_CLIENT=" + feeds,
	}
	began = time.Now()
	d, err := startBookingd(ctx, bin, env, filepath.Join(tmp, "bookingd.log"))
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := d.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	rss := sampleRSS(d.cmd.Process.Pid)
	defer rss.stop()

	h := &httpTarget{base: d.base, client: &http.Client{ // only its HTTP helpers (post, login) are used
		Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 4 * oc.clients, MaxIdleConnsPerHost: 4 * oc.clients,
			IdleConnTimeout: 2 * time.Minute, DisableCompression: true},
	}}
	defer h.client.CloseIdleConnections()
	if err := waitProjected(ctx, h, set.show, set.version); err != nil {
		return r, d.withLog(err)
	}
	progress("bookingd (pid %d) ready and the set-up projected in %.1fs", d.cmd.Process.Pid, time.Since(began).Seconds())

	clients, err := onsaleClients(ctx, h, set.show, oc.clients)
	if err != nil {
		return r, d.withLog(fmt.Errorf("clients: %w", err))
	}
	queue := &seatQueue{seats: set.free}
	progress("phase A: %d clients book for %s without watchers", oc.clients, oc.alone)
	r.alone = bookPhase(ctx, clients, queue, oc.alone)
	progress("phase A: %d holds in %.1fs: %.0f/s (p99 %.1f ms), %d cancels, %d refused, %d errors%s",
		r.alone.holds, r.alone.elapsed.Seconds(), r.alone.perSec(), percentile(r.alone.latencies, 0.99),
		r.alone.cancels, r.alone.refused, r.alone.errs, errText(r.alone.firstErr))
	if err := ctx.Err(); err != nil {
		return r, err
	}

	// As the web app does: read the show, then open its feed after that
	// version (one read for the whole crowd: nothing books meanwhile).
	after, err := showVersion(ctx, h, set.show)
	if err != nil {
		return r, d.withLog(err)
	}
	if r.rssBefore, err = readRSS(d.cmd.Process.Pid); err != nil {
		return r, err
	}
	opened := time.Now()
	progress("opening %d feeds after version %d at %d/s; bookingd's VmRSS %d kB", oc.watchers, after, onsaleRampPerS, r.rssBefore)
	w := openWatchers(ctx, d.addr, fmt.Sprintf("/api/shows/%d/live?after=%d", set.show, after), oc.watchers, onsaleSampled, onsaleRampPerS)
	defer w.close()
	r.connect = w.connectTimes()
	r.connected = len(r.connect)
	progress("%d of %d feeds connected in %.1fs (p50 %.1f ms, p99 %.1f ms)%s", r.connected, oc.watchers,
		time.Since(opened).Seconds(), percentile(r.connect, 0.5), percentile(r.connect, 0.99), errText(w.firstErr()))

	progress("phase B: %d clients book for %s with the feeds open", oc.clients, oc.watched)
	startedB := time.Now()
	r.watched = bookPhase(ctx, clients, queue, oc.watched)
	ended := time.Now()
	progress("phase B: %d holds in %.1fs: %.0f/s (p99 %.1f ms), %d cancels, %d refused, %d errors%s",
		r.watched.holds, r.watched.elapsed.Seconds(), r.watched.perSec(), percentile(r.watched.latencies, 0.99),
		r.watched.cancels, r.watched.refused, r.watched.errs, errText(r.watched.firstErr))
	if err := sleepCtx(ctx, onsaleWait); err != nil {
		return r, err
	}
	r.rssMax = max(rss.maxBetween(opened, ended), r.rssBefore)
	w.close()
	r.failed, r.ended, r.firstFail = int(w.failed.Load()), int(w.ended.Load()), w.firstErr()
	if d.exited() {
		return r, d.withLog(errors.New("bookingd exited during the run"))
	}
	for _, s := range w.samples {
		if s.connected {
			r.boundMsgsPerS, r.boundMsgBytes = feedRate(s.msgs, startedB, ended)
			break
		}
	}
	if r.boundMsgsPerS > 0 {
		progress("bound: %d clients book for %s while a bare server feeds %d watchers", oc.clients, oc.watched, r.connected)
		if r.bound, err = boundPhase(ctx, clients, queue, r.connected, r.boundMsgsPerS, r.boundMsgBytes, oc.watched, progress); err != nil {
			return r, err
		}
		progress("bound: %d holds in %.1fs: %.0f/s, %.2f of alone", r.bound.holds, r.bound.elapsed.Seconds(), r.bound.perSec(),
			ratioTo(r.bound, r.alone))
	}

	versions, err := lockVersions(ctx, pool, set.show)
	if err != nil {
		return r, err
	}
	holds := make([]deliveredHold, len(r.watched.acked))
	for i, h := range r.watched.acked {
		holds[i] = deliveredHold{seat: h.seat, version: versions[h.id], acked: h.at}
	}
	// A sampled watcher that never connected has no feed to deliver to
	// (it counts as dropped); one whose feed ended misses what followed.
	for _, s := range w.samples {
		if !s.connected {
			continue
		}
		lat, missed := matchDeliveries(holds, after, s.msgs)
		r.deliveries = append(r.deliveries, lat...)
		r.missed += missed
		r.sampled++
		if r.decodeErr == nil {
			r.decodeErr = s.err
		}
	}
	slices.Sort(r.deliveries)
	progress("delivery to %d sampled watchers: %d of %d (hold, watcher) pairs, p50 %.1f ms, p99 %.1f ms; %d missed%s",
		r.sampled, len(r.deliveries), len(holds)*r.sampled, percentile(r.deliveries, 0.5), percentile(r.deliveries, 0.99),
		r.missed, errText(r.decodeErr))

	acks := slices.Clone(set.acks)
	for _, p := range []phaseStats{r.alone, r.watched, r.bound} {
		for _, h := range p.acked {
			acks = append(acks, audit.Ack{Show: set.show, Booking: domain.BookingID(h.id), Type: domain.TypeSeatLocked})
		}
	}
	rep, err := audit.Check(ctx, pool, acks)
	if err != nil {
		return r, fmt.Errorf("verify: %w", err)
	}
	r.oversold, r.lost = rep.Oversold, rep.Lost
	progress("verified %d acknowledged holds over %d events: %d oversold, %d lost", len(acks), rep.Events, r.oversold, r.lost)
	return r, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "; the first: " + err.Error()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raiseFileLimit raises this process's open-file limit (which bookingd,
// started from it, inherits: Go passes on a limit the program set itself)
// to room for every feed on both ends and some, within the kernel's
// fs/nr_open, and returns the limit.
func raiseFileLimit(watchers uint64) (uint64, error) {
	want := 2*watchers + 65_536
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			want = min(want, n)
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("open-file limit: %w", err)
	}
	if lim.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			// Not root: as far as the hard limit goes.
			raised = syscall.Rlimit{Cur: min(want, lim.Max), Max: lim.Max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
				return 0, fmt.Errorf("open-file limit: %w", err)
			}
		}
		lim = raised
	}
	if need := watchers + 256; lim.Cur < need { // the clients' own connections and pools besides

		return lim.Cur, fmt.Errorf("the open-file limit is %d and cannot be raised to %d for %d watchers: that needs a hard limit (ulimit -Hn) that high, or CAP_SYS_RESOURCE", lim.Cur, need, watchers)
	}
	return lim.Cur, nil
}

// buildBookingd builds ./cmd/bookingd of the module bookingbench is run in
// (go run from the module, or go test) into dir.
func buildBookingd(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building bookingd needs the go command in PATH (or pass -bookingd): %w", err)
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("building bookingd: run bookingbench inside the module, or pass -bookingd (go env GOMOD: %q, %v)", gomod, err)
	}
	bin := filepath.Join(dir, "bookingd")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/bookingd")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bookingd: %w\n%s", err, out)
	}
	return bin, nil
}

// databaseURL is adminURL naming database name instead.
func databaseURL(adminURL, name string) (string, error) {
	if u, err := url.Parse(adminURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String(), nil
	}
	if strings.Contains(adminURL, "://") {
		return "", fmt.Errorf("-admin-url %q: not a postgres:// URL", redact(adminURL))
	}
	return adminURL + " dbname=" + name, nil // keyword/value form
}

// onsaleSet is the show as set up.
type onsaleSet struct {
	show    domain.ShowID
	version int         // of its stream after the set-up
	free    []string    // its free seats, shuffled
	acks    []audit.Ack // the set-up's holds
}

// setUpOnsale migrates the database and, through the ledger in this
// process, schedules the movie show (max_seats_per_user left to its
// default) and holds preHeld random seats of it, one each for as many
// users, before bookingd starts.
func setUpOnsale(ctx context.Context, pool *pgxpool.Pool, oc onsaleConfig) (onsaleSet, error) {
	var set onsaleSet
	if _, err := migrations.Up(ctx, pool); err != nil {
		return set, err
	}
	if err := shards.ConfigureIDs(ctx, pool, 0, 1); err != nil {
		return set, err
	}
	svc, err := ledger.New(pool, ledger.DefaultConfig())
	if err != nil {
		return set, err
	}
	labels, err := domain.GenerateSeatLabels(domain.ShowMovie, oc.seats)
	if err != nil {
		return set, err
	}
	res, err := svc.ScheduleShow(ctx, ledger.ScheduleInput{
		Name: "Bench on-sale", ShowType: domain.ShowMovie,
		StartTime: time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second), SeatNumbers: labels,
	}, ledger.Metadata{RequestID: "bookingbench"})
	if err != nil {
		return set, fmt.Errorf("schedule the show: %w", err)
	}
	set.show, set.version = res.ShowID, res.Version
	seats := slices.Clone(labels)
	rng := mrand.New(mrand.NewPCG(uint64(oc.seats), uint64(oc.preHeld)))
	rng.Shuffle(len(seats), func(i, j int) { seats[i], seats[j] = seats[j], seats[i] })
	held, free := seats[:min(oc.preHeld, len(seats))], seats[min(oc.preHeld, len(seats)):]
	set.free = free

	var (
		next     atomic.Int64
		mu       sync.Mutex
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(held) {
					return
				}
				user := uuid.NewString()
				b, res, err := svc.Hold(ctx, set.show, domain.UserID(user), []string{held[i]},
					ledger.Metadata{UserID: user, RequestID: "bookingbench"})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("hold %s: %w", held[i], err) })
					return
				}
				mu.Lock()
				set.acks = append(set.acks, audit.Ack{Show: set.show, Booking: b.ID, Type: domain.TypeSeatLocked})
				set.version = max(set.version, res.Version)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return set, firstErr
	}
	return set, ctx.Err()
}

// daemon is a bookingd process of the run.
type daemon struct {
	cmd    *exec.Cmd
	addr   string // host:port
	base   string // http://addr
	log    string // the file its stdout and stderr go to
	done   chan struct{}
	waited error // cmd.Wait's; read after done is closed
}

// startBookingd starts bin with env (and HTTP_ADDR on a free 127.0.0.1
// port), its output to logPath, and waits for /readyz.
func startBookingd(ctx context.Context, bin string, env []string, logPath string) (*daemon, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	d := &daemon{addr: addr, base: "http://" + addr, log: logPath, done: make(chan struct{})}
	d.cmd = exec.Command(bin)
	d.cmd.Env = append(slices.Clone(env), "HTTP_ADDR="+addr)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// Killed with this process, should it die before stopping it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bookingd: %w", err)
	}
	go func() { d.waited = d.cmd.Wait(); close(d.done) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(onsaleReadyBound)
	for time.Now().Before(deadline) {
		if d.exited() {
			return nil, d.withLog(fmt.Errorf("bookingd exited at start: %v", d.waited))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/readyz", nil)
		if err != nil {
			_ = d.stop()
			return nil, err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			_ = d.stop()
			return nil, err
		}
	}
	_ = d.stop()
	return nil, d.withLog(fmt.Errorf("bookingd was not ready within %s", onsaleReadyBound))
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for bookingd to finish (SIGKILL after
// onsaleStopBound); an exit other than a clean one is an error. Calling
// it again only reports.
func (d *daemon) stop() error {
	if !d.exited() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(onsaleStopBound):
			_ = d.cmd.Process.Kill()
			<-d.done
			return d.withLog(fmt.Errorf("bookingd did not stop within %s of SIGTERM", onsaleStopBound))
		}
	}
	if d.waited != nil {
		return d.withLog(fmt.Errorf("bookingd: %w", d.waited))
	}
	return nil
}

// withLog adds the end of bookingd's log to err.
func (d *daemon) withLog(err error) error {
	b, rerr := os.ReadFile(d.log)
	if rerr != nil {
		return err
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Errorf("%w\nbookingd's log (%s) ends:\n%s", err, d.log, b)
}

// rssSampler notes a process's VmRSS every onsaleRSSEvery.
type rssSampler struct {
	halt chan struct{}
	done chan struct{}
	mu   sync.Mutex
	at   []time.Time
	kb   []int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{halt: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(onsaleRSSEvery)
		defer tick.Stop()
		for {
			if kb, err := readRSS(pid); err == nil {
				s.mu.Lock()
				s.at, s.kb = append(s.at, time.Now()), append(s.kb, kb)
				s.mu.Unlock()
			}
			select {
			case <-s.halt:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// maxBetween is the most noted from from to to (0 when none was).
func (s *rssSampler) maxBetween(from, to time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m int64
	for i, at := range s.at {
		if !at.Before(from) && !at.After(to) {
			m = max(m, s.kb[i])
		}
	}
	return m
}

func (s *rssSampler) stop() {
	select {
	case <-s.halt:
	default:
		close(s.halt)
	}
	<-s.done
}

// readRSS is VmRSS of /proc/<pid>/status, in kB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// showVersion is GET /api/shows/{id}'s version.
func showVersion(ctx context.Context, api *httpTarget, show domain.ShowID) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/shows/%d", api.base, show), nil)
	if err != nil {
		return 0, err
	}
	resp, err := api.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return 0, fmt.Errorf("GET /api/shows/%d: %d %s", show, resp.StatusCode, b)
	}
	var body struct {
		Version int `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("GET /api/shows/%d: %w", show, err)
	}
	return body.Version, nil
}

// waitProjected polls the show until bookingd's projector has projected
// version (bounded).
func waitProjected(ctx context.Context, api *httpTarget, show domain.ShowID, version int) error {
	deadline := time.Now().Add(onsaleReadyBound)
	for {
		v, err := showVersion(ctx, api, show)
		if err == nil && v >= version {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the show was not projected up to version %d within %s (at %d; %v)", version, onsaleReadyBound, v, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// lockVersions maps the booking id of every SeatLocked on the show's
// stream to its stream version.
func lockVersions(ctx context.Context, pool *pgxpool.Pool, show domain.ShowID) (map[string]int, error) {
	rows, err := pool.Query(ctx, `SELECT data->>'booking_id', stream_version FROM events WHERE stream_id = $1 AND event_type = $2`,
		show.StreamID(), domain.TypeSeatLocked)
	if err != nil {
		return nil, fmt.Errorf("lock versions: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id      string
			version int
		)
		if err := rows.Scan(&id, &version); err != nil {
			return nil, fmt.Errorf("lock versions: %w", err)
		}
		out[id] = version
	}
	return out, rows.Err()
}

// onsaleClient is one booking client: a user of its own and the holds it
// keeps, oldest first.
type onsaleClient struct {
	api   *httpTarget
	token string
	show  domain.ShowID
	held  []ackedHold
}

// ackedHold is a hold answered 201: its booking, its one seat, and when
// the client had the answer.
type ackedHold struct {
	id, seat string
	at       time.Time
}

// onsaleClients registers and logs in n users through the API, 8 at a
// time (bcrypt at bookingd's cost: set-up, not measured).
func onsaleClients(ctx context.Context, api *httpTarget, show domain.ShowID, n int) ([]*onsaleClient, error) {
	out := make([]*onsaleClient, n)
	errs := make([]error, n)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	for range min(8, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				email := fmt.Sprintf("onsale-%s-%d@example.com", hex.EncodeToString(suffix[:]), i+1)
				var created struct {
					ID string `json:"id"`
				}
				status, err := api.post(ctx, "/api/auth/register", "", map[string]string{"email": email, "password": benchPassword}, &created)
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("register %s: status %d", email, status)
				}
				if err != nil {
					errs[i] = err
					continue
				}
				token, err := api.login(ctx, email)
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = &onsaleClient{api: api, token: token, show: show}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, errors.Join(errs...)
}

// seatQueue is the free seats the clients share: a hold takes the first,
// a cancelled hold's seat goes to the end.
type seatQueue struct {
	mu    sync.Mutex
	seats []string
}

func (q *seatQueue) take() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.seats) == 0 {
		return "", false
	}
	s := q.seats[0]
	q.seats = q.seats[1:]
	return s, true
}

func (q *seatQueue) put(seat string) {
	q.mu.Lock()
	q.seats = append(q.seats, seat)
	q.mu.Unlock()
}

// phaseStats is what the clients did in one phase.
type phaseStats struct {
	holds, cancels, refused, errs int
	firstErr                      error
	elapsed                       time.Duration   // until the last client finished
	latencies                     []time.Duration // of the 201s, sorted
	acked                         []ackedHold
}

func (p phaseStats) perSec() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.holds) / p.elapsed.Seconds()
}

func (p *phaseStats) fail(err error) {
	p.errs++
	if p.firstErr == nil {
		p.firstErr = err
	}
}

// bookPhase has every client book for d and merges what they did. A client
// starts nothing after the deadline; the time runs until the last one
// finished its request in flight.
func bookPhase(ctx context.Context, clients []*onsaleClient, q *seatQueue, d time.Duration) phaseStats {
	per := make([]phaseStats, len(clients))
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { c.book(ctx, q, deadline, &per[i]) })
	}
	wg.Wait()
	out := phaseStats{elapsed: time.Since(start)}
	for _, p := range per {
		out.holds += p.holds
		out.cancels += p.cancels
		out.refused += p.refused
		out.errs += p.errs
		if out.firstErr == nil {
			out.firstErr = p.firstErr
		}
		out.latencies = append(out.latencies, p.latencies...)
		out.acked = append(out.acked, p.acked...)
	}
	slices.Sort(out.latencies)
	return out
}

// errTaken: a hold was refused because a seat is held (the queue should
// never offer one).
var errTaken = errors.New("seat taken")

// book holds one seat after another until the deadline, keeping at most
// onsaleKeep holds: at the keep, it cancels the oldest first and puts its
// seat back in the queue. A seat whose hold was refused as too busy or over
// a limit goes back too; one whose outcome is unknown (an error) does not.
func (c *onsaleClient) book(ctx context.Context, q *seatQueue, deadline time.Time, st *phaseStats) {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if len(c.held) >= onsaleKeep {
			oldest := c.held[0]
			err := c.cancel(ctx, oldest.id)
			switch {
			case err == nil:
				st.cancels++
				c.held = c.held[1:]
				q.put(oldest.seat)
			case errors.Is(err, errRefused):
				st.refused++
				_ = sleepCtx(ctx, 10*time.Millisecond)
			default:
				st.fail(err)
				c.held = c.held[1:] // not live, or unknown: given up, its seat too
			}
			continue
		}
		seat, ok := q.take()
		if !ok {
			st.fail(errors.New("no free seat left in the queue"))
			return
		}
		began := time.Now()
		id, err := c.hold(ctx, seat)
		switch {
		case err == nil:
			at := time.Now()
			st.holds++
			st.latencies = append(st.latencies, at.Sub(began))
			h := ackedHold{id: id, seat: seat, at: at}
			c.held = append(c.held, h)
			st.acked = append(st.acked, h)
		case errors.Is(err, errTaken):
			st.fail(err)
		case errors.Is(err, errRefused):
			st.refused++
			q.put(seat)
		default:
			st.fail(err)
		}
	}
}

// hold is POST /api/bookings of one seat: 201 is a hold; 409 naming
// unavailable seats is errTaken; any other 409 (the seat cap), 429 and 503
// are refusals.
func (c *onsaleClient) hold(ctx context.Context, seat string) (string, error) {
	var body struct {
		ID               string   `json:"id"`
		Title            string   `json:"title"`
		Detail           string   `json:"detail"`
		UnavailableSeats []string `json:"unavailable_seats"`
	}
	req := struct {
		ShowID      int64    `json:"show_id"`
		SeatNumbers []string `json:"seat_numbers"`
	}{int64(c.show), []string{seat}}
	status, err := c.api.post(ctx, "/api/bookings", c.token, req, &body)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusCreated && body.ID != "":
		return body.ID, nil
	case status == http.StatusConflict && len(body.UnavailableSeats) > 0:
		return "", fmt.Errorf("%w: %s: %s", errTaken, seat, body.Detail)
	case status == http.StatusConflict || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return "", fmt.Errorf("%w: %d %s: %s", errRefused, status, body.Title, body.Detail)
	default:
		return "", fmt.Errorf("POST /api/bookings: %d %s: %s", status, body.Title, body.Detail)
	}
}

// cancel is POST /api/bookings/{id}/cancel: 200 cancelled it; 429 and 503
// are refusals (asked again); anything else is a failure.
func (c *onsaleClient) cancel(ctx context.Context, id string) error {
	var body struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	status, err := c.api.post(ctx, "/api/bookings/"+id+"/cancel", c.token, struct{}{}, &body)
	switch {
	case err != nil:
		return err
	case status == http.StatusOK:
		return nil
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %d %s: %s", errRefused, status, body.Title, body.Detail)
	default:
		return fmt.Errorf("POST /api/bookings/%s/cancel: %d %s: %s", id, status, body.Title, body.Detail)
	}
}

// watcherSet is the crowd on the live seat map: one raw HTTP/1.1
// connection per feed. Most only read and discard; the sampled ones parse
// every message and note when it arrived.
type watcherSet struct {
	closing atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	errs    []error // why watchers failed or ended, the first few

	connect   []time.Duration // by watcher; 0 until it connected
	failed    atomic.Int64
	ended     atomic.Int64
	samples   []*watcherSample
	attempted sync.WaitGroup // connected or failed
	running   sync.WaitGroup // goroutines alive
}

// watcherSample is what a sampled watcher received; read after the
// watchers stopped.
type watcherSample struct {
	connected bool
	msgs      []liveMessage
	err       error // the first message it could not decode
}

// openWatchers opens n feeds of path on addr, about perSecond a second,
// sampled of them (spread over the ramp) parsing what they receive, and
// returns once each one has connected or failed.
func openWatchers(ctx context.Context, addr, path string, n, sampled, perSecond int) *watcherSet {
	w := &watcherSet{connect: make([]time.Duration, n)}
	request := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nUser-Agent: bookingbench\r\n\r\n")
	every := max(1, n/max(1, sampled))
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))); wait > 0 {
			if sleepCtx(ctx, wait) != nil {
				w.failed.Add(int64(n - i))
				break
			}
		}
		var s *watcherSample
		if i%every == 0 && len(w.samples) < sampled {
			s = &watcherSample{}
			w.samples = append(w.samples, s)
		}
		w.attempted.Add(1)
		w.running.Add(1)
		go w.watch(ctx, i, addr, request, s)
	}
	w.attempted.Wait()
	return w
}

// watch is one watcher: dial, ask, read the header, then read until the
// connection ends. A watcher that fails or ends before close is not
// reconnected.
func (w *watcherSet) watch(ctx context.Context, i int, addr string, request []byte, s *watcherSample) {
	defer w.running.Done()
	attempted := sync.OnceFunc(w.attempted.Done)
	defer attempted()
	began := time.Now()
	dialer := net.Dialer{Timeout: onsaleConnectBound}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		w.failed.Add(1)
		w.note(err)
		return
	}
	defer conn.Close()
	w.mu.Lock()
	w.conns = append(w.conns, conn)
	closing := w.closing.Load()
	w.mu.Unlock()
	if closing {
		return
	}
	_ = conn.SetDeadline(began.Add(onsaleConnectBound))
	// Room for a coalesced message of a busy show in one read (a few kB),
	// without copying it out: the others read it in small pieces from there.
	br := bufio.NewReaderSize(conn, 8<<10)
	var resp *http.Response
	if _, err = conn.Write(request); err == nil {
		resp, err = http.ReadResponse(br, nil)
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		err = fmt.Errorf("answered %s: %s", resp.Status, b)
	}
	if err != nil {
		if !w.closing.Load() {
			w.failed.Add(1)
			w.note(err)
		}
		return
	}
	w.connect[i] = max(time.Since(began), time.Nanosecond)
	_ = conn.SetDeadline(time.Time{})
	if s != nil {
		s.connected = true
	}
	attempted()

	if s != nil {
		err = readSSE(resp.Body, time.Now, func(ev sseEvent) {
			m, ok, derr := decodeLive(ev)
			switch {
			case derr != nil:
				if s.err == nil {
					s.err = derr
				}
			case ok:
				s.msgs = append(s.msgs, m)
			}
		})
	} else {
		// What is buffered, then straight from the connection in reads as
		// large as a coalesced message: one system call a message, as a
		// browser's socket reads.
		_, err = io.Copy(io.Discard, io.MultiReader(io.LimitReader(br, int64(br.Buffered())), conn))
	}
	if !w.closing.Load() {
		w.ended.Add(1)
		w.note(fmt.Errorf("a feed ended: %w", err))
	}
}

func (w *watcherSet) note(err error) {
	w.mu.Lock()
	if len(w.errs) < 5 {
		w.errs = append(w.errs, err)
	}
	w.mu.Unlock()
}

func (w *watcherSet) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) == 0 {
		return nil
	}
	return w.errs[0]
}

// connectTimes are the connected watchers' times from dialling to the
// response header, sorted.
func (w *watcherSet) connectTimes() []time.Duration {
	var out []time.Duration
	for _, d := range w.connect {
		if d > 0 {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// close closes every feed and waits for the watchers to stop. Calling it
// again does nothing.
func (w *watcherSet) close() {
	w.mu.Lock()
	if w.closing.Swap(true) {
		w.mu.Unlock()
		return
	}
	for _, c := range w.conns {
		_ = c.Close()
	}
	w.mu.Unlock()
	w.running.Wait()
}

// sseEvent is one dispatched server-sent event: its type ("message" when
// the stream names none), id and data, and when its first line arrived.
type sseEvent struct {
	at          time.Time
	event, id   string
	data        []byte // valid only during the emit call
	hasDataLine bool
}

// readSSE reads a text/event-stream from r (the body, already de-chunked)
// until it ends and calls emit for each event, as the WHATWG EventSource
// parser dispatches them: lines end in LF or CRLF, a blank line dispatches
// the event when it has data, lines starting with ':' are comments, data
// lines are joined with '\n', one space after the colon is dropped, a line
// without a colon is a field with no value. An event cut off by the end of
// the stream is not dispatched. now stamps each event with the time its
// first line was read. It returns the read error that ended the stream
// (io.EOF at a clean end).
func readSSE(r io.Reader, now func() time.Time, emit func(sseEvent)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		ev      sseEvent
		data    []byte
		line    []byte
		started bool
	)
	for {
		var err error
		if line, err = readLine(br, line[:0]); err != nil {
			return err
		}
		if !started {
			ev.at, started = now(), true
		}
		if len(line) == 0 {
			if ev.hasDataLine {
				if ev.event == "" {
					ev.event = "message"
				}
				ev.data = data
				emit(ev)
			}
			ev, data, started = sseEvent{}, data[:0], false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			ev.event = string(value)
		case "id":
			ev.id = string(value)
		case "data":
			if ev.hasDataLine {
				data = append(data, '\n')
			}
			data = append(data, value...)
			ev.hasDataLine = true
		}
	}
}

// readLine appends the next line of br, without its line ending, to buf.
// A last line without one is an error (io.ErrUnexpectedEOF).
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		part, err := br.ReadSlice('\n')
		buf = append(buf, part...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, io.ErrUnexpectedEOF
		case err != nil:
			return buf, err
		}
		buf = buf[:len(buf)-1]
		return bytes.TrimSuffix(buf, []byte("\r")), nil
	}
}

// liveMessage is what a sampled watcher keeps of a live-feed message (see
// the protocol in main.go's doc comment): when it arrived, whether it is a
// snapshot, its stream version, and for a seats message the seats it
// lists as locked, in order.
type liveMessage struct {
	at       time.Time
	bytes    int // of the event as sent, about
	snapshot bool
	version  int
	locked   []string
}

// decodeLive reads a live feed's "seats" or "snapshot" event; any other
// event is not one (false). The version is the data's, or else the id's.
func decodeLive(ev sseEvent) (liveMessage, bool, error) {
	m := liveMessage{at: ev.at, bytes: len(ev.data) + len(ev.id) + len(ev.event) + len("id: \nevent: \ndata: \n\n")}
	switch ev.event {
	case "snapshot":
		m.snapshot = true
		var body struct {
			Version int `json:"version"`
		}
		if err := json.Unmarshal(ev.data, &body); err != nil {
			return m, false, fmt.Errorf("snapshot %s: %w", ev.id, err)
		}
		m.version = body.Version
	case "seats":
		var body struct {
			Version int `json:"version"`
			Seats   []struct {
				SeatNumber string `json:"seat_number"`
				Status     string `json:"status"`
			} `json:"seats"`
		}
		if err := json.Unmarshal(ev.data, &body); err != nil {
			return m, false, fmt.Errorf("seats %s: %w", ev.id, err)
		}
		m.version = body.Version
		for _, s := range body.Seats {
			if s.Status == "locked" {
				m.locked = append(m.locked, s.SeatNumber)
			}
		}
	default:
		return m, false, nil
	}
	if m.version == 0 && ev.id != "" {
		v, err := strconv.Atoi(ev.id)
		if err != nil {
			return m, false, fmt.Errorf("%s id %q: %w", ev.event, ev.id, err)
		}
		m.version = v
	}
	if m.version <= 0 {
		return m, false, fmt.Errorf("%s without a version (id %q)", ev.event, ev.id)
	}
	return m, true, nil
}

// deliveredHold is a hold to look for at a watcher: its seat, the stream
// version of its SeatLocked (0: not on the stream), and when its client had
// the 201.
type deliveredHold struct {
	seat    string
	version int
	acked   time.Time
}

// matchDeliveries finds each hold in one watcher's messages (in arrival
// order; the watcher opened the feed after version after) and returns, for
// those delivered, the time from the 201 to the arrival (negative when the
// feed was faster than the client's answer), and how many were never
// delivered.
//
// The 201 does not carry the stream version, so the run reads each hold's
// SeatLocked version from the events table afterwards, and versions decide,
// not seats and times alone: a seat can be held, cancelled and held again
// within a message or across messages. A watcher applies a message only
// when its version is above the version it has (a message may overlap what
// it has); an applied seats message carries every change of the versions
// from the watcher's version (exclusive) to its own (inclusive), in order.
// A hold is delivered by the applied seats message whose range holds its
// version when that message lists its seat as locked; a hold whose message
// does not list it is not delivered by a later seats message (that one
// covers later versions, a later hold of the seat perhaps). An applied
// snapshot replaces the watcher's seat map with the show at its version: it
// delivers every hold at or below its version not delivered before.
func matchDeliveries(holds []deliveredHold, after int, msgs []liveMessage) (latencies []time.Duration, missed int) {
	byVersion := make([]deliveredHold, 0, len(holds))
	for _, h := range holds {
		if h.version > after {
			byVersion = append(byVersion, h)
		} else {
			missed++ // not on the stream, or before the feed began
		}
	}
	slices.SortFunc(byVersion, func(a, b deliveredHold) int { return a.version - b.version })
	delivered := make([]bool, len(byVersion))
	// upTo is the index of the first hold above version v.
	upTo := func(v int) int {
		i, _ := slices.BinarySearchFunc(byVersion, v+1, func(h deliveredHold, v int) int { return h.version - v })
		return i
	}
	have := after
	for _, m := range msgs {
		if m.version <= have {
			continue
		}
		lo, hi := upTo(have), upTo(m.version)
		if m.snapshot {
			lo = 0
		}
		for i := lo; i < hi; i++ {
			if !delivered[i] && (m.snapshot || slices.Contains(m.locked, byVersion[i].seat)) {
				delivered[i] = true
				latencies = append(latencies, m.at.Sub(byVersion[i].acked))
			}
		}
		have = m.version
	}
	for _, d := range delivered {
		if !d {
			missed++
		}
	}
	return latencies, missed
}

// printOnsale prints the run's tables.
func printOnsale(w io.Writer, r onsaleResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "onsale phase\tholds/s\tp50 ms\tp99 ms\tholds\tcancels\trefused\terrors\t")
	for _, p := range []struct {
		name string
		st   phaseStats
	}{{"alone", r.alone}, {"watched", r.watched}, {"bound", r.bound}} {
		fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t\n", p.name, p.st.perSec(),
			percentile(p.st.latencies, 0.5), percentile(p.st.latencies, 0.99), p.st.holds, p.st.cancels, p.st.refused, p.st.errs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(tw, "watchers\tconnected\tnot connected\tended\tconnect p50 ms\tconnect p99 ms\tVmRSS before kB\tmax kB\tkB/watcher\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f\t%.1f\t%d\t%d\t%.1f\t\n", r.watchers, r.connected, r.failed, r.ended,
		percentile(r.connect, 0.5), percentile(r.connect, 0.99), r.rssBefore, r.rssMax, r.rssPerWatcher())
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(tw, "sampled watchers\tdeliveries\tdelivery p50 ms\tdelivery p99 ms\tmissed\toversold\tlost\t")
	fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%d\t%d\t%d\t\n", r.sampled, len(r.deliveries),
		percentile(r.deliveries, 0.5), percentile(r.deliveries, 0.99), r.missed, r.oversold, r.lost)
	return tw.Flush()
}
