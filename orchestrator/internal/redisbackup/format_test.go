package redisbackup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// encodeWithCount writes records in the data file format, with count in
// the trailer.
func encodeWithCount(recs []record, count int) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	w := bufio.NewWriter(gz)
	fmt.Fprintf(w, "%s %d\n", Format, Version)
	for _, r := range recs {
		writeRecord(w, r)
	}
	w.Write(binary.AppendUvarint(nil, 0))
	w.Write(binary.AppendUvarint(nil, uint64(count)))
	w.Flush()
	gz.Close()
	return buf.Bytes()
}

// FuzzReadRecords: a file cut anywhere is read without a panic, and what
// writeRecord writes reads back the same.
func FuzzReadRecords(f *testing.F) {
	f.Add("snap:user:ann", int64(0), "\x00\x01payload", 1)
	f.Add("snap:session:x", int64(1764817200000), "", 1)
	f.Add("snap:k", int64(-5), "v", 2) // trailer count wrong
	f.Fuzz(func(t *testing.T, key string, exp int64, payload string, count int) {
		data := encodeWithCount([]record{{key, exp, payload}}, count)
		var got []record
		err := readRecords(bytes.NewReader(data), func(r record) error { got = append(got, r); return nil })
		switch {
		case key != "" && count == 1:
			if err != nil || len(got) != 1 || got[0] != (record{key, exp, payload}) {
				t.Fatalf("round trip of %q: %+v, %v", key, got, err)
			}
		case key != "":
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailer count %d for one record: err = %v, want ErrCorrupt", count, err)
			}
		}
		// Cut anywhere, the file is refused, never a panic.
		for i := 0; i < len(data); i += 7 {
			_ = readRecords(bytes.NewReader(data[:i]), func(record) error { return nil })
		}
	})
}
