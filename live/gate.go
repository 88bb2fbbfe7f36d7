package live

import (
	"errors"
	"sync"
)

// Errors of Gate.Admit.
var (
	// ErrTooManyFeeds: the process has as many open feeds as it allows.
	ErrTooManyFeeds = errors.New("too many live feeds are open on this server")
	// ErrTooManyClientFeeds: the client has as many open feeds as it may.
	ErrTooManyClientFeeds = errors.New("too many live feeds are open for this client")
)

// Gate caps the live feeds open in a process, in all and per client (a
// user, or an IP address when anonymous). It is safe for concurrent use.
type Gate struct {
	max, perClient int // 0: no cap

	mu       sync.Mutex
	open     int
	byClient map[string]int
}

// NewGate returns a gate letting at most max feeds open in all and
// perClient per client; 0 means no cap.
func NewGate(max, perClient int) *Gate {
	return &Gate{max: max, perClient: perClient, byClient: map[string]int{}}
}

// Admit counts a feed of client in, or says which cap it would pass. The
// caller calls release once the feed ends.
func (g *Gate) Admit(client string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.max > 0 && g.open >= g.max {
		return nil, ErrTooManyFeeds
	}
	if g.perClient > 0 && g.byClient[client] >= g.perClient {
		return nil, ErrTooManyClientFeeds
	}
	g.open++
	g.byClient[client]++
	var once sync.Once
	return func() { once.Do(func() { g.release(client) }) }, nil
}

func (g *Gate) release(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	if g.byClient[client]--; g.byClient[client] <= 0 {
		delete(g.byClient, client)
	}
}

// Open is how many feeds the gate has let in and not yet released.
func (g *Gate) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}
