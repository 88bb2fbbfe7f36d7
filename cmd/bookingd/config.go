package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/shards"
)

// config is bookingd's configuration, read once from the environment (names
// as in DESIGN.md) and validated before anything starts.
type config struct {
	DatabaseURL string // the home database: users, idempotency keys
	// ShardURLs are the ledger's shards (DATABASE_SHARD_URLS; default
	// DatabaseURL alone): show id k lives on shard k mod N.
	ShardURLs []string
	// ReplicaURLs are each shard's streaming replicas, shard k at index k
	// (DATABASE_REPLICA_URLS: a comma-separated list for one shard; groups
	// separated by ';' in shard order for several).
	ReplicaURLs  [][]string
	RedisURL     string
	RedisCluster bool // REDIS_CLUSTER: REDIS_URL names a Redis Cluster
	RedisPrefix  string
	HTTPAddr     string
	AdminAddr    string // ADMIN_ADDR: pprof and metrics for operators; off when empty
	HoldTTL      time.Duration
	ConfirmDelay time.Duration // 0: no simulated payment, clients confirm themselves
	ExpiryEvery  time.Duration
	NATSURL      string // forward the stream to NATS JetStream when set
	NATSTopic    string
	CacheTTL     time.Duration
	Roles        []string // api, projector, worker
	PollInterval time.Duration
	// LiveCoalesce is how long a live seat change may wait to go out with
	// others (LIVE_COALESCE; 0: each event its own message).
	LiveCoalesce time.Duration
	Dev          bool // BOOKINGD_ENV=dev: a random JWT secret when none is set
	API          api.Config
}

var knownRoles = []string{"api", "projector", "worker"}

// loadConfig reads the environment and applies defaults; flagRoles, when
// set, overrides BOOKINGD_ROLES. It reports every problem at once.
func loadConfig(getenv func(string) string, flagRoles string) (config, error) {
	c := config{
		DatabaseURL:  getenv("DATABASE_URL"),
		RedisURL:     getenv("REDIS_URL"),
		NATSURL:      getenv("NATS_URL"),
		NATSTopic:    or(getenv("NATS_TOPIC"), "bookingledger_events"),
		RedisPrefix:  or(getenv("REDIS_PREFIX"), "bookingledger:"),
		HTTPAddr:     or(getenv("HTTP_ADDR"), ":8080"),
		AdminAddr:    getenv("ADMIN_ADDR"),
		HoldTTL:      10 * time.Minute,
		ConfirmDelay: time.Second,
		ExpiryEvery:  30 * time.Second,
		CacheTTL:     30 * time.Second,
		Roles:        knownRoles,
		PollInterval: time.Second,
		LiveCoalesce: live.DefaultConfig().Coalesce,
		Dev:          getenv("BOOKINGD_ENV") == "dev",
		API:          api.DefaultConfig(),
	}
	var errs []error
	// durationOr0 accepts 0 too (meaning "off"); duration wants it positive.
	durationOr0 := func(name string, dst *time.Duration, zeroOK bool) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d == 0 && !zeroOK) {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 10m or 500ms", name, v))
				return
			}
			*dst = d
		}
	}
	duration := func(name string, dst *time.Duration) { durationOr0(name, dst, false) }
	// intIn reads a whole number from lo to hi; want says so in an error.
	intIn := func(name string, dst *int, lo, hi int, want string) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				errs = append(errs, fmt.Errorf("%s=%q: want %s", name, v, want))
				return
			}
			*dst = n
		}
	}
	integer := func(name string, dst *int) { intIn(name, dst, 1, math.MaxInt, "a positive integer") }
	capOr0 := func(name string, dst *int) { intIn(name, dst, 0, math.MaxInt, "a whole number ≥ 0") } // 0: no cap
	duration("HOLD_TTL", &c.HoldTTL)
	duration("EXPIRY_INTERVAL", &c.ExpiryEvery)
	durationOr0("CONFIRM_DELAY", &c.ConfirmDelay, true) // 0: payments off
	duration("CACHE_TTL", &c.CacheTTL)
	duration("PROJECTOR_POLL_INTERVAL", &c.PollInterval)
	duration("JWT_TTL", &c.API.TokenTTL)
	duration("IDEMPOTENCY_TTL", &c.API.IdempotencyTTL)
	durationOr0("READ_YOUR_WRITES_WAIT", &c.API.ReadYourWritesWait, true) // 0: never wait
	integer("RATE_LIMIT_AUTH_PER_MIN", &c.API.RateLimits.Auth)
	integer("RATE_LIMIT_BOOKINGS_PER_MIN", &c.API.RateLimits.Bookings)
	integer("RATE_LIMIT_READS_PER_MIN", &c.API.RateLimits.Reads)
	durationOr0("LIVE_COALESCE", &c.LiveCoalesce, true) // 0: a message per event
	capOr0("LIVE_MAX_FEEDS", &c.API.Live.MaxFeeds)
	capOr0("LIVE_MAX_FEEDS_PER_CLIENT", &c.API.Live.MaxFeedsPerClient)
	maxBody := int(c.API.MaxBodyBytes)
	integer("MAX_BODY_BYTES", &maxBody)
	c.API.MaxBodyBytes = int64(maxBody)
	// New shows' seats per user when POST /api/shows names none; 0: no cap.
	intIn("MAX_SEATS_PER_USER", &c.API.MaxSeatsPerUser, 0, domain.MaxSeatsPerShow,
		fmt.Sprintf("a whole number from 0 (no cap) to %d", domain.MaxSeatsPerShow))
	if v := getenv("REDIS_CLUSTER"); v != "" {
		cluster, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("REDIS_CLUSTER=%q: want true or false", v))
		}
		c.RedisCluster = cluster
	}
	if v := getenv("TRUST_PROXY_HEADERS"); v != "" {
		trust, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRUST_PROXY_HEADERS=%q: want true or false", v))
		}
		c.API.TrustProxyHeaders = trust
	}
	c.ShardURLs = splitList(getenv("DATABASE_SHARD_URLS"), ",")
	if len(c.ShardURLs) == 0 && c.DatabaseURL != "" {
		c.ShardURLs = []string{c.DatabaseURL}
	}
	replicas := getenv("DATABASE_REPLICA_URLS")
	groups := strings.Split(replicas, ";")
	switch {
	case strings.TrimSpace(replicas) == "":
		groups = nil
	case len(c.ShardURLs) <= 1 && len(groups) > 1:
		errs = append(errs, errors.New("DATABASE_REPLICA_URLS: ';' separates the replicas of several shards, but DATABASE_SHARD_URLS names one database"))
	case len(c.ShardURLs) > 1 && len(groups) != len(c.ShardURLs):
		errs = append(errs, fmt.Errorf("DATABASE_REPLICA_URLS: %d groups for %d shards; give one group per shard in shard order, separated by ';' (an empty group: no replicas), e.g. \"r0a,r0b;r1;;r3\"", len(groups), len(c.ShardURLs)))
	}
	c.ReplicaURLs = make([][]string, len(c.ShardURLs))
	for k, g := range groups {
		if k < len(c.ReplicaURLs) {
			c.ReplicaURLs[k] = splitList(g, ",")
		}
	}

	c.API.JWTSecret = []byte(getenv("JWT_SECRET"))
	if len(c.API.JWTSecret) == 0 && c.Dev {
		c.API.JWTSecret = make([]byte, 32)
		_, _ = rand.Read(c.API.JWTSecret) // tokens die with the process: fine in dev only
	}

	roles := or(flagRoles, getenv("BOOKINGD_ROLES"))
	if roles != "" {
		c.Roles = nil
		for _, r := range strings.Split(roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.Roles = append(c.Roles, r)
			}
		}
	}
	return c, errors.Join(append(errs, c.validate())...)
}

