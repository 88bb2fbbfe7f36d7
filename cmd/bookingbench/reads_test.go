package main

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The read clients' minimal HTTP/1.1 reader takes each response whole, in
// however many pieces it arrives, and fails on anything but a 200 with a
// Content-Length.
func TestResponseReader(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 70_000) // more than the reader's buffer
	ok := func(body string) string {
		return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	tests := []struct {
		name    string
		pieces  []string // written one after another
		answers int      // responses read before the error (or all)
		err     string
	}{
		{"one piece", []string{ok(`{"a":1}`)}, 1, ""},
		{"split in the header and the body", []string{"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 7\r\n\r", "\n{\"a\"", ":1}"}, 1, ""},
		{"a body larger than the buffer", []string{ok(body)}, 1, ""},
		{"an empty body", []string{ok("")}, 1, ""},
		{"two in turn", []string{ok("ab"), ok("cde")}, 2, ""},
		{"not a 200", []string{"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"}, 0, `answered "HTTP/1.1 404 Not Found"`},
		{"chunked", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"}, 0, "without Content-Length"},
		{"a bad length", []string{"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n"}, 0, "Content-Length"},
		{"more than announced", []string{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"}, 0, "more bytes"},
		{"cut short", []string{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"}, 0, "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				defer server.Close()
				for _, p := range tc.pieces {
					if _, err := server.Write([]byte(p)); err != nil {
						return
					}
				}
			}()
			r := responseReader{conn: client, buf: make([]byte, 64<<10)}
			for range tc.answers {
				require.NoError(t, r.read200())
			}
			err := r.read200()
			if tc.err == "" {
				// Nothing more was sent: a reader that left bytes of a
				// response unread would fail on them instead.
				assert.ErrorIs(t, err, io.EOF)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}
