package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/users"
)

// httpTarget books through the full API, served in this process on a real
// TCP listener, as a fleet of logged-in users.
type httpTarget struct {
	*ledgerTarget               // the API's command side; verify is the same
	deps          api.Deps      // of the API without cache; measureReads serves one with
	readShow      domain.ShowID // the readSeats-seat show measureReads fetches
	base          string
	srv           *http.Server
	served        chan error
	client        *http.Client
}

const benchPassword = "bookingbench password"

// newHTTP sets up the ledger target plus one more show of readSeats seats
// that nobody books (the one measureReads fetches: its projection stays
// exact without a projector) and serves the API over it: a fresh JWT
// secret, rate limits out of the way (reads too: every read comes from one
// IP), a short read-your-writes wait and no show cache. No projector runs
// while the clients book (holds do not read the projections); runTarget's
// projects the set-up before.
func newHTTP(ctx context.Context, pool *pgxpool.Pool, sc scenario, labels []string, clients int) (*httpTarget, error) {
	l, err := newLedger(ctx, []*pgxpool.Pool{pool}, sc, labels) // bookingd serves one database
	if err != nil {
		return nil, err
	}
	seats, err := domain.GenerateSeatLabels(domain.ShowMovie, readSeats)
	if err != nil {
		return nil, err
	}
	read, err := l.svc.ScheduleShow(ctx, ledger.ScheduleInput{
		Name: "Bench read show", ShowType: domain.ShowMovie,
		StartTime: time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second), SeatNumbers: seats,
	}, ledger.Metadata{RequestID: "bookingbench"})
	if err != nil {
		return nil, fmt.Errorf("schedule the read show: %w", err)
	}
	cfg := api.DefaultConfig()
	cfg.JWTSecret = make([]byte, 32)
	_, _ = rand.Read(cfg.JWTSecret)
	cfg.ReadYourWritesWait = 10 * time.Millisecond
	cfg.RateLimits = api.RateLimits{Auth: math.MaxInt32, Bookings: math.MaxInt32, Reads: math.MaxInt32}
	deps := api.Deps{
		Config:  cfg,
		Ledger:  l.svc.Shard(0),
		Users:   users.NewStore(pool),
		Primary: pool,
		Reads:   readpath.New(pool, nil, nil),
		Cache:   cache.New(nil, cache.Config{}),
		Logger:  slog.New(slog.DiscardHandler),
	}
	handler, err := api.New(deps)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &httpTarget{
		ledgerTarget: l,
		deps:         deps,
		readShow:     read.ShowID,
		base:         "http://" + ln.Addr().String(),
		srv:          &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute},
		served:       make(chan error, 1),
		client: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        2 * clients,
				MaxIdleConnsPerHost: 2 * clients,
				IdleConnTimeout:     2 * time.Minute,
				DisableCompression:  true,
			},
		},
	}
	go func() { h.served <- h.srv.Serve(ln) }()
	return h, nil
}

// clients registers one user per client (bcrypt at its minimum cost: setup
// is not measured) and logs each in over HTTP, all at once so every client
// starts with its own keep-alive connection.
func (h *httpTarget) clients(ctx context.Context, n int) ([]bookFunc, error) {
	store := users.NewStore(h.pools[0]).WithCost(bcrypt.MinCost)
	out := make([]bookFunc, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			email := fmt.Sprintf("bench-client-%d@example.com", i+1)
			if _, err := store.Create(ctx, email, benchPassword, users.RoleUser); err != nil {
				errs[i] = err
				return
			}
			token, err := h.login(ctx, email)
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = func(ctx context.Context, j job) (string, error) { return h.hold(ctx, token, j) }
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (h *httpTarget) login(ctx context.Context, email string) (string, error) {
	var body struct {
		Token string `json:"token"`
	}
	status, err := h.post(ctx, "/api/auth/login", "", map[string]string{"email": email, "password": benchPassword}, &body)
	if err != nil {
		return "", fmt.Errorf("log in %s: %w", email, err)
	}
	if status != http.StatusOK || body.Token == "" {
		return "", fmt.Errorf("log in %s: status %d", email, status)
	}
	return body.Token, nil
}

// hold is POST /api/bookings: 201 is a booking, 409 (seats taken) and 503
// (too many concurrent changes) are refusals, anything else is a failure.
func (h *httpTarget) hold(ctx context.Context, token string, j job) (string, error) {
	status, body, err := h.postHold(ctx, token, h.shows[j.show], j.seats)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusCreated && body.ID != "":
		return body.ID, nil
	case status == http.StatusConflict || status == http.StatusServiceUnavailable:
		return "", fmt.Errorf("%w: %d %s: %s", errRefused, status, body.Title, body.Detail)
	default:
		return "", fmt.Errorf("POST /api/bookings: %d %s: %s", status, body.Title, body.Detail)
	}
}

// holdAnswer is what POST /api/bookings answers: a booking or a problem.
type holdAnswer struct {
	ID               string   `json:"id"`
	Title            string   `json:"title"`
	Detail           string   `json:"detail"`
	UnavailableSeats []string `json:"unavailable_seats"`
}

// postHold asks for a hold of seats on show; the caller judges the answer.
func (h *httpTarget) postHold(ctx context.Context, token string, show domain.ShowID, seats []string) (int, holdAnswer, error) {
	var body holdAnswer
	req := struct {
		ShowID      int64    `json:"show_id"`
		SeatNumbers []string `json:"seat_numbers"`
	}{int64(show), seats}
	status, err := h.post(ctx, "/api/bookings", token, req, &body)
	return status, body, err
}

// post sends v as JSON and decodes a JSON answer into out (problem+json
// too). The body is read to its end so the connection is reused.
func (h *httpTarget) post(ctx context.Context, path, token string, v, out any) (int, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("POST %s: %d with a body that is not JSON: %w", path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// close stops the server after the requests in flight and drops the
// client's idle connections.
func (h *httpTarget) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	<-h.served
	h.client.CloseIdleConnections()
}
