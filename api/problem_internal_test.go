package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/ledger"
)

// A command that kept losing the race for its show (the ledger's retries
// spent) is 503 with Retry-After, as problem+json: the client may simply
// ask again.
func TestTooManyConflictsIsBusy(t *testing.T) {
	t.Parallel()
	s := &server{Deps: Deps{Logger: slog.New(slog.DiscardHandler)}}
	w := httptest.NewRecorder()
	s.writeError(w, httptest.NewRequest(http.MethodPost, "/api/bookings", nil),
		fmt.Errorf("show-7: %w", ledger.ErrTooManyConflicts))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	var p Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	assert.Equal(t, "Busy", p.Title)
	assert.Contains(t, p.Detail, "try again")
}
