package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/cache"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/ratelimit"
	"github.com/bookingledger/ledger/readpath"
	"github.com/bookingledger/ledger/users"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// clock is the ledger's time in a test: real time plus an offset the test
// can move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is one bookingd API over a fresh database and a private Redis prefix.
type env struct {
	t      testing.TB
	url    string
	pool   *pgxpool.Pool
	rdb    redis.UniversalClient
	prefix string
	svc    *ledger.Service
	clock  *clock
	srv    *httptest.Server
	deps   api.Deps
	reg    *prometheus.Registry

	stopProjector func()
}

// testConfig is the API's configuration in the tests: the test secret,
// limits out of the way, and a long read-your-writes wait (a loaded test
// server can hold the projector back for seconds: the xmin fence is
// server-wide; the tests want the projection's answer).
func testConfig() api.Config {
	cfg := api.DefaultConfig()
	cfg.JWTSecret = testSecret
	cfg.RateLimits = api.RateLimits{Auth: 10_000, Bookings: 10_000, Reads: 10_000}
	cfg.ReadYourWritesWait = 30 * time.Second
	return cfg
}

type envOption func(*api.Deps, *ledger.Config)

func withRateLimits(auth, bookings, reads int) envOption {
	return func(d *api.Deps, _ *ledger.Config) {
		d.Config.RateLimits = api.RateLimits{Auth: auth, Bookings: bookings, Reads: reads}
	}
}

func withRedis(rdb redis.UniversalClient) envOption {
	return func(d *api.Deps, _ *ledger.Config) {
		d.Tokens = readpath.NewTokens(rdb, "t:", time.Minute)
		d.Cache = cache.New(rdb, cache.Config{Prefix: "t:", TTL: time.Minute})
		d.Limiter = ratelimit.New(rdb, ratelimit.Config{Prefix: "t:", ProbeInterval: 10 * time.Millisecond})
	}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	pool, url := pgtest.NewDB(t)
	return newEnvOn(t, pool, url, opts...)
}

// newEnvOn is newEnv on a migrated database of the caller's.
func newEnvOn(t testing.TB, pool *pgxpool.Pool, url string, opts ...envOption) *env {
	t.Helper()
	rdb, prefix := redistest.New(t)
	e := &env{t: t, url: url, pool: pool, rdb: rdb, prefix: prefix, clock: &clock{}, reg: prometheus.NewRegistry()}
	lcfg := ledger.DefaultConfig()
	cfg := testConfig()
	e.deps = api.Deps{
		Config:   cfg,
		Users:    users.NewStore(pool).WithCost(bcrypt.MinCost),
		Primary:  pool,
		Reads:    readpath.New(pool, nil, nil),
		Tokens:   readpath.NewTokens(rdb, prefix, time.Minute),
		Cache:    cache.New(rdb, cache.Config{Prefix: prefix, TTL: time.Minute, Registerer: e.reg}),
		Limiter:  ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Registerer: e.reg}),
		Registry: e.reg,
	}
	for _, o := range opts {
		o(&e.deps, &lcfg)
	}
	svc, err := ledger.New(pool, lcfg, ledger.WithClock(e.clock.Now))
	require.NoError(t, err)
	e.svc, e.deps.Ledger = svc, svc
	e.deps.Live = live.NewHub(svc.Store(), nil, live.Config{Poll: 10 * time.Millisecond})
	h, err := api.New(e.deps)
	require.NoError(t, err)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, e.deps.Live.Run(ctx)) })
	wg.Go(func() {
		e.deps.Cache.Listen(ctx, func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, url) }, ready)
	})
	<-ready
	t.Cleanup(func() { cancel(); wg.Wait() })
	e.startProjector()
	return e
}

func (e *env) startProjector() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := projections.NewProjector(e.pool, projections.ProjectorConfig{PollInterval: 5 * time.Millisecond}, nil)
	go func() { _ = p.Run(ctx); close(done) }()
	var once sync.Once
	e.stopProjector = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(e.stopProjector)
}

type response struct {
	status int
	header http.Header
	body   []byte // decoded when the answer came gzipped
	wire   []byte // as it came
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON). headers are name, value pairs.
func (e *env) do(method, path, token string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := e.srv.Client()
	given := map[string]bool{}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Accept-Encoding" && headers[i+1] == "" {
			// No Accept-Encoding at all: net/http would add its own.
			tr := client.Transport.(*http.Transport).Clone()
			tr.DisableCompression = true
			defer tr.CloseIdleConnections()
			client = &http.Client{Transport: tr}
			continue
		}
		if given[headers[i]] {
			req.Header.Add(headers[i], headers[i+1]) // a name given twice is sent twice
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
		given[headers[i]] = true
	}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	r := response{status: resp.StatusCode, header: resp.Header, body: raw, wire: raw}
	// A client that asked for gzip itself gets the wire bytes (net/http
	// decodes only what it asked for); the contract describes the JSON.
	if resp.Header.Get("Content-Encoding") == "gzip" && req.Method != http.MethodHead {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		require.NoError(e.t, err)
		r.body, err = io.ReadAll(zr)
		require.NoError(e.t, err)
	}
	e.checkContract(req, r)
	return r
}

