package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
)

// This file reads the bundled real model with its own minimal GGUF parser (deliberately not
// package gguf, so the two readers check each other and this package depends only on gguf.Type).

const modelFile = "all-MiniLM-L6-v2-Q4_K_M.gguf"

type modelTensor struct {
	name string
	dims []uint64
	typ  gguf.Type
	n    int64
	data []byte
}

// ggufReader is a bounds-checked little-endian cursor.
type ggufReader struct {
	buf []byte
	off uint64
	err error
}

func (r *ggufReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.buf))-r.off {
		r.err = fmt.Errorf("truncated at offset %d reading %d bytes", r.off, n)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

func (r *ggufReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *ggufReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *ggufReader) str() string { return string(r.take(r.u64())) }

// skipValue skips a metadata value of GGUF value type vt, returning it when it is a uint32 (for
// general.alignment).
func (r *ggufReader) skipValue(vt uint32, depth int) (uint64, bool) {
	fixed := map[uint32]uint64{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	switch {
	case vt == 4:
		return uint64(r.u32()), true
	case fixed[vt] != 0:
		r.take(fixed[vt])
	case vt == 8:
		r.str()
	case vt == 9 && depth == 0:
		et, count := r.u32(), r.u64()
		if count > uint64(len(r.buf)) {
			r.err = fmt.Errorf("array of %d elements in a %d-byte file", count, len(r.buf))
			return 0, false
		}
		for i := uint64(0); i < count && r.err == nil; i++ {
			r.skipValue(et, depth+1)
		}
	default:
		r.err = fmt.Errorf("unknown or nested metadata value type %d", vt)
	}
	return 0, false
}

func readModelTensors(data []byte) ([]modelTensor, error) {
	r := &ggufReader{buf: data}
	if string(r.take(4)) != "GGUF" {
		return nil, errors.New("not a GGUF file")
	}
	if v := r.u32(); v != 3 && v != 2 {
		return nil, fmt.Errorf("GGUF version %d", v)
	}
	nTensors, nKV := r.u64(), r.u64()
	if nTensors > 1<<16 || nKV > 1<<16 {
		return nil, fmt.Errorf("implausible counts %d tensors, %d keys", nTensors, nKV)
	}
	alignment := uint64(32)
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		key := r.str()
		v, isU32 := r.skipValue(r.u32(), 0)
		if key == "general.alignment" && isU32 {
			alignment = v
		}
	}
	if alignment == 0 || alignment&(alignment-1) != 0 {
		return nil, fmt.Errorf("bad alignment %d", alignment)
	}
	type rawInfo struct {
		t   modelTensor
		off uint64
	}
	infos := make([]rawInfo, 0, nTensors)
	for i := uint64(0); i < nTensors && r.err == nil; i++ {
		var ti modelTensor
		ti.name = r.str()
		nd := r.u32()
		if nd == 0 || nd > 4 {
			return nil, fmt.Errorf("tensor %q: %d dims", ti.name, nd)
		}
		ti.n = 1
		for d := uint32(0); d < nd; d++ {
			dim := r.u64()
			if dim == 0 || dim > 1<<40 || uint64(ti.n) > (1<<62)/dim {
				return nil, fmt.Errorf("tensor %q: bad dimension %d", ti.name, dim)
			}
			ti.dims = append(ti.dims, dim)
			ti.n *= int64(dim)
		}
		ti.typ = gguf.Type(r.u32())
		infos = append(infos, rawInfo{ti, r.u64()})
	}
	if r.err != nil {
		return nil, r.err
	}
	base := (r.off + alignment - 1) / alignment * alignment
	out := make([]modelTensor, 0, len(infos))
	for _, in := range infos {
		ti := in.t
		if ti.dims[0]%uint64(max(1, ti.typ.BlockElems())) != 0 {
			return nil, fmt.Errorf("tensor %q: row of %d is not whole %v blocks", ti.name, ti.dims[0], ti.typ)
		}
		size, err := ti.typ.RowBytes(ti.n)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", ti.name, err)
		}
		if in.off > uint64(len(data)) || base > uint64(len(data))-in.off || uint64(size) > uint64(len(data))-base-in.off {
			return nil, fmt.Errorf("tensor %q: data [%d+%d, +%d) outside the file", ti.name, base, in.off, size)
		}
		ti.data = data[base+in.off : base+in.off+uint64(size)]
		out = append(out, ti)
	}
	return out, nil
}

func loadModel(tb testing.TB) []modelTensor {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(self), "..", "models", modelFile)
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("the bundled model is part of the repository: %v", err)
	}
	tensors, err := readModelTensors(data)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return tensors
}

