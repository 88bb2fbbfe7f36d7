package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeTargets are the request bodies decodeJSON reads, by fuzz selector.
var decodeTargets = []struct {
	name string
	new  func() any
}{
	{"holdRequest", func() any { return new(holdRequest) }},
	{"createShowRequest", func() any { return new(createShowRequest) }},
	{"credentials", func() any { return new(credentials) }},
}

// FuzzDecodeJSON feeds arbitrary bodies to decodeJSON. target picks the
// request type (target % 3); limit > 0 reads the body through
// http.MaxBytesReader with that many bytes allowed, as the server does.
//
// decodeJSON must not panic; it either accepts the body or returns an error
// that is errBadRequest (400) or *http.MaxBytesError (413). An accepted body
// is valid JSON within the limit, and the value it gives survives encoding
// and decoding again unchanged.
func FuzzDecodeJSON(f *testing.F) {
	seeds := []string{
		// valid bodies
		`{"show_id":1,"seat_numbers":["A1","A2"]}`,
		`{"name":"Dune","show_type":"movie","start_time":"2030-01-02T20:00:00Z","total_seats":100}`,
		`{"name":"Bus 7","show_type":"bus","start_time":"2030-01-02T20:00:00+02:00","seat_numbers":["1","2","3"]}`,
		`{"name":"Dune","show_type":"movie","start_time":"2030-01-02T20:00:00Z","total_seats":100,"max_seats_per_user":4}`,
		`{"max_seats_per_user":0}`,
		`{"max_seats_per_user":null}`,
		`{"email":"a@example.com","password":"correct horse battery staple"}`,
		` {"email":"a@example.com"}` + "\n\t ",
		`{}`,
		`{"seat_numbers":[]}`,
		`{"seat_numbers":null,"total_seats":null}`,
		`{"EMAIL":"case@example.com","Password":"x"}`,
		`{"show_id":1,"show_id":2}`,
		`{"email":"\u00e9\ud83d\ude00<>&\u2028"}`,
		`{"start_time":"2030-01-02T20:00:00.123456789123+14:00"}`,
		`null`,
		// unknown fields
		`{"show_id":1,"seat_numbers":["A1"],"role":"admin"}`,
		`{"email":"a@example.com","password":"x","role":"admin"}`,
		`{"nested":{"deep":[1,2,3]}}`,
		// trailing data
		`{"show_id":1}{"show_id":2}`,
		`{"show_id":1} {}`,
		`{"show_id":1}garbage`,
		`{"show_id":1}]`,
		`{"show_id":1},`,
		`{"show_id":1} null`,
		`{"show_id":1}` + strings.Repeat(" ", 200),
		// truncated and malformed
		``,
		`   `,
		`{`,
		`{"show_id":`,
		`{"show_id":1,}`,
		`{'show_id':1}`,
		`[]`,
		`"string"`,
		`42`,
		`true`,
		"\xef\xbb\xbf{}", // a byte order mark
		// wrong types and huge numbers
		`{"show_id":"1"}`,
		`{"show_id":1.5}`,
		`{"show_id":-1}`,
		`{"show_id":99999999999999999999999999}`,
		`{"show_id":1e400}`,
		`{"show_id":-0}`,
		`{"total_seats":9223372036854775808}`,
		`{"total_seats":1e3}`,
		`{"max_seats_per_user":-1}`,
		`{"max_seats_per_user":2.5}`,
		`{"max_seats_per_user":"10"}`,
		`{"seat_numbers":[1,2]}`,
		`{"seat_numbers":"A1"}`,
		`{"start_time":"yesterday"}`,
		`{"start_time":"10000-01-01T00:00:00Z"}`,
		`{"start_time":"2030-01-02T20:00:00+24:00"}`,
		`{"start_time":"0000-01-01T00:00:00+24:00"}`,
		`{"start_time":"9999-12-31T23:59:59-23:59"}`,
		`{"start_time":1700000000}`,
		// nested arrays
		`{"seat_numbers":[["A1"]]}`,
		`{"seat_numbers":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		`{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		strings.Repeat("[", 20000),
		// invalid UTF-8 and odd escapes
		"{\"email\":\"\xff\xfe\",\"password\":\"\xc3\x28\"}",
		"{\"seat_numbers\":[\"\xed\xa0\x80\"]}",
		`{"email":"\ud800"}`,
		`{"email":"\x41"}`,
		"{\"email\":\"a\x00b\"}",
		"{\"em\xffail\":\"a\"}",
	}
	for i, s := range seeds {
		for target := range len(decodeTargets) {
			f.Add([]byte(s), uint8(target), uint16(0))
			if i%4 == 0 {
				f.Add([]byte(s), uint8(target), uint16(len(s)))
				f.Add([]byte(s), uint8(target), uint16(max(len(s)/2, 1)))
			}
		}
	}
	big := `{"email":"` + strings.Repeat("a", 5000) + `","password":"x"}`
	f.Add([]byte(big), uint8(2), uint16(64))
	f.Add([]byte(big), uint8(2), uint16(len(big)))
	f.Add([]byte(`{"show_id":1}`+strings.Repeat(" ", 100)), uint8(0), uint16(20))

	f.Fuzz(func(t *testing.T, data []byte, target uint8, limit uint16) {
		tgt := decodeTargets[int(target)%len(decodeTargets)]
		var body io.Reader = bytes.NewReader(data)
		if limit > 0 {
			body = http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(body), int64(limit))
		}

		v := tgt.new()
		err := decodeJSON(body, v)
		if err != nil {
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				if limit == 0 || len(data) <= int(limit) {
					t.Fatalf("%s: MaxBytesError for %d bytes with limit %d: %v", tgt.name, len(data), limit, err)
				}
			case errors.Is(err, errBadRequest):
			default:
				t.Fatalf("%s: error is neither errBadRequest nor *http.MaxBytesError: %#v", tgt.name, err)
			}
			return
		}

		if limit > 0 && len(data) > int(limit) {
			t.Fatalf("%s: accepted %d bytes with limit %d", tgt.name, len(data), limit)
		}
		if !json.Valid(data) {
			t.Fatalf("%s: accepted invalid JSON %q", tgt.name, data)
		}

		enc, err := json.Marshal(v)
		if err != nil {
			if c, ok := v.(*createShowRequest); ok {
				// time.Time decodes offsets of ±24:xx that it refuses to
				// encode; the server only ever uses start_time in UTC
				// (domain/decide.go), which must encode unless its year is
				// out of range, a start_time the domain rejects.
				u := *c
				u.StartTime = u.StartTime.UTC()
				if y := u.StartTime.Year(); y < 0 || y > 9999 {
					return
				}
				enc, err = json.Marshal(&u)
			}
		}
		if err != nil {
			t.Fatalf("%s: re-encode %#v: %v", tgt.name, v, err)
		}
		again := tgt.new()
		if err := decodeJSON(bytes.NewReader(enc), again); err != nil {
			t.Fatalf("%s: re-decode %s: %v", tgt.name, enc, err)
		}
		if !sameRequest(v, again) {
			t.Fatalf("%s: round trip changed the value:\n first %#v\n again %#v\n via %s", tgt.name, v, again, enc)
		}
	})
}

