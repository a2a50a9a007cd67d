package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/embedd-dev/embedd/tokenizer"
)

// EncodePair tokenizes a query/document pair for a cross-encoder as Hugging Face does for BERT:
// [CLS] query [SEP] document [SEP], token type 0 for [CLS] query [SEP] and 1 for document [SEP].
// Over Info().MaxTokens the document is cut first and the query kept (Truncated is then set).
func (m *Model) EncodePair(query, document string) tokenizer.Encoding {
	return m.tok.EncodePair(query, document)
}

// Score turns one pair's classifier logits into its relevance score.
//
// One label: the logit through a sigmoid, or the logit itself when raw. Two or more labels: the
// softmax probability of the last label (the "relevant" class of two-label rerankers), or when raw
// its log-odds, logit[last] - logsumexp(logit[others]), so that sigmoid(raw) is again the
// probability and raw scores order pairs exactly as probabilities do.
func Score(logits []float32, raw bool) (float64, error) {
	if len(logits) == 0 {
		return 0, errors.New("score: no logits")
	}
	for i, l := range logits {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			return 0, fmt.Errorf("score: logit %d is %g", i, l)
		}
	}
	last := float64(logits[len(logits)-1])
	var logOdds float64
	if len(logits) == 1 {
		logOdds = last
	} else {
		// logsumexp of the other labels, shifted by their maximum so exp never overflows.
		mx := math.Inf(-1)
		for _, l := range logits[:len(logits)-1] {
			mx = math.Max(mx, float64(l))
		}
		sum := 0.0
		for _, l := range logits[:len(logits)-1] {
			sum += math.Exp(float64(l) - mx)
		}
		logOdds = last - (mx + math.Log(sum))
	}
	if raw {
		return logOdds, nil
	}
	return sigmoid(logOdds), nil
}

// sigmoid is 1/(1+e^-x), written per sign so that neither branch overflows.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// Rerank scores every document against query (see Score) and returns the scores in document
// order. The pairs run in packed batches under the same token budget as Embed. The model must be a
// rerank model.
func (m *Model) Rerank(query string, documents []string, raw bool) ([]float64, error) {
	if m.info.Kind != KindRerank {
		return nil, fmt.Errorf("rerank: %s is a %s model, not a rerank model", m.info.Path, m.info.Kind)
	}
	if len(documents) == 0 {
		return nil, errors.New("rerank: no documents")
	}
	inputs := make([]Input, len(documents))
	for i, d := range documents {
		enc := m.tok.EncodePair(query, d)
		inputs[i] = Input{IDs: enc.IDs, TypeIDs: enc.TypeIDs}
	}
	rows, err := m.runBudgeted(inputs, false)
	if err != nil {
		return nil, fmt.Errorf("rerank: %w", err)
	}
	scores := make([]float64, len(rows))
	for i, r := range rows {
		if scores[i], err = Score(r, raw); err != nil {
			return nil, fmt.Errorf("rerank: document %d: %w", i, err)
		}
	}
	return scores, nil
}
