// Package testmodel writes synthetic BERT GGUF files with seeded random weights, laid out as
// llama.cpp's converter lays out BERT models, so tests can exercise every tensor type, shape,
// pooling and head of the engine against the float64 reference.
package testmodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/quant"
)

// Head is the output head written into the file.
type Head string

// The heads a synthetic model can carry.
const (
	HeadEmbed  Head = "embed"  // no head tensors: pooled hidden states
	HeadRank   Head = "rank"   // cls.weight/bias (pooler) and cls.output.weight/bias (labels)
	HeadSplade Head = "splade" // mlm.dense, mlm.norm, mlm.bias and (unless tied) mlm.decoder
)

// Config describes a synthetic model. Zero fields take the defaults documented on each.
type Config struct {
	Name       string // general.name; default "synthetic"
	Embd       int    // required
	Heads      int    // required; must divide Embd
	Layers     int    // default 2
	FF         int    // required
	Context    int    // rows of position_embd; default 64
	TokenTypes int    // rows of token_types; default 2; -1 writes no token_types tensor

	// Vocab is the size of the synthetic vocabulary (default 200, at least 40). With
	// RealVocabFrom set the tokenizer vocabulary of that GGUF file is copied instead.
	Vocab         int
	RealVocabFrom string

	WeightType   gguf.Type // linear weights and, unless EmbedType is set, token_embd
	EmbedType    *gguf.Type
	PositionType *gguf.Type           // default F32 for F32 weights, else F16
	Types        map[string]gguf.Type // per-tensor overrides by full name ("blk.0.attn_k.weight")

	Pooling    int     // bert.pooling_type (0 none, 1 mean, 2 cls, 3 last, 4 rank); -1 omits the key
	NormEps    float32 // default 1e-12
	Head       Head    // default HeadEmbed
	Labels     []string
	TieDecoder bool // SPLADE: omit mlm.decoder.weight (tied to token_embd)
	// SpladeBias shifts the mean of mlm.bias (normal, mean -0.5, std 0.5): a negative shift leaves only
	// a few hundred vocabulary entries non-zero, as in trained SPLADE models.
	SpladeBias float32
	NoPooler   bool // rank: omit cls.weight/cls.bias
	FileType   int  // general.file_type when > 0
	Seed       uint64

	// For tests of malformed files: tensors left out, and metadata values set after (so
	// replacing) everything else.
	Omit map[string]bool
	Meta map[string]gguf.Value
}

// Special token ids of the synthetic vocabulary.
const (
	PadID  = 0
	UnkID  = 1
	ClsID  = 2
	SepID  = 3
	MaskID = 4
)

// SyntheticVocab returns a WordPiece vocabulary of n entries in llama.cpp's GGUF form: the five
// specials, then word-initial pieces with a U+2581 prefix and continuation pieces without "##".
// Every lower-case ASCII letter is present both ways, so any lower-case text tokenizes.
func SyntheticVocab(n int) ([]string, error) {
	if n < 40 {
		return nil, fmt.Errorf("synthetic vocabulary of %d entries: need at least 40", n)
	}
	v := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for c := 'a'; c <= 'z'; c++ {
		v = append(v, "\u2581"+string(c))
	}
	for _, p := range []string{".", ",", "!", "?"} {
		v = append(v, "\u2581"+p)
	}
	for c := 'a'; c <= 'z' && len(v) < n; c++ {
		v = append(v, string(c))
	}
	syll := []string{"ka", "lo", "mi", "ne", "ru", "ta", "si", "po", "de", "fu", "ing", "er", "on"}
	seen := map[string]bool{}
	for _, s := range v {
		seen[s] = true
	}
	for i := 0; len(v) < n; i++ {
		// Deterministic words of two or three syllables, alternately word-initial and continuation.
		w := syll[i%len(syll)] + syll[(i/len(syll))%len(syll)]
		if i >= len(syll)*len(syll) {
			w += syll[(i/(len(syll)*len(syll)))%len(syll)]
		}
		if i%2 == 0 {
			w = "\u2581" + w
		}
		if seen[w] {
			w += fmt.Sprint(i)
		}
		seen[w] = true
		v = append(v, w)
	}
	return v[:n], nil
}

type generator struct {
	rng *rand.Rand
	w   *gguf.Writer
	cfg *Config
}

// normal returns n samples of N(mean, std).
func (g *generator) normal(n int, mean, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(mean + std*g.rng.NormFloat64())
	}
	return out
}

