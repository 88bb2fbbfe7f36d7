package api_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/ratelimit"
	"github.com/bookingledger/ledger/users"
)

// waitShow polls until the projector has projected show at version or later.
func (e *env) waitShow(show int64, version int) map[string]any {
	e.t.Helper()
	var got map[string]any
	eventually(e.t, fmt.Sprintf("show %d at v%d", show, version), func() bool {
		r := e.do("GET", fmt.Sprintf("/api/shows/%d", show), "", nil)
		if r.status != http.StatusOK {
			return false
		}
		got = r.json(e.t)
		return int(got["version"].(float64)) >= version
	})
	return got
}

func seatStatuses(show map[string]any) map[string]string {
	out := map[string]string{}
	for _, s := range show["seats"].([]any) {
		m := s.(map[string]any)
		out[m["seat_number"].(string)] = m["status"].(string)
	}
	return out
}

func TestCreateShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)

	tests := []struct {
		name      string
		body      map[string]any
		first     string
		last      string
		seatCount int
	}{
		{"movie from a count", map[string]any{"show_type": "movie", "total_seats": 25}, "A1", "C5", 25},
		{"bus from a count", map[string]any{"show_type": "bus", "total_seats": 40}, "1", "40", 40},
		{"doctor from a count", map[string]any{"show_type": "doctor", "total_seats": 3}, "08:00", "08:30", 3},
		{"explicit seats", map[string]any{"show_type": "movie", "seat_numbers": []string{"VIP1", "VIP2"}}, "VIP1", "VIP2", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["name"] = tc.name
			tc.body["start_time"] = start.Format(time.RFC3339)
			r := e.do("POST", "/api/shows", admin, tc.body)
			require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
			got := r.json(t)
			seats := got["seats"].([]any)
			require.Len(t, seats, tc.seatCount)
			assert.Equal(t, tc.first, seats[0].(map[string]any)["seat_number"])
			assert.Equal(t, tc.last, seats[len(seats)-1].(map[string]any)["seat_number"])
			assert.EqualValues(t, tc.seatCount, got["available_seats"])
			assert.Equal(t, fmt.Sprintf("/api/shows/%d", int64(got["id"].(float64))), r.header.Get("Location"))

			projected := e.waitShow(int64(got["id"].(float64)), 1)
			assert.Equal(t, tc.name, projected["name"])
			assert.Equal(t, start.Format(time.RFC3339), projected["start_time"])
		})
	}

	refusals := []struct {
		name string
		body map[string]any
		want int
	}{
		{"both seat forms", map[string]any{"name": "x", "show_type": "bus", "total_seats": 2, "seat_numbers": []string{"1"}}, 422},
		{"no seats", map[string]any{"name": "x", "show_type": "bus"}, 422},
		{"zero seats", map[string]any{"name": "x", "show_type": "bus", "total_seats": 0}, 422},
		{"too many seats", map[string]any{"name": "x", "show_type": "bus", "total_seats": 100_001}, 422},
		{"unknown type", map[string]any{"name": "x", "show_type": "opera", "total_seats": 2}, 422},
		{"no name", map[string]any{"show_type": "bus", "total_seats": 2}, 422},
		{"duplicate seats", map[string]any{"name": "x", "show_type": "bus", "seat_numbers": []string{"1", "1"}}, 422},
		{"in the past", map[string]any{"name": "x", "show_type": "bus", "total_seats": 2, "start_time": "2001-01-01T00:00:00Z"}, 422},
		{"no start", map[string]any{"name": "x", "show_type": "bus", "total_seats": 2, "start_time": nil}, 422},
		{"bad start", map[string]any{"name": "x", "show_type": "bus", "total_seats": 2, "start_time": "tomorrow"}, 400},
		{"unknown field", map[string]any{"name": "x", "show_type": "bus", "total_seats": 2, "price": 9}, 400},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.body["start_time"]; !ok {
				tc.body["start_time"] = start.Format(time.RFC3339)
			}
			requireProblem(t, e.do("POST", "/api/shows", admin, tc.body), tc.want)
		})
	}
}

