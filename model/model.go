// Package model turns a BERT GGUF file into a runnable model with its tokenizer: it validates the
// metadata, builds the WordPiece tokenizer, hands the tensors to the C core (which copies them) and
// runs packed batches through it.
package model

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/tokenizer"
)

// Kind is what a model serves.
type Kind string

// The model kinds.
const (
	KindEmbeddings Kind = "embeddings"        // pooled dense embeddings
	KindSparse     Kind = "sparse-embeddings" // SPLADE vocabulary weights
	KindRerank     Kind = "rerank"            // cross-encoder logits
)

// Options configure Load.
type Options struct {
	// Kind selects the head; "" takes it from the file (pooling_type 4 -> rerank, else embeddings).
	// Files do not say whether they are SPLADE models, so KindSparse must be asked for.
	Kind Kind
	// Pool is a shared worker pool; nil makes a private pool of Threads workers (0 = one per core).
	Pool    *bindings.Pool
	Threads int
	// MaxTokens truncates inputs in Embed and the tokenizer (including specials); 0 = the context.
	MaxTokens  int
	WeightMode bindings.WeightMode
}

// Info describes a loaded model.
type Info struct {
	Path, Name, Arch string
	Kind             Kind
	Dim, Vocab       int
	MaxTokens        int
	Layers           int
	Pooling          string
	// Quantization is the llama.cpp file type ("Q4_K_M") from general.file_type, or else the type
	// holding most of the weights' elements.
	Quantization string
	Labels       []string
	FileBytes    int64
	MemoryBytes  int64
}

// Model is a loaded model. Its methods are safe for concurrent use.
type Model struct {
	info     Info
	tok      *tokenizer.WordPiece
	vocab    int
	tokTypes int
	context  int
	mu       sync.Mutex // serialises Run on the context
	bm       *bindings.Model
	ctx      *bindings.Context
	pool     *bindings.Pool
	ownsPool bool
	closed   bool
}

// Maximum sizes accepted from metadata before anything is allocated for them.
const (
	maxVocab   = 1 << 22
	maxContext = 1 << 16
	maxEmbd    = 1 << 16
	maxLayers  = 1024
	maxFF      = 1 << 18
)

// llama.cpp's general.file_type numbers.
var fileTypes = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
	11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
	17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}

// meta reads required and optional integer keys, naming file and key in errors.
type meta struct {
	f   *gguf.File
	err error
}

func (m *meta) uint(key string, required bool, def, max uint64) int {
	if m.err != nil {
		return 0
	}
	v, ok := m.f.Uint(key)
	if !ok {
		if _, present := m.f.Lookup(key); present {
			m.err = fmt.Errorf("%s: metadata %s is not a non-negative integer", m.f.Path, key)
			return 0
		}
		if required {
			m.err = fmt.Errorf("%s: missing metadata %s", m.f.Path, key)
			return 0
		}
		return int(def)
	}
	if v > max {
		m.err = fmt.Errorf("%s: metadata %s = %d exceeds the limit %d", m.f.Path, key, v, max)
		return 0
	}
	return int(v)
}

// Load reads the GGUF file at path (gguf.ReadFile: the loader touches every byte), validates it,
// builds the tokenizer and the C model, and releases the file's image (the core keeps its own copy
// of the weights).
func Load(path string, opts Options) (*Model, error) {
	f, err := gguf.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer f.Close()
	m, err := load(f, opts)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st, err := os.Stat(path); err == nil {
		m.info.FileBytes = st.Size()
	}
	return m, nil
}

