package readpath

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookingledger/ledger/eventstore"
)

// Tokens remembers, per user, the checkpoint of the user's last write. With
// Redis they hold across bookingd instances; without it (or while Redis is
// down) within this process.
type Tokens struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration

	mu    sync.Mutex
	local map[string]localToken
}

type localToken struct {
	cp      eventstore.Checkpoint
	expires time.Time
}

// NewTokens returns a token store; rdb may be nil. Tokens live for ttl:
// longer than any projector lag worth waiting for.
func NewTokens(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Tokens {
	return &Tokens{rdb: rdb, prefix: prefix, ttl: ttl, local: map[string]localToken{}}
}

func (t *Tokens) key(user string) string { return t.prefix + "ryw:" + user }

// Set records a write of user at cp, keeping the later of cp and what is
// already recorded.
func (t *Tokens) Set(ctx context.Context, user string, cp eventstore.Checkpoint) {
	t.mu.Lock()
	now := time.Now()
	if old, ok := t.local[user]; !ok || old.cp.Less(cp) || now.After(old.expires) {
		t.local[user] = localToken{cp: cp, expires: now.Add(t.ttl)}
	}
	if len(t.local) > 100_000 {
		for u, tok := range t.local {
			if now.After(tok.expires) {
				delete(t.local, u)
			}
		}
	}
	t.mu.Unlock()
	if t.rdb != nil {
		// A Redis failure leaves the local token: this instance's reads
		// still see the write.
		_ = keepLater.Run(ctx, t.rdb, []string{t.key(user)}, encode(cp), t.ttl.Milliseconds()).Err()
	}
}

// keepLater stores the token ARGV[1] ("xid.position") unless the one stored
// is later, and renews the TTL (ARGV[2] ms) either way.
var keepLater = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local cx, cp = string.match(cur, '^(%d+)%.(%d+)$')
  local nx, np = string.match(ARGV[1], '^(%d+)%.(%d+)$')
  if cx and (tonumber(cx) > tonumber(nx) or (tonumber(cx) == tonumber(nx) and tonumber(cp) >= tonumber(np))) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// Get returns the checkpoint a read for user must see (zero: none).
func (t *Tokens) Get(ctx context.Context, user string) eventstore.Checkpoint {
	var best eventstore.Checkpoint
	if t.rdb != nil {
		// A Redis error leaves only the local token: this instance's writes.
		if v, err := t.rdb.Get(ctx, t.key(user)).Result(); err == nil {
			best, _ = decode(v)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tok, ok := t.local[user]; ok && time.Now().Before(tok.expires) && best.Less(tok.cp) {
		best = tok.cp
	}
	return best
}

func encode(cp eventstore.Checkpoint) string {
	return strconv.FormatUint(cp.TransactionID, 10) + "." + strconv.FormatInt(cp.Position, 10)
}

func decode(s string) (eventstore.Checkpoint, error) {
	tx, pos, ok := strings.Cut(s, ".")
	if !ok {
		return eventstore.Checkpoint{}, fmt.Errorf("bad token %q", s)
	}
	t, err1 := strconv.ParseUint(tx, 10, 64)
	p, err2 := strconv.ParseInt(pos, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return eventstore.Checkpoint{}, fmt.Errorf("bad token %q: %w", s, err)
	}
	return eventstore.Checkpoint{TransactionID: t, Position: p}, nil
}
