// Package engine adapts the native inference engine (package model) to the registry: it loads the
// GGUF models a models.toml declares onto one shared compute thread pool.
package engine

import (
	"errors"
	"fmt"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/model"
	"github.com/embedd-dev/embedd/registry"
	"github.com/embedd-dev/embedd/tokenizer"
)

// Loader returns a registry.Loader that loads models onto pool. The scheduler runs one batch at a
// time, so all models together never use more compute threads than the pool has.
func Loader(pool *bindings.Pool) registry.Loader {
	return func(spec config.Model) (registry.Model, error) {
		if pool == nil {
			return nil, errors.New("engine: no thread pool")
		}
		path, err := modelFile(spec)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", spec.ID, err)
		}
		m, err := model.Load(path, model.Options{
			Kind:      model.Kind(spec.Type),
			Pool:      pool,
			Threads:   pool.Threads(),
			MaxTokens: spec.MaxTokens,
		})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", spec.ID, err)
		}
		a := &adapter{m: m}
		// Raw token-id inputs are framed with the model's own [CLS] and [SEP], whatever its vocabulary.
		sp := m.Tokenizer().Specials()
		if sp.CLS < 0 || sp.SEP < 0 {
			_ = m.Close()
			return nil, fmt.Errorf("load %s: the tokenizer has no [CLS] or [SEP] token (ids %d, %d)", spec.ID, sp.CLS, sp.SEP)
		}
		a.cls, a.sep = sp.CLS, sp.SEP
		info := m.Info()
		a.info = registry.Info{
			Dim: info.Dim, Vocab: info.Vocab, MaxTokens: info.MaxTokens, Layers: info.Layers,
			Pooling: info.Pooling, Quantization: info.Quantization, Arch: info.Arch,
			Labels: info.Labels, FileBytes: info.FileBytes, MemoryBytes: info.MemoryBytes,
		}
		return a, nil
	}
}

type adapter struct {
	m        *model.Model
	info     registry.Info
	cls, sep int32
}

func (a *adapter) Info() registry.Info { return a.info }

func (a *adapter) SpecialTokens() (cls, sep int32) { return a.cls, a.sep }

func (a *adapter) Encode(text string) registry.Encoding {
	return encoding(a.m.Tokenizer().Encode(text))
}

// encoding is the registry's form of a tokenizer encoding.
func encoding(enc tokenizer.Encoding) registry.Encoding {
	return registry.Encoding{
		Input:     batcher.Input{IDs: enc.IDs, TypeIDs: enc.TypeIDs},
		Truncated: enc.Truncated,
	}
}

func (a *adapter) Run(inputs []batcher.Input, normalize bool) ([][]float32, error) {
	in := make([]model.Input, len(inputs))
	for i, x := range inputs {
		in[i] = model.Input{IDs: x.IDs, TypeIDs: x.TypeIDs}
	}
	return a.m.Run(in, normalize)
}

func (a *adapter) Close() error { return a.m.Close() }

// EncodePair tokenizes a cross-encoder pair: [CLS] query [SEP] document [SEP], token types 0 then
// 1, the document truncated first (httpapi uses it for rerank models).
func (a *adapter) EncodePair(query, document string) registry.Encoding {
	return encoding(a.m.EncodePair(query, document))
}

// Score turns one pair's logits into its relevance score (see model.Score).
func (a *adapter) Score(logits []float32, raw bool) (float64, error) { return model.Score(logits, raw) }

// Sparsify keeps a SPLADE row's entries above threshold and, with topK > 0, among the topK
// largest, sorted by index (see model.Sparsify).
func (a *adapter) Sparsify(row []float32, topK int, threshold float32) ([]int32, []float32) {
	v := model.Sparsify(row, model.SparseOptions{TopK: topK, Threshold: threshold})
	return v.Indices, v.Values
}

// Tokenize lists text's token ids and their byte offsets, untruncated, without [CLS]/[SEP]
// (httpapi's /tokenize and left truncation).
func (a *adapter) Tokenize(text string) ([]int32, [][2]int) { return a.m.Tokenizer().Tokenize(text) }

// Decode turns token ids back into text as Hugging Face's WordPiece decoder does (httpapi's
// /decode).
func (a *adapter) Decode(ids []int32, skipSpecial bool) (string, error) {
	return a.m.Tokenizer().Decode(ids, skipSpecial)
}

// TokenStrings returns the vocabulary strings of token ids.
func (a *adapter) TokenStrings(ids []int32) ([]string, error) { return a.m.TokenStrings(ids) }
