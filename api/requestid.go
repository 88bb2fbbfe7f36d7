package api

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/bookingledger/ledger/internal/logctx"
)

// requestID gives every request its id: the client's X-Request-Id when it
// is at most 128 printable ASCII characters (so only reasonable ids reach
// logs and events), a new one otherwise. The id is echoed in X-Request-Id
// and starts the request's log context (logctx), where the handlers find
// it; the user id joins it once authentication knows the caller.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 || !printableASCII(id) {
			id = newRequestID()
		}
		w.Header()["X-Request-Id"] = []string{id}
		next.ServeHTTP(w, r.WithContext(logctx.Start(r.Context(), id)))
	})
}

// requestIDs numbers the ids this process makes after a random prefix, so
// ids stay unique across processes and restarts.
var requestIDs = struct {
	prefix string
	seq    atomic.Uint64
}{prefix: randomPrefix()}

func randomPrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]) + "-"
}

func newRequestID() string {
	var buf [40]byte
	id := append(buf[:0], requestIDs.prefix...)
	return string(strconv.AppendUint(id, requestIDs.seq.Add(1), 10))
}
