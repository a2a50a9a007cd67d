package model

import (
	"math"
	"slices"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/testmodel"
)

func TestSparsify(t *testing.T) {
	weights := []float32{0, 0.5, 0, 2, 0.1, 2, 0, 1.5, float32(math.NaN()), 0.3}
	tests := []struct {
		name    string
		opts    SparseOptions
		indices []int32
		values  []float32
	}{
		{"all non-zero, NaN dropped", SparseOptions{}, []int32{1, 3, 4, 5, 7, 9}, []float32{0.5, 2, 0.1, 2, 1.5, 0.3}},
		{"threshold is strict", SparseOptions{Threshold: 0.3}, []int32{1, 3, 5, 7}, []float32{0.5, 2, 2, 1.5}},
		{"top 3 by value, sorted by index", SparseOptions{TopK: 3}, []int32{3, 5, 7}, []float32{2, 2, 1.5}},
		{"top 1 tie keeps the lower index", SparseOptions{TopK: 1}, []int32{3}, []float32{2}},
		{"top k above the count keeps all", SparseOptions{TopK: 100}, []int32{1, 3, 4, 5, 7, 9}, []float32{0.5, 2, 0.1, 2, 1.5, 0.3}},
		{"top k and threshold", SparseOptions{TopK: 5, Threshold: 0.4}, []int32{1, 3, 5, 7}, []float32{0.5, 2, 2, 1.5}},
		{"threshold above everything", SparseOptions{Threshold: 5}, []int32{}, []float32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Sparsify(weights, tc.opts)
			if !slices.Equal(v.Indices, tc.indices) || !slices.Equal(v.Values, tc.values) {
				t.Errorf("got %v %v, want %v %v", v.Indices, v.Values, tc.indices, tc.values)
			}
		})
	}
}

func TestSparseOptionsValidate(t *testing.T) {
	tests := []struct {
		opts SparseOptions
		ok   bool
	}{
		{SparseOptions{}, true},
		{SparseOptions{TopK: 10, Threshold: 0.5}, true},
		{SparseOptions{TopK: -1}, false},
		{SparseOptions{Threshold: -0.1}, false},
		{SparseOptions{Threshold: float32(math.NaN())}, false},
		{SparseOptions{Threshold: float32(math.Inf(1))}, false},
	}
	for _, tc := range tests {
		if err := tc.opts.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.opts, err, tc.ok)
		}
	}
}

var sparseTexts = []string{
	"the quick brown fox jumps over the lazy dog",
	"splade expands queries with related vocabulary terms.",
	"a",
	"",
}

// TestEmbedSparseMatchesReference runs texts of the real vocabulary (30522 entries, so the
// decoder spans many output chunks) through synthetic SPLADE models and compares the sparse
// vectors with the float64 reference: the same non-zero set, values within 1e-3 relative.
//
// A logit within float32 rounding of zero can land on either side of the relu; the reference
// values of such entries are below deadBand (log1p of a tiny logit), so an entry counts as part of
// the non-zero set when its reference value exceeds deadBand and must then be present, and an
// entry below it may only appear with a value under 2*deadBand.
func TestEmbedSparseMatchesReference(t *testing.T) {
	const deadBand = 1e-4
	tests := []struct {
		name     string
		typ      gguf.Type
		sh       shape
		tied     bool
		shift    float32 // of mlm.bias; the tied decoder (token_embd) gives larger logits
		rel, abs float64
	}{
		{"f32 decoder", gguf.TypeF32, shape{64, 4, 128}, false, -3, 1e-3, 1e-5},
		{"f32 tied decoder", gguf.TypeF32, shape{64, 4, 128}, true, -10, 1e-3, 1e-5},
		{"f16 decoder", gguf.TypeF16, shape{64, 4, 128}, false, -3, 1e-3, 1e-5},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRealVocabModel(t, testmodel.Config{Embd: tc.sh.embd, Heads: tc.sh.heads, FF: tc.sh.ff,
				Layers: 2, Context: 64, WeightType: tc.typ, Pooling: 1, Head: testmodel.HeadSplade,
				TieDecoder: tc.tied, Seed: uint64(90 + i), SpladeBias: tc.shift})
			ref := loadReference(t, path)
			m := mustLoad(t, path, Options{Kind: KindSparse, Threads: 2})
			got, err := m.EmbedSparse(sparseTexts, SparseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(sparseTexts) {
				t.Fatalf("%d vectors for %d texts", len(got), len(sparseTexts))
			}
			for j, text := range sparseTexts {
				enc := m.Tokenizer().Encode(text)
				want, err := ref.Splade(enc.IDs, enc.TypeIDs)
				if err != nil {
					t.Fatal(err)
				}
				v := got[j]
				if !slices.IsSorted(v.Indices) || len(v.Indices) != len(v.Values) {
					t.Fatalf("text %d: indices not sorted or lengths differ", j)
				}
				have := map[int32]float32{}
				for k, idx := range v.Indices {
					if k > 0 && idx == v.Indices[k-1] {
						t.Fatalf("text %d: index %d repeated", j, idx)
					}
					if !(v.Values[k] > 0) {
						t.Fatalf("text %d: entry %d has value %g", j, idx, v.Values[k])
					}
					have[idx] = v.Values[k]
				}
				nonzero, worstRel := 0, 0.0
				for idx, w := range want {
					g, present := have[int32(idx)]
					switch {
					case w > deadBand:
						nonzero++
						if !present {
							t.Errorf("text %d: entry %d missing, reference %.6g", j, idx, w)
							continue
						}
						d := math.Abs(float64(g) - w)
						if w > 0.01 {
							worstRel = math.Max(worstRel, d/w)
						}
						if d > tc.rel*w+tc.abs {
							t.Errorf("text %d entry %d: %.6g, reference %.6g", j, idx, g, w)
						}
					case present && float64(g) > 2*deadBand:
						t.Errorf("text %d: entry %d = %.6g, reference %.3g", j, idx, g, w)
					}
				}
				t.Logf("text %d: %d of %d entries non-zero, largest relative difference %.2e (entries > 0.01)", j, nonzero, len(want), worstRel)
				if nonzero == 0 || nonzero > len(want)/2 {
					t.Errorf("text %d: %d non-zero entries: not a sparse test", j, nonzero)
				}
			}
		})
	}
}

