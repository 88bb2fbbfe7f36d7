package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bookingledger/ledger/domain"
	"github.com/bookingledger/ledger/eventstore"
	"github.com/bookingledger/ledger/internal/logctx"
	"github.com/bookingledger/ledger/ledger"
	"github.com/bookingledger/ledger/live"
	"github.com/bookingledger/ledger/projections"
	"github.com/bookingledger/ledger/users"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`

	UnavailableSeats []string `json:"unavailable_seats,omitempty"`
	// Limit and Held answer a hold over the show's seats per user: the cap,
	// and the seats the user holds or bought already (0 is a value there).
	Limit     *int   `json:"limit,omitempty"`
	Held      *int   `json:"held,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// problemFor maps an error to its HTTP answer. It is the one place where
// errors become status codes.
func problemFor(err error) Problem {
	var (
		unavailable *domain.SeatsUnavailableError
		capped      *domain.SeatLimitError
		tooLarge    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &unavailable):
		return Problem{Status: http.StatusConflict, Title: "Seats unavailable", Detail: err.Error(), UnavailableSeats: unavailable.Seats}
	case errors.As(err, &capped):
		return Problem{Type: "/problems/seat-limit", Status: http.StatusConflict, Title: "Seat limit reached",
			Detail: fmt.Sprintf("you can hold at most %d seats for this show; you hold %d and asked for %d more",
				capped.Limit, capped.Held, capped.Requested),
			Limit: &capped.Limit, Held: &capped.Held}
	case errors.As(err, &tooLarge):
		return Problem{Status: http.StatusRequestEntityTooLarge, Title: "Request body too large",
			Detail: fmt.Sprintf("the body may be at most %d bytes", tooLarge.Limit)}
	case errors.Is(err, errUnauthenticated), errors.Is(err, users.ErrInvalidCredentials):
		return Problem{Status: http.StatusUnauthorized, Title: "Unauthorized", Detail: err.Error()}
	case errors.Is(err, projections.ErrNotFound), errors.Is(err, domain.ErrShowNotFound), errors.Is(err, domain.ErrBookingNotFound),
		errors.Is(err, live.ErrNoShow):
		return Problem{Status: http.StatusNotFound, Title: "Not found", Detail: err.Error()}
	case errors.Is(err, errBadRequest), errors.Is(err, projections.ErrBadCursor), errors.Is(err, eventstore.ErrPositionNotFound):
		return Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: err.Error()}
	case errors.Is(err, domain.ErrInvalidCommand), errors.Is(err, users.ErrInvalid), errors.Is(err, errUnprocessable):
		return Problem{Status: http.StatusUnprocessableEntity, Title: "Invalid request", Detail: err.Error()}
	case errors.Is(err, errForbidden):
		return Problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: err.Error()}
	case errors.Is(err, users.ErrEmailTaken):
		return Problem{Status: http.StatusConflict, Title: "Email already registered", Detail: err.Error()}
	case errors.Is(err, domain.ErrHoldExpired):
		return Problem{Status: http.StatusConflict, Title: "Hold expired", Detail: err.Error()}
	case errors.Is(err, domain.ErrBookingNotPending), errors.Is(err, domain.ErrShowStarted),
		errors.Is(err, domain.ErrShowExists), errors.Is(err, errConflict):
		return Problem{Status: http.StatusConflict, Title: "Conflict", Detail: err.Error()}
	case errors.Is(err, ledger.ErrTooManyConflicts):
		return Problem{Status: http.StatusServiceUnavailable, Title: "Busy", Detail: err.Error()}
	case errors.Is(err, errLiveOff), errors.Is(err, live.ErrTooManyFeeds), errors.Is(err, live.ErrDropped):
		return Problem{Status: http.StatusServiceUnavailable, Title: "Unavailable", Detail: err.Error()}
	case errors.Is(err, live.ErrTooManyClientFeeds):
		return Problem{Status: http.StatusTooManyRequests, Title: "Too many requests", Detail: err.Error()}
	case unreachable(err):
		// A database (on several shards: the one of this show) does not
		// answer; the rest of the service may.
		return Problem{Status: http.StatusServiceUnavailable, Title: "Database unavailable",
			Detail: "the database holding this data does not answer; try again shortly"}
	default:
		return Problem{Status: http.StatusInternalServerError, Title: "Internal server error"}
	}
}

// Request-level error categories.
var (
	errUnprocessable = errors.New("unprocessable request")
	errConflict      = errors.New("conflict")
)

// requestError is a refusal of the request itself: its detail is written to
// the client as it is, and it matches its category with errors.Is.
type requestError struct {
	kind   error
	detail string
}

func (e *requestError) Error() string { return e.detail }
func (e *requestError) Unwrap() error { return e.kind }

func refuse(kind error, format string, args ...any) error {
	return &requestError{kind: kind, detail: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error { return refuse(errBadRequest, format, args...) }
func unprocessable(format string, args ...any) error {
	return refuse(errUnprocessable, format, args...)
}
func conflict(format string, args ...any) error  { return refuse(errConflict, format, args...) }
func forbidden(format string, args ...any) error { return refuse(errForbidden, format, args...) }

// errBadRequest marks malformed query parameters and bodies.
var errBadRequest = errors.New("bad request")

// writeError answers with the problem for err, logging server errors once.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	if p.Status >= 500 {
		s.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeProblem(w, r, p)
}

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bookingledger"`)
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	p.Instance = r.URL.Path
	p.RequestID = logctx.RequestID(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a client gone mid-answer is not our error
}

// writeRawJSON writes a body that is already JSON, with its
// Content-Length: set here for a body larger than smallBody; a smaller one
// gets it from net/http, which adds it to a response written in one Write
// that fits its buffer, as long as nothing flushes before the handler
// returns ("under a few KB", ResponseWriter.Write). A middleware that
// flushes or compresses responses would have to set it for all.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	if len(body) > smallBody {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// smallBody is the largest body left to net/http to measure: half its
// 2 KiB buffer before chunking, a margin. One header less keeps a cached
// seat map's response at eight headers, which Go keeps in a small map; a
// ninth costs a larger map for the handler's headers and again for
// net/http's copy of them.
const smallBody = 1024

// Header values that every response of the busiest routes sends, shared
// by all of them, and set under their canonical keys: the cached show read
// spends most of its own time on its headers otherwise. Sharing is safe
// because nothing writes into a header's value slice: net/http copies the
// headers when the status is written, Header.Set replaces a slice, and
// Header.Add appends to one whose length is its capacity (as every slice
// literal here), which copies it. A shared value must never have spare
// capacity, and no code may assign to h[key][i].
var (
	headerJSON           = []string{"application/json"}
	headerNoCache        = []string{"no-cache"}
	headerGzip           = []string{"gzip"}
	headerAcceptEncoding = []string{"Accept-Encoding"}
)

// unreachable reports whether err is a failure to reach a database.
func unreachable(err error) bool {
	var connect *pgconn.ConnectError
	return errors.As(err, &connect)
}
