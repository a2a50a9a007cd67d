package reference

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/testmodel"
	"github.com/embedd-dev/embedd/tokenizer"
)

func TestGELUAndLayerNorm(t *testing.T) {
	tests := []struct{ x, want float64 }{
		{0, 0}, {1, 0.8413447460685429}, {-1, -0.15865525393145707}, {3, 2.9959503059051}, {-5, -1.4332665e-06},
	}
	for _, tc := range tests {
		if got := gelu(tc.x); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("gelu(%g) = %.12g, want %.12g", tc.x, got, tc.want)
		}
	}
	// LayerNorm of [1,2,3,4] with gain 2 and bias 1: mean 2.5, variance 1.25.
	x := []float64{1, 2, 3, 4}
	g := &matrix{n: 1, k: 4, v: []float64{2, 2, 2, 2}}
	b := &matrix{n: 1, k: 4, v: []float64{1, 1, 1, 1}}
	layerNorm(x, g, b, 0)
	for i, v := range []float64{-1.5, -0.5, 0.5, 1.5} {
		want := v/math.Sqrt(1.25)*2 + 1
		if math.Abs(x[i]-want) > 1e-12 {
			t.Errorf("layerNorm[%d] = %g, want %g", i, x[i], want)
		}
	}
}

// TestRealModelPublishedVectors checks the reference itself against the published full-precision
// outputs of all-MiniLM-L6-v2: only Q4_K_M weight rounding separates them.
func TestRealModelPublishedVectors(t *testing.T) {
	shared, err := testmodel.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(shared, "testdata", "minilm_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pub struct {
		Embeddings []struct {
			Text   string
			Vector []float32
		}
	}
	if err := json.Unmarshal(raw, &pub); err != nil || len(pub.Embeddings) == 0 {
		t.Fatalf("published vectors: %v", err)
	}
	path, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range pub.Embeddings {
		enc := tok.Encode(e.Text)
		v, err := m.Embed(enc.IDs, enc.TypeIDs, PoolMean, false)
		if err != nil {
			t.Fatal(err)
		}
		c := Cosine(v, e.Vector)
		t.Logf("%-45q cosine %.5f", e.Text, c)
		if c < minPublishedCosine || math.IsNaN(c) {
			t.Errorf("%q: cosine %.5f < %g", e.Text, c, minPublishedCosine)
		}
	}
}

// minPublishedCosine is the agreement expected with the published full-precision vectors. Exact
// float64 arithmetic on the Q4_K_M weights reaches 0.9889 on "Deep Learning is..." (0.992-0.994 on
// the others): that is the file's quantization error, so 0.99 would fail on the weights alone.
const minPublishedCosine = 0.985

func TestHeadsAndPoolingsOnSynthetic(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, cfg testmodel.Config) *Model {
		p := filepath.Join(dir, name)
		if err := testmodel.Write(p, cfg); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ids, types := []int32{testmodel.ClsID, 10, 11, 12, testmodel.SepID}, []int32{0, 0, 1, 1, 1}
	emb := write("e.gguf", testmodel.Config{Embd: 16, Heads: 2, FF: 24, Vocab: 50, WeightType: gguf.TypeF32, Pooling: 1, Seed: 1})
	h, err := emb.Hidden(ids, types)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pooling int
		want    []float64
	}{{PoolCLS, h[0]}, {PoolLast, h[len(h)-1]}}
	for _, tc := range tests {
		got, err := emb.Embed(ids, types, tc.pooling, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("pooling %d differs from the token state at %d", tc.pooling, i)
			}
		}
	}
	mean, _ := emb.Embed(ids, types, PoolMean, true)
	var n float64
	for _, v := range mean {
		n += v * v
	}
	if math.Abs(n-1) > 1e-12 {
		t.Errorf("normalised squared norm %g", n)
	}
	// Token types matter.
	other, _ := emb.Embed(ids, nil, PoolMean, true)
	if c := cosineF64(mean, other); c > 0.999999 {
		t.Errorf("token types changed nothing (cosine %g)", c)
	}

	splade := write("s.gguf", testmodel.Config{Embd: 16, Heads: 2, FF: 24, Vocab: 50, WeightType: gguf.TypeF32,
		Head: testmodel.HeadSplade, TieDecoder: true, Seed: 2})
	sv, err := splade.Splade(ids, types)
	if err != nil {
		t.Fatal(err)
	}
	zeros := 0
	for _, v := range sv {
		if v < 0 || math.IsNaN(v) {
			t.Fatalf("SPLADE weight %g", v)
		}
		if v == 0 {
			zeros++
		}
	}
	if len(sv) != 50 || zeros == 0 || zeros == 50 {
		t.Errorf("SPLADE: %d entries, %d zero", len(sv), zeros)
	}

	rank := write("r.gguf", testmodel.Config{Embd: 16, Heads: 2, FF: 24, Vocab: 50, WeightType: gguf.TypeF32,
		Pooling: 4, Head: testmodel.HeadRank, Labels: []string{"a", "b"}, Seed: 3})
	rv, err := rank.Rank(ids, types)
	if err != nil || len(rv) != 2 {
		t.Fatalf("rank: %v %v", rv, err)
	}

	for _, bad := range []struct {
		ids, types []int32
	}{{nil, nil}, {[]int32{50}, nil}, {[]int32{-1}, nil}, {[]int32{1, 2}, []int32{0, 2}}, {make([]int32, 65), nil}} {
		if _, err := emb.Hidden(bad.ids, bad.types); err == nil {
			t.Errorf("ids %v types %v accepted", bad.ids, bad.types)
		}
	}
}

func cosineF64(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}
