package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/logctx"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/shards"
)

// showFilter parses the show list's query parameters.
func showFilter(r *http.Request) (projections.ShowFilter, error) {
	q := r.URL.Query()
	f := projections.ShowFilter{Type: q.Get("type"), Cursor: q.Get("cursor")}
	if f.Type != "" && !domain.ShowType(f.Type).Valid() {
		return f, badRequest("type must be movie, bus or doctor")
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest("%s must be an RFC 3339 time like 2026-12-01T18:00:00Z", p.name)
			}
			*p.dst = t
		}
	}
	limit, err := limitParam(r, 0, 100)
	if err != nil {
		return f, err
	}
	f.Limit = int(limit)
	if f.Cursor != "" {
		if _, _, err := projections.DecodeShowCursor(f.Cursor); err != nil {
			return f, badRequest("cursor: %v", err)
		}
	}
	return f, nil
}

func (s *server) listShows(w http.ResponseWriter, r *http.Request) {
	f, err := showFilter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key := strings.Join([]string{f.Type, f.From.UTC().Format(time.RFC3339), f.To.UTC().Format(time.RFC3339),
		strconv.Itoa(f.Limit), f.Cursor}, "|")
	body, err := s.Cache.List(r.Context(), key, func() ([]byte, error) {
		page, err := s.showPage(r.Context(), f)
		if err != nil {
			return nil, err
		}
		return json.Marshal(page)
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The page's bytes identify it: a strong validator from their hash.
	h := fnv.New64a()
	_, _ = h.Write(body)
	etag := fmt.Sprintf(`"shows-%016x"`, h.Sum64())
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(headerList(r, "If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeRawJSON(w, http.StatusOK, body)
}

// showPage is a page of the show list: on several shards, every shard's
// page after the same cursor, merged; the next cursor is the last show's
// key, which every shard understands.
func (s *server) showPage(ctx context.Context, f projections.ShowFilter) (projections.ShowPage, error) {
	if len(s.shards) == 1 {
		return projections.NewReader(s.cacheSource(0)).ListShows(ctx, f)
	}
	pages := make([]projections.ShowPage, len(s.shards))
	err := s.eachShard(ctx, func(ctx context.Context, k int) (err error) {
		pages[k], err = projections.NewReader(s.cacheSource(k)).ListShows(ctx, f)
		return err
	})
	if err != nil {
		return projections.ShowPage{}, err
	}
	lists := make([][]projections.ShowSummary, len(pages))
	more := false
	for k, p := range pages {
		lists[k] = p.Shows
		more = more || p.NextCursor != ""
	}
	limit := f.Limit
	if limit <= 0 {
		limit = projections.DefaultShowLimit
	}
	page := projections.ShowPage{Shows: shards.Merge(lists, projections.CompareShows, limit)}
	if page.Shows == nil {
		page.Shows = []projections.ShowSummary{}
	}
	if n := len(page.Shows); n > 0 && (more || n < sumLen(lists)) {
		last := page.Shows[n-1]
		page.NextCursor = projections.EncodeShowCursor(last.StartTime, last.ID)
	}
	return page, nil
}

// cacheSource is where a show read of shard k that the cache answers is
// loaded from: the shard's primary when the cache keeps what it loads (a
// lagging replica's rows would outlive the invalidation that announced
// newer ones; misses are few), a replica when every read is a load.
func (s *server) cacheSource(k int) projections.Querier {
	if s.Cache.Enabled() {
		return s.shards[k].Primary
	}
	return s.shards[k].Reads.Any()
}

// showEntry is a show's representation: its projected version (the ETag),
// its JSON and, when it is kept in the cache and large enough to gain,
// the JSON gzipped once when it was loaded.
type showEntry struct {
	version int
	body    []byte
	gzipped []byte // nil: only the JSON is sent
}

// gzipMinSize is the smallest JSON worth gzipping (about 25 seats): below
// it the saving is a few hundred bytes at most.
const gzipMinSize = 1024

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression) // errors only for an invalid level
	return w
}}

// gzipBytes compresses b.
func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b)/8 + 64)
	w := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(w)
	w.Reset(&out)
	_, _ = w.Write(b) // a bytes.Buffer does not fail
	_ = w.Close()
	return out.Bytes()
}

// marshalShowEntry is a cached show's value: "<version> <length of the
// JSON>\n", the JSON, then its gzip (if any).
func marshalShowEntry(e showEntry) []byte {
	head := strconv.Itoa(e.version) + " " + strconv.Itoa(len(e.body)) + "\n"
	out := make([]byte, 0, len(head)+len(e.body)+len(e.gzipped))
	return append(append(append(out, head...), e.body...), e.gzipped...)
}