func TestListAndReadShows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	base := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	var ids []int64
	for i, typ := range []string{"movie", "bus", "doctor", "movie", "bus"} {
		ids = append(ids, e.createShow(admin, map[string]any{
			"name": fmt.Sprintf("%s %d", typ, i), "show_type": typ, "total_seats": 3,
			"start_time": base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339),
		}))
	}
	for _, id := range ids {
		e.waitShow(id, 1)
	}

	var seen []int64
	cursor := ""
	for range 10 {
		r := e.do("GET", "/api/shows?limit=2&cursor="+url.QueryEscape(cursor), "", nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		page := r.json(t)
		for _, s := range page["shows"].([]any) {
			seen = append(seen, int64(s.(map[string]any)["id"].(float64)))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	assert.Equal(t, ids, seen, "pages in start order, nothing repeated or skipped")

	from := url.QueryEscape(base.Add(time.Hour).Format(time.RFC3339))
	to := url.QueryEscape(base.Add(4 * time.Hour).Format(time.RFC3339))
	r := e.do("GET", "/api/shows?type=bus&from="+from+"&to="+to, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	shows := r.json(t)["shows"].([]any)
	require.Len(t, shows, 1)
	assert.EqualValues(t, ids[1], shows[0].(map[string]any)["id"])

	// A page carries an ETag of its content: 304 while it is unchanged, a
	// new one once a show is added.
	listETag := r.header.Get("ETag")
	require.NotEmpty(t, listETag)
	query := "/api/shows?type=bus&from=" + from + "&to=" + to
	assert.Equal(t, http.StatusNotModified, e.do("GET", query, "", nil, "If-None-Match", listETag).status)
	assert.Equal(t, http.StatusNotModified, e.do("GET", query, "", nil, "If-None-Match", `"other"`, "If-None-Match", listETag).status,
		"a tag on a second If-None-Match line counts too")
	e.waitShow(e.createShow(admin, map[string]any{"name": "late bus", "show_type": "bus", "total_seats": 3,
		"start_time": base.Add(2 * time.Hour).Format(time.RFC3339)}), 1)
	eventually(t, "the list's ETag changes after a new show", func() bool {
		r = e.do("GET", query, "", nil, "If-None-Match", listETag)
		return r.status == http.StatusOK
	})
	assert.NotEqual(t, listETag, r.header.Get("ETag"))
	assert.Len(t, r.json(t)["shows"].([]any), 2)

	for _, q := range []string{"type=opera", "limit=0", "limit=101", "limit=x", "from=yesterday", "cursor=%21%21"} {
		requireProblem(t, e.do("GET", "/api/shows?"+q, "", nil), http.StatusBadRequest)
	}

	r = e.do("GET", fmt.Sprintf("/api/shows/%d", ids[0]), "", nil)
	require.Equal(t, http.StatusOK, r.status)
	etag := r.header.Get("ETag")
	assert.Equal(t, fmt.Sprintf(`"show-%d-v1"`, ids[0]), etag)
	assert.Equal(t, http.StatusNotModified, e.do("GET", fmt.Sprintf("/api/shows/%d", ids[0]), "", nil, "If-None-Match", etag).status)
	assert.Equal(t, http.StatusNotModified, e.do("GET", fmt.Sprintf("/api/shows/%d", ids[0]), "", nil, "If-None-Match", `"x", W/`+etag).status)
	assert.Equal(t, http.StatusOK, e.do("GET", fmt.Sprintf("/api/shows/%d", ids[0]), "", nil, "If-None-Match", `"show-1-v0"`).status)

	requireProblem(t, e.do("GET", "/api/shows/999999", "", nil), http.StatusNotFound)
	requireProblem(t, e.do("GET", "/api/shows/abc", "", nil), http.StatusNotFound)
	requireProblem(t, e.do("GET", "/api/nothing", "", nil), http.StatusNotFound)
	requireProblem(t, e.do("DELETE", "/api/shows", "", nil), http.StatusMethodNotAllowed)
}

// A booking changes the seat map: the cached show is invalidated by the
// projector's commit, the ETag moves on, and readers see the seat locked.
func TestCacheInvalidationAfterBooking(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	user, _ := e.login(users.RoleUser)
	show := e.createShow(admin, map[string]any{"seat_numbers": []string{"1", "2"}})
	before := e.waitShow(show, 1)
	assert.Equal(t, "available", seatStatuses(before)["1"])
	r := e.do("GET", fmt.Sprintf("/api/shows/%d", show), "", nil) // now cached
	etag := r.header.Get("ETag")

	r = e.do("POST", "/api/bookings", user, map[string]any{"show_id": show, "seat_numbers": []string{"1"}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)

	// Anonymous readers use the cache (TTL one minute): only invalidation
	// makes the new state appear within the test's deadline.
	after := e.waitShow(show, 2)
	assert.Equal(t, "locked", seatStatuses(after)["1"])
	assert.EqualValues(t, 1, after["available_seats"])
	assert.Equal(t, http.StatusOK, e.do("GET", fmt.Sprintf("/api/shows/%d", show), "", nil, "If-None-Match", etag).status)
}

// A seat map the cache answers is gzipped once, when it is cached, for
// clients that admit gzip; both encodings carry the same JSON, have their
// own ETags, and either revalidates. Reads that bypass the cache, and small
// seat maps, are plain JSON.
func TestShowGzip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"show_type": "movie", "total_seats": 100})
	e.waitShow(show, 1)
	path := fmt.Sprintf("/api/shows/%d", show)
	plainTag, gzipTag := fmt.Sprintf(`"show-%d-v1"`, show), fmt.Sprintf(`"show-%d-v1-gzip"`, show)

	plain := e.do("GET", path, "", nil, "Accept-Encoding", "identity")
	require.Equal(t, http.StatusOK, plain.status)
	assert.Empty(t, plain.header.Get("Content-Encoding"))
	assert.Equal(t, plainTag, plain.header.Get("ETag"))
	assert.Equal(t, "Accept-Encoding", plain.header.Get("Vary"))
	assert.Equal(t, strconv.Itoa(len(plain.wire)), plain.header.Get("Content-Length"))
	require.Len(t, plain.json(t)["seats"], 100)

	zipped := e.do("GET", path, "", nil, "Accept-Encoding", "gzip, deflate, br")
	require.Equal(t, http.StatusOK, zipped.status)
	assert.Equal(t, "gzip", zipped.header.Get("Content-Encoding"))
	assert.Equal(t, gzipTag, zipped.header.Get("ETag"))
	assert.Equal(t, "Accept-Encoding", zipped.header.Get("Vary"))
	assert.Equal(t, strconv.Itoa(len(zipped.wire)), zipped.header.Get("Content-Length"))
	assert.Equal(t, string(plain.body), string(zipped.body), "the same JSON in both encodings")
	assert.Less(t, len(zipped.wire)*4, len(plain.wire), "gzip shrinks a seat map several times")

	// If-None-Match is compared with the ETag of the encoding the request
	// selects; the 304 names it.
	for _, c := range []struct {
		accept, inm string
		status      int
	}{
		{"gzip", gzipTag, http.StatusNotModified}, {"identity", plainTag, http.StatusNotModified},
		{"", `"x", W/` + plainTag, http.StatusNotModified}, {"gzip", "*", http.StatusNotModified},
		{"gzip", plainTag, http.StatusOK}, {"identity", gzipTag, http.StatusOK}, {"", gzipTag, http.StatusOK},
		{"gzip", fmt.Sprintf(`"show-%d-v0-gzip"`, show), http.StatusOK},
	} {
		r := e.do("GET", path, "", nil, "Accept-Encoding", c.accept, "If-None-Match", c.inm)
		what := fmt.Sprintf("Accept-Encoding %q, If-None-Match %s", c.accept, c.inm)
		require.Equal(t, c.status, r.status, what)
		assert.Equal(t, "Accept-Encoding", r.header.Get("Vary"), what)
		if c.status == http.StatusNotModified {
			assert.Empty(t, r.wire, what)
			assert.Empty(t, r.header.Get("Content-Encoding"), what)
			want := plainTag
			if c.accept == "gzip" {
				want = gzipTag
			}
			assert.Equal(t, want, r.header.Get("ETag"), what)
		}
	}
	// Two If-None-Match lines are one list.
	r := e.do("GET", path, "", nil, "Accept-Encoding", "gzip", "If-None-Match", plainTag, "If-None-Match", gzipTag)
	assert.Equal(t, http.StatusNotModified, r.status)

	// Accept-Encoding as RFC 9110 reads it ("" sends none).
	for accept, gzipped := range map[string]bool{
		"gzip": true, "GZIP;q=0.5": true, "x-gzip": true, "*": true, "br, *;q=0.1": true, "gzip ; q=1.0, identity": true,
		"gzip;q=0.001": true, "gzip;q=1.": true, "gzip;Q=1.000": true,
		"": false, "identity": false, "br, deflate": false, "gzip;q=0": false, "gzip;q=0.000": false, "*;q=0": false,
		"*, gzip;q=0": false, "br, *;q=0": false, "gzip;q=x": false, "gzip;q=-1, *": false, "gzip;q=nan, *": false,
		"gzip;q=1.5": false, "gzip;q=1.001": false, "gzip;q=0.0001": false, "gzip;q=1e0": false,
	} {
		r := e.do("GET", path, "", nil, "Accept-Encoding", accept)
		require.Equal(t, http.StatusOK, r.status)
		if gzipped {
			assert.Equal(t, "gzip", r.header.Get("Content-Encoding"), "Accept-Encoding %q", accept)
		} else {
			assert.Empty(t, r.header.Get("Content-Encoding"), "Accept-Encoding %q", accept)
		}
		assert.Equal(t, string(plain.body), string(r.body), "Accept-Encoding %q", accept)
	}
	// Two Accept-Encoding lines are one list.
	r = e.do("GET", path, "", nil, "Accept-Encoding", "*", "Accept-Encoding", "gzip;q=0")
	assert.Empty(t, r.header.Get("Content-Encoding"))
	r = e.do("GET", path, "", nil, "Accept-Encoding", "br", "Accept-Encoding", "gzip")
	assert.Equal(t, "gzip", r.header.Get("Content-Encoding"))

	// HEAD announces the encoding and length GET would send.
	head := e.do("HEAD", path, "", nil, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, head.status)
	assert.Equal(t, "gzip", head.header.Get("Content-Encoding"))
	assert.Equal(t, strconv.Itoa(len(zipped.wire)), head.header.Get("Content-Length"))
	head = e.do("HEAD", path, "", nil, "Accept-Encoding", "identity")
	require.Equal(t, http.StatusOK, head.status)
	assert.Empty(t, head.header.Get("Content-Encoding"))
	assert.Equal(t, strconv.Itoa(len(plain.wire)), head.header.Get("Content-Length"))

	// A seat map under 1 KiB is not worth compressing.
	small := e.createShow(admin, map[string]any{"seat_numbers": []string{"1", "2", "3"}})
	e.waitShow(small, 1)
	r = e.do("GET", fmt.Sprintf("/api/shows/%d", small), "", nil, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.header.Get("Content-Encoding"))
	assert.Equal(t, fmt.Sprintf(`"show-%d-v1"`, small), r.header.Get("ETag"))

	// A caller who just booked reads its own write past the cache: plain
	// JSON, nothing compressed per request.
	user, _ := e.login(users.RoleUser)
	b := e.do("POST", "/api/bookings", user, map[string]any{"show_id": show, "seat_numbers": []string{"A1"}})
	require.Equal(t, http.StatusCreated, b.status, "%s", b.body)
	r = e.do("GET", path, user, nil, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.header.Get("Content-Encoding"))
	assert.Equal(t, "locked", seatStatuses(r.json(t))["A1"])
}

// Without a cache every read is loaded and sent as plain JSON.
func TestShowWithoutCacheIsPlain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRedis(nil))
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"show_type": "movie", "total_seats": 100})
	e.waitShow(show, 1)
	r := e.do("GET", fmt.Sprintf("/api/shows/%d", show), "", nil, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.header.Get("Content-Encoding"))
	assert.Equal(t, fmt.Sprintf(`"show-%d-v1"`, show), r.header.Get("ETag"))
	assert.Equal(t, "Accept-Encoding", r.header.Get("Vary"))
	require.Len(t, r.json(t)["seats"], 100)
}

