package model

import (
	"math"
	"testing"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/testmodel"
)

// shortLens are lengths of inputs run alone: with 2 threads those under 8 tokens take the engine's
// step-by-step path (every product split over the workers by columns), longer ones the row-local
// path (each worker carries its own rows through a layer); with 3 threads the step path goes up to
// 11 tokens; with 1 thread every input of 4 tokens or more is row-local.
var shortLens = []int{2, 3, 5, 7, 8, 11, 12, 16, 33}

// TestShortInputsSameOnEveryThreadCount checks that an input run alone gives the same vector, bit
// for bit, whatever the thread count and so whichever path the engine takes, for each kind of
// weights (float, int8, int8 with offsets, K-quants, the GGUF blocks mode, a fused QKV of mixed
// types) at every SIMD level.
func TestShortInputsSameOnEveryThreadCount(t *testing.T) {
	smallShape := shape{128, 4, 192} // two 64-output column groups per hidden-sized product
	tests := []struct {
		name  string
		typ   gguf.Type
		shape shape
		types map[string]gguf.Type
	}{
		{"F32", gguf.TypeF32, smallShape, nil},
		{"F16", gguf.TypeF16, smallShape, nil},
		{"Q8_0", gguf.TypeQ8_0, smallShape, nil},
		{"Q5_0", gguf.TypeQ5_0, smallShape, nil},
		{"Q4_1", gguf.TypeQ4_1, smallShape, nil},
		{"Q4_K", gguf.TypeQ4_K, kShape, nil},
		{"Q6_K", gguf.TypeQ6_K, kShape, nil},
		{"mixed QKV", gguf.TypeQ5_0, smallShape, map[string]gguf.Type{
			"blk.0.attn_k.weight": gguf.TypeF16, "blk.1.attn_v.weight": gguf.TypeQ8_0}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeModel(t, testmodel.Config{
				Embd: tc.shape.embd, Heads: tc.shape.heads, FF: tc.shape.ff, Vocab: 120,
				WeightType: tc.typ, Types: tc.types, Pooling: 1, Seed: uint64(300 + i),
			})
			inputs := randomInputs(uint64(40+i), shortLens, 120, 2)
			for _, mode := range []bindings.WeightMode{bindings.WeightsAuto, bindings.WeightsBlocks} {
				models := make([]*Model, 3)
				for n := range models {
					models[n] = mustLoad(t, path, Options{Threads: n + 1, WeightMode: mode})
				}
				eachSIMD(t, func(level string) {
					for _, in := range inputs {
						var want []float32
						for n, m := range models {
							got, err := m.Run([]Input{in}, false)
							if err != nil {
								t.Fatalf("mode %d %s, %d threads: %v", mode, level, n+1, err)
							}
							if n == 0 {
								want = got[0]
								continue
							}
							if j, ok := sameBits(want, got[0]); !ok {
								t.Errorf("mode %d %s, %d tokens: %d threads give [%d] = %g, 1 thread %g",
									mode, level, len(in.IDs), n+1, j, got[0][j], want[j])
							}
						}
					}
				})
			}
		})
	}
}

// sameBits reports whether a and b hold the same float32 bit patterns, and if not, the first index
// where they differ.
func sameBits(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return 0, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}
