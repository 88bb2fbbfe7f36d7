package api

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/live"
)

// liveWriteTimeout bounds one write to a live feed's client (a snapshot of
// a big room included); a client that takes longer is cut off and
// reconnects. Idle feeds write a keep-alive every 15 s (live.Config).
const liveWriteTimeout = 25 * time.Second

// errLiveOff: this process runs no live hub.
var errLiveOff = errors.New("live updates are not available on this server")

// Frames every feed writes as they are.
var (
	liveRetry = []byte("retry: 2000\n\n")
	livePings = [][]byte{[]byte(": ping\n\n")}
)

// liveShow is GET /api/shows/{id}/live: the show's seat map as server-sent
// events. A client whose version the hub still covers gets the changes
// after it; any other gets a snapshot first. Each message has the stream
// version as its id, so a browser that reconnects sends it back as
// Last-Event-ID and resumes after it; a client that has just read the show
// passes its version as ?after= on the first connection.
func (s *server) liveShow(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := liveAfter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hub := s.shards[s.shardOf(domain.ShowID(id))].Live
	if hub == nil {
		s.writeError(w, r, errLiveOff)
		return
	}
	if r.Method == http.MethodHead { // the head a GET would get, without opening a feed
		liveHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return
	}
	release, err := s.liveGate.Admit(s.clientKey(r, true))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	feed, err := hub.Open(r.Context(), domain.ShowID(id), after)
	if err != nil {
		release()
		s.writeError(w, r, err)
		return
	}
	// The connection is taken over where it can be (HTTP/1.1): the feed
	// then writes each batch of messages with one system call, and the
	// request's goroutine, its stack grown by the middleware, and net/http's
	// buffers are freed while the feed lasts.
	conn, taken, err := takeOver(w)
	switch {
	case !taken:
		s.streamFeed(r.Context(), &responseOut{w: w, rc: http.NewResponseController(w)}, feed, release, id)
		return
	case err != nil: // the client went before the head was written
		feed.Close()
		release()
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	go func() {
		defer cancel()
		var b [1]byte
		for { // the client sends nothing more; a read ends when it goes
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	go s.streamFeed(ctx, &connOut{conn: conn}, feed, release, id)
}

// streamFeed writes the feed's messages until the client goes, the hub
// ends the feed, or a write fails; then it releases everything the feed
// holds.
func (s *server) streamFeed(ctx context.Context, out feedOut, feed *live.Feed, release func(), id int64) {
	defer release()
	defer feed.Close()
	defer out.close()
	for {
		frames, err := feed.Next(ctx)
		if err != nil {
			if !errors.Is(err, ctx.Err()) && !errors.Is(err, live.ErrDropped) {
				s.Logger.WarnContext(ctx, "live feed ended", "show_id", id, "err", err)
			}
			return
		}
		if frames == nil {
			frames = livePings
		}
		if out.write(frames) != nil {
			return
		}
	}
}

// feedOut is where a feed's messages go.
type feedOut interface {
	write(frames [][]byte) error
	close()
}

// takeOver hijacks the connection and writes the response's head and the
// stream's first line. taken is false where the connection cannot be taken
// over (HTTP/2): nothing was written then. An error with taken true means
// the head could not be written; the connection is closed.
func takeOver(w http.ResponseWriter) (conn net.Conn, taken bool, err error) {
	h := w.Header().Clone() // what the middleware set: request id, rate limits
	// The reader's buffered request bytes, if any, are not read: the client
	// sends nothing more.
	conn, _, err = http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, false, err
	}
	liveHeaders(h)
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close") // the body ends when the connection does
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	head.Write(liveRetry)
	_ = conn.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
	if _, err := conn.Write(head.Bytes()); err != nil {
		conn.Close()
		return nil, true, err
	}
	return conn, true, nil
}

func liveHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each message on at once
}

// connOut writes to a connection taken over: each batch of messages in
// one vectored write. The write deadline bounds how long a client may keep
// a write waiting; it is moved forward only when it draws near, not on
// every write.
type connOut struct {
	conn     net.Conn
	deadline time.Time
	bufs     net.Buffers // WriteTo consumes its slice: a copy of the frames'
}

func (o *connOut) write(frames [][]byte) error {
	if now := time.Now(); o.deadline.Sub(now) < liveWriteTimeout/2 {
		o.deadline = now.Add(liveWriteTimeout)
		if err := o.conn.SetWriteDeadline(o.deadline); err != nil {
			return err
		}
	}
	o.bufs = append(o.bufs[:0], frames...)
	_, err := o.bufs.WriteTo(o.conn)
	return err
}

func (o *connOut) close() { _ = o.conn.Close() }

// responseOut writes through the ResponseWriter, where the connection
// cannot be taken over.
type responseOut struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (o *responseOut) write(frames [][]byte) error {
	if !o.started {
		o.started = true
		liveHeaders(o.w.Header())
		o.w.WriteHeader(http.StatusOK)
		frames = append([][]byte{liveRetry}, frames...)
	}
	// The server's WriteTimeout is for ordinary responses; a feed lives as
	// long as its client, one write deadline at a time.
	if err := o.rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout)); err != nil {
		return err
	}
	for _, f := range frames {
		if _, err := o.w.Write(f); err != nil {
			return err
		}
	}
	return o.rc.Flush()
}

func (o *responseOut) close() {}

// registerLiveMetrics exports the open live feeds and the shows they
// watch. Feeds outlive their requests (the connection is taken over), so
// the request metrics do not count them.
func (s *server) registerLiveMetrics() {
	s.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bookingledger_live_feeds",
			Help: "Live seat-map feeds open in this process."},
			func() float64 { return float64(s.liveGate.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bookingledger_live_shows",
			Help: "Shows whose seat map this process keeps for live feeds."},
			func() float64 {
				n := 0
				for _, sh := range s.shards {
					if sh.Live != nil {
						shows, _ := sh.Live.Watched()
						n += shows
					}
				}
				return float64(n)
			}),
	)
}

// liveAfter is the version the client has: Last-Event-ID (a reconnect)
// wins over ?after= (the first connection); 0: none, a snapshot first.
func liveAfter(r *http.Request) (int, error) {
	v, name := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if v == "" {
		v, name = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest("%s must be a stream version (a whole number ≥ 0), not %q", name, v)
	}
	return n, nil
}
