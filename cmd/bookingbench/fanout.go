package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bareFanout is the on-sale's bound: a server that sends the same stream a
// live feed sends (a message of the same size at the same rate) to every
// connection the cheapest way Go can, one goroutine and one write a
// message per connection, with no hub, database, middleware or encoding.
// Booking while it feeds the same crowd shows what the machine allows any
// live seat map server, the clients' reading included.
type bareFanout struct {
	ln    net.Listener
	every time.Duration
	body  []byte // a message's data, after "data: "
	stop  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	frame []byte
	tick  chan struct{} // closed, and replaced, when frame changes
	conns map[net.Conn]struct{}
}

// startBareFanout serves on 127.0.0.1 a message of size bytes every every.
func startBareFanout(size int, every time.Duration) (*bareFanout, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &bareFanout{ln: ln, every: every, body: bytes.Repeat([]byte("x"), max(size-40, 1)), stop: make(chan struct{}),
		tick: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	b.wg.Go(b.accept)
	b.wg.Go(b.pace)
	return b, nil
}

func (b *bareFanout) addr() string { return b.ln.Addr().String() }

func (b *bareFanout) accept() {
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[conn] = struct{}{}
		b.mu.Unlock()
		b.wg.Go(func() { b.serve(conn) })
	}
}

// pace makes the next message every b.every and wakes every connection.
func (b *bareFanout) pace() {
	t := time.NewTicker(b.every)
	defer t.Stop()
	for v := 1; ; v++ {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		frame := make([]byte, 0, len(b.body)+40)
		frame = append(frame, "id: "...)
		frame = strconv.AppendInt(frame, int64(v), 10)
		frame = append(frame, "\nevent: seats\ndata: "...)
		frame = append(append(frame, b.body...), "\n\n"...)
		b.mu.Lock()
		b.frame = frame
		close(b.tick)
		b.tick = make(chan struct{})
		b.mu.Unlock()
	}
}

func (b *bareFanout) serve(conn net.Conn) {
	defer func() {
		b.mu.Lock()
		delete(b.conns, conn)
		b.mu.Unlock()
		conn.Close()
	}()
	br := bufio.NewReader(conn)
	for { // the request's head
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 2000\n\n")); err != nil {
		return
	}
	for {
		b.mu.Lock()
		tick := b.tick
		b.mu.Unlock()
		select {
		case <-b.stop:
			return
		case <-tick:
		}
		b.mu.Lock()
		frame := b.frame
		b.mu.Unlock()
		if _, err := conn.Write(frame); err != nil {
			return
		}
	}
}

// close stops serving and waits for every connection's goroutine.
func (b *bareFanout) close() {
	close(b.stop)
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// feedRate is the rate and mean size of the seats messages a watcher got
// between from and to.
func feedRate(msgs []liveMessage, from, to time.Time) (perSec float64, meanBytes int) {
	var n, total int
	for _, m := range msgs {
		if !m.snapshot && !m.at.Before(from) && !m.at.After(to) {
			n++
			total += m.bytes
		}
	}
	if n == 0 || !to.After(from) {
		return 0, 0
	}
	return float64(n) / to.Sub(from).Seconds(), total / n
}

// bareFanoutEnv, set to "<bytes>,<interval>", makes bookingbench a bare
// fan-out server of its own (a process of its own, as bookingd is, with
// its own open-file limit): it prints its address and serves until
// SIGTERM.
const bareFanoutEnv = "BOOKINGBENCH_BARE_FANOUT"

// serveBareFanout is the process bareFanoutEnv asks for.
func serveBareFanout(spec string) int {
	sizeText, everyText, _ := strings.Cut(spec, ",")
	size, err := strconv.Atoi(sizeText)
	every, err2 := time.ParseDuration(everyText)
	if err != nil || err2 != nil || size <= 0 || every <= 0 {
		fmt.Fprintf(os.Stderr, "%s=%q: want <bytes>,<interval>\n", bareFanoutEnv, spec)
		return exitUsage
	}
	if _, err := raiseFileLimit(0); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	b, err := startBareFanout(size, every)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitFail
	}
	fmt.Println(b.addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	b.close()
	return exitOK
}

// boundPhase books with the same clients while a bare fan-out server (a
// process of its own) feeds as many watchers as bookingd had, at the rate
// and size its feeds had.
func boundPhase(ctx context.Context, clients []*onsaleClient, q *seatQueue, watchers int, perSec float64, size int,
	d time.Duration, progress func(string, ...any)) (phaseStats, error) {
	every := time.Duration(float64(time.Second) / perSec)
	self, err := os.Executable()
	if err != nil {
		return phaseStats{}, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%s", bareFanoutEnv, size, every))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return phaseStats{}, err
	}
	if err := cmd.Start(); err != nil {
		return phaseStats{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return phaseStats{}, fmt.Errorf("bare fan-out server: %w", err)
	}
	w := openWatchers(ctx, strings.TrimSpace(addr), "/", watchers, 0, onsaleRampPerS)
	defer w.close()
	progress("bound: %d feeds of a bare fan-out server (%d-byte messages every %s) connected, %d failed",
		len(w.connectTimes()), size, every.Round(time.Millisecond), w.failed.Load())
	return bookPhase(ctx, clients, q, d), nil
}