// A cached value this version cannot read (another layout, a foreign
// writer) is answered from the database, not with an error.
func TestUnreadableCachedShowIsReadFromTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"seat_numbers": []string{"1", "2"}})
	path := fmt.Sprintf("/api/shows/%d", show)
	// The admin reads its own write past the cache, so nothing is cached.
	eventually(t, "the show is projected", func() bool { return e.do("GET", path, admin, nil).status == http.StatusOK })
	// The projector's commit moves the show's generation once (its NOTIFY);
	// the planted value carries the generation that is current after it.
	ctx := context.Background()
	tag := fmt.Sprintf("%s{show:%d}", e.prefix, show)
	var gen string
	eventually(t, "the show's generation moved", func() bool {
		var err error
		gen, err = e.rdb.Get(ctx, tag+":gen").Result()
		return err == nil
	})
	require.NoError(t, e.rdb.Set(ctx, tag+":v2", gen+"\nnot a show", time.Minute).Err())

	hits := e.metric("bookingledger_cache_hits_total")
	r := e.do("GET", path, "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Len(t, r.json(t)["seats"], 2)
	assert.Equal(t, fmt.Sprintf(`"show-%d-v1"`, show), r.header.Get("ETag"))
	assert.Equal(t, hits+1, e.metric("bookingledger_cache_hits_total"), "Redis answered the planted value")
}

