package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/audit"
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

	dbName, done, err := scratchDB(ctx, cfg, "bookingbench_onsale", progress)
	if err != nil {
		return r, err
	}
	defer done()
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