func parseShowEntry(id int64, raw []byte) (showEntry, error) {
	head, rest, _ := bytes.Cut(raw, []byte("\n"))
	v, n, _ := bytes.Cut(head, []byte(" "))
	version, err := strconv.Atoi(string(v))
	if err != nil {
		return showEntry{}, fmt.Errorf("cached show %d: version: %w", id, err)
	}
	size, err := strconv.Atoi(string(n))
	if err != nil || size < 0 || size > len(rest) {
		return showEntry{}, fmt.Errorf("cached show %d: a JSON of %q bytes in %d", id, n, len(rest))
	}
	e := showEntry{version: version, body: rest[:size:size]}
	if size < len(rest) {
		e.gzipped = rest[size:]
	}
	return e, nil
}

func (s *server) loadShow(ctx context.Context, id int64) (showEntry, error) {
	// A caller who just wrote reads a projection that has its write, so the
	// seat map never shows its own seats as free; others may use the cache.
	k := s.shardOf(domain.ShowID(id))
	if p, ok := principalFrom(ctx); ok && s.Tokens.Get(ctx, tokenKey(p.UserID.String(), k)) != (eventstore.Checkpoint{}) {
		db, _, err := s.readDB(ctx, p, k)
		if err != nil {
			return showEntry{}, err
		}
		return s.readShow(ctx, db, id)
	}
	raw, err := s.Cache.Show(ctx, id, func() ([]byte, error) {
		e, err := s.readShow(ctx, s.cacheSource(k), id)
		if err != nil {
			return nil, err
		}
		// Compressed once for every read the cache answers; a read that
		// bypasses the cache is sent as it is (nothing is compressed per
		// request).
		if s.Cache.Keeps() && len(e.body) >= gzipMinSize {
			e.gzipped = gzipBytes(e.body)
		}
		return marshalShowEntry(e), nil
	})
	if err != nil {
		return showEntry{}, err
	}
	e, err := parseShowEntry(id, raw)
	if err != nil {
		// Not what this version stores: answer from the database, and say so.
		s.Logger.ErrorContext(ctx, "unreadable cached show, reading the database", "show_id", id, "err", err)
		return s.readShow(ctx, s.cacheSource(k), id)
	}
	return e, nil
}

// readShow loads a show's representation from db, past the cache.
func (s *server) readShow(ctx context.Context, db projections.Querier, id int64) (showEntry, error) {
	show, err := projections.NewReader(db).Show(ctx, id)
	if err != nil {
		return showEntry{}, err
	}
	body, err := json.Marshal(show)
	return showEntry{version: show.Version, body: body}, err
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("show %q: %w", chi.URLParam(r, "id"), projections.ErrNotFound)
	}
	return id, nil
}

func (s *server) getShow(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	show, err := s.loadShow(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	gzipped := show.gzipped != nil && acceptsGzip(headerList(r, "Accept-Encoding"))
	// The projected stream version identifies the seat map exactly; each
	// encoding of it has its own strong ETag (RFC 9110, 8.8.3), and
	// If-None-Match is compared with the one this request selects.
	etag := showETag(id, show.version, gzipped)
	h := w.Header()
	h["Etag"] = []string{etag}
	h["Cache-Control"] = headerNoCache
	if len(h["Vary"]) == 0 {
		h["Vary"] = headerAcceptEncoding
	} else {
		h.Add("Vary", "Accept-Encoding")
	}
	if etagMatches(headerList(r, "If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if gzipped {
		h["Content-Encoding"] = headerGzip
		writeRawJSON(w, http.StatusOK, show.gzipped)
		return
	}
	writeRawJSON(w, http.StatusOK, show.body)
}

// showETag names a show's seat map at a stream version, in one encoding.
func showETag(id int64, version int, gzipped bool) string {
	tag := `"show-` + strconv.FormatInt(id, 10) + "-v" + strconv.Itoa(version)
	if gzipped {
		return tag + `-gzip"`
	}
	return tag + `"`
}

// etagMatches implements If-None-Match's weak comparison over a list of tags.
func etagMatches(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// headerList is a list-valued header's lines joined into one list (RFC
// 9110, 5.3). name is in canonical form, as net/http stores a request's
// header names.
func headerList(r *http.Request, name string) string {
	switch v := r.Header[name]; len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	default:
		return strings.Join(v, ",")
	}
}

// acceptsGzip reports whether an Accept-Encoding list admits gzip (RFC
// 9110, 12.5.3): named, or matched by "*" when not named, with a q-value
// above 0. A malformed q-value refuses.
func acceptsGzip(list string) bool {
	named, star := -1, -1 // q-values in thousandths; -1: not listed
	for part := range strings.SplitSeq(list, ",") {
		coding, params, _ := strings.Cut(part, ";")
		q := 1000
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				q = qvalue(strings.TrimSpace(v))
			}
		}
		switch coding = strings.TrimSpace(coding); {
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			named = max(named, q)
		case coding == "*":
			star = max(star, q)
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}

// qvalue parses a q-value (RFC 9110, 12.4.2: "0" or "1" with up to three
// decimals, at most 1) in thousandths; 0 when malformed.
func qvalue(v string) int {
	whole, frac, _ := strings.Cut(v, ".")
	if len(frac) > 3 || (whole != "0" && whole != "1") {
		return 0
	}
	q := 0
	for i := range 3 {
		q *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0
			}
			q += int(frac[i] - '0')
		}
	}
	if whole == "1" {
		if q != 0 {
			return 0 // above 1
		}
		return 1000
	}
	return q
}

