package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A cached show's value reads back as it was written, and anything else
// is refused rather than sent.
func TestShowEntryLayout(t *testing.T) {
	t.Parallel()
	json := []byte(`{"id":7,"seats":[]}`)
	for _, e := range []showEntry{
		{version: 3, body: json},
		{version: 12, body: json, gzipped: gzipBytes(json)},
		{version: 1, body: []byte{}},
	} {
		got, err := parseShowEntry(7, marshalShowEntry(e))
		require.NoError(t, err)
		assert.Equal(t, e.version, got.version)
		assert.Equal(t, string(e.body), string(got.body))
		assert.Equal(t, e.gzipped, got.gzipped)
		if e.gzipped != nil {
			zr, err := gzip.NewReader(bytes.NewReader(got.gzipped))
			require.NoError(t, err)
			unzipped, err := io.ReadAll(zr)
			require.NoError(t, err)
			assert.Equal(t, string(json), string(unzipped))
		}
	}
	for _, raw := range []string{
		"", "3", "3\n{}", "x 2\n{}", "3 x\n{}", "3 -1\n{}", "3 5\n{}", "3 2", "3 2 1\n{}",
	} {
		_, err := parseShowEntry(7, []byte(raw))
		assert.Error(t, err, "%q", raw)
	}
}
