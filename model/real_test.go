package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/reference"
	"github.com/embedd-dev/embedd/internal/testmodel"
)

type published struct {
	Embeddings []struct {
		Text       string    `json:"text"`
		Normalized bool      `json:"normalized"`
		Vector     []float32 `json:"vector"`
	} `json:"embeddings"`
	TokenIDs []struct {
		Text             string  `json:"text"`
		AddSpecialTokens bool    `json:"add_special_tokens"`
		IDs              []int32 `json:"ids"`
	} `json:"token_ids"`
}

func loadPublished(t *testing.T) published {
	t.Helper()
	shared, err := testmodel.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(shared, "testdata", "minilm_reference.json"))
	if err != nil {
		t.Fatalf("published reference outputs: %v", err)
	}
	var p published
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("published reference outputs: %v", err)
	}
	if len(p.Embeddings) == 0 || len(p.TokenIDs) == 0 {
		t.Fatal("published reference outputs: no embeddings or token ids")
	}
	return p
}

func loadReal(t *testing.T, opts Options) *Model { return loadRealB(t, opts) }

func loadRealB(t testing.TB, opts Options) *Model {
	t.Helper()
	p, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestRealModelInfo(t *testing.T) {
	m := loadReal(t, Options{Threads: 2})
	info := m.Info()
	if info.Name != "all-MiniLM-L6-v2" || info.Arch != "bert" || info.Kind != KindEmbeddings || info.Dim != 384 ||
		info.Vocab != 30522 || info.MaxTokens != 512 || info.Layers != 6 || info.Pooling != "mean" ||
		info.Quantization != "Q4_K_M" || info.FileBytes != 20999104 || info.MemoryBytes <= 0 {
		t.Errorf("unexpected info %+v", info)
	}
	short := loadReal(t, Options{Threads: 1, MaxTokens: 16})
	if short.Info().MaxTokens != 16 {
		t.Errorf("MaxTokens %d, want 16", short.Info().MaxTokens)
	}
	enc := short.Tokenizer().Encode(strings.Repeat("word ", 100))
	if len(enc.IDs) != 16 || !enc.Truncated {
		t.Errorf("tokenizer kept %d tokens (truncated %v), want 16", len(enc.IDs), enc.Truncated)
	}
}

func TestRealModelTokenIDs(t *testing.T) {
	pub := loadPublished(t)
	m := loadReal(t, Options{Threads: 1})
	for _, tc := range pub.TokenIDs {
		var got []int32
		if tc.AddSpecialTokens {
			got = m.Tokenizer().Encode(tc.Text).IDs
		} else {
			got, _ = m.Tokenizer().Tokenize(tc.Text)
		}
		if !slices.Equal(got, tc.IDs) {
			t.Errorf("%q (specials %v): ids %v, want %v", tc.Text, tc.AddSpecialTokens, got, tc.IDs)
		}
	}
}

func TestRealModelPublishedVectors(t *testing.T) {
	pub := loadPublished(t)
	m := loadReal(t, Options{Threads: 2})
	path, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	ref := loadReference(t, path)
	texts := make([]string, len(pub.Embeddings))
	// floor[i] is the cosine the engine must reach against published vector i: 0.99, unless the
	// exact float64 forward pass over this file's Q4_K_M weights is itself further than that from
	// the full-precision vector (the file's own quantization error, which no engine can undo);
	// then the engine must come within 0.002 of what exact arithmetic reaches.
	floor := make([]float64, len(pub.Embeddings))
	for i, e := range pub.Embeddings {
		texts[i] = e.Text
		enc := m.Tokenizer().Encode(e.Text)
		exact, err := ref.Embed(enc.IDs, enc.TypeIDs, reference.PoolMean, false)
		if err != nil {
			t.Fatal(err)
		}
		rc := cosine32(e.Vector, toF32(exact))
		floor[i] = math.Min(0.99, rc-0.002)
		t.Logf("%-45q exact float64 on these weights: cosine %.5f to published", e.Text, rc)
	}
	for _, normalize := range []bool{false, true} {
		got, err := m.Embed(texts, normalize)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range pub.Embeddings {
			c := cosine32(e.Vector, got[i])
			t.Logf("normalize=%v %-45q cosine %.5f (floor %.5f)", normalize, e.Text, c, floor[i])
			if c < floor[i] || math.IsNaN(c) {
				t.Errorf("%q: cosine %.5f < %.5f", e.Text, c, floor[i])
			}
			var n float64
			for _, v := range got[i] {
				n += float64(v) * float64(v)
			}
			if normalize && math.Abs(math.Sqrt(n)-1) > 1e-5 {
				t.Errorf("%q: normalised vector has norm %.7f", e.Text, math.Sqrt(n))
			}
			// Unnormalised published vectors also fix the scale.
			if !normalize && !e.Normalized {
				var pn float64
				for _, v := range e.Vector {
					pn += float64(v) * float64(v)
				}
				if r := math.Sqrt(n / pn); r < 0.95 || r > 1.05 {
					t.Errorf("%q: norm ratio %.4f vs published", e.Text, r)
				}
			}
		}
	}
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

var realSentences = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Embeddings map text to vectors.",
	"hello",
	"A cross-encoder scores a query and a document together, which is slower but more accurate than comparing two embeddings.",
}

func TestRealModelVsFloat64Reference(t *testing.T) {
	p, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reference.Load(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		opts Options
	}{{"auto", Options{Threads: 2}}, {"blocks", Options{Threads: 2, WeightMode: 1}}} {
		m := loadReal(t, mode.opts)
		got, err := m.Embed(realSentences, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range realSentences {
			enc := m.Tokenizer().Encode(s)
			want, err := ref.Embed(enc.IDs, enc.TypeIDs, reference.PoolMean, false)
			if err != nil {
				t.Fatal(err)
			}
			c := reference.Cosine(want, got[i])
			t.Logf("%s: %q cosine vs float64 reference %.6f", mode.name, s, c)
			if c < 0.999 || math.IsNaN(c) {
				t.Errorf("%s: %q cosine %.6f < 0.999", mode.name, s, c)
			}
		}
	}
}

func TestRealModelBatchEqualsAlone(t *testing.T) {
	m := loadReal(t, Options{Threads: 2})
	target := "Batching must not change a sentence's embedding."
	texts := make([]string, 32)
	for i := range texts {
		texts[i] = strings.Repeat(fmt.Sprintf("filler sentence number %d with some words. ", i), 1+i%7)
	}
	texts[13] = target
	alone, err := m.Embed([]string{target}, true)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := m.Embed(texts, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 32 {
		t.Fatalf("%d rows for 32 texts", len(batch))
	}
	if c := cosine32(alone[0], batch[13]); c < 0.99999 || math.IsNaN(c) {
		t.Errorf("alone vs in batch: cosine %.7f < 0.99999", c)
	}
	// Rows must belong to their own texts: a different text gives a clearly different vector.
	if c := cosine32(alone[0], batch[12]); c > 0.99 {
		t.Errorf("row 12 looks like the target (cosine %.4f): rows mixed up", c)
	}
}

func TestRealModelMalformedInputs(t *testing.T) {
	m := loadReal(t, Options{Threads: 1})
	long := make([]int32, 513)
	for i := range long {
		long[i] = 1000
	}
	tests := []struct {
		name   string
		inputs []Input
	}{
		{"empty batch", nil},
		{"empty input", []Input{{IDs: []int32{101, 102}}, {IDs: nil}}},
		{"id too large", []Input{{IDs: []int32{101, 30522, 102}}}},
		{"negative id", []Input{{IDs: []int32{101, -1, 102}}}},
		{"too long", []Input{{IDs: long}}},
		{"type ids length", []Input{{IDs: []int32{101, 102}, TypeIDs: []int32{0}}}},
		{"type id out of range", []Input{{IDs: []int32{101, 102}, TypeIDs: []int32{0, 2}}}},
		{"negative type id", []Input{{IDs: []int32{101, 102}, TypeIDs: []int32{0, -1}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Run(tc.inputs, false); err == nil {
				t.Error("accepted")
			} else {
				t.Log(err)
			}
		})
	}
	// Still works afterwards.
	if _, err := m.Run([]Input{{IDs: []int32{101, 7592, 102}}}, true); err != nil {
		t.Fatalf("valid input after errors: %v", err)
	}
	if _, err := m.Embed(nil, false); err == nil {
		t.Error("Embed of no texts accepted")
	}
}
