package gguf

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// kv starts a file with one metadata key of type typ; the caller appends the value.
func kv(key string, typ ValueType) *raw {
	r := &raw{}
	r.header(3, 0, 1).str(key).u32(uint32(typ))
	return r
}

// oneTensor makes a file holding one tensor info and dataLen bytes of data.
func oneTensor(name string, dims []uint64, typ Type, off uint64, dataLen int) []byte {
	r := &raw{}
	r.header(3, 1, 0).tensor(name, dims, typ, off)
	return r.data(32, dataLen)
}

type corruptCase struct {
	name string
	data []byte
	want string
}

// corruptCases are invalid files and the error each must produce; FuzzParse also seeds from them.
func corruptCases(t testing.TB) []corruptCase {
	deep := kv("deep", ValueArray)
	for i := 0; i < MaxArrayDepth; i++ {
		deep.u32(uint32(ValueArray)).u64(1)
	}
	deep.u32(uint32(ValueUint8)).u64(0)

	return []corruptCase{
		{"empty", nil, "too short for a GGUF header"},
		{"magic only", []byte("GGUF"), "too short for a GGUF header"},
		{"bad magic", func() []byte { b := smallModel(t); copy(b, "GGML"); return b }(), `bad magic "GGML"`},
		{"version 1", func() []byte { b := smallModel(t); b[4] = 1; return b }(), "unsupported GGUF version 1"},
		{"version 4", func() []byte { b := smallModel(t); b[4] = 4; return b }(), "unsupported GGUF version 4"},
		{"byte-swapped version", func() []byte {
			b := smallModel(t)
			binary.BigEndian.PutUint32(b[4:], 3)
			return b
		}(), "big-endian GGUF not supported"},
		{"byte-swapped magic", func() []byte { b := smallModel(t); copy(b, "FUGG"); return b }(), "big-endian GGUF not supported"},
		{"header cut after version", smallModel(t)[:12], "too short"},
		{"huge tensor count", (&raw{}).header(3, 1<<60, 0).Bytes(), "tensor count 1152921504606846976"},
		{"huge kv count", (&raw{}).header(3, 0, math.MaxUint64).Bytes(), "metadata key count"},
		{"counts fit alone, not together", func() []byte {
			r := (&raw{}).header(3, 2, 2)
			return r.data(1, 50) // 50 bytes: 2 tensors (48) or 2 keys (26), not both
		}(), "cannot fit"},
		{"key length past end", (&raw{}).header(3, 0, 1).u64(1000).u32(0).u8(0).Bytes(), "metadata key #0 length 1000 at offset 24 runs past end of file"},
		{"key length overflows", (&raw{}).header(3, 0, 1).u64(math.MaxUint64).u32(0).u8(0).Bytes(), "runs past end of file"},
		{"string value past end", kv("k", ValueString).u64(500).str("abc").Bytes(), `metadata key "k": string length 500`},
		{"array length huge", kv("k", ValueArray).u32(uint32(ValueUint32)).u64(1 << 62).u32(1).Bytes(), "array length 4611686018427387904"},
		{"array of strings past end", kv("k", ValueArray).u32(uint32(ValueString)).u64(2).str("ok").u64(9).u8('x').Bytes(), "array element 1: string length 9"},
		{"too many array elements", func() []byte {
			r := kv("big", ValueArray).u32(uint32(ValueArray)).u64(2)
			r.u32(uint32(ValueUint8)).u64(MaxArrayValues / 2)
			r.Write(make([]byte, MaxArrayValues/2))
			r.u32(uint32(ValueUint8)).u64(MaxArrayValues/2 + 1)
			r.Write(make([]byte, MaxArrayValues/2+1))
			return r.Bytes()
		}(), "past 4194304 array elements"},
		{"unknown value type", kv("k", ValueType(13)).u32(0).Bytes(), `metadata key "k": unknown value type 13`},
		{"unknown element type", kv("k", ValueArray).u32(13).u64(0).Bytes(), "unknown element type 13"},
		{"arrays nested too deep", deep.Bytes(), "nested more than 32 deep"},
		{"bool not 0 or 1", kv("b", ValueBool).u8(2).Bytes(), "bool value at offset 37 is 2"},
		{"duplicate key", func() []byte {
			r := (&raw{}).header(3, 0, 2)
			r.str("k").u32(uint32(ValueUint8)).u8(1)
			r.str("k").u32(uint32(ValueUint8)).u8(2)
			return r.Bytes()
		}(), `metadata key "k" appears twice`},
		{"alignment zero", kv(AlignmentKey, ValueUint32).u32(0).Bytes(), "general.alignment 0 is not a power of two"},
		{"alignment 48", kv(AlignmentKey, ValueUint32).u32(48).Bytes(), "general.alignment 48 is not a power of two"},
		{"alignment 2^40", kv(AlignmentKey, ValueUint64).u64(1 << 40).Bytes(), "is not a power of two between 1 and 1048576"},
		{"alignment 2^21", kv(AlignmentKey, ValueUint32).u32(1 << 21).Bytes(), "general.alignment 2097152 is not a power of two"},
		{"alignment negative", kv(AlignmentKey, ValueInt32).u32(math.MaxUint32).Bytes(), "not a non-negative integer"},
		{"alignment string", kv(AlignmentKey, ValueString).str("32").Bytes(), "not a non-negative integer"},
		{"tensor name past end", (&raw{}).header(3, 1, 0).u64(100).data(1, 30), "tensor #0 name length 100"},
		{"tensor offset misaligned", oneTensor("t", []uint64{4}, TypeF32, 4, 64), `tensor "t": data offset 4 is not a multiple of the alignment 32`},
		{"tensor runs past end", oneTensor("blk.0.attn_q.weight", []uint64{8}, TypeF32, 32, 40),
			`tensor "blk.0.attn_q.weight": data [128, 160) runs past end of file (size 136)`},
		{"tensor offset overflows", oneTensor("t", []uint64{64}, TypeF32, math.MaxUint64-31, 64), "overflows"},
		{"tensor huge offset", oneTensor("t", []uint64{1}, TypeF32, 1<<62, 64), "runs past end of file"},
		{"unknown tensor type", oneTensor("t", []uint64{4}, Type(99), 0, 64), `tensor "t": unknown tensor type 99`},
		{"too many dims", oneTensor("t", []uint64{1, 1, 1, 1, 1}, TypeF32, 0, 64), "5 dimensions, more than 4"},
		{"dims claimed huge", (&raw{}).header(3, 1, 0).str("t").u32(math.MaxUint32).data(1, 40), "4294967295 dimensions"},
		{"dimension beyond int64", oneTensor("t", []uint64{1 << 63}, TypeF32, 0, 64), "does not fit int64"},
		{"element count overflow", oneTensor("t", []uint64{1 << 32, 1 << 32}, TypeF32, 0, 64), "element count overflows"},
		{"byte size overflow", oneTensor("t", []uint64{1 << 31, 1 << 31}, TypeF32, 0, 64), "byte size overflows"},
		{"partial quant block", oneTensor("t", []uint64{33}, TypeQ8_0, 0, 64), "not a whole number of Q8_0 blocks"},
		{"duplicate tensor names", func() []byte {
			r := (&raw{}).header(3, 2, 0)
			r.tensor("w", []uint64{8}, TypeF32, 0).tensor("w", []uint64{8}, TypeF32, 32)
			return r.data(32, 64)
		}(), `tensor "w" appears twice`},
		{"overlapping tensors", func() []byte {
			r := (&raw{}).header(3, 2, 0)
			r.tensor("a", []uint64{16}, TypeF32, 0).tensor("b", []uint64{8}, TypeF32, 32)
			return r.data(32, 96)
		}(), `tensor "b": data [128, 160) overlaps tensor "a" [96, 160)`},
		{"data section past end", (&raw{}).header(3, 1, 0).tensor("t", []uint64{1}, TypeF32, 0).Bytes(), "data section at offset 64 starts past end of file (size 57)"},
	}
}

