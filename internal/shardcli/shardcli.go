// Package shardcli holds what the command-line tools (bookingctl, analytics)
// share when they report on a ledger of several shards: one-line errors of
// failed connections, shard names in messages, and the connect timeout for
// URLs that set none.
package shardcli

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectTimeout bounds each connection attempt to a database whose URL
// sets no connect_timeout: a shard whose host is down then costs seconds,
// not the system's TCP timeout.
const ConnectTimeout = 10 * time.Second

// ShortError is err on one line, without what the caller knows already: of
// a failed connection, the attempts (address and reason), each once.
func ShortError(err error) string {
	msg := err.Error()
	if ce := (*pgconn.ConnectError)(nil); errors.As(err, &ce) && ce.Unwrap() != nil {
		msg = ce.Unwrap().Error()
	}
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// Label is what a line about shard k of n starts with: nothing when there
// is one shard, so a single database prints as it always did.
func Label(k, n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf("shard %d: ", k)
}

// OnShard names shard k of n in err (when there are several).
func OnShard(k, n int, err error) error {
	if err == nil || n == 1 {
		return err
	}
	return fmt.Errorf("shard %d: %w", k, err)
}

// Names names shards ks in order: "shard 2", "shards 1 and 3", "shards 0,
// 1 and 3".
func Names(ks []int) string {
	ks = slices.Sorted(slices.Values(ks))
	if len(ks) == 1 {
		return fmt.Sprintf("shard %d", ks[0])
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = strconv.Itoa(k)
	}
	return fmt.Sprintf("shards %s and %s", strings.Join(names[:len(ks)-1], ", "), names[len(ks)-1])
}