// metric reads an unlabelled metric from GET /metrics (0 when absent).
func (e *env) metric(name string) float64 {
	e.t.Helper()
	for line := range strings.SplitSeq(string(e.do("GET", "/metrics", "", nil).body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(e.t, err)
			return f
		}
	}
	return 0
}

// BenchmarkCachedShowRead measures the API's own work for GET
// /api/shows/{id} answered from the show cache to a client that accepts
// gzip: every middleware, the route, the cache lookup and the response
// headers, without the network (`go test -run '^$' -bench CachedShowRead
// ./api`). bookingbench measures the same read over HTTP. As there, the
// rate limit is decided in process, with a budget that does not run out.
func BenchmarkCachedShowRead(b *testing.B) {
	e := newEnv(b, func(d *api.Deps, _ *ledger.Config) {
		d.Config.RateLimits.Reads = math.MaxInt32
		d.Limiter = ratelimit.New(nil, ratelimit.Config{})
	})
	admin, _ := e.login(users.RoleAdmin)
	show := e.createShow(admin, map[string]any{"show_type": "movie", "total_seats": 100})
	e.waitShow(show, 1)
	handler := e.srv.Config.Handler
	req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/shows/%d", show), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	var w benchWriter
	b.ReportAllocs()
	for b.Loop() {
		w = benchWriter{header: make(http.Header)}
		handler.ServeHTTP(&w, req)
	}
	if w.status != http.StatusOK || w.header.Get("Content-Encoding") != "gzip" || w.bytes == 0 {
		b.Fatalf("answered %d, Content-Encoding %q, %d bytes", w.status, w.header.Get("Content-Encoding"), w.bytes)
	}
}

// benchWriter is the least a ResponseWriter does: a fresh header map per
// request, as net/http's, the status, the body counted.
type benchWriter struct {
	header http.Header
	status int
	bytes  int
}

func (w *benchWriter) Header() http.Header { return w.header }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.bytes += len(p)
	return len(p), nil
}