func encode(t gguf.Type, src []float32) ([]byte, error) {
	if t == gguf.TypeF32 {
		b := make([]byte, 4*len(src))
		for i, v := range src {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	}
	return quant.Quantize(t, src)
}

// add writes a tensor of ggml dims (dims[0] contiguous) with values N(mean, std) in type t (or the
// override for name).
func (g *generator) add(name string, t gguf.Type, dims []uint64, mean, std float64) error {
	if g.cfg.Omit[name] {
		return nil
	}
	if o, ok := g.cfg.Types[name]; ok {
		t = o
	}
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	data, err := encode(t, g.normal(int(n), mean, std))
	if err != nil {
		return fmt.Errorf("tensor %s (%s %v): %w", name, t, dims, err)
	}
	if err := g.w.AddTensor(name, t, dims, data); err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	return nil
}

// linear adds name.weight [in, out] and name.bias [out] with weights scaled so activations stay O(1).
func (g *generator) linear(name string, t gguf.Type, in, out int) error {
	if err := g.add(name+".weight", t, []uint64{uint64(in), uint64(out)}, 0, 1/math.Sqrt(float64(in))); err != nil {
		return err
	}
	return g.add(name+".bias", gguf.TypeF32, []uint64{uint64(out)}, 0, 0.1)
}

func (g *generator) norm(name string, e int) error {
	if err := g.add(name+".weight", gguf.TypeF32, []uint64{uint64(e)}, 1, 0.1); err != nil {
		return err
	}
	return g.add(name+".bias", gguf.TypeF32, []uint64{uint64(e)}, 0, 0.1)
}

// Write creates the GGUF file at path.
func Write(path string, cfg Config) error {
	if err := writeFile(path, cfg); err != nil {
		return fmt.Errorf("testmodel: write %s: %w", path, err)
	}
	return nil
}

func writeFile(path string, cfg Config) error {
	if cfg.Embd <= 0 || cfg.Heads <= 0 || cfg.FF <= 0 || cfg.Embd%cfg.Heads != 0 {
		return fmt.Errorf("bad shape E=%d heads=%d F=%d", cfg.Embd, cfg.Heads, cfg.FF)
	}
	if cfg.Layers == 0 {
		cfg.Layers = 2
	}
	if cfg.Context == 0 {
		cfg.Context = 64
	}
	if cfg.TokenTypes == 0 {
		cfg.TokenTypes = 2
	}
	if cfg.TokenTypes < 0 {
		cfg.TokenTypes = 0
	}
	if cfg.NormEps == 0 {
		cfg.NormEps = 1e-12
	}
	if cfg.Head == "" {
		cfg.Head = HeadEmbed
	}
	if cfg.Name == "" {
		cfg.Name = "synthetic"
	}
	w := gguf.NewWriter()
	g := &generator{rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), w: w, cfg: &cfg}

	vocab, err := writeVocab(w, &cfg)
	if err != nil {
		return err
	}
	E, F, V := uint64(cfg.Embd), uint64(cfg.FF), uint64(vocab)
	w.Set("general.architecture", gguf.Str("bert"))
	w.Set("general.name", gguf.Str(cfg.Name))
	w.Set("bert.context_length", gguf.Uint32(uint32(cfg.Context)))
	w.Set("bert.embedding_length", gguf.Uint32(uint32(E)))
	w.Set("bert.feed_forward_length", gguf.Uint32(uint32(F)))
	w.Set("bert.attention.head_count", gguf.Uint32(uint32(cfg.Heads)))
	w.Set("bert.block_count", gguf.Uint32(uint32(cfg.Layers)))
	w.Set("bert.attention.layer_norm_epsilon", gguf.Float32(cfg.NormEps))
	w.Set("bert.attention.causal", gguf.Bool(false))
	if cfg.Pooling >= 0 {
		w.Set("bert.pooling_type", gguf.Uint32(uint32(cfg.Pooling)))
	}
	w.Set("tokenizer.ggml.token_type_count", gguf.Uint32(uint32(cfg.TokenTypes)))
	if cfg.FileType > 0 {
		w.Set("general.file_type", gguf.Uint32(uint32(cfg.FileType)))
	}
	if len(cfg.Labels) > 0 {
		w.Set("bert.classifier.output_labels", gguf.StrArray(cfg.Labels))
	}

	wt := cfg.WeightType
	et := wt
	if cfg.EmbedType != nil {
		et = *cfg.EmbedType
	}
	pt := gguf.TypeF16
	if wt == gguf.TypeF32 {
		pt = gguf.TypeF32
	}
	if cfg.PositionType != nil {
		pt = *cfg.PositionType
	}
	steps := []func() error{
		func() error { return g.add("token_embd.weight", et, []uint64{E, V}, 0, 0.5) },
		func() error { return g.add("position_embd.weight", pt, []uint64{E, uint64(cfg.Context)}, 0, 0.3) },
		func() error {
			if cfg.TokenTypes == 0 {
				return nil
			}
			return g.add("token_types.weight", gguf.TypeF32, []uint64{E, uint64(cfg.TokenTypes)}, 0, 0.3)
		},
		func() error { return g.norm("token_embd_norm", cfg.Embd) },
	}
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		steps = append(steps,
			func() error { return g.linear(p+"attn_q", wt, cfg.Embd, cfg.Embd) },
			func() error { return g.linear(p+"attn_k", wt, cfg.Embd, cfg.Embd) },
			func() error { return g.linear(p+"attn_v", wt, cfg.Embd, cfg.Embd) },
			func() error { return g.linear(p+"attn_output", wt, cfg.Embd, cfg.Embd) },
			func() error { return g.norm(p+"attn_output_norm", cfg.Embd) },
			func() error { return g.linear(p+"ffn_up", wt, cfg.Embd, cfg.FF) },
			func() error { return g.linear(p+"ffn_down", wt, cfg.FF, cfg.Embd) },
			func() error { return g.norm(p+"layer_output_norm", cfg.Embd) },
		)
	}
	switch cfg.Head {
	case HeadEmbed:
	case HeadRank:
		labels := len(cfg.Labels)
		if labels == 0 {
			labels = 1
		}
		if !cfg.NoPooler {
			steps = append(steps, func() error { return g.linear("cls", wt, cfg.Embd, cfg.Embd) })
		}
		steps = append(steps, func() error { return g.linear("cls.output", gguf.TypeF32, cfg.Embd, labels) })
	case HeadSplade:
		steps = append(steps,
			func() error { return g.linear("mlm.dense", wt, cfg.Embd, cfg.Embd) },
			func() error { return g.norm("mlm.norm", cfg.Embd) },
			func() error {
				if cfg.TieDecoder {
					return nil
				}
				return g.add("mlm.decoder.weight", wt, []uint64{E, V}, 0, 1/math.Sqrt(float64(E)))
			},
			func() error {
				return g.add("mlm.bias", gguf.TypeF32, []uint64{V}, -0.5+float64(cfg.SpladeBias), 0.5)
			},
		)
	default:
		return fmt.Errorf("unknown head %q", cfg.Head)
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	for k, v := range cfg.Meta {
		w.Set(k, v)
	}
	return w.WriteFile(path)
}

