// Package pgtest gives tests their own real PostgreSQL database.
//
// NewDB creates a fresh database on the server named by TEST_DATABASE_URL
// (default postgres://root@127.0.0.1:5432/postgres), applies the migrations
// and drops the database when the test ends, so tests never touch a user's
// data and never see each other's.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bookingledger/ledger/migrations"
)

// DefaultAdminURL is the server tests use when TEST_DATABASE_URL is unset.
const DefaultAdminURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the connection string of the database used to create and drop
// test databases.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDB creates a migrated database for t and returns a pool connected to it
// and its connection string. Both are cleaned up when t ends.
func NewDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	url := CreateDB(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", url, err)
	}
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return pool, url
}

// Pool connects to url and closes the pool when t ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// CreateDB creates an empty database for t (no migrations) and returns its
// connection string. It is dropped when t ends.
func CreateDB(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s (is PostgreSQL running? `make services` starts it): %v", AdminURL(), err)
	}
	defer admin.Close(ctx)

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := strings.ToLower(t.Name())
	name = unsafeChars.ReplaceAllString(name, "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = "test_" + name + "_" + hex.EncodeToString(suffix[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})

	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("pgtest: TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
