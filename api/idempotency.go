package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
)

// IdempotencyHeader is the request header of the IETF httpapi draft.
const IdempotencyHeader = "Idempotency-Key"

// idempotent makes unsafe requests with an Idempotency-Key safe to retry:
// the first answer to a (user, key) is stored in PostgreSQL, so it holds
// across bookingd instances, and replayed to retries with the same body for
// IdempotencyTTL. Another body with the same key is 422; a retry while the
// first request still runs is 409. Server errors are not stored: the client
// may retry them.
func (s *server) idempotent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyHeader)
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 255 || !printableASCII(key) {
			s.writeError(w, r, badRequest("%s must be 1 to 255 printable ASCII characters", IdempotencyHeader))
			return
		}
		p, _ := principalFrom(r.Context())
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.Config.MaxBodyBytes))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))

		ctx := r.Context()
		claimed, err := s.claimKey(ctx, p, key, sum[:])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !claimed {
			s.replay(w, r, p, key, sum[:])
			return
		}

		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		answered := false
		defer func() {
			if !answered { // a panic or a server error: free the key for a retry
				_, _ = s.Primary.Exec(context.WithoutCancel(ctx), `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2`, p.UserID, key)
			}
		}()
		next.ServeHTTP(rec, r)
		if rec.status >= 500 {
			return
		}
		// From here the request has had its effect: never free the key, or a
		// retry would do it again. If storing the answer fails, the key stays
		// "running" until its lease ends.
		answered = true
		headers, _ := json.Marshal(map[string]string{
			"Content-Type": rec.Header().Get("Content-Type"),
			"Location":     rec.Header().Get("Location"),
			"ETag":         rec.Header().Get("ETag"),
		})
		if _, err := s.Primary.Exec(context.WithoutCancel(ctx), `UPDATE idempotency_keys
			SET status_code = $3, headers = $4, body = $5 WHERE user_id = $1 AND key = $2`,
			p.UserID, key, rec.status, headers, rec.body.Bytes()); err != nil {
			s.Logger.ErrorContext(ctx, "storing idempotent response", "err", err)
		}
	})
}

// idempotencyLease is how long a key whose first request never finished
// (its process died) blocks retries: longer than any request can run.
const idempotencyLease = 2 * time.Minute

// claimKey inserts the key as running; false means it existed (and was
// younger than the TTL).
func (s *server) claimKey(ctx context.Context, p principal, key string, hash []byte) (bool, error) {
	var claimed bool
	err := pgx.BeginFunc(ctx, s.Primary, func(tx pgx.Tx) error {
		// An answer past its TTL is forgotten; so is a first request that
		// never finished within the lease (its process died mid-request).
		if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2
			AND (created_at < now() - make_interval(secs => $3)
			  OR (status_code IS NULL AND created_at < now() - make_interval(secs => $4)))`,
			p.UserID, key, s.Config.IdempotencyTTL.Seconds(), idempotencyLease.Seconds()); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, key) DO NOTHING`, p.UserID, key, hash)
		claimed = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("idempotency key: %w", err)
	}
	return claimed, nil
}

func (s *server) replay(w http.ResponseWriter, r *http.Request, p principal, key string, hash []byte) {
	var (
		stored  []byte
		status  *int
		headers map[string]string
		body    []byte
	)
	err := s.Primary.QueryRow(r.Context(), `SELECT request_hash, status_code, headers, body FROM idempotency_keys
		WHERE user_id = $1 AND key = $2`, p.UserID, key).Scan(&stored, &status, &headers, &body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The first request failed and freed the key just now.
		s.writeError(w, r, conflict("the first request with this %s just failed; retry", IdempotencyHeader))
	case err != nil:
		s.writeError(w, r, err)
	case status == nil:
		s.writeError(w, r, conflict("a request with this %s is still being processed", IdempotencyHeader))
	case !bytes.Equal(stored, hash):
		s.writeError(w, r, unprocessable("this %s was used for a different request", IdempotencyHeader))
	default:
		for k, v := range headers {
			if v != "" {
				w.Header().Set(k, v)
			}
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(*status)
		_, _ = w.Write(body)
	}
}

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// recorder passes a response through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
