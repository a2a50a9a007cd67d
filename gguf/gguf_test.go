package gguf

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const miniLMPath = "../models/all-MiniLM-L6-v2-Q4_K_M.gguf"

func TestRealModel(t *testing.T) {
	f, err := Open(miniLMPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if f.Version != 3 || f.Alignment != 32 {
		t.Errorf("version %d alignment %d, want 3 and 32", f.Version, f.Alignment)
	}
	if arch, _ := f.String("general.architecture"); arch != "bert" {
		t.Errorf("general.architecture = %q, want bert", arch)
	}
	for _, c := range []struct {
		key  string
		want uint64
	}{
		{"bert.block_count", 6},
		{"bert.embedding_length", 384},
		{"bert.attention.head_count", 12},
		{"bert.feed_forward_length", 1536},
		{"bert.context_length", 512},
	} {
		if got, ok := f.Uint(c.key); !ok || got != c.want {
			t.Errorf("%s = %d, %v; want %d", c.key, got, ok, c.want)
		}
	}
	if eps, ok := f.Float("bert.attention.layer_norm_epsilon"); !ok || math.Abs(eps-1e-12) > 1e-18 {
		t.Errorf("layer_norm_epsilon = %g, %v", eps, ok)
	}
	tokens, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(tokens) != 30522 {
		t.Fatalf("tokenizer.ggml.tokens: %d strings, %v; want 30522", len(tokens), ok)
	}
	// Ids 101/102 are [CLS]/[SEP] in the uncased BERT vocabulary (see bos/eos ids in the file).
	if tokens[0] != "[PAD]" || tokens[101] != "[CLS]" || tokens[102] != "[SEP]" {
		t.Errorf("tokens[0,101,102] = %q %q %q", tokens[0], tokens[101], tokens[102])
	}
	if types, ok := f.Ints("tokenizer.ggml.token_type"); !ok || len(types) != 30522 {
		t.Errorf("token_type: %d ints, %v", len(types), ok)
	}
	if len(f.Tensors) != 101 { // 5 embedding tensors + 6 blocks x 16
		t.Errorf("%d tensors, want 101", len(f.Tensors))
	}
	for _, c := range []struct {
		name string
		typ  Type
		dims []uint64
	}{
		{"token_embd.weight", TypeQ8_0, []uint64{384, 30522}},
		{"position_embd.weight", TypeF16, []uint64{384, 512}},
		{"token_types.weight", TypeF32, []uint64{384, 2}},
		{"blk.0.attn_q.weight", TypeQ5_0, []uint64{384, 384}},
		{"blk.5.attn_output_norm.bias", TypeF32, []uint64{384}},
	} {
		ti, ok := f.Tensor(c.name)
		if !ok {
			t.Errorf("no tensor %q", c.name)
			continue
		}
		if ti.Type != c.typ || !reflect.DeepEqual(ti.Dims, c.dims) {
			t.Errorf("%s: %s %v, want %s %v", c.name, ti.Type, ti.Dims, c.typ, c.dims)
		}
	}
	st, err := os.Stat(miniLMPath)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Type]bool{}
	for _, ti := range f.Tensors {
		seen[ti.Type] = true
		end := f.DataOffset + int64(ti.Offset) + ti.Size
		if ti.Offset%f.Alignment != 0 || end > st.Size() {
			t.Errorf("%s: offset %d size %d outside file of %d", ti.Name, ti.Offset, ti.Size, st.Size())
		}
		data, err := f.TensorData(ti.Name)
		if err != nil || int64(len(data)) != ti.Size {
			t.Errorf("%s: TensorData: %d bytes, %v; want %d", ti.Name, len(data), err, ti.Size)
		}
		rowBytes, _ := ti.Type.RowBytes(int64(ti.Dims[0]))
		if ti.Size != rowBytes*ti.Elems()/int64(ti.Dims[0]) {
			t.Errorf("%s: size %d disagrees with %s %v", ti.Name, ti.Size, ti.Type, ti.Dims)
		}
	}
	for _, typ := range []Type{TypeQ8_0, TypeQ5_0, TypeQ4_K, TypeQ6_K, TypeF16, TypeF32} {
		if !seen[typ] {
			t.Errorf("no %s tensor in the model", typ)
		}
	}

	// The model was written by ggml's layout rules, which the writer follows: it re-serialises exactly.
	w, err := FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), f.Bytes()) {
		t.Errorf("re-serialised model differs (%d bytes vs %d)", buf.Len(), len(f.Bytes()))
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.TensorData("token_embd.weight"); !errors.Is(err, ErrClosed) {
		t.Errorf("TensorData after Close: %v, want ErrClosed", err)
	}
}

