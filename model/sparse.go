package model

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// SparseVector is a SPLADE output: the vocabulary entries with a weight, sorted by index.
type SparseVector struct {
	Indices []int32
	Values  []float32
}

// SparseOptions select which entries of a SPLADE output are kept.
type SparseOptions struct {
	// TopK keeps only the K largest weights (ties: the lower index); 0 keeps all.
	TopK int
	// Threshold keeps only weights strictly above it; 0 keeps every non-zero weight.
	Threshold float32
}

// Validate checks the options' ranges.
func (o SparseOptions) Validate() error {
	if o.TopK < 0 {
		return fmt.Errorf("top_k %d is negative", o.TopK)
	}
	if o.Threshold < 0 || math.IsNaN(float64(o.Threshold)) || math.IsInf(float64(o.Threshold), 0) {
		return fmt.Errorf("threshold %g must be a finite number >= 0", o.Threshold)
	}
	return nil
}

// Sparsify keeps the entries of a dense SPLADE row (one weight per vocabulary entry, all >= 0)
// that are above the threshold and, with TopK, among the K largest; the result is sorted by index.
// Options are assumed valid (see Validate).
func Sparsify(weights []float32, opts SparseOptions) SparseVector {
	type entry struct {
		index int32
		value float32
	}
	var kept []entry
	for i, w := range weights {
		// NaN fails the comparison and is dropped with the zeros.
		if w > opts.Threshold {
			kept = append(kept, entry{int32(i), w})
		}
	}
	if opts.TopK > 0 && len(kept) > opts.TopK {
		sort.Slice(kept, func(a, b int) bool {
			if kept[a].value != kept[b].value {
				return kept[a].value > kept[b].value
			}
			return kept[a].index < kept[b].index
		})
		kept = kept[:opts.TopK]
		sort.Slice(kept, func(a, b int) bool { return kept[a].index < kept[b].index })
	}
	v := SparseVector{Indices: make([]int32, len(kept)), Values: make([]float32, len(kept))}
	for i, e := range kept {
		v.Indices[i], v.Values[i] = e.index, e.value
	}
	return v
}

// EmbedSparse tokenizes texts (truncating to Info().MaxTokens), runs them through the SPLADE head
// in packed batches under the same token budget as Embed, and returns one sparse vector per text.
// The model must be a sparse-embeddings model.
func (m *Model) EmbedSparse(texts []string, opts SparseOptions) ([]SparseVector, error) {
	if m.info.Kind != KindSparse {
		return nil, fmt.Errorf("embed sparse: %s is a %s model, not a sparse-embeddings model", m.info.Path, m.info.Kind)
	}
	if len(texts) == 0 {
		return nil, errors.New("embed sparse: no texts")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("embed sparse: %w", err)
	}
	inputs := make([]Input, len(texts))
	for i, t := range texts {
		enc := m.tok.Encode(t)
		inputs[i] = Input{IDs: enc.IDs, TypeIDs: enc.TypeIDs}
	}
	rows, err := m.runBudgeted(inputs, false)
	if err != nil {
		return nil, fmt.Errorf("embed sparse: %w", err)
	}
	out := make([]SparseVector, len(rows))
	for i, r := range rows {
		out[i] = Sparsify(r, opts)
	}
	return out, nil
}

// TokenStrings returns the vocabulary strings (Hugging Face form, "##ing" for continuations) of
// the ids, as SPLADE clients show the entries of a sparse vector.
func (m *Model) TokenStrings(ids []int32) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		s, ok := m.tok.Token(id)
		if !ok {
			return nil, fmt.Errorf("token strings: id %d out of the vocabulary range [0,%d)", id, m.vocab)
		}
		out[i] = s
	}
	return out, nil
}
