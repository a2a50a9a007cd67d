package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/reference"
	"github.com/embedd-dev/embedd/internal/testmodel"
)

// writeModel writes a synthetic model into the test's temp dir and returns its path.
func writeModel(t *testing.T, cfg testmodel.Config) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.gguf")
	if err := testmodel.Write(p, cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadReference(t *testing.T, path string) *reference.Model {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := reference.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustLoad(t *testing.T, path string, opts Options) *Model {
	t.Helper()
	m, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// randomInputs makes sequences of the given lengths with random ids, [CLS] first and [SEP] last,
// and (if tokenTypes > 1) type 1 on the second half of each sequence, as in a pair.
func randomInputs(seed uint64, lens []int, vocab, tokenTypes int) []Input {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Input, len(lens))
	for i, n := range lens {
		in := Input{IDs: make([]int32, n)}
		for j := range in.IDs {
			in.IDs[j] = int32(rng.IntN(vocab))
		}
		in.IDs[0] = testmodel.ClsID
		if n > 1 {
			in.IDs[n-1] = testmodel.SepID
		}
		if tokenTypes > 1 {
			in.TypeIDs = make([]int32, n)
			for j := n / 2; j < n; j++ {
				in.TypeIDs[j] = 1
			}
		}
		out[i] = in
	}
	return out
}

func cosine32(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.NaN()
	}
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

func cosine64(a []float64, b []float32) float64 { return reference.Cosine(a, b) }

// eachSIMD runs f at every SIMD level this CPU can run and restores the level active before.
func eachSIMD(t *testing.T, f func(level string)) {
	t.Helper()
	before := bindings.ActiveSIMD()
	defer func() {
		if err := bindings.SetSIMD(before); err != nil {
			t.Errorf("restore SIMD level %s: %v", before, err)
		}
	}()
	for _, level := range bindings.SIMDLevels() {
		if err := bindings.SetSIMD(level); err != nil {
			t.Fatalf("SIMDLevels lists %s but SetSIMD fails: %v", level, err)
		}
		if got := bindings.ActiveSIMD(); got != level {
			t.Fatalf("active level %s after SetSIMD(%s)", got, level)
		}
		f(level)
	}
}

func typePtr(t gguf.Type) *gguf.Type { return &t }