func TestRoundTrip(t *testing.T) {
	tensors := []struct {
		name string
		typ  Type
		dims []uint64
	}{
		{"f32", TypeF32, []uint64{5, 3}},
		{"f16", TypeF16, []uint64{7}},
		{"q8", TypeQ8_0, []uint64{64, 2}},
		{"q4k", TypeQ4_K, []uint64{256, 1, 2}},
		{"q6k", TypeQ6_K, []uint64{512}},
		{"i32", TypeI32, []uint64{2, 2, 2, 2}},
		{"scalar", TypeF32, nil},
		{"empty", TypeF16, []uint64{0, 9}},
		{"bf16", TypeBF16, []uint64{1}},
	}
	kvs := []KV{
		{"u8", Uint8(255)}, {"i8", Int8(-128)}, {"u16", Uint16(65535)}, {"i16", Int16(-32768)},
		{"u32", Uint32(math.MaxUint32)}, {"i32", Int32(math.MinInt32)}, {"f32", Float32(float32(math.Inf(-1)))},
		{"bool.t", Bool(true)}, {"bool.f", Bool(false)}, {"str", Str("héllo\x00world")}, {"empty.str", Str("")},
		{"u64", Uint64(math.MaxUint64)}, {"i64", Int64(math.MinInt64)}, {"f64", Float64(math.SmallestNonzeroFloat64)},
		{"arr.u8", ArrayOf(ValueUint8, Uint8(1), Uint8(2))},
		{"arr.f32", ArrayOf(ValueFloat32, Float32(0.5), Float32(-1e30))},
		{"arr.bool", ArrayOf(ValueBool, Bool(true), Bool(false))},
		{"arr.i64", ArrayOf(ValueInt64, Int64(-1), Int64(1<<40))},
		{"arr.empty", ArrayOf(ValueFloat64)},
		{"arr.str", StrArray([]string{"x", "", "yz"})},
		{"arr.arr.str", ArrayOf(ValueArray, StrArray([]string{"a"}), StrArray(nil), StrArray([]string{"b", "c"}))},
		{"arr.arr.empty", ArrayOf(ValueArray)},
		{"arr.arr.arr", ArrayOf(ValueArray, ArrayOf(ValueArray, ArrayOf(ValueUint16, Uint16(7))))},
	}
	for _, align := range []uint64{0, 32, 64, 1, 256} { // 0: leave general.alignment unset
		w := NewWriter()
		for _, kv := range kvs {
			w.Set(kv.Key, kv.Value)
		}
		wantAlign := uint64(DefaultAlignment)
		if align != 0 {
			if err := w.SetAlignment(align); err != nil {
				t.Fatal(err)
			}
			wantAlign = align
		}
		datas := map[string][]byte{}
		for i, ts := range tensors {
			size, err := tensorSize(ts.typ, ts.dims)
			if err != nil {
				t.Fatal(err)
			}
			datas[ts.name] = pattern(int(size), byte(i))
			mustAdd(t, w, ts.name, ts.typ, ts.dims, datas[ts.name])
		}
		var buf bytes.Buffer
		n, err := w.WriteTo(&buf)
		if err != nil || n != int64(buf.Len()) {
			t.Fatalf("align %d: WriteTo = %d, %v (buffer %d)", align, n, err, buf.Len())
		}
		f, err := Parse(buf.Bytes(), "roundtrip")
		if err != nil {
			t.Fatalf("align %d: %v", align, err)
		}
		if f.Version != 3 || f.Alignment != wantAlign || f.DataOffset%int64(wantAlign) != 0 {
			t.Errorf("align %d: version %d alignment %d data offset %d", align, f.Version, f.Alignment, f.DataOffset)
		}
		gotKVs := f.KVs
		if align != 0 {
			if last := gotKVs[len(gotKVs)-1]; last.Key != AlignmentKey || last.Value != Uint32(uint32(align)) {
				t.Errorf("align %d: last key %v", align, last)
			}
			gotKVs = gotKVs[:len(gotKVs)-1]
		}
		if !reflect.DeepEqual(gotKVs, kvs) {
			t.Errorf("align %d: metadata differs:\n got %v\nwant %v", align, gotKVs, kvs)
		}
		for _, ts := range tensors {
			ti, ok := f.Tensor(ts.name)
			if !ok || ti.Type != ts.typ || len(ti.Dims) != len(ts.dims) || ti.Offset%wantAlign != 0 {
				t.Errorf("align %d: tensor %s = %+v, %v", align, ts.name, ti, ok)
				continue
			}
			data, err := f.TensorData(ts.name)
			if err != nil || !bytes.Equal(data, datas[ts.name]) {
				t.Errorf("align %d: tensor %s data differs (%v)", align, ts.name, err)
			}
		}
		if ti, _ := f.Tensor("scalar"); ti.Size != 4 || ti.Elems() != 1 {
			t.Errorf("scalar tensor: size %d elems %d", ti.Size, ti.Elems())
		}
		if ti, _ := f.Tensor("empty"); ti.Size != 0 || ti.Elems() != 0 {
			t.Errorf("empty tensor: size %d elems %d", ti.Size, ti.Elems())
		}
		// Byte-exact re-serialisation of the parsed file.
		w2, err := FromFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		if _, err := w2.WriteTo(&again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), buf.Bytes()) {
			t.Errorf("align %d: re-serialisation differs", align)
		}
	}
}