func load(f *gguf.File, opts Options) (*Model, error) {
	arch, _ := f.String("general.architecture")
	if arch != "bert" {
		return nil, fmt.Errorf("%s: general.architecture is %q, only \"bert\" is supported", f.Path, arch)
	}
	name, _ := f.String("general.name")
	md := &meta{f: f}
	var hp bindings.HParams
	hp.Context = md.uint("bert.context_length", true, 0, maxContext)
	hp.Embd = md.uint("bert.embedding_length", true, 0, maxEmbd)
	hp.FF = md.uint("bert.feed_forward_length", true, 0, maxFF)
	hp.Heads = md.uint("bert.attention.head_count", true, 0, maxEmbd)
	hp.Layers = md.uint("bert.block_count", true, 0, maxLayers)
	pooling := md.uint("bert.pooling_type", false, uint64(bindings.PoolMean), 4)
	if md.err != nil {
		return nil, md.err
	}
	for _, c := range []struct {
		key string
		v   int
	}{{"bert.context_length", hp.Context}, {"bert.embedding_length", hp.Embd}, {"bert.feed_forward_length", hp.FF},
		{"bert.attention.head_count", hp.Heads}, {"bert.block_count", hp.Layers}} {
		if c.v == 0 {
			return nil, fmt.Errorf("%s: metadata %s is 0", f.Path, c.key)
		}
	}
	if hp.Embd%hp.Heads != 0 {
		return nil, fmt.Errorf("%s: bert.embedding_length %d is not divisible by bert.attention.head_count %d", f.Path, hp.Embd, hp.Heads)
	}
	eps, ok := f.Float("bert.attention.layer_norm_epsilon")
	if !ok {
		return nil, fmt.Errorf("%s: missing metadata bert.attention.layer_norm_epsilon", f.Path)
	}
	if math.IsNaN(eps) || eps < 0 || eps > 1 {
		return nil, fmt.Errorf("%s: metadata bert.attention.layer_norm_epsilon = %g out of range", f.Path, eps)
	}
	hp.NormEps = float32(eps)

	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return nil, fmt.Errorf("%s: missing or misshapen tensor token_embd.weight", f.Path)
	}
	if emb.Dims[1] == 0 || emb.Dims[1] > maxVocab {
		return nil, fmt.Errorf("%s: token_embd.weight has %d rows (vocabulary size out of range)", f.Path, emb.Dims[1])
	}
	hp.Vocab = int(emb.Dims[1])
	if tt, ok := f.Tensor("token_types.weight"); ok {
		if len(tt.Dims) != 2 || tt.Dims[1] > 1<<16 {
			return nil, fmt.Errorf("%s: misshapen tensor token_types.weight %v", f.Path, tt.Dims)
		}
		hp.TokenTypes = int(tt.Dims[1])
		if n, ok := f.Uint("tokenizer.ggml.token_type_count"); ok && n != tt.Dims[1] {
			return nil, fmt.Errorf("%s: tokenizer.ggml.token_type_count %d but token_types.weight has %d rows", f.Path, n, tt.Dims[1])
		}
	}

	kind := opts.Kind
	if kind == "" {
		kind = KindEmbeddings
		if pooling == int(bindings.PoolRank) {
			kind = KindRerank
		}
	}
	hp.Pooling = bindings.Pooling(pooling)
	switch kind {
	case KindEmbeddings:
		hp.Head = bindings.HeadEmbed
		switch hp.Pooling {
		case bindings.PoolMean, bindings.PoolCLS, bindings.PoolLast:
		default:
			return nil, fmt.Errorf("%s: bert.pooling_type %d (%s) cannot make one embedding per input", f.Path, pooling, hp.Pooling)
		}
	case KindRerank:
		hp.Head, hp.Pooling = bindings.HeadRank, bindings.PoolRank
		// The core accepts a missing classifier (the pooled state is then the output, as in
		// llama.cpp), but such a file is no reranker: its "scores" would be hidden states.
		_, pooler := f.Tensor("cls.weight")
		_, output := f.Tensor("cls.output.weight")
		if !pooler && !output {
			return nil, fmt.Errorf("%s: a rerank model needs a classifier head: no cls.output.weight or cls.weight tensor", f.Path)
		}
	case KindSparse:
		// SPLADE max-pools vocabulary weights over the tokens itself; the pooling type is unused.
		hp.Head = bindings.HeadSplade
		if hp.Pooling == bindings.PoolNone || hp.Pooling == bindings.PoolRank {
			hp.Pooling = bindings.PoolMean
		}
	default:
		return nil, fmt.Errorf("%s: unknown model kind %q (want %q, %q or %q)", f.Path, kind, KindEmbeddings, KindSparse, KindRerank)
	}
	switch opts.WeightMode {
	case bindings.WeightsAuto, bindings.WeightsBlocks:
	default:
		return nil, fmt.Errorf("%s: unknown weight mode %d", f.Path, opts.WeightMode)
	}
	hp.WeightMode = opts.WeightMode

	maxTokens := opts.MaxTokens
	if maxTokens < 0 {
		return nil, fmt.Errorf("%s: max tokens %d is negative", f.Path, maxTokens)
	}
	if maxTokens == 0 || maxTokens > hp.Context {
		maxTokens = hp.Context
	}
	if maxTokens < 2 {
		return nil, fmt.Errorf("%s: max tokens %d leaves no room for [CLS] and [SEP]", f.Path, maxTokens)
	}
	// The tokenizer is built on another goroutine while the C core copies and packs the weights:
	// both only read the file, and together they are most of the load time. Every return below
	// waits for it first (the caller closes the file after load returns).
	type tokenizerResult struct {
		tok *tokenizer.WordPiece
		err error
	}
	tokDone := make(chan tokenizerResult, 1)
	go func() {
		t, err := tokenizer.FromGGUF(f, maxTokens)
		tokDone <- tokenizerResult{t, err}
	}()
	var tokRes *tokenizerResult
	waitTokenizer := func() tokenizerResult {
		if tokRes == nil {
			r := <-tokDone
			tokRes = &r
		}
		return *tokRes
	}
	defer waitTokenizer()

	tensors := make([]bindings.Tensor, 0, len(f.Tensors))
	elems := map[gguf.Type]int64{}
	for _, ti := range f.Tensors {
		data, err := f.TensorData(ti.Name)
		if err != nil {
			return nil, err
		}
		dims := make([]int64, len(ti.Dims))
		for i, d := range ti.Dims {
			if d > math.MaxInt64 {
				return nil, fmt.Errorf("%s: tensor %s: dimension %d too large", f.Path, ti.Name, d)
			}
			dims[i] = int64(d)
		}
		tensors = append(tensors, bindings.Tensor{Name: ti.Name, Type: uint32(ti.Type), Dims: dims, Data: data})
		if len(ti.Dims) == 2 {
			elems[ti.Type] += ti.Elems()
		}
	}
	var labels []string
	if kind == KindRerank {
		labels, _ = f.Strings("bert.classifier.output_labels")
	}
	bm, err := bindings.LoadModel(hp, tensors)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	tr := waitTokenizer()
	if tr.err != nil {
		bm.Close()
		return nil, fmt.Errorf("%s: tokenizer: %w", f.Path, tr.err)
	}
	tok := tr.tok
	if tok.VocabSize() != hp.Vocab {
		bm.Close()
		return nil, fmt.Errorf("%s: tokenizer has %d tokens but token_embd.weight has %d rows", f.Path, tok.VocabSize(), hp.Vocab)
	}
	ctx, err := bindings.NewContext(bm)
	if err != nil {
		bm.Close()
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	pool, owns := opts.Pool, false
	if pool == nil {
		if pool, err = bindings.NewPool(opts.Threads); err != nil {
			ctx.Close()
			bm.Close()
			return nil, err
		}
		owns = true
	}
	m := &Model{
		tok: tok, vocab: hp.Vocab, tokTypes: hp.TokenTypes, context: hp.Context,
		bm: bm, ctx: ctx, pool: pool, ownsPool: owns,
	}
	m.info = Info{
		Path: f.Path, Name: name, Arch: arch, Kind: kind, Dim: bm.OutputDim(), Vocab: hp.Vocab,
		MaxTokens: maxTokens, Layers: hp.Layers, Pooling: hp.Pooling.String(),
		Quantization: quantization(f, elems), Labels: labels, MemoryBytes: bm.Bytes(),
	}
	if kind == KindRerank && len(labels) != 0 && len(labels) != m.info.Dim {
		m.Close()
		return nil, fmt.Errorf("%s: %d bert.classifier.output_labels for %d outputs", f.Path, len(labels), m.info.Dim)
	}
	return m, nil
}

