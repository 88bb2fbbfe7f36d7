// Package domain is the booking ledger's model: the show aggregate (its seat
// map, holds and bookings), the commands that change it and the five events
// that record those changes.
//
// It is pure: the standard library only, no IO, no clock. Decide turns a
// state and a command into events or a typed error; Evolve folds an event
// into the state. Commands carry the current time, so replaying a stream
// always gives the same state and the same decisions.
//
// Command handling (load, decide, append with the expected version, retry on
// conflict) lives in package ledger; storage in package eventstore.
package domain