// sameRequest compares two decoded requests; times compare as instants
// (Location pointers and offsets differ between decodes).
func sameRequest(a, b any) bool {
	ca, ok := a.(*createShowRequest)
	if !ok {
		return reflect.DeepEqual(a, b)
	}
	cb := b.(*createShowRequest)
	if !ca.StartTime.Equal(cb.StartTime) {
		return false
	}
	x, y := *ca, *cb
	x.StartTime, y.StartTime = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want holdRequest
		err  error
	}{
		{"valid", `{"show_id":7,"seat_numbers":["A1","B2"]}`, holdRequest{ShowID: 7, SeatNumbers: []string{"A1", "B2"}}, nil},
		{"surrounding whitespace", "\n {\"show_id\":7} \n", holdRequest{ShowID: 7}, nil},
		{"empty", ``, holdRequest{}, errBadRequest},
		{"unknown field", `{"show_id":7,"user_id":"someone-else"}`, holdRequest{}, errBadRequest},
		{"two objects", `{"show_id":7}{"show_id":8}`, holdRequest{}, errBadRequest},
		{"trailing garbage", `{"show_id":7}x`, holdRequest{}, errBadRequest},
		{"array", `[{"show_id":7}]`, holdRequest{}, errBadRequest},
		{"wrong type", `{"show_id":"7"}`, holdRequest{}, errBadRequest},
		{"number too large", `{"show_id":9223372036854775808}`, holdRequest{}, errBadRequest},
		{"too deep", `{"seat_numbers":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, holdRequest{}, errBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got holdRequest
			err := decodeJSON(strings.NewReader(tt.body), &got)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeJSONTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"object over the limit", `{"email":"` + strings.Repeat("a", 100) + `"}`},
		{"trailing whitespace over the limit", `{"email":"a"}` + strings.Repeat(" ", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got credentials
			err := decodeJSON(http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(tt.body)), 32), &got)
			var tooLarge *http.MaxBytesError
			require.ErrorAs(t, err, &tooLarge)
			assert.EqualValues(t, 32, tooLarge.Limit)
		})
	}
}

func TestDecodeJSONRejectsNull(t *testing.T) {
	t.Parallel()
	var got holdRequest
	require.ErrorIs(t, decodeJSON(strings.NewReader(`null`), &got), errBadRequest)
}
