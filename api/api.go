// Package api is bookingd's HTTP side: a chi router serving the REST contract
// of DESIGN.md, health and metrics. Handlers translate HTTP to calls on the
// ledger (commands) and the projections (queries); problemFor is the one
// place where errors become HTTP status codes (RFC 9457 problem+json).
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bookingledger/ledger/projections"
)

// Pinger reports whether a dependency is reachable (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the API needs.
type Deps struct {
	Reader *projections.Reader
	DB     Pinger
	Logger *slog.Logger
}

type server struct {
	reader *projections.Reader
	db     Pinger
	logger *slog.Logger
}

// New returns the HTTP handler.
func New(d Deps) http.Handler {
	s := &server{reader: d.Reader, db: d.DB, logger: d.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Status: http.StatusNotFound, Title: "Not found", Detail: "no such route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed"})
	})

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.ready)
	r.Handle("/metrics", promhttp.Handler())
	r.Route("/api", func(r chi.Router) {
		r.Get("/shows", s.listShows)
		r.Get("/shows/{id}", s.getShow)
	})
	return r
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Title: "Not ready", Detail: "database unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) listShows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := projections.ShowFilter{Type: q.Get("type"), Cursor: q.Get("cursor")}
	var err error
	if f.Type != "" && f.Type != "movie" && f.Type != "bus" && f.Type != "doctor" {
		s.writeError(w, r, fmt.Errorf("%w: type must be movie, bus or doctor", errBadRequest))
		return
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			if *dst, err = time.Parse(time.RFC3339, v); err != nil {
				s.writeError(w, r, fmt.Errorf("%w: %s must be an RFC 3339 time", errBadRequest, name))
				return
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 100 {
			s.writeError(w, r, fmt.Errorf("%w: limit must be 1 to 100", errBadRequest))
			return
		}
	}
	page, err := s.reader.ListShows(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *server) getShow(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		s.writeError(w, r, fmt.Errorf("show %q: %w", chi.URLParam(r, "id"), projections.ErrNotFound))
		return
	}
	show, err := s.reader.Show(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The projected stream version identifies the seat map exactly.
	etag := fmt.Sprintf(`"show-%d-v%d"`, show.ID, show.Version)
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, show)
}

// etagMatches implements If-None-Match's weak comparison over a list of tags.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
