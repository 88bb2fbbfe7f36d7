package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// target is one system under test, set up on its own database.
type target interface {
	// clients prepares n clients (users, logins …) before the clock starts
	// and returns their booking functions.
	clients(ctx context.Context, n int) ([]bookFunc, error)
	// verify checks the database after the run against the bookings the
	// clients were told succeeded.
	verify(ctx context.Context, ok []success) (verdict, error)
	close()
}

// bookFunc makes one booking and returns its id. An error wrapping
// errRefused is a refusal by the system; any other error is a failure.
type bookFunc func(ctx context.Context, j job) (bookingID string, err error)

// errRefused marks a booking the system declined (seats unavailable, too
// many concurrent changes).
var errRefused = errors.New("refused")

// success is a booking a client was told succeeded.
type success struct {
	id   string
	show int // index into the scenario's shows
}

// verdict is what verification found.
type verdict struct {
	oversold int // seat claims by a second live booking
	lost     int // acknowledged bookings the database does not have
}

// result is one target's run in one scenario.
type result struct {
	scenario, target  string
	ok, refused, errs int
	elapsed           time.Duration
	perSec, p50, p99  float64 // bookings/s; latencies in ms
	firstErr          error   // the first failure a client saw, if any
	verdict
	lag      *lagStats     // the projector's during the run, for ledger (shard 0's)
	reads    *readStats    // for http
	perShard []float64     // bookings/s of each shard, for ledger
	replica  *replicaStats // a standby's lag, for ledger with -replica-url
}