type createShowRequest struct {
	Name        string          `json:"name"`
	ShowType    domain.ShowType `json:"show_type"`
	StartTime   time.Time       `json:"start_time"`
	TotalSeats  *int            `json:"total_seats"`
	SeatNumbers []string        `json:"seat_numbers"`
	// MaxSeatsPerUser caps the seats one user may hold or have bought on
	// the show (0: no cap); absent, the server's default (Config).
	MaxSeatsPerUser *int `json:"max_seats_per_user"`
}

func (s *server) createShow(w http.ResponseWriter, r *http.Request) {
	var in createShowRequest
	if err := s.decode(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	seats := in.SeatNumbers
	switch {
	case in.TotalSeats != nil && in.SeatNumbers != nil:
		s.writeError(w, r, unprocessable("give total_seats or seat_numbers, not both"))
		return
	case in.TotalSeats == nil && in.SeatNumbers == nil:
		s.writeError(w, r, unprocessable("total_seats or seat_numbers is required"))
		return
	case in.TotalSeats != nil:
		generated, err := domain.GenerateSeatLabels(in.ShowType, *in.TotalSeats)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		seats = generated
	}
	if !in.StartTime.IsZero() && !in.StartTime.After(s.Now()) {
		s.writeError(w, r, unprocessable("start_time must be in the future"))
		return
	}
	limit := s.Config.MaxSeatsPerUser
	if in.MaxSeatsPerUser != nil {
		limit = *in.MaxSeatsPerUser // the domain refuses one out of range (422)
	}
	p, _ := principalFrom(r.Context())
	res, err := s.ledger.ScheduleShow(r.Context(), ledger.ScheduleInput{
		Name: in.Name, ShowType: in.ShowType, StartTime: in.StartTime, SeatNumbers: seats, MaxSeatsPerUser: limit,
	}, s.meta(r, p))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.remember(r.Context(), p, s.shardOf(res.ShowID), res)
	s.Logger.InfoContext(r.Context(), "show scheduled", "show_id", res.ShowID, "seats", len(seats))
	detail := projections.ShowDetail{ShowSummary: projections.ShowSummary{
		ID: int64(res.ShowID), Name: in.Name, ShowType: string(in.ShowType), StartTime: in.StartTime.UTC(),
		TotalSeats: len(seats), AvailableSeats: len(seats), MaxSeatsPerUser: limit, Version: res.Version,
	}, Seats: make([]projections.Seat, len(seats))}
	for i, n := range seats {
		detail.Seats[i] = projections.Seat{SeatNumber: n, Status: string(domain.SeatStatusAvailable)}
	}
	w.Header().Set("Location", fmt.Sprintf("/api/shows/%d", res.ShowID))
	w.Header().Set("ETag", showETag(int64(res.ShowID), res.Version, false))
	writeJSON(w, http.StatusCreated, detail)
}

func (s *server) meta(r *http.Request, p principal) ledger.Metadata {
	return ledger.Metadata{UserID: p.UserID.String(), RequestID: logctx.RequestID(r.Context())}
}

// limitParam parses the optional limit query parameter: 1 to maxV, def
// when absent.
func limitParam(r *http.Request, def, maxV int64) (int64, error) {
	if r.URL.Query().Get("limit") == "" {
		return def, nil
	}
	n, err := intParam(r, "limit", def, maxV)
	if err != nil || n == 0 {
		return 0, badRequest("limit must be 1 to %d", maxV)
	}
	return n, nil
}

// intParam parses an optional non-negative integer query parameter.
func intParam(r *http.Request, name string, def, maxV int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxV {
		return 0, badRequest("%s must be an integer from 0 to %d", name, maxV)
	}
	return n, nil
}

func (s *server) showEvents(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := intParam(r, "after_version", 0, 1<<31-1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := limitParam(r, 1000, 10_000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.store(s.shardOf(domain.ShowID(id))).LoadRange(r.Context(), domain.ShowID(id).StreamID(), int(after), int(limit))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(events) == 0 && after == 0 {
		s.writeError(w, r, fmt.Errorf("show %d: %w", id, domain.ErrShowNotFound))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"show_id": id, "events": nonNil(events)})
}

// Long-poll bounds of GET /api/events: the longest wait stays below the
// server's write timeout.
const (
	maxLongPoll      = 25 * time.Second
	longPollInterval = 100 * time.Millisecond
)

// globalEvents pages the stream of every shard. Each shard's stream is
// ordered and gap-free on its own; the cursor (after, next_cursor) is one
// position per shard ("12,0,7,3"; one shard's is its plain position), and a
// page takes a prefix of every shard's stream after it, interleaved by
// recording time, so a slow shard never makes a reader skip or repeat
// another's events.
func (s *server) globalEvents(w http.ResponseWriter, r *http.Request) {
	cursor, err := shards.ParseCursor(r.URL.Query().Get("after"), len(s.shards))
	if err != nil {
		s.writeError(w, r, badRequest("after: %v", err))
		return
	}
	limit, err := limitParam(r, 100, 1000)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	wait := time.Duration(0)
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > maxLongPoll {
			s.writeError(w, r, badRequest("wait must be a duration from 0s to %s, like 20s", maxLongPoll))
			return
		}
	}
	cps := make([]eventstore.Checkpoint, len(s.shards))
	err = s.eachShard(r.Context(), func(ctx context.Context, k int) (err error) {
		cps[k], err = s.store(k).CheckpointAt(ctx, cursor[k])
		if err != nil && len(s.shards) > 1 {
			err = fmt.Errorf("shard %d: %w", k, err)
		}
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Long poll: with wait, an empty answer is held back until events come
	// or the wait ends, so consumers need not busy-poll.
	deadline := time.Now().Add(wait)
	pages := make([][]eventstore.Event, len(s.shards))
	var events []shardEvent
	for {
		err = s.eachShard(r.Context(), func(ctx context.Context, k int) (err error) {
			pages[k], err = s.store(k).ReadAll(ctx, cps[k], int(limit))
			return err
		})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		events, cursor = interleave(pages, cursor, int(limit))
		if len(events) > 0 || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(longPollInterval):
		}
	}
	// Positions repeat across shards: on several, each event names the
	// shard it was read from.
	page := map[string]any{"events": events, "next_cursor": cursor.String()}
	if len(s.shards) == 1 {
		plain := make([]eventstore.Event, len(events))
		for i, e := range events {
			plain[i] = e.Event
		}
		page["events"], page["next_after"] = plain, cursor[0]
	}
	writeJSON(w, http.StatusOK, page)
}

// shardEvent is an event of GET /api/events on several shards.
type shardEvent struct {
	eventstore.Event
	Shard int `json:"shard"`
}

// interleave takes up to limit events from the shards' pages, each a run
// of its shard's stream in order, always the earliest recorded of the
// pages' next events, so each page contributes a prefix; it returns them,
// each with the shard it came from, and the cursor moved past them.
func interleave(pages [][]eventstore.Event, cursor shards.Cursor, limit int) ([]shardEvent, shards.Cursor) {
	out := []shardEvent{}
	next := make([]int, len(pages))
	for len(out) < limit {
		k := -1
		for j, p := range pages {
			if next[j] < len(p) && (k < 0 || p[next[j]].RecordedAt.Before(pages[k][next[k]].RecordedAt)) {
				k = j
			}
		}
		if k < 0 {
			break
		}
		e := pages[k][next[k]]
		next[k]++
		out = append(out, shardEvent{Event: e, Shard: k})
		cursor = cursor.Advance(k, e.GlobalPosition)
	}
	return out, cursor
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(events []eventstore.Event) []eventstore.Event {
	if events == nil {
		return []eventstore.Event{}
	}
	return events
}
