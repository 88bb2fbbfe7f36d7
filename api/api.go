// Package api is bookingd's HTTP side: a chi router serving the REST contract
// of DESIGN.md, with health and metrics endpoints.
//
// Handlers turn requests into commands on the ledger (package ledger) and
// queries on the projections (through package readpath, which picks a
// replica or the primary, and package cache). problemFor is the one place
// where errors become HTTP status codes; every error answer is RFC 9457
// problem+json, including the router's 404/405 and recovered panics.
// GET /api/openapi.json serves the contract's OpenAPI 3.1 description
// (openapi.yaml, embedded), which the tests hold every response to.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/migrations"
	"github.com/bookingledger/ledger/ratelimit"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/users"
)

// Config holds the API's settings. DefaultConfig gives DESIGN.md's defaults;
// JWTSecret has none.
type Config struct {
	JWTSecret      []byte
	TokenTTL       time.Duration
	MaxBodyBytes   int64
	IdempotencyTTL time.Duration
	// ReadYourWritesWait bounds how long a read waits for the projector to
	// reach the caller's own last write.
	ReadYourWritesWait time.Duration
	RateLimits         RateLimits
	// TrustProxyHeaders makes the client IP of rate limits the last hop of
	// X-Forwarded-For (set it only behind one proxy that appends to it).
	TrustProxyHeaders bool
	// MaxSeatsPerUser is a new show's cap on the seats one user may hold
	// or have bought at once when POST /api/shows names none; 0: no cap.
	MaxSeatsPerUser int
	// Live caps the live seat-map feeds open in this process and per
	// client.
	Live LiveLimits
}

// LiveLimits cap open live feeds; 0 means no cap.
type LiveLimits struct {
	MaxFeeds, MaxFeedsPerClient int
}

// RateLimits are requests per minute per user (per IP when anonymous).
type RateLimits struct {
	Auth, Bookings, Reads int
}

// DefaultConfig returns the defaults of DESIGN.md, without a JWT secret.
func DefaultConfig() Config {
	return Config{
		TokenTTL:           24 * time.Hour,
		MaxBodyBytes:       1 << 20,
		IdempotencyTTL:     24 * time.Hour,
		ReadYourWritesWait: 3 * time.Second,
		RateLimits:         RateLimits{Auth: 5, Bookings: 10, Reads: 100},
		MaxSeatsPerUser:    10,
		Live:               LiveLimits{MaxFeeds: 50_000, MaxFeedsPerClient: 10},
	}
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("JWT secret must be at least 32 bytes"))
	}
	if c.TokenTTL <= 0 || c.IdempotencyTTL <= 0 || c.ReadYourWritesWait < 0 {
		errs = append(errs, errors.New("token TTL and idempotency TTL must be positive, the read-your-writes wait not negative"))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("max body bytes must be positive"))
	}
	if c.RateLimits.Auth <= 0 || c.RateLimits.Bookings <= 0 || c.RateLimits.Reads <= 0 {
		errs = append(errs, errors.New("rate limits must be positive"))
	}
	if c.MaxSeatsPerUser < 0 || c.MaxSeatsPerUser > domain.MaxSeatsPerShow {
		errs = append(errs, fmt.Errorf("max seats per user must be 0 (no cap) to %d", domain.MaxSeatsPerShow))
	}
	if c.Live.MaxFeeds < 0 || c.Live.MaxFeedsPerClient < 0 {
		errs = append(errs, errors.New("live feed caps must not be negative"))
	}
	return errors.Join(errs...)
}

// Deps are the API's collaborators.
//
// A ledger on one database gives Ledger, Reads and Live (and Primary);
// one on several shards gives Shards, shard k at index k, and Primary is
// then the home database of users and idempotency keys.
type Deps struct {
	Config   Config
	Ledger   *ledger.Service
	Shards   []Shard
	Users    *users.Store
	Primary  *pgxpool.Pool // the home database: users, idempotency keys
	Reads    *readpath.Router
	Tokens   *readpath.Tokens
	Cache    *cache.Cache
	Live     *live.Hub    // nil: GET /api/shows/{id}/live answers 503
	Web      http.Handler // the web app, served for GET paths outside /api; nil: none
	Limiter  *ratelimit.Limiter
	Logger   *slog.Logger
	Registry *prometheus.Registry // metrics are registered here and served at /metrics
	Now      func() time.Time
}

type server struct {
	Deps
	shards   []Shard
	ledger   *ledger.Sharded // routes commands to the shard of their show
	metrics  *metrics
	liveGate *live.Gate // one for the process: its caps count every shard's feeds
}