// quantization names the file's quantization: llama.cpp's file type if recorded, else the type
// of most 2-D weight elements.
func quantization(f *gguf.File, elems map[gguf.Type]int64) string {
	if ft, ok := f.Uint("general.file_type"); ok {
		if s, ok := fileTypes[ft]; ok {
			return s
		}
	}
	types := make([]gguf.Type, 0, len(elems))
	for t := range elems {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool {
		if elems[types[i]] != elems[types[j]] {
			return elems[types[i]] > elems[types[j]]
		}
		return types[i] < types[j]
	})
	if len(types) == 0 {
		return "unknown"
	}
	return types[0].String()
}

// Info describes the model.
func (m *Model) Info() Info {
	info := m.info
	info.Labels = append([]string(nil), m.info.Labels...)
	return info
}

// Threads is the number of workers of the pool the model runs on.
func (m *Model) Threads() int { return m.pool.Threads() }

// Tokenizer is the model's tokenizer, truncating to Info().MaxTokens.
func (m *Model) Tokenizer() *tokenizer.WordPiece { return m.tok }

// Input is one tokenized sequence including its special tokens. TypeIDs nil means all zeros.
type Input struct {
	IDs, TypeIDs []int32
}

// Run executes the inputs as one packed batch in one call into the core and returns one row per
// input: the pooled embedding (L2-normalised if normalize), the rank logits, or the SPLADE
// vocabulary weights. Calls on one model run one at a time; calls sharing a Pool serialise on it.
func (m *Model) Run(inputs []Input, normalize bool) ([][]float32, error) {
	if len(inputs) == 0 {
		return nil, errors.New("run: empty batch")
	}
	if len(inputs) > math.MaxInt32 {
		return nil, fmt.Errorf("run: %d inputs is too many", len(inputs))
	}
	// Validate everything before packing. Type ids are only passed on when one is non-zero: the
	// core takes a missing array as all zeros, which also serves models without token types.
	total := 0
	anyTypes := false
	typeLimit := max(m.tokTypes, 1)
	for i, in := range inputs {
		if len(in.IDs) == 0 {
			return nil, fmt.Errorf("run: input %d is empty", i)
		}
		if len(in.IDs) > m.context {
			return nil, fmt.Errorf("run: input %d has %d tokens, more than the model's context of %d", i, len(in.IDs), m.context)
		}
		for j, id := range in.IDs {
			if id < 0 || int(id) >= m.vocab {
				return nil, fmt.Errorf("run: input %d token %d: id %d out of the vocabulary range [0,%d)", i, j, id, m.vocab)
			}
		}
		if in.TypeIDs != nil {
			if len(in.TypeIDs) != len(in.IDs) {
				return nil, fmt.Errorf("run: input %d has %d type ids for %d tokens", i, len(in.TypeIDs), len(in.IDs))
			}
			for j, t := range in.TypeIDs {
				if t < 0 || int(t) >= typeLimit {
					return nil, fmt.Errorf("run: input %d token %d: type id %d out of range [0,%d)", i, j, t, typeLimit)
				}
				if t != 0 {
					anyTypes = true
				}
			}
		}
		total += len(in.IDs)
	}
	b := bindings.Batch{
		Tokens:    make([]int32, 0, total),
		SeqLens:   make([]int32, len(inputs)),
		Normalize: normalize,
	}
	if anyTypes {
		b.TokenTypes = make([]int32, 0, total)
	}
	for i, in := range inputs {
		b.Tokens = append(b.Tokens, in.IDs...)
		b.SeqLens[i] = int32(len(in.IDs))
		if anyTypes {
			if in.TypeIDs == nil {
				b.TokenTypes = append(b.TokenTypes, make([]int32, len(in.IDs))...)
			} else {
				b.TokenTypes = append(b.TokenTypes, in.TypeIDs...)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("run: model is closed")
	}
	n, err := bindings.OutputLen(m.bm, b)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	dim := m.info.Dim
	if n != dim*len(inputs) {
		return nil, fmt.Errorf("run: core reports %d output floats for %d inputs of dimension %d", n, len(inputs), dim)
	}
	out := make([]float32, n)
	if err := m.ctx.Encode(m.pool, b, out); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	rows := make([][]float32, len(inputs))
	for i := range rows {
		rows[i] = out[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return rows, nil
}

// embedTokenBudget bounds the tokens of one batch in Embed: large enough to amortise the call,
// small enough to keep the scratch memory modest.
const embedTokenBudget = 8192

// Embed tokenizes texts (truncating to Info().MaxTokens) and runs them in batches under a token
// budget, returning one row per text in order.
func (m *Model) Embed(texts []string, normalize bool) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, errors.New("embed: no texts")
	}
	inputs := make([]Input, len(texts))
	for i, t := range texts {
		enc := m.tok.Encode(t)
		inputs[i] = Input{IDs: enc.IDs, TypeIDs: enc.TypeIDs}
	}
	out, err := m.runBudgeted(inputs, normalize)
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	return out, nil
}

// runBudgeted runs inputs in consecutive packed batches of at most embedTokenBudget tokens (a
// longer single input runs alone) and returns one row per input in order.
func (m *Model) runBudgeted(inputs []Input, normalize bool) ([][]float32, error) {
	out := make([][]float32, 0, len(inputs))
	start, tokens := 0, 0
	for i, in := range inputs {
		if i > start && tokens+len(in.IDs) > embedTokenBudget {
			rows, err := m.Run(inputs[start:i], normalize)
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
			start, tokens = i, 0
		}
		tokens += len(in.IDs)
	}
	if start < len(inputs) {
		rows, err := m.Run(inputs[start:], normalize)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// Close frees the model (and its private pool). It waits for a running Run; later calls fail.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.ctx.Close()
	m.bm.Close()
	if m.ownsPool {
		m.pool.Close()
	}
	return nil
}