// Open (a mapping) and ReadFile (a copy in memory) see the same file and fail the same way.
func TestWriteFileAndOpen(t *testing.T) {
	for _, opener := range []struct {
		name string
		open func(string) (*File, error)
	}{{"Open", Open}, {"ReadFile", ReadFile}} {
		t.Run(opener.name, func(t *testing.T) { testWriteFileAndOpen(t, opener.open) })
	}
}

func testWriteFileAndOpen(t *testing.T, open func(string) (*File, error)) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	w := NewWriter()
	w.Set("k", Str("v"))
	mustAdd(t, w, "t", TypeF32, []uint64{2}, []byte{0, 0, 128, 63, 0, 0, 0, 64})
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	f, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.TensorData("t")
	if err != nil || !bytes.Equal(data, []byte{0, 0, 128, 63, 0, 0, 0, 64}) {
		t.Errorf("TensorData = %v, %v", data, err)
	}
	if _, err := f.TensorData("missing"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("missing tensor: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("WriteFile left %d files in the directory", len(entries))
	}

	empty := filepath.Join(dir, "empty.gguf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{empty, "too short"},
		{filepath.Join(dir, "nope.gguf"), "no such file"},
		{dir, "not a regular file"},
	} {
		if _, err := open(c.path); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("open(%s) = %v, want error naming the file and containing %q", c.path, err, c.want)
		}
	}
}

// ReadFile holds the bundled model byte for byte as the mapping does (read_linux_test.go checks
// where the image lives).
func TestReadFileRealModel(t *testing.T) {
	mapped, err := Open(miniLMPath)
	if err != nil {
		t.Fatal(err)
	}
	defer mapped.Close()
	read, err := ReadFile(miniLMPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read.Bytes(), mapped.Bytes()) || !reflect.DeepEqual(read.Tensors, mapped.Tensors) {
		t.Fatal("ReadFile and Open disagree on the bundled model")
	}
	if err := read.Close(); err != nil {
		t.Fatal(err)
	}
	if read.Bytes() != nil {
		t.Error("Bytes after Close")
	}
}