// apiContract is the OpenAPI document (api/openapi.yaml) and a router over
// its operations.
type apiContract struct {
	doc    *openapi3.T
	router routers.Router
}

// loadContract loads and validates the embedded OpenAPI document once.
var loadContract = sync.OnceValues(func() (*apiContract, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPISpec)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.yaml: %w", err)
	}
	return &apiContract{doc: doc, router: router}, nil
})

// contractFormats checks the string formats the document uses beyond the
// ones kin-openapi checks by default (date-time).
var contractFormats = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
	openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
}

// checkContract fails the test (without stopping it, so it is safe from
// any goroutine) when an answer does not match the OpenAPI document: its
// status must be documented for the operation, and its headers and body
// must match that status's response (kin-openapi checks no headers or body
// of a 304). Paths and methods the document does not have must get the
// router's problem+json 404 and 405.
func (e *env) checkContract(req *http.Request, r response) {
	e.t.Helper()
	c, err := loadContract()
	if err != nil {
		e.t.Errorf("OpenAPI document: %v", err)
		return
	}
	if err := c.check(req, r); err != nil {
		e.t.Errorf("%s %s answered %d, which openapi.yaml does not allow: %v\nheaders: %v\nbody: %s",
			req.Method, req.URL.RequestURI(), r.status, err, r.header, r.body)
	}
}

func (c *apiContract) check(req *http.Request, r response) error {
	head := req.Method == http.MethodHead
	if head {
		// GET routes answer HEAD too (middleware.GetHead): the GET
		// operation's headers, without its body.
		req = req.Clone(req.Context())
		req.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// Not an operation of the document: the router's own answer.
		var routeErr *routers.RouteError
		if !errors.As(err, &routeErr) {
			return err
		}
		want, name := http.StatusNotFound, "NotFound"
		if routeErr.Reason == routers.ErrMethodNotAllowed.Error() {
			want, name = http.StatusMethodNotAllowed, "MethodNotAllowed"
		}
		if r.status != want {
			return fmt.Errorf("not an operation of the document (%v), so the answer must be %d", err, want)
		}
		route = &routers.Route{Spec: c.doc, Path: req.URL.Path, Method: req.Method, Operation: &openapi3.Operation{
			Responses: openapi3.NewResponses(openapi3.WithStatus(want, c.doc.Components.Responses[name])),
		}}
	}
	if route.Operation.Responses.Status(r.status) == nil {
		return fmt.Errorf("status %d is not documented for %s %s", r.status, route.Method, route.Path)
	}
	return openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.status,
		Header:                 r.header,
		Body:                   io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			ExcludeResponseBody:     head,
			MultiError:              true,
			SchemaValidationOptions: contractFormats,
		},
	})
}

var userN atomic.Int64

// login creates a user with role directly in the store and logs in through
// the API.
func (e *env) login(role users.Role) (token, userID string) {
	e.t.Helper()
	email := fmt.Sprintf("%s%d@example.com", role, userN.Add(1))
	u, err := e.deps.Users.Create(context.Background(), email, "password-123", role)
	require.NoError(e.t, err)
	r := e.do("POST", "/api/auth/login", "", map[string]string{"email": email, "password": "password-123"})
	require.Equal(e.t, http.StatusOK, r.status, "%s", r.body)
	return r.json(e.t)["token"].(string), u.ID.String()
}

// createShow schedules a show as an admin through the API.
func (e *env) createShow(admin string, body map[string]any) int64 {
	e.t.Helper()
	if _, ok := body["start_time"]; !ok {
		body["start_time"] = time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	}
	if _, ok := body["name"]; !ok {
		body["name"] = "Test show"
	}
	if _, ok := body["show_type"]; !ok {
		body["show_type"] = "bus"
	}
	r := e.do("POST", "/api/shows", admin, body)
	require.Equal(e.t, http.StatusCreated, r.status, "%s", r.body)
	return int64(r.json(e.t)["id"].(float64))
}

// eventually polls check until it holds; the loop is bounded.
func eventually(t testing.TB, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if check() {
			return
		}
	}
	t.Fatalf("%s did not happen within 30s", what)
}

func requireProblem(t testing.TB, r response, status int) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "%s", r.body)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), "%s", r.body)
	p := r.json(t)
	require.EqualValues(t, status, p["status"])
	require.NotEmpty(t, p["title"])
	return p
}

// newServer starts another API instance over the same dependencies: another
// bookingd process, as far as the database and Redis can tell.
func newServer(t *testing.T, d api.Deps) *env {
	t.Helper()
	d.Registry = prometheus.NewRegistry()
	h, err := api.New(d)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, deps: d, pool: d.Primary}
}
