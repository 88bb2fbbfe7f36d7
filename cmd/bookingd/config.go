package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// config is bookingd's configuration, read once from the environment.
type config struct {
	DatabaseURL  string
	HTTPAddr     string
	HoldTTL      time.Duration
	Roles        []string // api, projector
	PollInterval time.Duration
}

var knownRoles = []string{"api", "projector"}

// loadConfig reads the environment (names as in DESIGN.md) and applies
// defaults; flagRoles, when set, overrides BOOKINGD_ROLES.
func loadConfig(getenv func(string) string, flagRoles string) (config, error) {
	c := config{
		DatabaseURL:  getenv("DATABASE_URL"),
		HTTPAddr:     or(getenv("HTTP_ADDR"), ":8080"),
		HoldTTL:      10 * time.Minute,
		Roles:        knownRoles,
		PollInterval: 100 * time.Millisecond,
	}
	var errs []error
	if v := getenv("HOLD_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("HOLD_TTL: %w", err))
		}
		c.HoldTTL = d
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
		errs = append(errs, errors.New("DATABASE_URL is required (e.g. postgres://root@127.0.0.1:5432/booking?sslmode=disable)"))
	}
	if c.HoldTTL <= 0 {
		errs = append(errs, errors.New("HOLD_TTL must be positive"))
	}
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("at least one role is required (api, projector)"))
	}
	for _, r := range c.Roles {
		if !slices.Contains(knownRoles, r) {
			errs = append(errs, fmt.Errorf("unknown role %q (known: %s)", r, strings.Join(knownRoles, ", ")))
		}
	}
	return errors.Join(errs...)
}

func (c config) has(role string) bool { return slices.Contains(c.Roles, role) }

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
