package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/live"
)

// livePing is how often an idle live feed sends a comment, so proxies and
// browsers keep the connection and a dead client is noticed.
const livePing = 15 * time.Second

// liveWriteTimeout bounds one write to a live feed's client (a snapshot of
// a big room included); a client that takes longer is cut off and
// reconnects.
const liveWriteTimeout = livePing + 10*time.Second

// errLiveOff: this process runs no live hub.
var errLiveOff = errors.New("live updates are not available on this server")

// Frames every feed writes as they are.
var (
	liveRetry = []byte("retry: 2000\n\n")
	livePingC = []byte(": ping\n\n")
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
	client := "ip:" + s.clientIP(r)
	if p, ok := principalFrom(r.Context()); ok {
		client = "user:" + p.UserID.String()
	}
	release, err := s.liveGate.Admit(client)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	ctx := r.Context()
	feed, err := hub.Open(ctx, domain.ShowID(id), after)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer feed.Close()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each message on at once
	w.WriteHeader(http.StatusOK)
	write := func(frames ...[]byte) error {
		// The server's WriteTimeout is for ordinary responses; a feed lives
		// as long as its client, one write deadline at a time.
		if err := rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout)); err != nil {
			return err
		}
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	if write(liveRetry) != nil {
		return
	}
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	for {
		frames, err := feed.Next(ctx, ping.C)
		if err != nil {
			if !errors.Is(err, ctx.Err()) && !errors.Is(err, live.ErrDropped) {
				s.Logger.WarnContext(ctx, "live feed ended", "show_id", id, "err", err)
			}
			return
		}
		if frames == nil {
			frames = [][]byte{livePingC}
		}
		if write(frames...) != nil {
			return
		}
	}
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