// summary is the JSON line of one scenario; its shape is a contract (issue 5).
type summary struct {
	Scenario     string  `json:"scenario"`
	SeedPerS     float64 `json:"seed_per_s"`
	LedgerPerS   float64 `json:"ledger_per_s"`
	HTTPPerS     float64 `json:"http_per_s"`
	LedgerVsSeed float64 `json:"ledger_vs_seed"`
	HTTPVsSeed   float64 `json:"http_vs_seed"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	Oversold     int     `json:"oversold"`
	Lost         int     `json:"lost"`
	// The ledger target's projection lag; catchup_ms is -1 when the
	// projector did not catch up within catchUpBound.
	LagP99ms  float64 `json:"lag_p99_ms"`
	LagMaxms  float64 `json:"lag_max_ms"`
	CatchUpms float64 `json:"catchup_ms"`
	// The http target's GET /api/shows/{id} with and without the cache,
	// by clients that accept gzip, and with the cache by clients that do
	// not (plain).
	ReadsCachedPerS      float64 `json:"reads_cached_per_s"`
	ReadsUncachedPerS    float64 `json:"reads_uncached_per_s"`
	CacheRatio           float64 `json:"cache_ratio"`
	ReadsCachedPlainPerS float64 `json:"reads_cached_plain_per_s"`
	CacheRatioPlain      float64 `json:"cache_ratio_plain"`
	// ReadsCeilingPerS is a bare net/http server writing the cached
	// answer's bytes to the same clients: the most any cache could serve
	// on this machine.
	ReadsCeilingPerS float64 `json:"reads_ceiling_per_s"`
	// The same reads with bookingd's rate limiter on Redis, as a bookingd
	// with REDIS_URL decides them, instead of in process.
	ReadsCachedRedisLimitsPerS   float64 `json:"reads_cached_redis_limits_per_s"`
	ReadsUncachedRedisLimitsPerS float64 `json:"reads_uncached_redis_limits_per_s"`
	CacheRatioRedisLimits        float64 `json:"cache_ratio_redis_limits"`
	// The ledger target's shards (-shards) and each one's bookings/s.
	Shards             int       `json:"shards"`
	LedgerPerShardPerS []float64 `json:"ledger_per_shard_per_s"`
	// The ledger target's standby (-replica-url); absent without it.
	*replicaSummary
}

// replicaSummary is the standby's lag in the JSON line, in ms (bytes of WAL
// for replica_bytes_*).
type replicaSummary struct {
	LagP50ms       float64 `json:"replica_lag_p50_ms"`
	LagP99ms       float64 `json:"replica_lag_p99_ms"`
	LagMaxms       float64 `json:"replica_lag_max_ms"`
	RYWLagP99ms    float64 `json:"replica_ryw_lag_p99_ms"`
	RYWLagMaxms    float64 `json:"replica_ryw_lag_max_ms"`
	WriteLagP99ms  float64 `json:"replica_write_lag_p99_ms"`
	FlushLagP99ms  float64 `json:"replica_flush_lag_p99_ms"`
	ReplayLagP99ms float64 `json:"replica_replay_lag_p99_ms"`
	ReplayLagMaxms float64 `json:"replica_replay_lag_max_ms"`
	BytesP99       float64 `json:"replica_bytes_p99"`
	BytesMax       float64 `json:"replica_bytes_max"`
	Probes         int     `json:"replica_probes"`
	Unseen         int     `json:"replica_unseen"`
}

// bench runs every scenario on every target, prints each scenario's table
// and JSON line, and returns the results. It fails when verification found
// oversold or lost bookings.
func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) ([]result, error) {
	progress := func(format string, args ...any) {
		if !cfg.jsonOnly {
			fmt.Fprintf(stderr, format+"\n", args...)
		}
	}
	var replicaApp string
	if cfg.replicaURL != "" {
		app, err := checkReplica(ctx, cfg.adminURL, cfg.replicaURL)
		if err != nil {
			return nil, err
		}
		replicaApp = app
	}
	var all []result
	for _, sc := range cfg.scenarios {
		labels, err := sc.seatLabels()
		if err != nil {
			return all, err
		}
		queue := sc.queue(labels)
		var results []result
		for _, name := range cfg.targets {
			progress("%s/%s: %d shows × %d seats, %d bookings queued, %d clients for up to %s",
				sc.name, name, sc.shows, sc.seatsPerShow, len(queue), cfg.concurrency, cfg.duration)
			r, err := runTarget(ctx, cfg, sc, labels, queue, name, replicaApp, progress, stderr)
			if err != nil {
				return all, fmt.Errorf("%s/%s: %w", sc.name, name, err)
			}
			if r.firstErr != nil {
				fmt.Fprintf(stderr, "%s/%s: %d failed bookings; the first: %v\n", sc.name, name, r.errs, r.firstErr)
			}
			progress("%s/%s: %d ok in %.1fs: %.0f bookings/s, p50 %.2f ms, p99 %.2f ms, oversold %d, lost %d",
				sc.name, name, r.ok, r.elapsed.Seconds(), r.perSec, r.p50, r.p99, r.oversold, r.lost)
			if len(r.perShard) > 1 {
				progress("%s/%s: bookings/s per shard: %.0f", sc.name, name, r.perShard)
			}
			if l := r.lag; l != nil {
				progress("%s/%s: projection lag p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d samples; %d events behind at the end; %s",
					sc.name, name, l.p50, l.p99, l.max, l.samples, l.behind, catchUpText(l.catchUp))
			}
			if rp := r.replica; rp != nil {
				progress("%s/%s: standby: event visible after p50 %.1f ms, p99 %.1f ms, max %.1f ms; projector checkpoint after p99 %.1f ms, max %.1f ms (%d probes, %d unseen); replay_lag p99 %.1f ms, max %.1f ms; sent − replayed max %.0f bytes",
					sc.name, name, rp.visible.p50, rp.visible.p99, rp.visible.max, rp.ryw.p99, rp.ryw.max, rp.probes, rp.unseen,
					rp.replay.p99, rp.replay.max, rp.bytes.max)
			}
			if rs := r.reads; rs != nil {
				progress("%s/%s: GET /api/shows/%d (%d seats, %d bytes of JSON, %d gzipped): %.0f reads/s cached, %.0f uncached: %.1f×; cached to clients without gzip %.0f/s: %.1f×; a bare server writing the cached bytes: %.0f/s; with the rate limits on Redis %.0f cached, %.0f uncached: %.1f×",
					sc.name, name, rs.show, readSeats, rs.plainBytes, rs.gzipBytes, rs.cached, rs.uncached, rs.ratio, rs.cachedPlain, rs.ratioPlain, rs.ceiling,
					rs.cachedRedisLimits, rs.uncachedRedisLimits, rs.ratioRedisLimits)
			}
			results = append(results, r)
		}
		all = append(all, results...)
		if !cfg.jsonOnly {
			if err := printTable(stdout, results); err != nil {
				return all, err
			}
		}
		line, err := json.Marshal(summarize(sc.name, results))
		if err != nil {
			return all, err
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
			return all, err
		}
	}
	if cfg.replayEvents > 0 {
		if _, err := benchReplay(ctx, cfg, stdout, progress); err != nil {
			return all, err
		}
	}
	var failed []error
	for _, r := range all {
		if r.oversold != 0 || r.lost != 0 {
			failed = append(failed, fmt.Errorf("%s/%s: %d oversold, %d lost", r.scenario, r.target, r.oversold, r.lost))
		}
	}
	if len(failed) > 0 {
		return all, fmt.Errorf("verification failed: %w", errors.Join(failed...))
	}
	return all, nil
}

// runTarget creates the target's database, sets the target up, runs the
// clients against the queue and verifies the outcome.
func runTarget(ctx context.Context, cfg config, sc scenario, labels []string, queue []job, name, replicaApp string,
	progress func(string, ...any), stderr io.Writer) (result, error) {
	dbName, done, err := scratchDB(ctx, cfg, "bookingbench_"+sc.name+"_"+name, func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s/%s: "+format+"\n", append([]any{sc.name, name}, args...)...)
	})
	if err != nil {
		return result{}, err
	}
	defer done()
	pool, err := openPool(ctx, cfg.adminURL, dbName, cfg.concurrency)
	if err != nil {
		return result{}, err
	}
	defer pool.Close()

	setupStart := time.Now()
	var t target
	switch name {
	case targetSeed:
		t, err = newSeed(ctx, pool, sc, labels)
	case targetLedger:
		pools := []*pgxpool.Pool{pool}
		for k := 1; k < cfg.shards; k++ {
			shardDB, err := createDB(ctx, cfg.adminURL, fmt.Sprintf("bookingbench_%s_%s_shard%d", sc.name, name, k))
			if err != nil {
				return result{}, err
			}
			defer func() {
				if !cfg.keep {
					_ = dropDB(ctx, cfg.adminURL, shardDB)
				}
			}()
			p, err := openPool(ctx, cfg.adminURL, shardDB, cfg.concurrency)
			if err != nil {
				return result{}, err
			}
			defer p.Close()
			pools = append(pools, p)
		}
		t, err = newLedger(ctx, pools, sc, labels)
	case targetHTTP:
		t, err = newHTTP(ctx, pool, sc, labels, cfg.concurrency)
	default:
		err = fmt.Errorf("unknown target %q", name)
	}
	if err != nil {
		return result{}, fmt.Errorf("set up: %w", err)
	}
	defer t.close()
	clients, err := t.clients(ctx, cfg.concurrency)
	if err != nil {
		return result{}, fmt.Errorf("clients: %w", err)
	}
	if err := warmPool(ctx, pool, cfg.concurrency); err != nil {
		return result{}, err
	}
	// The projector first projects the set-up. The ledger target keeps it
	// running through the run to measure its lag under the write load; the
	// http target only needs the show measureReads fetches projected, and
	// books without it.
	var proj *projection
	if name == targetLedger || name == targetHTTP {
		projStart := time.Now()
		if proj, err = startProjection(ctx, cfg.adminURL, dbName); err != nil {
			return result{}, fmt.Errorf("set up: %w", err)
		}
		progress("%s/%s: the projector projected the set-up in %.1fs", sc.name, name, time.Since(projStart).Seconds())
		if name == targetLedger {
			defer proj.close()
		} else {
			proj.close()
			proj = nil
		}
	}
	// The standby, when measured, first replays the set-up.
	var rep *replicaWatch
	if name == targetLedger && cfg.replicaURL != "" {
		rep, err = startReplica(ctx, cfg, replicaApp, dbName, func(format string, args ...any) {
			progress("%s/%s: "+format, append([]any{sc.name, name}, args...)...)
		})
		if err != nil {
			return result{}, fmt.Errorf("set up: %w", err)
		}
		defer rep.close()
	}
	progress("%s/%s: set up in %.1fs; booking", sc.name, name, time.Since(setupStart).Seconds())

	var lag *sampler
	if proj != nil {
		lag = proj.sample(ctx)
	}
	if rep != nil {
		rep.start(ctx)
	}
	r, ok := drive(ctx, clients, queue, cfg.duration)
	ended := time.Now()
	if rep != nil {
		rep.stopProbes()
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	r.scenario, r.target = sc.name, name
	if l, isLedger := t.(*ledgerTarget); isLedger {
		for _, n := range l.perShard(ok) {
			r.perShard = append(r.perShard, float64(n)/r.elapsed.Seconds())
		}
	}
	if lag != nil {
		st, err := lag.finish(ctx, ended)
		if err != nil {
			return result{}, err
		}
		r.lag = &st
	}
	if rep != nil {
		st, err := rep.finish(ctx, ended)
		if err != nil {
			return result{}, err
		}
		r.replica = &st
	}
	if h, isHTTP := t.(*httpTarget); isHTTP {
		st, err := h.measureReads(ctx, cfg.redisURL, cfg.readConcurrency, cfg.readDuration)
		if err != nil {
			return result{}, fmt.Errorf("reads: %w", err)
		}
		r.reads = &st
	}
	verifyStart := time.Now()
	if r.verdict, err = t.verify(ctx, ok); err != nil {
		return result{}, fmt.Errorf("verify: %w", err)
	}
	progress("%s/%s: verified %d acknowledged bookings in %.1fs", sc.name, name, r.ok, time.Since(verifyStart).Seconds())
	return r, nil
}

// drive runs the clients until the duration is over or the queue is empty
// and measures them. A client takes no new job after the deadline; the time
// counted runs until the last one finished its booking in flight.
func drive(ctx context.Context, clients []bookFunc, queue []job, d time.Duration) (result, []success) {
	type clientStats struct {
		ok        []success
		latencies []time.Duration
		refused   int
		errs      int
		firstErr  error
	}
	var (
		next  atomic.Int64
		stats = make([]clientStats, len(clients))
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for i, book := range clients {
		st := &stats[i]
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				n := int(next.Add(1) - 1)
				if n >= len(queue) {
					return
				}
				began := time.Now()
				id, err := book(ctx, queue[n])
				took := time.Since(began)
				switch {
				case err == nil:
					st.ok = append(st.ok, success{id: id, show: queue[n].show})
					st.latencies = append(st.latencies, took)
				case errors.Is(err, errRefused):
					st.refused++
				default:
					st.errs++
					if st.firstErr == nil {
						st.firstErr = err
					}
				}
			}
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start)}
	var (
		ok        []success
		latencies []time.Duration
	)
	for _, st := range stats {
		ok = append(ok, st.ok...)
		latencies = append(latencies, st.latencies...)
		r.refused += st.refused
		r.errs += st.errs
		if r.firstErr == nil {
			r.firstErr = st.firstErr
		}
	}
	r.ok = len(ok)
	r.perSec = float64(r.ok) / r.elapsed.Seconds()
	slices.Sort(latencies)
	r.p50, r.p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
	return r, ok
}

// percentile is the nearest-rank percentile of sorted durations, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func summarize(scenario string, results []result) summary {
	s := summary{Scenario: scenario}
	for _, r := range results {
		switch r.target {
		case targetSeed:
			s.SeedPerS = round(r.perSec, 1)
		case targetLedger:
			s.LedgerPerS = round(r.perSec, 1)
			s.P50ms, s.P99ms = round(r.p50, 2), round(r.p99, 2)
			s.Shards = len(r.perShard)
			for _, v := range r.perShard {
				s.LedgerPerShardPerS = append(s.LedgerPerShardPerS, round(v, 1))
			}
			if r.lag != nil {
				s.LagP99ms, s.LagMaxms, s.CatchUpms = round(r.lag.p99, 1), round(r.lag.max, 1), round(r.lag.catchUp, 1)
			}
			if rp := r.replica; rp != nil {
				s.replicaSummary = &replicaSummary{
					LagP50ms: round(rp.visible.p50, 1), LagP99ms: round(rp.visible.p99, 1), LagMaxms: round(rp.visible.max, 1),
					RYWLagP99ms: round(rp.ryw.p99, 1), RYWLagMaxms: round(rp.ryw.max, 1),
					WriteLagP99ms: round(rp.write.p99, 1), FlushLagP99ms: round(rp.flush.p99, 1),
					ReplayLagP99ms: round(rp.replay.p99, 1), ReplayLagMaxms: round(rp.replay.max, 1),
					BytesP99: rp.bytes.p99, BytesMax: rp.bytes.max,
					Probes: rp.probes, Unseen: rp.unseen,
				}
			}
		case targetHTTP:
			s.HTTPPerS = round(r.perSec, 1)
			if r.reads != nil {
				s.ReadsCachedPerS, s.ReadsUncachedPerS = round(r.reads.cached, 1), round(r.reads.uncached, 1)
				s.CacheRatio = round(r.reads.ratio, 2)
				s.ReadsCachedPlainPerS, s.CacheRatioPlain = round(r.reads.cachedPlain, 1), round(r.reads.ratioPlain, 2)
				s.ReadsCeilingPerS = round(r.reads.ceiling, 1)
				s.ReadsCachedRedisLimitsPerS = round(r.reads.cachedRedisLimits, 1)
				s.ReadsUncachedRedisLimitsPerS = round(r.reads.uncachedRedisLimits, 1)
				s.CacheRatioRedisLimits = round(r.reads.ratioRedisLimits, 2)
			}
		}
		s.Oversold += r.oversold
		s.Lost += r.lost
	}
	if s.SeedPerS > 0 {
		s.LedgerVsSeed = round(s.LedgerPerS/s.SeedPerS, 2)
		s.HTTPVsSeed = round(s.HTTPPerS/s.SeedPerS, 2)
	}
	return s
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// printTable prints the bookings of every target, then the projection lag
// of the targets that ran the projector and the reads of the http target.
func printTable(w io.Writer, results []result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttarget\tbookings/s\tp50 ms\tp99 ms\tok\trefused\terrors\toversold\tlost\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t\n",
			r.scenario, r.target, r.perSec, r.p50, r.p99, r.ok, r.refused, r.errs, r.oversold, r.lost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	header := false
	for _, r := range results {
		if r.lag == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "scenario\ttarget\tlag p50 ms\tlag p99 ms\tlag max ms\tsamples\tbehind at end\tcaught up after\t")
			header = true
		}
		catchUp := fmt.Sprintf("%.1f ms", r.lag.catchUp)
		if r.lag.catchUp < 0 {
			catchUp = "> " + catchUpBound.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%d\t%d\t%s\t\n",
			r.scenario, r.target, r.lag.p50, r.lag.p99, r.lag.max, r.lag.samples, r.lag.behind, catchUp)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	header = false
	for _, r := range results {
		rp := r.replica
		if rp == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "scenario\ttarget\tstandby\tp50\tp99\tmax\tsamples\t")
			header = true
		}
		rows := []struct {
			what    string
			d       dist
			samples int
		}{
			{"event visible (ms)", rp.visible, rp.nVisible},
			{"projector checkpoint passed it (ms)", rp.ryw, rp.nRYW},
			{"write_lag (ms)", rp.write, rp.samples},
			{"flush_lag (ms)", rp.flush, rp.samples},
			{"replay_lag (ms)", rp.replay, rp.samples},
			{"sent − replayed (bytes)", rp.bytes, rp.samples},
		}
		for _, row := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%d\t\n", r.scenario, r.target, row.what, row.d.p50, row.d.p99, row.d.max, row.samples)
		}
		if rp.unseen > 0 || rp.notStreaming > 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d events not replayed or not projected within %s; %d samples without the standby streaming\t\t\t\t\t\n",
				r.scenario, r.target, rp.unseen, catchUpBound, rp.notStreaming)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	header = false
	for _, r := range results {
		if r.reads == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "scenario\ttarget\tGET\tcached reads/s\tuncached reads/s\tratio\tcached, no gzip\tratio\tbare server reads/s\tlimits on Redis: cached\tuncached\tratio\t")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%s\t/api/shows/%d (%d seats)\t%.1f\t%.1f\t%.2f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.2f\t\n",
			r.scenario, r.target, r.reads.show, readSeats, r.reads.cached, r.reads.uncached, r.reads.ratio,
			r.reads.cachedPlain, r.reads.ratioPlain, r.reads.ceiling,
			r.reads.cachedRedisLimits, r.reads.uncachedRedisLimits, r.reads.ratioRedisLimits)
	}
	return tw.Flush()
}

// catchUpText describes lagStats.catchUp.
func catchUpText(ms float64) string {
	if ms < 0 {
		return "not caught up within " + catchUpBound.String()
	}
	return fmt.Sprintf("caught up %.1f ms after the last booking", ms)
}

// createDB creates an empty database named prefix plus a random suffix.
func createDB(ctx context.Context, adminURL, prefix string) (string, error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to the admin database (is PostgreSQL running? `make services` starts it): %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := prefix + "_" + hex.EncodeToString(suffix[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// scratchDB creates a benchmark database (createDB) and returns a func that
// drops it again, or with -keep keeps it; either way it tells report.
func scratchDB(ctx context.Context, cfg config, prefix string, report func(string, ...any)) (name string, done func(), err error) {
	name, err = createDB(ctx, cfg.adminURL, prefix)
	if err != nil {
		return "", nil, err
	}
	return name, func() {
		if cfg.keep {
			report("kept database %s", name)
			return
		}
		if err := dropDB(ctx, cfg.adminURL, name); err != nil {
			report("%v", err)
		}
	}, nil
}

// dropDB drops a benchmark database, even when ctx has ended.
func dropDB(ctx context.Context, adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// openPool connects to database name on the admin URL's server with room
// for one connection per client.
func openPool(ctx context.Context, adminURL, name string, clients int) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	pcfg.ConnConfig.Database = name
	pcfg.MaxConns = int32(max(clients, 4))
	pcfg.ConnConfig.RuntimeParams["application_name"] = "bookingbench"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	return pool, nil
}

// warmPool opens n connections before the clock starts, so no target pays
// for connecting during its run.
func warmPool(ctx context.Context, pool *pgxpool.Pool, n int) error {
	n = min(n, int(pool.Config().MaxConns))
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("open connections: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}
