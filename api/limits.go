package api

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// limit applies the rate limit of a class ("auth", "bookings", "reads"):
// per user when the caller is authenticated, per client IP otherwise.
func (s *server) limit(class string) func(http.Handler) http.Handler {
	perMinute := map[string]int{
		"auth":     s.Config.RateLimits.Auth,
		"bookings": s.Config.RateLimits.Bookings,
		"reads":    s.Config.RateLimits.Reads,
	}[class]
	limitHeader := []string{strconv.Itoa(perMinute)} // shared, as headerJSON: no spare capacity
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Auth calls are always limited per client IP: a token must not
			// buy another budget for guessing passwords or making accounts.
			d := s.Limiter.Allow(r.Context(), class, s.clientKey(r, class != "auth"), perMinute)
			h := w.Header()
			h["Ratelimit-Limit"] = limitHeader // canonical form of RateLimit-Limit
			h["Ratelimit-Remaining"] = []string{strconv.Itoa(max(d.Remaining, 0))}
			if !d.Allowed {
				secs := int(math.Ceil(d.RetryAfter.Seconds()))
				w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
				writeProblem(w, r, Problem{Status: http.StatusTooManyRequests, Title: "Too many requests",
					Detail: fmt.Sprintf("at most %d %s requests a minute; retry in %d s", perMinute, class, max(secs, 1))})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// clientKey names the client a limit counts against: the authenticated
// user when perUser, else the client IP.
func (s *server) clientKey(r *http.Request, perUser bool) string {
	if p, ok := principalFrom(r.Context()); ok && perUser {
		return "user:" + p.UserID.String()
	}
	return "ip:" + s.clientIP(r)
}

// clientIP is the peer address or, when the deployment says one trusted
// proxy stands in front, the address that proxy appended last to
// X-Forwarded-For (the entries before it are whatever the client sent).
func (s *server) clientIP(r *http.Request) string {
	if s.Config.TrustProxyHeaders {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		if ip := net.ParseIP(strings.TrimSpace(hops[len(hops)-1])); ip != nil {
			return ip.String()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
