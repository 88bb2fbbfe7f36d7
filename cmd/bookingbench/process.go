package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// raiseFileLimit raises this process's open-file limit (which bookingd,
// started from it, inherits: Go passes on a limit the program set itself)
// to room for every feed on both ends and some, within the kernel's
// fs/nr_open, and returns the limit.
func raiseFileLimit(watchers uint64) (uint64, error) {
	want := 2*watchers + 65_536
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			want = min(want, n)
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("open-file limit: %w", err)
	}
	if lim.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			// Not root: as far as the hard limit goes.
			raised = syscall.Rlimit{Cur: min(want, lim.Max), Max: lim.Max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
				return 0, fmt.Errorf("open-file limit: %w", err)
			}
		}
		lim = raised
	}
	if need := watchers + 256; lim.Cur < need { // the clients' own connections and pools besides

		return lim.Cur, fmt.Errorf("the open-file limit is %d and cannot be raised to %d for %d watchers: that needs a hard limit (ulimit -Hn) that high, or CAP_SYS_RESOURCE", lim.Cur, need, watchers)
	}
	return lim.Cur, nil
}

// buildBookingd builds ./cmd/bookingd of the module bookingbench is run in
// (go run from the module, or go test) into dir.
func buildBookingd(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building bookingd needs the go command in PATH (or pass -bookingd): %w", err)
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("building bookingd: run bookingbench inside the module, or pass -bookingd (go env GOMOD: %q, %v)", gomod, err)
	}
	bin := filepath.Join(dir, "bookingd")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/bookingd")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bookingd: %w\n%s", err, out)
	}
	return bin, nil
}

// databaseURL is adminURL naming database name instead.
func databaseURL(adminURL, name string) (string, error) {
	if u, err := url.Parse(adminURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String(), nil
	}
	if strings.Contains(adminURL, "://") {
		return "", fmt.Errorf("-admin-url %q: not a postgres:// URL", redact(adminURL))
	}
	return adminURL + " dbname=" + name, nil // keyword/value form
}

// daemon is a bookingd process of the run.
type daemon struct {
	cmd    *exec.Cmd
	addr   string // host:port
	base   string // http://addr
	log    string // the file its stdout and stderr go to
	done   chan struct{}
	waited error // cmd.Wait's; read after done is closed
}

// startBookingd starts bin with env (and HTTP_ADDR on a free 127.0.0.1
// port), its output to logPath, and waits for /readyz.
func startBookingd(ctx context.Context, bin string, env []string, logPath string) (*daemon, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	d := &daemon{addr: addr, base: "http://" + addr, log: logPath, done: make(chan struct{})}
	d.cmd = exec.Command(bin)
	d.cmd.Env = append(slices.Clone(env), "HTTP_ADDR="+addr)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// Killed with this process, should it die before stopping it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bookingd: %w", err)
	}
	go func() { d.waited = d.cmd.Wait(); close(d.done) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(onsaleReadyBound)
	for time.Now().Before(deadline) {
		if d.exited() {
			return nil, d.withLog(fmt.Errorf("bookingd exited at start: %v", d.waited))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/readyz", nil)
		if err != nil {
			_ = d.stop()
			return nil, err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			_ = d.stop()
			return nil, err
		}
	}
	_ = d.stop()
	return nil, d.withLog(fmt.Errorf("bookingd was not ready within %s", onsaleReadyBound))
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for bookingd to finish (SIGKILL after
// onsaleStopBound); an exit other than a clean one is an error. Calling
// it again only reports.
func (d *daemon) stop() error {
	if !d.exited() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(onsaleStopBound):
			_ = d.cmd.Process.Kill()
			<-d.done
			return d.withLog(fmt.Errorf("bookingd did not stop within %s of SIGTERM", onsaleStopBound))
		}
	}
	if d.waited != nil {
		return d.withLog(fmt.Errorf("bookingd: %w", d.waited))
	}
	return nil
}

// withLog adds the end of bookingd's log to err.
func (d *daemon) withLog(err error) error {
	b, rerr := os.ReadFile(d.log)
	if rerr != nil {
		return err
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Errorf("%w\nbookingd's log (%s) ends:\n%s", err, d.log, b)
}

// rssSampler notes a process's VmRSS every onsaleRSSEvery.
type rssSampler struct {
	halt chan struct{}
	done chan struct{}
	mu   sync.Mutex
	at   []time.Time
	kb   []int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{halt: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(onsaleRSSEvery)
		defer tick.Stop()
		for {
			if kb, err := readRSS(pid); err == nil {
				s.mu.Lock()
				s.at, s.kb = append(s.at, time.Now()), append(s.kb, kb)
				s.mu.Unlock()
			}
			select {
			case <-s.halt:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// maxBetween is the most noted from from to to (0 when none was).
func (s *rssSampler) maxBetween(from, to time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m int64
	for i, at := range s.at {
		if !at.Before(from) && !at.After(to) {
			m = max(m, s.kb[i])
		}
	}
	return m
}

func (s *rssSampler) stop() {
	select {
	case <-s.halt:
	default:
		close(s.halt)
	}
	<-s.done
}

// readRSS is VmRSS of /proc/<pid>/status, in kB.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
