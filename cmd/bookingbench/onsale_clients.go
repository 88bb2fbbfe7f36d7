package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/audit"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/shards"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

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
	status, body, err := c.api.postHold(ctx, c.token, c.show, []string{seat})
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
