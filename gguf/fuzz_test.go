package gguf

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors name the file, and that every
// tensor of a file it accepts lies inside the data, aligned; accepted files must also survive a
// write/parse round trip unchanged.
func FuzzParse(f *testing.F) {
	f.Add(smallModel(f))
	w := NewWriter()
	w.Set("a", ArrayOf(ValueArray, StrArray([]string{"x"}), ArrayOf(ValueInt8, Int8(-1))))
	_ = w.SetAlignment(64)
	mustAdd(f, w, "q", TypeQ4_K, []uint64{256}, pattern(144, 9))
	mustAdd(f, w, "s", TypeF32, nil, pattern(4, 1))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(oneTensor("t", []uint64{4, 2}, TypeF16, 0, 16))
	f.Add(kv("k", ValueBool).u8(1).Bytes())
	for _, c := range corruptCases(f) {
		if len(c.data) <= 4096 { // big seeds only slow the mutator down
			f.Add(c.data)
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, ti := range file.Tensors {
			end := uint64(file.DataOffset) + ti.Offset + uint64(ti.Size)
			if ti.Size < 0 || ti.Offset%file.Alignment != 0 || end > uint64(len(data)) || end < ti.Offset {
				t.Fatalf("tensor %q: offset %d size %d outside %d bytes (data at %d)", ti.Name, ti.Offset, ti.Size, len(data), file.DataOffset)
			}
			b, err := file.TensorData(ti.Name)
			if err != nil || int64(len(b)) != ti.Size {
				t.Fatalf("TensorData(%q) = %d bytes, %v; want %d", ti.Name, len(b), err, ti.Size)
			}
		}
		// Writing what was parsed must give a file that parses and writes identically.
		w, err := FromFile(file)
		if err != nil {
			t.Fatalf("FromFile: %v", err)
		}
		var first bytes.Buffer
		if _, err := w.WriteTo(&first); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		again, err := Parse(first.Bytes(), "rewritten")
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		w2, err := FromFile(again)
		if err != nil {
			t.Fatalf("FromFile(rewritten): %v", err)
		}
		var second bytes.Buffer
		if _, err := w2.WriteTo(&second); err != nil {
			t.Fatalf("WriteTo(rewritten): %v", err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatal("second re-serialisation differs from the first")
		}
	})
}