func TestAccessors(t *testing.T) {
	w := NewWriter()
	w.Set("neg", Int8(-3))
	w.Set("big", Uint64(math.MaxUint64))
	w.Set("i32", Int32(70000))
	w.Set("f32", Float32(0.25))
	w.Set("s", Str("x"))
	w.Set("b", Bool(true))
	w.Set("strs", StrArray([]string{"p", "q"}))
	w.Set("ints", ArrayOf(ValueInt16, Int16(-1), Int16(2)))
	w.Set("bigs", ArrayOf(ValueUint64, Uint64(1), Uint64(math.MaxUint64)))
	w.Set("floats", ArrayOf(ValueFloat32, Float32(1.5)))
	w.Set("s", Str("replaced")) // Set replaces in place
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes(), "acc")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.KVs) != 10 || f.KVs[4].Key != "s" {
		t.Fatalf("keys: %v", f.KVs)
	}
	for _, c := range []struct {
		name string
		got  any
		ok   bool
		want any
		wok  bool
	}{
		{"Uint of negative", first(f.Uint("neg")), second(f.Uint("neg")), uint64(0), false},
		{"Int of negative", first(f.Int("neg")), second(f.Int("neg")), int64(-3), true},
		{"Uint of max uint64", first(f.Uint("big")), second(f.Uint("big")), uint64(math.MaxUint64), true},
		{"Int of max uint64", first(f.Int("big")), second(f.Int("big")), int64(0), false},
		{"Uint of int32", first(f.Uint("i32")), second(f.Uint("i32")), uint64(70000), true},
		{"Float of int32", first(f.Float("i32")), second(f.Float("i32")), 70000.0, true},
		{"Float of float32", first(f.Float("f32")), second(f.Float("f32")), 0.25, true},
		{"Float of string", first(f.Float("s")), second(f.Float("s")), 0.0, false},
		{"Uint of float", first(f.Uint("f32")), second(f.Uint("f32")), uint64(0), false},
		{"String", first(f.String("s")), second(f.String("s")), "replaced", true},
		{"String of bool", first(f.String("b")), second(f.String("b")), "", false},
		{"Bool", first(f.Bool("b")), second(f.Bool("b")), true, true},
		{"Bool missing", first(f.Bool("zz")), second(f.Bool("zz")), false, false},
		{"Strings", first(f.Strings("strs")), second(f.Strings("strs")), []string{"p", "q"}, true},
		{"Strings of ints", first(f.Strings("ints")), second(f.Strings("ints")), []string(nil), false},
		{"Ints", first(f.Ints("ints")), second(f.Ints("ints")), []int64{-1, 2}, true},
		{"Ints overflowing", first(f.Ints("bigs")), second(f.Ints("bigs")), []int64(nil), false},
		{"Ints of strings", first(f.Ints("strs")), second(f.Ints("strs")), []int64(nil), false},
		{"Ints of scalar", first(f.Ints("i32")), second(f.Ints("i32")), []int64(nil), false},
		{"Floats", first(f.Floats("floats")), second(f.Floats("floats")), []float64{1.5}, true},
		{"Floats of ints", first(f.Floats("ints")), second(f.Floats("ints")), []float64{-1, 2}, true},
		{"Floats of strings", first(f.Floats("strs")), second(f.Floats("strs")), []float64(nil), false},
	} {
		if !reflect.DeepEqual(c.got, c.want) || c.ok != c.wok {
			t.Errorf("%s = %v, %v; want %v, %v", c.name, c.got, c.ok, c.want, c.wok)
		}
	}
	if _, ok := f.Tensor("none"); ok {
		t.Error("Tensor found a tensor in a file without tensors")
	}
}

