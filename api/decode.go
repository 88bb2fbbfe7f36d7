package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// decode reads one JSON object from the request body into v: at most
// MaxBodyBytes (larger is 413), no unknown fields, nothing after the object.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return badRequest("Content-Type must be application/json")
	}
	return decodeJSON(http.MaxBytesReader(w, r.Body, s.Config.MaxBodyBytes), v)
}

func decodeJSON(body io.Reader, v any) error {
	br := bufio.NewReader(body)
	if first, err := peekNonSpace(br); err == nil && first != '{' {
		return badRequest("the body must be a JSON object")
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("the body must be a JSON object")
		}
		return badRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return badRequest("the body must hold a single JSON object")
	}
	return nil
}

// peekNonSpace returns the first byte after JSON whitespace without
// consuming anything the decoder needs.
func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b, br.UnreadByte()
	}
}

// describeJSONError says what is wrong with a body in the API's terms, not
// in Go's (no struct or type names).
func describeJSONError(err error) string {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		timeError *time.ParseError
	)
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		want := map[reflect.Kind]string{
			reflect.String: "a string", reflect.Int64: "an integer", reflect.Int: "an integer",
			reflect.Slice: "a list", reflect.Struct: "an object", reflect.Bool: "true or false",
		}[typeErr.Type.Kind()]
		if want == "" {
			want = "of another type"
		}
		if typeErr.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("%s must be %s", typeErr.Field, want)
	case errors.As(err, &timeError):
		return "times must be RFC 3339, like 2026-12-01T18:00:00Z"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ") + " (the fields are listed in the API documentation)"
	default:
		return "malformed JSON"
	}
}
