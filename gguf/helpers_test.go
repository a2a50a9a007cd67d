package gguf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// raw assembles GGUF bytes field by field, so tests can build files the Writer refuses to make.
type raw struct{ bytes.Buffer }

func (r *raw) u8(v uint8) *raw { r.WriteByte(v); return r }
func (r *raw) u32(v uint32) *raw {
	_ = binary.Write(&r.Buffer, binary.LittleEndian, v)
	return r
}
func (r *raw) u64(v uint64) *raw {
	_ = binary.Write(&r.Buffer, binary.LittleEndian, v)
	return r
}
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }

// header writes magic, version and counts.
func (r *raw) header(version uint32, tensors, kvs uint64) *raw {
	r.WriteString(Magic)
	return r.u32(version).u64(tensors).u64(kvs)
}

// tensor writes one tensor info.
func (r *raw) tensor(name string, dims []uint64, typ Type, off uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}

// pad zero-fills to a multiple of a, then appends n data bytes of a recognisable pattern.
func (r *raw) data(a, n int) []byte {
	for r.Len()%a != 0 {
		r.WriteByte(0)
	}
	for i := 0; i < n; i++ {
		r.WriteByte(byte(i*7 + 1))
	}
	return r.Bytes()
}

// pattern returns n bytes of deterministic filler.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*31)
	}
	return b
}

// smallModel writes a small valid file with every value type, nested arrays and three tensors.
// Its last tensor ends exactly at the end of the file, so every truncation of it is invalid.
func smallModel(t testing.TB) []byte {
	t.Helper()
	w := NewWriter()
	w.Set("general.architecture", Str("bert"))
	w.Set("u8", Uint8(200))
	w.Set("i8", Int8(-100))
	w.Set("u16", Uint16(60000))
	w.Set("i16", Int16(-30000))
	w.Set("u32", Uint32(4000000000))
	w.Set("i32", Int32(-2000000000))
	w.Set("f32", Float32(1.5))
	w.Set("bool", Bool(true))
	w.Set("u64", Uint64(1<<63+5))
	w.Set("i64", Int64(-1<<62))
	w.Set("f64", Float64(-2.25))
	w.Set("tokens", StrArray([]string{"[PAD]", "hello", "", "##ing"}))
	w.Set("nested", ArrayOf(ValueArray,
		StrArray([]string{"a", "bc"}),
		ArrayOf(ValueString),
		StrArray([]string{"d"})))
	w.Set("empty", ArrayOf(ValueInt32))
	mustAdd(t, w, "a.weight", TypeQ8_0, []uint64{32, 2}, pattern(68, 1))
	mustAdd(t, w, "b.bias", TypeF16, []uint64{3}, pattern(6, 2))
	mustAdd(t, w, "c.weight", TypeF32, []uint64{4, 2}, pattern(32, 3))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustAdd(t testing.TB, w *Writer, name string, typ Type, dims []uint64, data []byte) {
	t.Helper()
	if err := w.AddTensor(name, typ, dims, data); err != nil {
		t.Fatal(err)
	}
}