func TestCorruptFiles(t *testing.T) {
	for _, c := range corruptCases(t) {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data, "models/x.gguf")
			if err == nil {
				t.Fatalf("parsed: %d keys, %d tensors", len(f.KVs), len(f.Tensors))
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "models/x.gguf: ") || !strings.Contains(msg, c.want) {
				t.Errorf("error %q\nwant it to start with the file name and contain %q", msg, c.want)
			}
		})
	}
}

// Files at the edges of validity must parse.
func TestUnusualButValid(t *testing.T) {
	cases := []struct {
		name  string
		data  []byte
		check func(t *testing.T, f *File)
	}{
		{"scalar tensor (no dims)", oneTensor("s", nil, TypeF32, 0, 4), func(t *testing.T, f *File) {
			if ti, _ := f.Tensor("s"); ti.Size != 4 || len(ti.Dims) != 0 {
				t.Errorf("scalar: %+v", ti)
			}
		}},
		{"zero-sized dimension", oneTensor("z", []uint64{0, 1 << 62}, TypeQ4_K, 0, 0), func(t *testing.T, f *File) {
			if ti, _ := f.Tensor("z"); ti.Size != 0 || ti.Elems() != 0 {
				t.Errorf("empty: %+v", ti)
			}
			if d, err := f.TensorData("z"); err != nil || len(d) != 0 {
				t.Errorf("TensorData(z) = %v, %v", d, err)
			}
		}},
		{"no tensors and no padding", kv("k", ValueUint8).u8(9).Bytes(), func(t *testing.T, f *File) {
			if v, ok := f.Uint("k"); !ok || v != 9 || len(f.Tensors) != 0 {
				t.Errorf("k = %d, %v", v, ok)
			}
		}},
		{"version 2", func() []byte { b := oneTensor("t", []uint64{2}, TypeF16, 0, 4); b[4] = 2; return b }(), func(t *testing.T, f *File) {
			if f.Version != 2 {
				t.Errorf("version %d", f.Version)
			}
		}},
		{"alignment 1 as uint64", func() []byte {
			r := kv(AlignmentKey, ValueUint64).u64(1)
			b := r.Bytes()
			binary.LittleEndian.PutUint64(b[8:], 1) // one tensor
			r.tensor("t", []uint64{3}, TypeI8, 3)
			return r.data(1, 6)
		}(), func(t *testing.T, f *File) {
			if f.Alignment != 1 {
				t.Errorf("alignment %d", f.Alignment)
			}
			if d, _ := f.TensorData("t"); len(d) != 3 || d[0] != byte(3*7+1) {
				t.Errorf("TensorData(t) = %v", d)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data, "edge")
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, f)
		})
	}
}
