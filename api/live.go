package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/live"
)

// livePing is how often an idle live feed sends a comment, so proxies and
// browsers keep the connection and a dead client is noticed.
const livePing = 15 * time.Second

// errLiveOff: this process runs no live hub.
var errLiveOff = errors.New("live updates are not available on this server")

// liveShow is GET /api/shows/{id}/live: the show's seat changes as
// server-sent events. Each message has the stream version as its id, so a
// browser that reconnects sends it back as Last-Event-ID and resumes right
// after it; a client that has just read the show passes its version as
// ?after= on the first connection.
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
	ctx := r.Context()
	feed, err := live.Open(ctx, hub, domain.ShowID(id), after)
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
	write := func(msg string) error {
		// The server's WriteTimeout is for ordinary responses; a feed lives
		// as long as its client, one write deadline at a time.
		if err := rc.SetWriteDeadline(time.Now().Add(livePing + 10*time.Second)); err != nil {
			return err
		}
		if _, err := fmt.Fprint(w, msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write("retry: 2000\n\n") != nil {
		return
	}
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	for {
		c, ok, err := feed.Next(ctx, ping.C)
		if err != nil {
			if !errors.Is(err, ctx.Err()) && !errors.Is(err, live.ErrDropped) {
				s.Logger.WarnContext(ctx, "live feed ended", "show_id", id, "err", err)
			}
			return
		}
		msg := ": ping\n\n"
		if ok {
			data, err := json.Marshal(c)
			if err != nil {
				return
			}
			msg = fmt.Sprintf("id: %d\nevent: seats\ndata: %s\n\n", c.Version, data)
		}
		if write(msg) != nil {
			return
		}
	}
}

// liveAfter is the version the client has: Last-Event-ID (a reconnect)
// wins over ?after= (the first connection); 0 sends the whole stream.
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
