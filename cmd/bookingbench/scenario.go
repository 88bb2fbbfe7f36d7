package main

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/bookingledger/ledger/domain"
)

// scenario is a set of shows to book.
type scenario struct {
	name         string
	shows        int
	seatsPerShow int
}

var (
	spread = scenario{name: "spread", shows: 1000, seatsPerShow: 100}
	hot    = scenario{name: "hot", shows: 1, seatsPerShow: 10_000}
)

// seatLabels are the seats of every show of the scenario, as a movie
// theatre names them (A1, A2 …).
func (s scenario) seatLabels() ([]string, error) {
	labels, err := domain.GenerateSeatLabels(domain.ShowMovie, s.seatsPerShow)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", s.name, err)
	}
	return labels, nil
}

// job is one booking to make: 1 to 4 seats of the show with index show
// (0 … shows-1; each target maps it to its own show id).
type job struct {
	show  int
	seats []string
}

// queue cuts every show's seats, shuffled, into bookings of 1 to 4 seats and
// shuffles the bookings of all shows together. The seed comes from the
// scenario's name, so every target (and every run) books the same queue.
func (s scenario) queue(labels []string) []job {
	h := fnv.New64a()
	h.Write([]byte(s.name))
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(s.shows)<<32|uint64(s.seatsPerShow)))
	jobs := make([]job, 0, s.shows*len(labels)*2/5+1)
	for show := range s.shows {
		seats := make([]string, len(labels))
		for i, p := range rng.Perm(len(labels)) {
			seats[i] = labels[p]
		}
		for len(seats) > 0 {
			n := min(1+rng.IntN(4), len(seats))
			jobs = append(jobs, job{show: show, seats: seats[:n:n]})
			seats = seats[n:]
		}
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	return jobs
}
