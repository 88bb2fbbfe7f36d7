//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/internal/audit"
	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/internal/redistest"
	"github.com/bookingledger/ledger/projections"
)

// DESIGN.md's invariants with several bookingd processes, one of them
// killed: two processes of this program (built here), every role in each,
// serve one database and one Redis; clients hold, confirm and cancel seats
// of one show through both, and once some answers are in, one process is
// killed with SIGKILL — whatever it was deciding, appending or projecting
// is cut off — and started again while the clients go on. Afterwards the
// events table alone shows no seat held by two live bookings and every 201
// and 200 on the show's stream (internal/audit), and the projections equal
// a replay up to the projector's checkpoint. (The processes are built
// without the race detector: the same code runs under it in this package's
// other tests.)
func TestKilledProcessLosesNothingAndSellsNothingTwice(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds bookingd and runs two processes")
	}
	pool, url := pgtest.NewDB(t)
	_, prefix := redistest.New(t)
	bin := buildBookingd(t)
	seats := make([]string, 300)
	for i := range seats {
		seats[i] = fmt.Sprint(i + 1)
	}
	show := scheduleBus(t, url, seats...)
	env := []string{
		"DATABASE_URL=" + url, "REDIS_URL=" + redistest.URL(), "REDIS_PREFIX=" + prefix,
		"JWT_SECRET=0123456789abcdef0123456789abcdef", "CONFIRM_DELAY=0",
		"RATE_LIMIT_AUTH_PER_MIN=100000", "RATE_LIMIT_BOOKINGS_PER_MIN=100000", "RATE_LIMIT_READS_PER_MIN=100000",
	}
	procs := []*process{startProcess(t, bin, env), startProcess(t, bin, env)}

	// Each client books at least rounds times and goes on, up to
	// maxRounds, until the restarted process has answered servedAfter
	// requests (any answer: a 409 too).
	const clients, rounds, maxRounds, killAfter, servedAfter = 8, 30, 400, 25, 20
	var (
		mu        sync.Mutex
		acks      []audit.Ack
		answered  atomic.Int64
		restarted atomic.Bool
		afterKill atomic.Int64 // answers of the restarted process
		killOnce  sync.Once
		kill      = make(chan struct{})
		wg        sync.WaitGroup
	)
	call := func(p int, token, method, path, body string, out any) (int, error) {
		status, err := callAPI(procs[p].base, token, method, path, body, out)
		if err == nil && p == 0 && restarted.Load() {
			afterKill.Add(1)
		}
		return status, err
	}
	ack := func(booking domain.BookingID, typ string) {
		mu.Lock()
		acks = append(acks, audit.Ack{Show: show, Booking: booking, Type: typ})
		mu.Unlock()
		if answered.Add(1) >= killAfter {
			killOnce.Do(func() { close(kill) })
		}
	}
	tokens := make([]string, clients) // all registered before anyone books
	for c := range tokens {
		tokens[c] = newClient(t, procs[c%2].base, fmt.Sprintf("client%d@example.com", c)).token
	}
	for c, token := range tokens {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for r := 0; r < maxRounds && (r < rounds || afterKill.Load() < servedAfter); r++ {
				p := (c + r) % 2
				want := []string{seats[rng.IntN(len(seats))], seats[rng.IntN(len(seats))]}
				if want[0] == want[1] {
					want = want[:1]
				}
				var held struct {
					ID domain.BookingID `json:"id"`
				}
				body := fmt.Sprintf(`{"show_id":%d,"seat_numbers":%s}`, show, jsonList(want))
				if status, err := call(p, token, "POST", "/api/bookings", body, &held); err != nil || status != http.StatusCreated {
					continue // refused (409), or the process is down: no answer, no promise
				}
				ack(held.ID, domain.TypeSeatLocked)
				var next string
				switch n := rng.IntN(10); {
				case n < 3:
					next = "confirm"
				case n < 8:
					next = "cancel" // seats come free again
				default:
					continue // left pending
				}
				// Asked of the other process half the time.
				p = (p + rng.IntN(2)) % 2
				status, err := call(p, token, "POST", fmt.Sprintf("/api/bookings/%s/%s", held.ID, next), "", nil)
				if err != nil || status != http.StatusOK {
					continue
				}
				if next == "confirm" {
					ack(held.ID, domain.TypeBookingConfirmed)
				} else {
					ack(held.ID, domain.TypeBookingCancelled)
				}
			}
		})
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-kill:
	case <-clientsDone:
		t.Fatalf("the clients ended with %d answers, before the kill at %d", answered.Load(), killAfter)
	}
	procs[0].kill()
	procs[0].start()
	restarted.Store(true)
	<-clientsDone

	r, err := audit.Check(context.Background(), pool, acks)
	require.NoError(t, err)
	assert.Zero(t, r.Oversold, "no seat held by two live bookings")
	assert.Zero(t, r.Lost, "every 201 and 200 is on the stream")
	assert.GreaterOrEqual(t, afterKill.Load(), int64(servedAfter), "the restarted process served")
	t.Logf("%d acknowledgements; the restarted process answered %d requests; %d events", len(acks), afterKill.Load(), r.Events)

	report, err := projections.Verify(context.Background(), pool, nil)
	require.NoError(t, err)
	assert.Empty(t, report.Differences, "the projections equal a replay up to the projector's checkpoint")
}

// buildBookingd builds this package into a temporary folder.
func buildBookingd(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "bookingd")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// process is a bookingd process of a test, on an address of its own that
// it keeps across restarts.
type process struct {
	t      *testing.T
	bin    string
	env    []string
	base   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    redistest.SyncBuffer
}

func startProcess(t *testing.T, bin string, env []string) *process {
	t.Helper()
	addr := freeAddr(t)
	p := &process{t: t, bin: bin, env: append(append(os.Environ(), env...), "HTTP_ADDR="+addr), base: "http://" + addr}
	p.start()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(os.Interrupt)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("bookingd at %s logged:\n%s", p.base, p.log.String())
		}
	})
	return p
}

// start starts the process and waits until it is ready (bounded).
func (p *process) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = p.env
	// Killed with this test's process, should it be killed itself (a
	// timeout) before its cleanup runs.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	require.NoError(p.t, p.cmd.Start())
	exited := make(chan struct{})
	p.exited = exited
	go func() { _ = p.cmd.Wait(); close(exited) }()
	for range 600 {
		select {
		case <-exited:
			p.t.Fatalf("bookingd at %s exited: %s\n%s", p.base, p.cmd.ProcessState, p.log.String())
		default:
		}
		if resp, err := http.Get(p.base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("bookingd at %s was not ready within 30 s:\n%s", p.base, p.log.String())
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	require.NoError(p.t, p.cmd.Process.Kill())
	<-p.exited
}

func jsonList(s []string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