// TestRealModelTensors dequantizes every tensor of the bundled model: every value finite, every
// tensor's RMS in a sane range, and every block type of the file covered.
func TestRealModelTensors(t *testing.T) {
	tensors := loadModel(t)
	if len(tensors) != 101 {
		t.Errorf("%d tensors, want 101 (6 layers x 16 + 5)", len(tensors))
	}
	types := map[gguf.Type]int{}
	var total int64
	for _, ti := range tensors {
		types[ti.typ]++
		total += ti.n
		y, err := Dequantize(ti.typ, ti.data, ti.n)
		if err != nil {
			t.Errorf("%s: %v", ti.name, err)
			continue
		}
		var ss float64
		for i, v := range y {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s (%v): element %d is %v", ti.name, ti.typ, i, v)
			}
			ss += float64(v) * float64(v)
		}
		rms := math.Sqrt(ss / float64(len(y)))
		// Weight matrices and embeddings sit well inside [1e-3, 10]. Vectors get a lower floor:
		// BERT's attention key biases train to nearly zero (a key bias shifts every score of a
		// query equally, which softmax ignores), and this model's are RMS 5e-4..1e-3.
		lo := 1e-3
		if len(ti.dims) == 1 {
			lo = 1e-4
		}
		if rms < lo || rms > 10 {
			t.Errorf("%s (%v %v): RMS %.4g outside [%g, 10]", ti.name, ti.typ, ti.dims, rms, lo)
		}
		// Wrong lengths are refused for real tensors too.
		if _, err := Dequantize(ti.typ, ti.data[:len(ti.data)-1], ti.n); err == nil {
			t.Errorf("%s: truncated data accepted", ti.name)
		}
	}
	t.Logf("%d tensors, %d elements, types %v", len(tensors), total, types)
	for _, want := range []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ5_0, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeF32} {
		if types[want] == 0 {
			t.Errorf("the model has no %v tensor: the file changed?", want)
		}
	}
	if total < 20e6 || total > 25e6 {
		t.Errorf("%d elements in the model, want about 22M", total)
	}
}

// TestRealModelRequantize re-encodes the model's tensors from their dequantized values. For Q8_0
// and Q5_0, ggml's reference quantizer maps its own output back to the same bytes, and so must
// ours (this is what pins our simple quantizers to ggml's). For the K types the scale search is
// our own, so only the error against the file's values is bounded.
func TestRealModelRequantize(t *testing.T) {
	tensors := loadModel(t)
	kErr := map[gguf.Type]float64{gguf.TypeQ4_K: 0.01, gguf.TypeQ6_K: 0.005} // measured <= 0.0025, 0.0004
	for _, ti := range tensors {
		if !ti.typ.Quantized() || ti.n > 1<<21 && ti.typ != gguf.TypeQ8_0 && ti.typ != gguf.TypeQ5_0 {
			continue // keep the test quick: K tensors up to 2M elements suffice
		}
		y, err := Dequantize(ti.typ, ti.data, ti.n)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := Quantize(ti.typ, y)
		if err != nil {
			t.Fatalf("%s: %v", ti.name, err)
		}
		switch ti.typ {
		case gguf.TypeQ8_0, gguf.TypeQ5_0:
			for i := range enc {
				if enc[i] != ti.data[i] {
					bs := int(ti.typ.BlockBytes())
					t.Fatalf("%s (%v): byte %d of block %d re-encodes as %#02x, file has %#02x",
						ti.name, ti.typ, i%bs, i/bs, enc[i], ti.data[i])
				}
			}
		default:
			z, err := Dequantize(ti.typ, enc, ti.n)
			if err != nil {
				t.Fatal(err)
			}
			e := relRMS(y, z)
			t.Logf("%s (%v %v): re-encoded rel RMS %.4f", ti.name, ti.typ, ti.dims, e)
			if bound, ok := kErr[ti.typ]; !ok || e > bound {
				t.Errorf("%s (%v): re-encoded rel RMS %.4f, bound %v", ti.name, ti.typ, e, bound)
			}
		}
	}
}

// BenchmarkDequantizeModel dequantizes every tensor of the bundled model (~22M weights) once per
// iteration into preallocated buffers.
func BenchmarkDequantizeModel(b *testing.B) {
	tensors := loadModel(b)
	bufs := make([][]float32, len(tensors))
	var total int64
	for i, ti := range tensors {
		bufs[i] = make([]float32, ti.n)
		total += ti.n
	}
	b.SetBytes(total * 4)
	b.ResetTimer()
	for b.Loop() {
		for i, ti := range tensors {
			if err := DequantizeInto(ti.typ, ti.data, bufs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(total), "ns/weight")
}

// BenchmarkQuantize measures each quantizer on 64K gaussian values.
func BenchmarkQuantize(b *testing.B) {
	x := gaussian(1<<16, 1, false)
	for _, typ := range allTypes {
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(len(x)) * 4)
			for b.Loop() {
				if _, err := Quantize(typ, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
