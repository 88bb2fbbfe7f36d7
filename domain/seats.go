package domain

import (
	"fmt"
	"strconv"
)

// GenerateSeatLabels names n seats in the fashion of the show type: rows of
// lettered seats for a movie (A1…A10, B1…; at most 26 rows, which grow
// longer for big halls), plain numbers for a bus, and
// 15-minute time slots from 08:00 for a doctor ("08:00", "08:15" …, with a
// day prefix past midnight: "d2 00:00").
func GenerateSeatLabels(t ShowType, n int) ([]string, error) {
	if n <= 0 || n > MaxSeatsPerShow {
		return nil, &InvalidCommandError{Field: "total_seats", Reason: "must be 1 to 100000"}
	}
	out := make([]string, n)
	switch t {
	case ShowMovie:
		perRow := max(10, (n+25)/26)
		for i := range out {
			out[i] = string(rune('A'+i/perRow)) + strconv.Itoa(i%perRow+1)
		}
	case ShowBus:
		for i := range out {
			out[i] = strconv.Itoa(i + 1)
		}
	case ShowDoctor:
		for i := range out {
			minutes := 8*60 + 15*i
			day, hm := minutes/(24*60), minutes%(24*60)
			out[i] = fmt.Sprintf("%02d:%02d", hm/60, hm%60)
			if day > 0 {
				out[i] = fmt.Sprintf("d%d %s", day+1, out[i])
			}
		}
	default:
		return nil, &InvalidCommandError{Field: "show_type", Reason: "must be movie, bus or doctor"}
	}
	return out, nil
}
