package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// decode reads one JSON object from the request body into v: at most
// MaxBodyBytes (larger is 413), no unknown fields, nothing after the object.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return fmt.Errorf("%w: Content-Type must be application/json", errBadRequest)
	}
	return decodeJSON(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), v)
}

func decodeJSON(body io.Reader, v any) error {
	br := bufio.NewReader(body)
	if first, err := peekNonSpace(br); err == nil && first != '{' {
		return fmt.Errorf("%w: the body must be a JSON object", errBadRequest)
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the body must be a JSON object", errBadRequest)
		}
		return fmt.Errorf("%w: malformed JSON: %v", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return fmt.Errorf("%w: the body must hold a single JSON object", errBadRequest)
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
