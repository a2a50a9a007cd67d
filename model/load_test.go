package model

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/testmodel"
)

func TestLoadErrors(t *testing.T) {
	base := testmodel.Config{Embd: 40, Heads: 5, FF: 72, Layers: 1, Vocab: 60, WeightType: gguf.TypeF32, Pooling: 1}
	with := func(f func(c *testmodel.Config)) testmodel.Config {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     *testmodel.Config // nil: the file is written by raw
		raw     []byte
		opts    Options
		wantErr string
	}{
		{name: "not gguf", raw: []byte("definitely not a gguf file at all......"), wantErr: "model.gguf"},
		{name: "wrong architecture", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"general.architecture": gguf.Str("llama")}
		})), wantErr: "general.architecture"},
		{name: "embedding length wrong type", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"bert.embedding_length": gguf.Str("forty")}
		})), wantErr: "bert.embedding_length"},
		{name: "heads do not divide", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"bert.attention.head_count": gguf.Uint32(3)}
		})), wantErr: "head_count"},
		{name: "zero layers", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"bert.block_count": gguf.Uint32(0)}
		})), wantErr: "bert.block_count"},
		{name: "absurd context", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"bert.context_length": gguf.Uint64(1 << 40)}
		})), wantErr: "bert.context_length"},
		{name: "context longer than position table", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"bert.context_length": gguf.Uint32(100)}
		})), wantErr: "position_embd"},
		{name: "missing epsilon", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"bert.attention.layer_norm_epsilon": gguf.Str("x")}
		})), wantErr: "layer_norm_epsilon"},
		{name: "pooling none", cfg: ptr(with(func(c *testmodel.Config) { c.Pooling = 0 })), wantErr: "pooling_type"},
		{name: "bad pooling", cfg: ptr(with(func(c *testmodel.Config) { c.Pooling = 9 })), wantErr: "bert.pooling_type"},
		{name: "missing tensor", cfg: ptr(with(func(c *testmodel.Config) {
			c.Omit = map[string]bool{"blk.0.ffn_up.weight": true}
		})), wantErr: "blk.0.ffn_up.weight"},
		{name: "token type count mismatch", cfg: ptr(with(func(c *testmodel.Config) {
			c.Meta = map[string]gguf.Value{"tokenizer.ggml.token_type_count": gguf.Uint32(5)}
		})), wantErr: "token_type_count"},
		{name: "rerank without head", cfg: &base, opts: Options{Kind: KindRerank}, wantErr: "cls.output.weight"},
		{name: "sparse without head", cfg: &base, opts: Options{Kind: KindSparse}, wantErr: "mlm"},
		{name: "unknown kind", cfg: &base, opts: Options{Kind: "nonsense"}, wantErr: "nonsense"},
		{name: "negative max tokens", cfg: &base, opts: Options{MaxTokens: -1}, wantErr: "max tokens"},
		{name: "bad weight mode", cfg: &base, opts: Options{WeightMode: 7}, wantErr: "weight mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.gguf")
			if tc.cfg != nil {
				if err := testmodel.Write(path, *tc.cfg); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, tc.raw, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.opts.Threads = 1
			m, err := Load(path, tc.opts)
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.gguf"), Options{}); err == nil || !strings.Contains(err.Error(), "missing.gguf") {
		t.Errorf("missing file: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestQuantizationName(t *testing.T) {
	tests := []struct {
		cfg  testmodel.Config
		want string
	}{
		{testmodel.Config{Embd: 64, Heads: 2, FF: 64, Layers: 1, WeightType: gguf.TypeQ8_0, Pooling: 1}, "Q8_0"},
		{testmodel.Config{Embd: 64, Heads: 2, FF: 64, Layers: 1, WeightType: gguf.TypeQ8_0, Pooling: 1, FileType: 7}, "Q8_0"},
		{testmodel.Config{Embd: 64, Heads: 2, FF: 64, Layers: 1, WeightType: gguf.TypeQ5_0, Pooling: 1, FileType: 17}, "Q5_K_M"},
		{testmodel.Config{Embd: 64, Heads: 2, FF: 64, Layers: 1, WeightType: gguf.TypeF16, Pooling: 2,
			EmbedType: typePtr(gguf.TypeF32)}, "F16"},
	}
	for _, tc := range tests {
		m := mustLoad(t, writeModel(t, tc.cfg), Options{Threads: 1})
		if got := m.Info().Quantization; got != tc.want {
			t.Errorf("%s weights, file type %d: quantization %q, want %q", tc.cfg.WeightType, tc.cfg.FileType, got, tc.want)
		}
	}
}

// TestConcurrentRuns runs two models sharing one pool from many goroutines: every result must equal
// the sequential one.
func TestConcurrentRuns(t *testing.T) {
	pool, err := bindings.NewPool(2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if pool.Threads() != 2 {
		t.Errorf("pool has %d threads, want 2", pool.Threads())
	}
	var models []*Model
	var inputs [][]Input
	var want [][][]float32
	for i, typ := range []gguf.Type{gguf.TypeF16, gguf.TypeQ8_0} {
		m := mustLoad(t, writeModel(t, testmodel.Config{Embd: 64, Heads: 4, FF: 96, Vocab: 80, WeightType: typ,
			Pooling: 1, Seed: uint64(i)}), Options{Pool: pool})
		in := randomInputs(uint64(i), []int{5, 17, 2, 40}, 80, 2)
		w, err := m.Run(in, true)
		if err != nil {
			t.Fatal(err)
		}
		models, inputs, want = append(models, m), append(inputs, in), append(want, w)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < 10; r++ {
				k := (g + r) % 2
				got, err := models[k].Run(inputs[k], true)
				if err != nil {
					errs <- err.Error()
					return
				}
				for j := range got {
					if !slices.Equal(got[j], want[k][j]) {
						errs <- "concurrent result differs from the sequential one"
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Closing a model while others share the pool leaves the pool usable.
	models[0].Close()
	if _, err := models[0].Run(inputs[0], true); err == nil {
		t.Error("Run after Close succeeded")
	}
	if _, err := models[1].Run(inputs[1], true); err != nil {
		t.Errorf("other model after Close: %v", err)
	}
}

func TestEmbedMatchesRun(t *testing.T) {
	m := mustLoad(t, writeModel(t, testmodel.Config{Embd: 40, Heads: 5, FF: 72, Vocab: 200, WeightType: gguf.TypeF32,
		Pooling: 1, Seed: 11}), Options{Threads: 1, MaxTokens: 8})
	texts := []string{"kalo mine", "a b c d e f g h i j k l m n", "ta", ""}
	got, err := m.Embed(texts, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		enc := m.Tokenizer().Encode(s)
		if len(enc.IDs) > 8 {
			t.Fatalf("%q: %d tokens despite MaxTokens 8", s, len(enc.IDs))
		}
		want, err := m.Run([]Input{{IDs: enc.IDs, TypeIDs: enc.TypeIDs}}, true)
		if err != nil {
			t.Fatal(err)
		}
		if c := cosine32(want[0], got[i]); c < 0.99999 {
			t.Errorf("%q: Embed vs Run cosine %.7f", s, c)
		}
	}
}

// TestNoTokenTypes runs a model without a token_types tensor: all-zero type ids are fine, others
// are errors.
func TestNoTokenTypes(t *testing.T) {
	path := writeModel(t, testmodel.Config{Embd: 40, Heads: 5, FF: 72, Vocab: 90, WeightType: gguf.TypeF32,
		Pooling: 1, TokenTypes: -1, Seed: 6})
	ref := loadReference(t, path)
	m := mustLoad(t, path, Options{Threads: 1})
	in := randomInputs(2, []int{5, 9}, 90, 0)
	in[1].TypeIDs = make([]int32, 9)
	got, err := m.Run(in, false)
	if err != nil {
		t.Fatal(err)
	}
	for j := range in {
		want, err := ref.Embed(in[j].IDs, nil, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if c := cosine64(want, got[j]); c < 0.99999 {
			t.Errorf("sequence %d: cosine %.7f", j, c)
		}
	}
	in[1].TypeIDs[3] = 1
	if _, err := m.Run(in, false); err == nil {
		t.Error("type id 1 accepted by a model without token types")
	}
}

// TestLoadCorruptedHeaders flips bytes in the metadata and tensor table of a valid file: every
// variant must load or fail with an error, never crash (a crash in the core kills the test binary).
func TestLoadCorruptedHeaders(t *testing.T) {
	path := writeModel(t, testmodel.Config{Embd: 32, Heads: 4, FF: 64, Layers: 1, Vocab: 40, Context: 16,
		WeightType: gguf.TypeQ8_0, Pooling: 1, Seed: 1})
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	header := int(f.DataOffset)
	f.Close()
	rng := rand.New(rand.NewPCG(42, 42))
	dir := t.TempDir()
	loaded, failed := 0, 0
	for i := 0; i < 300; i++ {
		data := slices.Clone(orig)
		for n := 1 + rng.IntN(3); n > 0; n-- {
			data[rng.IntN(header)] = byte(rng.IntN(256))
		}
		p := filepath.Join(dir, "c.gguf")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(p, Options{Threads: 1})
		if err != nil {
			failed++
			continue
		}
		loaded++
		// A model that loads must also run (or refuse) cleanly.
		if _, err := m.Run([]Input{{IDs: []int32{2, 5, 3}}}, true); err != nil {
			t.Logf("variant %d loads but does not run: %v", i, err)
		}
		m.Close()
	}
	t.Logf("%d variants loaded, %d rejected", loaded, failed)
}