func first[A, B any](a A, _ B) A  { return a }
func second[A, B any](_ A, b B) B { return b }

func TestWriterRejects(t *testing.T) {
	deep := ArrayOf(ValueUint8)
	for i := 0; i < MaxArrayDepth; i++ {
		deep = ArrayOf(ValueArray, deep)
	}
	for _, c := range []struct {
		name string
		kv   KV
		want string
	}{
		{"mistyped scalar", KV{"k", Value{ValueUint32, "x"}}, "holds Go string"},
		{"mistyped element", KV{"k", ArrayOf(ValueString, Str("a"), Uint8(1))}, "element 1 is uint8"},
		{"unknown type", KV{"k", Value{ValueType(13), uint8(0)}}, "unknown value type 13"},
		{"unknown element type", KV{"k", ArrayOf(ValueType(99))}, "unknown element type 99"},
		{"too deep", KV{"k", deep}, "nested more than"},
		{"bad alignment value", KV{AlignmentKey, Uint32(48)}, "power of two"},
		{"alignment as string", KV{AlignmentKey, Str("32")}, "power of two"},
	} {
		w := NewWriter()
		w.Set(c.kv.Key, c.kv.Value)
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err == nil || !strings.Contains(err.Error(), c.want) || buf.Len() != 0 {
			t.Errorf("%s: WriteTo = %v (wrote %d bytes), want error containing %q", c.name, err, buf.Len(), c.want)
		}
	}
	w := NewWriter()
	for _, a := range []uint64{0, 3, 48, 1 << 21, 1 << 31} {
		if err := w.SetAlignment(a); err == nil {
			t.Errorf("SetAlignment(%d) accepted", a)
		}
	}
	mustAdd(t, w, "x", TypeF32, []uint64{1}, make([]byte, 4))
	for _, c := range []struct {
		name string
		typ  Type
		dims []uint64
		n    int
		want string
	}{
		{"x", TypeF32, []uint64{1}, 4, "added twice"},
		{"short", TypeF32, []uint64{2}, 4, "needs 8"},
		{"q8 partial block", TypeQ8_0, []uint64{16}, 17, "whole number"},
		{"unknown", Type(99), []uint64{1}, 1, "unknown tensor type"},
		{"five dims", TypeF32, []uint64{1, 1, 1, 1, 1}, 4, "more than 4"},
		{"overflow", TypeF32, []uint64{1 << 40, 1 << 40}, 0, "overflow"},
	} {
		if err := w.AddTensor(c.name, c.typ, c.dims, make([]byte, c.n)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddTensor(%s) = %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func TestEveryTruncationFails(t *testing.T) {
	full := smallModel(t)
	if _, err := Parse(full, "small"); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(full); n++ {
		// A fresh copy of exactly n bytes, so reading past n would be caught by the race/bounds checks.
		cut := append([]byte(nil), full[:n]...)
		f, err := Parse(cut, "small")
		if err == nil {
			t.Errorf("truncated to %d of %d bytes: parsed (%d tensors)", n, len(full), len(f.Tensors))
		} else if !strings.HasPrefix(err.Error(), "small: ") {
			t.Errorf("truncated to %d: error %q does not name the file", n, err)
		}
	}
}

func TestHugeCountFailsFast(t *testing.T) {
	var r raw
	r.header(3, 1<<60, 0).u32(0).u16pad()
	data := r.Bytes()
	if len(data) != 30 {
		t.Fatalf("test file is %d bytes, want 30", len(data))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Parse(data, "huge")
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "tensor count") {
		t.Fatalf("Parse = %v, want a tensor count error", err)
	}
	if b := after.TotalAlloc - before.TotalAlloc; b > 64<<10 { // the error message only
		t.Errorf("rejecting a huge count allocated %d bytes", b)
	}
}

func (r *raw) u16pad() *raw { r.Write([]byte{0, 0}); return r }
