package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL server of a test's own, run from the installed
// server binaries in a temporary folder on a port of its own: a primary
// (NewCluster) or a streaming standby of one (Standby). It is stopped and
// removed when the test ends.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
}

// serverBin finds the newest installed PostgreSQL server binaries.
func serverBin() (string, bool) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, true
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), true
	}
	return "", false
}

// NewCluster starts a primary that accepts replication connections. The
// test is skipped, saying why, when the server binaries are not installed.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c := newCluster(t)
	c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	c.start()
	return c
}

func newCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, ok := serverBin()
	if !ok {
		t.Skip("PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are not installed: apt install postgresql")
	}
	dir, err := os.MkdirTemp("", "pgtest-cluster-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c := &Cluster{t: t, bin: bin, dir: dir, Port: freePort(t)}
	// The server refuses to run as root; it runs as the postgres user then.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root needs the postgres user to run a server: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	t.Cleanup(func() {
		_ = c.cmd("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").Run()
		_ = os.RemoveAll(dir)
	})
	return c
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// cmd runs a server binary, as the postgres user when this process is root.
func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := c.cmd(name, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("pgtest: %s: %v\n%s", name, err, out)
	}
}

func (c *Cluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off "+
		"-c wal_level=replica -c max_wal_senders=5 -c hot_standby=on -c wal_receiver_status_interval=1s", c.Port, c.dir)
	c.run("pg_ctl", "-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
}

// Stop stops the server (fast shutdown); Start starts it again.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
}

// Crash stops the server in immediate mode: its processes quit at once,
// without a checkpoint, as on a crash, and Start recovers from the WAL.
// (The test servers run with fsync off: the WAL written before a crash is
// in the operating system's cache, not necessarily on disk, so this is a
// crash of PostgreSQL, not of the machine.)
func (c *Cluster) Crash() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
}

// Start starts a stopped server on its port.
func (c *Cluster) Start() {
	c.t.Helper()
	c.start()
}

// URL is the connection string of database db on this server.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDB creates database name on this primary.
func (c *Cluster) CreateDB(name string) {
	c.t.Helper()
	c.Exec("postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Exec runs sql in database db.
func (c *Cluster) Exec(db, sql string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		c.t.Fatalf("pgtest: connect to %s: %v", c.URL(db), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		c.t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Standby clones this primary with pg_basebackup -R and starts the clone as
// a hot standby streaming from it, on a port of its own.
func (c *Cluster) Standby() *Cluster {
	c.t.Helper()
	s := newCluster(c.t)
	s.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres",
		"-D", s.data(), "-R", "-X", "stream", "--no-sync", "-c", "fast")
	s.start()
	return s
}

// PauseReplay stops this standby from applying WAL (pg_wal_replay_pause):
// its data stays as it is while the primary moves on. ResumeReplay undoes it.
func (c *Cluster) PauseReplay() { c.t.Helper(); c.Exec("postgres", "SELECT pg_wal_replay_pause()") }

// ResumeReplay lets the standby apply WAL again.
func (c *Cluster) ResumeReplay() { c.t.Helper(); c.Exec("postgres", "SELECT pg_wal_replay_resume()") }

// WaitReplayed waits until this standby has applied the primary's WAL up
// to where it is now (bounded).
func (c *Cluster) WaitReplayed(primary *Cluster) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := pgx.Connect(ctx, primary.URL("postgres"))
	if err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
	defer p.Close(ctx)
	var lsn string
	if err := p.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
	s, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
	defer s.Close(ctx)
	for {
		var done bool
		if err := s.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done); err != nil {
			c.t.Fatalf("pgtest: %v", err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("pgtest: the standby did not replay up to %s within a minute", lsn)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