// writeVocab sets the tokenizer keys and returns the vocabulary size.
func writeVocab(w *gguf.Writer, cfg *Config) (int, error) {
	w.Set("tokenizer.ggml.model", gguf.Str("bert"))
	if cfg.RealVocabFrom != "" {
		src, err := gguf.Open(cfg.RealVocabFrom)
		if err != nil {
			return 0, fmt.Errorf("copy vocabulary: %w", err)
		}
		defer src.Close()
		tokens, ok := src.Strings("tokenizer.ggml.tokens")
		if !ok || len(tokens) == 0 {
			return 0, errors.New("copy vocabulary: source has no tokenizer.ggml.tokens")
		}
		w.Set("tokenizer.ggml.tokens", gguf.StrArray(tokens))
		for _, k := range src.KVs {
			switch k.Key {
			case "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
				"tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.seperator_token_id",
				"tokenizer.ggml.padding_token_id", "tokenizer.ggml.cls_token_id", "tokenizer.ggml.mask_token_id":
				w.Set(k.Key, k.Value)
			}
		}
		return len(tokens), nil
	}
	if cfg.Vocab == 0 {
		cfg.Vocab = 200
	}
	vocab, err := SyntheticVocab(cfg.Vocab)
	if err != nil {
		return 0, err
	}
	w.Set("tokenizer.ggml.tokens", gguf.StrArray(vocab))
	// Token types as llama.cpp writes them: 3 for control tokens, 1 for normal ones.
	kinds := make([]gguf.Value, len(vocab))
	for i := range kinds {
		kinds[i] = gguf.Int32(1)
		if i <= MaskID {
			kinds[i] = gguf.Int32(3)
		}
	}
	w.Set("tokenizer.ggml.token_type", gguf.ArrayOf(gguf.ValueInt32, kinds...))
	w.Set("tokenizer.ggml.unknown_token_id", gguf.Uint32(UnkID))
	w.Set("tokenizer.ggml.cls_token_id", gguf.Uint32(ClsID))
	w.Set("tokenizer.ggml.seperator_token_id", gguf.Uint32(SepID))
	w.Set("tokenizer.ggml.padding_token_id", gguf.Uint32(PadID))
	w.Set("tokenizer.ggml.mask_token_id", gguf.Uint32(MaskID))
	w.Set("tokenizer.ggml.bos_token_id", gguf.Uint32(ClsID))
	w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(SepID))
	return len(vocab), nil
}