// New returns the HTTP handler. It fails when the configuration is invalid.
func New(d Deps) (http.Handler, error) {
	if err := d.Config.Validate(); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Tokens == nil {
		d.Tokens = readpath.NewTokens(nil, "", 10*time.Minute)
	}
	if d.Cache == nil {
		d.Cache = cache.New(nil, cache.Config{})
	}
	if d.Limiter == nil {
		d.Limiter = ratelimit.New(nil, ratelimit.Config{})
	}
	shardList, err := shardDeps(&d)
	if err != nil {
		return nil, err
	}
	services := make([]*ledger.Service, len(shardList))
	for k, sh := range shardList {
		services[k] = sh.Ledger
	}
	router, err := ledger.NewSharded(services...)
	if err != nil {
		return nil, err
	}
	s := &server{Deps: d, shards: shardList, ledger: router, metrics: newMetrics(d.Registry),
		liveGate: live.NewGate(d.Config.Live.MaxFeeds, d.Config.Live.MaxFeedsPerClient)}
	s.registerLiveMetrics()
	return s.routes(), nil
}

func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(requestID, s.instrument, s.recoverer, middleware.GetHead, s.authenticate)
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Status: http.StatusNotFound, Title: "Not found", Detail: "no such route"})
	})
	// Paths outside /api that no route claims belong to the web app.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if s.Web != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
			s.Web.ServeHTTP(w, r)
			return
		}
		notFound(w, r)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, req.URL.Path) {
				allowed = append(allowed, m)
				if m == http.MethodGet {
					allowed = append(allowed, http.MethodHead) // middleware.GetHead
				}
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, req, Problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed",
			Detail: req.Method + " is not allowed on " + req.URL.Path})
	})

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.ready)
	r.Get("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}).ServeHTTP)

	// The API's routes hang off the root router by their whole path, not
	// under a mounted /api sub-router: one route lookup per request.
	r.Get("/api/openapi.json", s.openAPI)
	r.Group(func(r chi.Router) {
		r.Use(s.limit("auth"))
		r.Post("/api/auth/register", s.register)
		r.Post("/api/auth/login", s.login)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.limit("reads"))
		r.Get("/api/shows", s.listShows)
		r.Get("/api/shows/{id}", s.getShow)
		r.Get("/api/shows/{id}/live", s.liveShow)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.requireRole(users.RoleUser, users.RoleAdmin, users.RoleAuditor))
		r.With(s.limit("reads")).Get("/api/bookings", s.listBookings)
		r.With(s.limit("reads")).Get("/api/bookings/{id}", s.getBooking)
		r.Group(func(r chi.Router) {
			r.Use(s.limit("bookings"), s.idempotent)
			// Auditors read; they do not book.
			r.With(s.requireRole(users.RoleUser, users.RoleAdmin)).Post("/api/bookings", s.hold)
			r.Post("/api/bookings/{id}/confirm", s.confirm)
			r.Post("/api/bookings/{id}/cancel", s.cancel)
		})
	})
	r.With(s.requireRole(users.RoleAdmin), s.limit("bookings"), s.idempotent).Post("/api/shows", s.createShow)
	r.Group(func(r chi.Router) {
		r.Use(s.requireRole(users.RoleAdmin, users.RoleAuditor), s.limit("reads"))
		r.Get("/api/shows/{id}/events", s.showEvents)
		r.Get("/api/events", s.globalEvents)
	})
	return r
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// ready answers 200 when the home database answers and every database
// that answers is migrated. On several shards, one that does not answer
// fails only its own shows' requests: the instance stays ready
// ("degraded", naming it) for every other shard's.
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	notMigrated := func(name string) {
		writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Title: "Not ready",
			Detail: name + "schema is not migrated (run bookingctl migrate)"})
	}
	if err := s.Primary.Ping(ctx); err != nil {
		s.Logger.WarnContext(ctx, "not ready: the database does not answer", "err", err)
		writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Title: "Not ready", Detail: "database unreachable"})
		return
	}
	if pending, err := migrations.Pending(ctx, s.Primary); err != nil || pending > 0 {
		notMigrated("")
		return
	}
	unreachable := []int{}
	for k, sh := range s.shards {
		if sh.Primary == s.Primary {
			continue
		}
		if err := sh.Primary.Ping(ctx); err != nil {
			s.Logger.WarnContext(ctx, "degraded: a shard does not answer", "shard", k, "err", err)
			unreachable = append(unreachable, k)
			continue
		}
		if pending, err := migrations.Pending(ctx, sh.Primary); err != nil || pending > 0 {
			notMigrated(fmt.Sprintf("shard %d: ", k))
			return
		}
	}
	if len(unreachable) > 0 {
		writeJSON(w, http.StatusOK, map[string]any{"status": "degraded", "unreachable_shards": unreachable})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