func (c config) validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required (e.g. postgres://booking:booking@127.0.0.1:5432/booking)"))
	}
	seen := map[string]int{}
	for k, u := range c.ShardURLs {
		if j, ok := seen[u]; ok {
			errs = append(errs, fmt.Errorf("DATABASE_SHARD_URLS: shards %d and %d are the same database", j, k))
		}
		seen[u] = k
	}
	if len(c.ShardURLs) > shards.MaxShards {
		errs = append(errs, fmt.Errorf("DATABASE_SHARD_URLS: %d shards; at most %d", len(c.ShardURLs), shards.MaxShards))
	}
	if c.ConfirmDelay >= c.HoldTTL {
		errs = append(errs, fmt.Errorf("CONFIRM_DELAY (%s) must be shorter than HOLD_TTL (%s), or every hold expires unpaid", c.ConfirmDelay, c.HoldTTL))
	}
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("at least one role is required (api, projector, worker)"))
	}
	for _, r := range c.Roles {
		if !slices.Contains(knownRoles, r) {
			errs = append(errs, fmt.Errorf("unknown role %q (known: %s)", r, strings.Join(knownRoles, ", ")))
		}
	}
	if c.has("api") {
		if len(c.API.JWTSecret) == 0 {
			errs = append(errs, errors.New("JWT_SECRET is required (at least 32 bytes, e.g. `openssl rand -hex 32`); only BOOKINGD_ENV=dev runs without one"))
		} else if err := c.API.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// splitList splits v at sep, trimming blanks and dropping empty items.
func splitList(v, sep string) []string {
	var out []string
	for _, u := range strings.Split(v, sep) {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// replicaCount is how many replicas every shard has in all.
func (c config) replicaCount() int {
	n := 0
	for _, g := range c.ReplicaURLs {
		n += len(g)
	}
	return n
}

func (c config) has(role string) bool { return slices.Contains(c.Roles, role) }

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
