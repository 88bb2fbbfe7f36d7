// Package redistest gives tests real Redis: a namespaced client on the shared
// server, or a private redis-server they may stop to simulate an outage.
//
// New connects to the server named by REDIS_URL (default
// redis://127.0.0.1:6379/0), which other tests share, and hands out a unique
// key prefix; every key containing that prefix is deleted when the test ends,
// so tests never see each other's keys and leave nothing behind.
//
// StartServer runs a private, throw-away redis-server (no persistence) on a
// free port, for tests that need to take Redis down and bring it back.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the server New uses when REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL is the connection string of the shared test server.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// New returns a client to the shared server and a key prefix unique to t,
// "test:<name>:<random>:". When t ends, every key that contains the prefix is
// deleted (keys are matched anywhere, not only at the start, because some
// libraries put their own namespace in front, e.g. redis_rate's "rate:") and
// the client is closed. New fails t if Redis does not answer.
func New(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("redistest: REDIS_URL must be a redis:// URL: %v", err)
	}
	rdb := redis.NewClient(opts)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("redistest: Redis at %s is unreachable (is redis-server running? `make services` starts it): %v", opts.Addr, err)
	}

	prefix := "test:" + name(t) + ":" + randomHex() + ":"
	t.Cleanup(func() {
		defer rdb.Close()
		if err := DeleteKeys(context.Background(), rdb, prefix); err != nil {
			t.Errorf("redistest: delete keys %q*: %v", prefix, err)
		}
	})
	return rdb, prefix
}

// DeleteKeys deletes every key that contains substr, walking the keyspace
// with SCAN (never KEYS, which blocks the server).
func DeleteKeys(ctx context.Context, rdb redis.UniversalClient, substr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, "*"+globEscape(substr)+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rdb.Del(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}

// StartServer starts a private redis-server on a free 127.0.0.1 port, without
// persistence, in a temporary directory, and waits until it answers PING. It
// returns the server's address and stop, which kills the server (calling it
// again does nothing) so a test can simulate Redis going down; it is also
// called when t ends.
func StartServer(t testing.TB) (addr string, stop func()) {
	t.Helper()
	var lastErr error
	for range 3 { // a free port can be taken between our probe and the server's bind
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		stop, err := start(t, addr)
		if err == nil {
			return addr, stop
		}
		lastErr = err
	}
	t.Fatalf("redistest: %v", lastErr)
	return "", nil
}

// FailFastClient is a client of the server at addr that gives up at once
// when it is down (one dial, no retries, short timeouts), for tests that stop
// the server to see what the code does without Redis. It is closed when t
// ends.
func FailFastClient(t testing.TB, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, DialerRetries: 1, DisableIdentity: true,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// StartServerAt starts a private redis-server like StartServer, on a given
// address, typically the one of a server the test stopped earlier: clients
// configured with that address find Redis back.
func StartServerAt(t testing.TB, addr string) (stop func()) {
	t.Helper()
	stop, err := start(t, addr)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return stop
}

func start(t testing.TB, addr string, extra ...string) (func(), error) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{
		"--port", port, "--bind", host,
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", ""}, extra...)...)
	cmd.Dir = dir
	var out SyncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}

	if err := waitReady(addr, exited); err != nil {
		stop()
		return nil, fmt.Errorf("redis-server on %s: %w; output:\n%s", addr, err, out.String())
	}
	t.Cleanup(stop)
	return stop, nil
}

// waitReady polls addr with PING for at most 10s, or until the process exits.
func waitReady(addr string, exited <-chan struct{}) error {
	rdb := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, DisableIdentity: true,
	})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within 10s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

func name(t testing.TB) string {
	n := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(n) > 40 {
		n = n[:40]
	}
	return n
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SyncBuffer is an io.Writer safe for concurrent use, for capturing logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartCluster starts a private Redis Cluster of n masters (no replicas),
// each a redis-server on a free 127.0.0.1 port like StartServer, joins them
// with redis-cli --cluster create, and waits until the cluster reports ok.
// It returns a cluster client, closed when t ends, with the servers.
func StartCluster(t testing.TB, n int) *redis.ClusterClient {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest: redis-cli not found (apt-get install redis-tools): %v", err)
	}
	var addrs []string
	for range n {
		var lastErr error
		for range 3 {
			addr, err := freeAddr()
			if err != nil {
				t.Fatalf("redistest: find a free port: %v", err)
			}
			if _, lastErr = start(t, addr, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"); lastErr == nil {
				addrs = append(addrs, addr)
				break
			}
		}
		if lastErr != nil {
			t.Fatalf("redistest: %v", lastErr)
		}
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DisableIdentity: true})
	t.Cleanup(func() { _ = rdb.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := rdb.ClusterInfo(context.Background()).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			// Every master must know the slots before a test relies on them.
			if err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
				info, err := c.ClusterInfo(ctx).Result()
				if err == nil && !strings.Contains(info, "cluster_state:ok") {
					err = errors.New("not ok yet")
				}
				return err
			}); err == nil {
				return rdb
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: the cluster on %v is not ok after 30s: %v %s", addrs, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
