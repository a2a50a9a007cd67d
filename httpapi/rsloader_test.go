package httpapi_test

// Temporary: until registry/engine's adapter offers pair encoding, scoring and sparsification,
// the rerank/sparse tests load models through this adapter over the same real engine.

import (
	"fmt"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/model"
	"github.com/embedd-dev/embedd/registry"
)

func rsLoader(pool *bindings.Pool) registry.Loader {
	return func(spec config.Model) (registry.Model, error) {
		m, err := model.Load(spec.Path, model.Options{Kind: model.Kind(spec.Type), Pool: pool, MaxTokens: spec.MaxTokens})
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", spec.ID, err)
		}
		return &rsAdapter{m: m}, nil
	}
}

type rsAdapter struct{ m *model.Model }

func (a *rsAdapter) Info() registry.Info {
	i := a.m.Info()
	return registry.Info{Dim: i.Dim, Vocab: i.Vocab, MaxTokens: i.MaxTokens, Layers: i.Layers, Pooling: i.Pooling,
		Quantization: i.Quantization, Arch: i.Arch, Labels: i.Labels}
}
func (a *rsAdapter) SpecialTokens() (int32, int32) {
	e := a.m.Tokenizer().Encode("")
	return e.IDs[0], e.IDs[1]
}
func (a *rsAdapter) Encode(text string) registry.Encoding {
	e := a.m.Tokenizer().Encode(text)
	return registry.Encoding{Input: batcher.Input{IDs: e.IDs, TypeIDs: e.TypeIDs}, Truncated: e.Truncated}
}
func (a *rsAdapter) EncodePair(q, d string) registry.Encoding {
	e := a.m.EncodePair(q, d)
	return registry.Encoding{Input: batcher.Input{IDs: e.IDs, TypeIDs: e.TypeIDs}, Truncated: e.Truncated}
}
func (a *rsAdapter) Score(logits []float32, raw bool) (float64, error) {
	return model.Score(logits, raw)
}
func (a *rsAdapter) Sparsify(row []float32, topK int, threshold float32) ([]int32, []float32) {
	v := model.Sparsify(row, model.SparseOptions{TopK: topK, Threshold: threshold})
	return v.Indices, v.Values
}
func (a *rsAdapter) TokenStrings(ids []int32) ([]string, error) { return a.m.TokenStrings(ids) }
func (a *rsAdapter) Run(inputs []batcher.Input, normalize bool) ([][]float32, error) {
	in := make([]model.Input, len(inputs))
	for i, x := range inputs {
		in[i] = model.Input{IDs: x.IDs, TypeIDs: x.TypeIDs}
	}
	return a.m.Run(in, normalize)
}
func (a *rsAdapter) Close() error { return a.m.Close() }
