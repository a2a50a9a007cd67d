package testmodel

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/quant"
)

func TestWriteShapesAndMetadata(t *testing.T) {
	f16 := gguf.TypeF16
	tests := []struct {
		name string
		cfg  Config
		want map[string]struct {
			typ  gguf.Type
			dims []uint64
		}
		absent []string
	}{
		{
			name: "q8_0 embed",
			cfg:  Config{Embd: 64, Heads: 4, FF: 96, Layers: 1, Vocab: 50, WeightType: gguf.TypeQ8_0, Pooling: 1, Seed: 1},
			want: map[string]struct {
				typ  gguf.Type
				dims []uint64
			}{
				"token_embd.weight":              {gguf.TypeQ8_0, []uint64{64, 50}},
				"position_embd.weight":           {gguf.TypeF16, []uint64{64, 64}},
				"token_types.weight":             {gguf.TypeF32, []uint64{64, 2}},
				"blk.0.attn_q.weight":            {gguf.TypeQ8_0, []uint64{64, 64}},
				"blk.0.ffn_up.weight":            {gguf.TypeQ8_0, []uint64{64, 96}},
				"blk.0.ffn_down.weight":          {gguf.TypeQ8_0, []uint64{96, 64}},
				"blk.0.ffn_down.bias":            {gguf.TypeF32, []uint64{64}},
				"blk.0.layer_output_norm.weight": {gguf.TypeF32, []uint64{64}},
			},
			absent: []string{"blk.1.attn_q.weight", "cls.weight", "mlm.bias"},
		},
		{
			name: "f32 rank with override",
			cfg: Config{Embd: 40, Heads: 5, FF: 72, Vocab: 60, WeightType: gguf.TypeF32, Pooling: 4, Head: HeadRank,
				Labels: []string{"a", "b"}, Types: map[string]gguf.Type{"blk.1.attn_k.weight": gguf.TypeF16}, PositionType: &f16},
			want: map[string]struct {
				typ  gguf.Type
				dims []uint64
			}{
				"blk.1.attn_k.weight":  {gguf.TypeF16, []uint64{40, 40}},
				"blk.1.attn_q.weight":  {gguf.TypeF32, []uint64{40, 40}},
				"position_embd.weight": {gguf.TypeF16, []uint64{40, 64}},
				"cls.weight":           {gguf.TypeF32, []uint64{40, 40}},
				"cls.output.weight":    {gguf.TypeF32, []uint64{40, 2}},
				"cls.output.bias":      {gguf.TypeF32, []uint64{2}},
			},
		},
		{
			name: "q4_K splade tied",
			cfg:  Config{Embd: 256, Heads: 4, FF: 512, Layers: 1, Vocab: 80, WeightType: gguf.TypeQ4_K, Head: HeadSplade, TieDecoder: true, TokenTypes: -1},
			want: map[string]struct {
				typ  gguf.Type
				dims []uint64
			}{
				"mlm.dense.weight": {gguf.TypeQ4_K, []uint64{256, 256}},
				"mlm.norm.weight":  {gguf.TypeF32, []uint64{256}},
				"mlm.bias":         {gguf.TypeF32, []uint64{80}},
			},
			absent: []string{"mlm.decoder.weight", "token_types.weight"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := Write(path, tc.cfg); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if a, _ := f.String("general.architecture"); a != "bert" {
				t.Errorf("architecture %q", a)
			}
			if e, _ := f.Uint("bert.embedding_length"); e != uint64(tc.cfg.Embd) {
				t.Errorf("embedding_length %d, want %d", e, tc.cfg.Embd)
			}
			if h, _ := f.Uint("bert.attention.head_count"); h != uint64(tc.cfg.Heads) {
				t.Errorf("head_count %d, want %d", h, tc.cfg.Heads)
			}
			toks, ok := f.Strings("tokenizer.ggml.tokens")
			if !ok || len(toks) != tc.cfg.Vocab {
				t.Errorf("%d tokens, want %d", len(toks), tc.cfg.Vocab)
			}
			for name, w := range tc.want {
				ti, ok := f.Tensor(name)
				if !ok {
					t.Errorf("missing %s", name)
					continue
				}
				if ti.Type != w.typ || !slices.Equal(ti.Dims, w.dims) {
					t.Errorf("%s: %s %v, want %s %v", name, ti.Type, ti.Dims, w.typ, w.dims)
				}
				data, err := f.TensorData(name)
				if err != nil {
					t.Fatal(err)
				}
				vals, err := quant.Dequantize(ti.Type, data, ti.Elems())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				nonzero := 0
				for _, v := range vals {
					if v != 0 {
						nonzero++
					}
				}
				if nonzero < len(vals)/2 {
					t.Errorf("%s: only %d of %d values non-zero", name, nonzero, len(vals))
				}
			}
			for _, name := range tc.absent {
				if _, ok := f.Tensor(name); ok {
					t.Errorf("%s present, want absent", name)
				}
			}
			if labels, ok := f.Strings("bert.classifier.output_labels"); len(tc.cfg.Labels) > 0 && (!ok || !slices.Equal(labels, tc.cfg.Labels)) {
				t.Errorf("labels %v, want %v", labels, tc.cfg.Labels)
			}
		})
	}
}

func TestSeedDeterminesWeights(t *testing.T) {
	dir := t.TempDir()
	read := func(name string, seed uint64) []byte {
		p := filepath.Join(dir, name)
		if err := Write(p, Config{Embd: 32, Heads: 2, FF: 64, Layers: 1, WeightType: gguf.TypeF16, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d, err := f.TensorData("blk.0.attn_q.weight")
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), d...)
	}
	a, b, c := read("a.gguf", 7), read("b.gguf", 7), read("c.gguf", 8)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different weights")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same weights")
	}
}

func TestRealVocabCopied(t *testing.T) {
	src, err := RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := Write(p, Config{Embd: 32, Heads: 2, FF: 32, Layers: 1, WeightType: gguf.TypeF32, RealVocabFrom: src}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	a, _ := f.Strings("tokenizer.ggml.tokens")
	b, _ := g.Strings("tokenizer.ggml.tokens")
	if len(a) != 30522 || !slices.Equal(a, b) {
		t.Fatalf("copied %d tokens, want the source's %d", len(a), len(b))
	}
	if id, _ := f.Uint("tokenizer.ggml.cls_token_id"); id != 101 {
		t.Errorf("cls id %d, want 101", id)
	}
	ti, _ := f.Tensor("token_embd.weight")
	if !slices.Equal(ti.Dims, []uint64{32, 30522}) {
		t.Errorf("token_embd dims %v", ti.Dims)
	}
}

func TestSyntheticVocab(t *testing.T) {
	v, err := SyntheticVocab(300)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 300 || v[ClsID] != "[CLS]" || v[SepID] != "[SEP]" || v[UnkID] != "[UNK]" {
		t.Fatalf("bad specials or size: %d %v", len(v), v[:5])
	}
	seen := map[string]bool{}
	for _, s := range v {
		if seen[s] {
			t.Errorf("duplicate entry %q", s)
		}
		seen[s] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		if !seen["\u2581"+string(c)] || !seen[string(c)] {
			t.Errorf("letter %c missing as word start or continuation", c)
		}
	}
	if _, err := SyntheticVocab(10); err == nil {
		t.Error("vocabulary of 10 accepted")
	}
}