// TestEmbedSparseQuantized measures the default int8 path of a Q8_0 SPLADE model against the
// reference; its tolerance is the measured error with margin.
func TestEmbedSparseQuantized(t *testing.T) {
	path := writeRealVocabModel(t, testmodel.Config{Embd: blockShape.embd, Heads: blockShape.heads, FF: blockShape.ff,
		Layers: 2, WeightType: gguf.TypeQ8_0, Pooling: 1, Head: testmodel.HeadSplade, Seed: 95, SpladeBias: -3})
	ref := loadReference(t, path)
	m := mustLoad(t, path, Options{Kind: KindSparse, Threads: 2})
	got, err := m.EmbedSparse(sparseTexts[:2], SparseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const tol = 0.1 // absolute, on values up to ~3
	for j := range got {
		enc := m.Tokenizer().Encode(sparseTexts[j])
		want, err := ref.Splade(enc.IDs, enc.TypeIDs)
		if err != nil {
			t.Fatal(err)
		}
		dense := make([]float64, len(want))
		for k, idx := range got[j].Indices {
			dense[idx] = float64(got[j].Values[k])
		}
		worst := 0.0
		for k := range want {
			worst = math.Max(worst, math.Abs(dense[k]-want[k]))
		}
		t.Logf("text %d: largest absolute difference %.3e (tolerance %g)", j, worst, tol)
		if !(worst <= tol) {
			t.Errorf("text %d: largest absolute difference %.3e over %g", j, worst, tol)
		}
	}
}

func TestEmbedSparseOptionsAndTokens(t *testing.T) {
	path := writeRealVocabModel(t, testmodel.Config{Embd: 64, Heads: 4, FF: 128, Layers: 1,
		WeightType: gguf.TypeF32, Pooling: 1, Head: testmodel.HeadSplade, Seed: 99})
	m := mustLoad(t, path, Options{Kind: KindSparse, Threads: 2})
	full, err := m.EmbedSparse(sparseTexts[:1], SparseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top, err := m.EmbedSparse(sparseTexts[:1], SparseOptions{TopK: 5, Threshold: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	// The top-5 entries must be the five largest of the full vector.
	want := Sparsify(slicesDense(full[0], m.Info().Vocab), SparseOptions{TopK: 5, Threshold: 0.01})
	if !slices.Equal(top[0].Indices, want.Indices) || !slices.Equal(top[0].Values, want.Values) || len(want.Indices) != 5 {
		t.Errorf("top 5: %v %v, want %v %v", top[0].Indices, top[0].Values, want.Indices, want.Values)
	}
	toks, err := m.TokenStrings([]int32{101, 102, 2829, 4419, 14523})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(toks, []string{"[CLS]", "[SEP]", "brown", "fox", "jumps"}) {
		t.Errorf("tokens %q", toks)
	}
	if _, err := m.TokenStrings([]int32{int32(m.Info().Vocab)}); err == nil {
		t.Error("TokenStrings out of range: no error")
	}
	if _, err := m.EmbedSparse(sparseTexts, SparseOptions{TopK: -1}); err == nil {
		t.Error("negative top_k: no error")
	}
	if _, err := m.EmbedSparse(nil, SparseOptions{}); err == nil {
		t.Error("no texts: no error")
	}
	dense := writeRealVocabModel(t, testmodel.Config{Embd: 32, Heads: 2, FF: 32, Layers: 1,
		WeightType: gguf.TypeF32, Pooling: 1})
	dm := mustLoad(t, dense, Options{Threads: 1})
	if _, err := dm.EmbedSparse([]string{"x"}, SparseOptions{}); err == nil {
		t.Error("EmbedSparse on an embeddings model: no error")
	}
}

func slicesDense(v SparseVector, n int) []float32 {
	out := make([]float32, n)
	for k, idx := range v.Indices {
		out[idx] = v.Values[k]
	}
	return out
}

// BenchmarkSparseCorpus embeds the whole benchmark corpus per iteration with a MiniLM-sized SPLADE
// model (untied Q8_0 decoder over the 30522-entry vocabulary) on 2 threads and reports texts/s.
func BenchmarkSparseCorpus(b *testing.B) {
	texts := benchCorpus(b)
	m, err := Load(writeMiniLMSized(b, testmodel.HeadSplade), Options{Kind: KindSparse, Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	tokens := 0
	for _, t := range texts {
		tokens += len(m.Tokenizer().Encode(t).IDs)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.EmbedSparse(texts, SparseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(texts)*b.N)/b.Elapsed().Seconds(), "texts/s")
	b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
