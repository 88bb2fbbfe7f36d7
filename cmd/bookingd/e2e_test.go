package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/users"
	"github.com/bookingledger/ledger/web"
)

// The web app end to end, in headless Chromium (web/e2e/run.mjs drives it
// with playwright-core): a bookingd serving the app this test binary embeds,
// an admin and an auditor made here, and the scenario of issue 7 — register,
// log in, hold two seats while a second browser watches them turn locked,
// confirm, cancel, an admin creates a show, the auditor's timeline shows an
// earlier seat map. `make test` builds the app and sets WEB_E2E=1; a plain
// `go test` skips this test.
func TestWebEndToEnd(t *testing.T) {
	if os.Getenv("WEB_E2E") == "" {
		t.Skip("WEB_E2E is not set: `make test` builds the web app and runs this test")
	}
	require.True(t, web.Built(), "the web app is not built into this test binary: run `make web` first")
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	ctx := context.Background()
	accounts := users.NewStore(pool).WithCost(bcrypt.MinCost)
	const password = "e2e password 123"
	_, err := accounts.Create(ctx, "admin@e2e.example", password, users.RoleAdmin)
	require.NoError(t, err)
	_, err = accounts.Create(ctx, "auditor@e2e.example", password, users.RoleAuditor)
	require.NoError(t, err)

	// Payments off: the person confirms. Limits out of the way: the test
	// clicks faster than a person.
	base := startBookingd(t, map[string]string{"DATABASE_URL": url, "CONFIRM_DELAY": "0",
		"RATE_LIMIT_BOOKINGS_PER_MIN": "10000", "RATE_LIMIT_AUTH_PER_MIN": "10000"})

	out, err := filepath.Abs("../../web/test-output")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(out, 0o755))
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	// Playwright needs Node.js 20; where the system has an older one (Debian
	// 12's apt has 18), npx fetches Node.js 20 from the npm registry.
	cmd := exec.CommandContext(ctx, "node", "e2e/run.mjs")
	if v, err := exec.Command("node", "-p", "process.versions.node.split('.')[0]").Output(); err == nil {
		if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); major < 20 {
			cmd = exec.CommandContext(ctx, "npx", "--yes", "--package=node@20", "--", "node", "e2e/run.mjs")
		}
	}
	cmd.Dir = "../../web"
	cmd.Env = append(os.Environ(), "BASE_URL="+base,
		"ADMIN_EMAIL=admin@e2e.example", "ADMIN_PASSWORD="+password,
		"AUDITOR_EMAIL=auditor@e2e.example", "AUDITOR_PASSWORD="+password,
		"SCREENSHOT_DIR="+out)
	output, err := cmd.CombinedOutput()
	t.Logf("web/e2e/run.mjs:\n%s", output)
	require.NoError(t, err, "the end-to-end scenario failed (screenshots in web/test-output)")
}
