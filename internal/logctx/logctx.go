// Package logctx puts the request id and the user id of a request on every
// log line written with a *Context slog method during that request.
//
// The API's middleware calls Start once per request; authentication calls
// SetUser when it knows who is calling; Handler wraps any slog.Handler and
// adds request_id and user_id attributes from the context.
package logctx

import (
	"context"
	"log/slog"
	"sync/atomic"
)

type key struct{}

type fields struct {
	requestID string
	userID    atomic.Pointer[string]
}

// Start returns ctx carrying requestID (and room for a user id).
func Start(ctx context.Context, requestID string) context.Context {
	return context.WithValue(ctx, key{}, &fields{requestID: requestID})
}

// RequestID is the request id ctx was started with; "" outside a request.
func RequestID(ctx context.Context) string {
	if f, ok := ctx.Value(key{}).(*fields); ok {
		return f.requestID
	}
	return ""
}

// SetUser records the authenticated user of the request ctx belongs to.
func SetUser(ctx context.Context, userID string) {
	if f, ok := ctx.Value(key{}).(*fields); ok {
		f.userID.Store(&userID)
	}
}

// Handler adds request_id and user_id to records logged with a context.
type Handler struct {
	slog.Handler
}

// Handle implements slog.Handler.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if f, ok := ctx.Value(key{}).(*fields); ok {
		r.AddAttrs(slog.String("request_id", f.requestID))
		if u := f.userID.Load(); u != nil {
			r.AddAttrs(slog.String("user_id", *u))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Handler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h Handler) WithGroup(name string) slog.Handler { return Handler{h.Handler.WithGroup(name)} }
