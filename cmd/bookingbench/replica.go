package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/projections"
)

// Settings of the replica measurement (-replica-url).
const (
	replicaSampleEvery = 100 * time.Millisecond // pg_stat_replication and a new probe
	replicaPoll        = 2 * time.Millisecond   // how often the standby is asked about pending probes
)

// replicaStats is a streaming standby's lag during one ledger run.
//
// visible and ryw come from probes: every replicaSampleEvery the newest
// committed event on the primary (shard 0's database; eventstore.Store.Last)
// is noted with the time the question was sent, and the standby is asked
// at once and then every replicaPoll until that event is there (visible)
// and until the standby's projector checkpoint — the consumer_offsets row
// readpath.AtLeast reads — has reached it (ryw: how long a read-your-writes
// read waits before the standby may answer it). Both count from before the
// primary was asked until the standby was asked: upper bounds, by a round
// trip to each server and up to one poll.
//
// write, flush, replay and bytes are the primary's pg_stat_replication at
// the same sample times: write_lag, flush_lag, replay_lag (NULL, once the
// standby has caught up, counts as 0) and pg_wal_lsn_diff(sent_lsn,
// replay_lsn). With several matching standbys each sample takes the largest.
type replicaStats struct {
	probes, unseen int // probes taken; probes not visible or not projected within catchUpBound
	visible, ryw   dist
	nVisible, nRYW int // the probes each of them is over
	samples        int // pg_stat_replication samples with the standby streaming
	notStreaming   int // samples without it
	write, flush   dist
	replay, bytes  dist
}

// dist is p50, p99 and max of a set of samples (ms, or bytes).
type dist struct{ p50, p99, max float64 }

func distOf(xs []float64) dist {
	if len(xs) == 0 {
		return dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(p float64) float64 { // nearest rank, as percentile
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return dist{p50: at(0.50), p99: at(0.99), max: s[len(s)-1]}
}

// checkReplica makes sure replicaURL is a hot standby that streams from the
// server of adminURL, and returns the application_name the primary knows it
// by ("" when it cannot tell: then every standby of the primary counts).
func checkReplica(ctx context.Context, adminURL, replicaURL string) (string, error) {
	primary, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("-admin-url: %w", err)
	}
	defer primary.Close(context.WithoutCancel(ctx))
	standby, err := pgx.Connect(ctx, replicaURL)
	if err != nil {
		return "", fmt.Errorf("-replica-url: connect to %s: %w", redact(replicaURL), err)
	}
	defer standby.Close(context.WithoutCancel(ctx))
	var recovering bool
	if err := standby.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovering); err != nil {
		return "", fmt.Errorf("-replica-url: %w", err)
	}
	if !recovering {
		return "", fmt.Errorf("-replica-url %s is not a standby (pg_is_in_recovery() is false)", redact(replicaURL))
	}
	// The same cluster has the same system identifier; a user that may
	// not read it skips the check.
	var pid, sid uint64
	if primary.QueryRow(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(&pid) == nil &&
		standby.QueryRow(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(&sid) == nil && pid != sid {
		return "", fmt.Errorf("-replica-url %s is not a standby of -admin-url (system identifiers %d and %d)", redact(replicaURL), sid, pid)
	}
	// The primary's pg_stat_replication names a standby by the
	// application_name of its primary_conninfo, else its cluster_name,
	// else "walreceiver".
	var conninfo, cluster string
	_ = standby.QueryRow(ctx, `SELECT coalesce((SELECT conninfo FROM pg_stat_wal_receiver), ''), current_setting('cluster_name')`).
		Scan(&conninfo, &cluster)
	app := "walreceiver"
	if cluster != "" {
		app = cluster
	}
	for _, kv := range strings.Fields(conninfo) {
		if v, ok := strings.CutPrefix(kv, "application_name="); ok {
			app = strings.Trim(v, "'")
		}
	}
	var all, named int
	if err := primary.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE application_name = $1)
		FROM pg_stat_replication`, app).Scan(&all, &named); err != nil {
		return "", fmt.Errorf("-admin-url: pg_stat_replication: %w", err)
	}
	switch {
	case all == 0:
		return "", fmt.Errorf("-admin-url has no standby streaming from it (pg_stat_replication is empty)")
	case named == 0:
		return "", nil
	}
	return app, nil
}

// redact drops the password from a connection URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// probe is the newest committed event at a sample time, and when the
// standby was first seen to have it and to have projected it.
type probe struct {
	at           time.Time
	cp           eventstore.Checkpoint
	visible, ryw time.Duration // 0: not yet
}

// replicaWatch measures a standby's lag behind shard 0 of a ledger run.
type replicaWatch struct {
	primary *pgx.Conn // shard 0's database on the primary, for the sampler alone
	standby *pgx.Conn // the same database on the standby, for the watcher alone
	app     string
	wake    chan struct{} // a new probe

	stopSampling context.CancelFunc
	stopWatching context.CancelFunc
	sampling     sync.WaitGroup
	watching     sync.WaitGroup

	mu       sync.Mutex
	probes   []*probe
	pending  int // probes not yet both visible and projected
	write    []float64
	flush    []float64
	replay   []float64
	bytes    []float64
	notStrm  int
	errs     []error
	watchErr error
}

// startReplica waits until the standby has replayed the primary's WAL as it
// stands (the target's set-up, its database included), up to catchUpBound,
// and connects to dbName on both servers.
func startReplica(ctx context.Context, cfg config, app, dbName string, progress func(string, ...any)) (*replicaWatch, error) {
	began := time.Now()
	primary, err := connectTo(ctx, cfg.adminURL, dbName)
	if err != nil {
		return nil, err
	}
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		primary.Close(ctx)
		return nil, fmt.Errorf("primary: %w", err)
	}
	if err := waitReplayed(ctx, cfg.replicaURL, lsn); err != nil {
		primary.Close(ctx)
		return nil, err
	}
	standby, err := connectTo(ctx, cfg.replicaURL, dbName)
	if err != nil {
		primary.Close(ctx)
		return nil, err
	}
	progress("the standby replayed the set-up (%s) in %.1fs", lsn, time.Since(began).Seconds())
	return &replicaWatch{primary: primary, standby: standby, app: app, wake: make(chan struct{}, 1)}, nil
}

func connectTo(ctx context.Context, serverURL, dbName string) (*pgx.Conn, error) {
	ccfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return nil, err
	}
	ccfg.Database = dbName
	ccfg.RuntimeParams["application_name"] = "bookingbench-replica"
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s on %s:%d: %w", dbName, ccfg.Host, ccfg.Port, err)
	}
	return conn, nil
}

// waitReplayed polls the standby until it has replayed up to lsn.
func waitReplayed(ctx context.Context, replicaURL, lsn string) error {
	conn, err := pgx.Connect(ctx, replicaURL)
	if err != nil {
		return fmt.Errorf("-replica-url: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(catchUpBound)
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&done); err != nil {
			return fmt.Errorf("standby: %w", err)
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby did not replay the set-up (up to %s) within %s", lsn, catchUpBound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(catchUpPoll):
		}
	}
}

// start begins sampling and watching.
func (w *replicaWatch) start(ctx context.Context) {
	sctx, stopSampling := context.WithCancel(ctx)
	wctx, stopWatching := context.WithCancel(ctx)
	w.stopSampling, w.stopWatching = stopSampling, stopWatching
	w.sampling.Go(func() { w.sample(sctx) })
	w.watching.Go(func() { w.watch(wctx) })
}

// sample notes a probe and the primary's pg_stat_replication every
// replicaSampleEvery until stopped.
func (w *replicaWatch) sample(ctx context.Context) {
	store := eventstore.New(w.primary)
	tick := time.NewTicker(replicaSampleEvery)
	defer tick.Stop()
	var last eventstore.Checkpoint
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		at := time.Now()
		cp, err := store.Last(ctx)
		if ctx.Err() != nil {
			return // the run ended during the query: no sample
		}
		if err != nil {
			w.fail(fmt.Errorf("primary: %w", err))
			return
		}
		if cp != last { // a new event since the last probe
			w.mu.Lock()
			w.probes = append(w.probes, &probe{at: at, cp: cp})
			w.pending++
			w.mu.Unlock()
			last = cp
			select { // the watcher asks the standby at once
			case w.wake <- struct{}{}:
			default:
			}
		}
		var (
			n                             int
			write, flush, replay, lagSize float64
		)
		err = w.primary.QueryRow(ctx, `SELECT count(*),
				coalesce(max(extract(epoch FROM write_lag)), 0)::float8 * 1000,
				coalesce(max(extract(epoch FROM flush_lag)), 0)::float8 * 1000,
				coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 * 1000,
				coalesce(max(pg_wal_lsn_diff(sent_lsn, replay_lsn)), 0)::float8
			FROM pg_stat_replication WHERE $1 = '' OR application_name = $1`, w.app).
			Scan(&n, &write, &flush, &replay, &lagSize)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.fail(fmt.Errorf("primary: pg_stat_replication: %w", err))
			return
		}
		w.mu.Lock()
		if n == 0 {
			w.notStrm++
		} else {
			w.write = append(w.write, write)
			w.flush = append(w.flush, flush)
			w.replay = append(w.replay, replay)
			w.bytes = append(w.bytes, lagSize)
		}
		w.mu.Unlock()
	}
}

// watch asks the standby as soon as a probe is taken, and every
// replicaPoll while probes are pending, which of their events it has and
// where its projector's checkpoint is.
func (w *replicaWatch) watch(ctx context.Context) {
	tick := time.NewTicker(replicaPoll)
	defer tick.Stop()
	conflicts := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.wake:
		}
		w.mu.Lock()
		var (
			open      []*probe
			positions []int64
		)
		for _, p := range w.probes {
			if p.visible == 0 || p.ryw == 0 {
				open = append(open, p)
			}
			if p.visible == 0 {
				positions = append(positions, p.cp.Position)
			}
		}
		w.mu.Unlock()
		if len(open) == 0 {
			continue
		}
		asked := time.Now()
		var (
			seen []int64
			txid *uint64
			pos  *int64
		)
		err := w.standby.QueryRow(ctx, `SELECT
				ARRAY(SELECT global_position FROM events WHERE global_position = ANY($1::bigint[])),
				(SELECT last_processed_transaction_id::text::bigint FROM consumer_offsets WHERE consumer_group = $2),
				(SELECT coalesce(offset_acked, 0) FROM consumer_offsets WHERE consumer_group = $2)`,
			positions, projections.ConsumerGroup).Scan(&seen, &txid, &pos)
		if ctx.Err() != nil {
			return
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "40") && conflicts < 100 {
			conflicts++ // cancelled by a conflict with recovery: ask again
			continue
		}
		conflicts = 0
		if err != nil {
			w.mu.Lock()
			w.watchErr = fmt.Errorf("standby: %w", err)
			w.mu.Unlock()
			return
		}
		var at eventstore.Checkpoint
		if txid != nil && pos != nil {
			at = eventstore.Checkpoint{TransactionID: *txid, Position: *pos}
		}
		w.mu.Lock()
		for _, p := range open {
			if p.visible == 0 && slices.Contains(seen, p.cp.Position) {
				p.visible = max(asked.Sub(p.at), time.Nanosecond)
			}
			if p.ryw == 0 && !at.Less(p.cp) {
				p.ryw = max(asked.Sub(p.at), time.Nanosecond)
			}
			if p.visible != 0 && p.ryw != 0 {
				w.pending--
			}
		}
		w.mu.Unlock()
	}
}

func (w *replicaWatch) fail(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
}

// stopProbes ends the sampling when the last booking has finished.
func (w *replicaWatch) stopProbes() {
	w.stopSampling()
	w.sampling.Wait()
}

// finish waits, up to catchUpBound after ended, for the standby to have and
// to have projected every probe's event, and returns the figures.
func (w *replicaWatch) finish(ctx context.Context, ended time.Time) (replicaStats, error) {
	w.stopProbes()
	deadline := ended.Add(catchUpBound)
	for {
		w.mu.Lock()
		pending, werr := w.pending, w.watchErr
		w.mu.Unlock()
		if pending == 0 || werr != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return replicaStats{}, ctx.Err()
		case <-time.After(catchUpPoll):
		}
	}
	w.stopWatching()
	w.watching.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := errors.Join(append(w.errs, w.watchErr)...); err != nil {
		return replicaStats{}, fmt.Errorf("replica lag: %w", err)
	}
	st := replicaStats{probes: len(w.probes), samples: len(w.replay), notStreaming: w.notStrm}
	var visible, ryw []float64
	for _, p := range w.probes {
		if p.visible == 0 || p.ryw == 0 {
			st.unseen++
		}
		if p.visible != 0 {
			visible = append(visible, ms(p.visible))
		}
		if p.ryw != 0 {
			ryw = append(ryw, ms(p.ryw))
		}
	}
	st.visible, st.ryw = distOf(visible), distOf(ryw)
	st.nVisible, st.nRYW = len(visible), len(ryw)
	st.write, st.flush, st.replay, st.bytes = distOf(w.write), distOf(w.flush), distOf(w.replay), distOf(w.bytes)
	return st, nil
}

// close stops everything and closes the connections.
func (w *replicaWatch) close() {
	if w.stopSampling != nil {
		w.stopSampling()
		w.stopWatching()
		w.sampling.Wait()
		w.watching.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.primary.Close(ctx)
	w.standby.Close(ctx)
}
