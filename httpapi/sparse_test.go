package httpapi_test

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/model"
)

type sparseObject struct {
	Object  string    `json:"object"`
	Index   int       `json:"index"`
	Indices []int32   `json:"indices"`
	Values  []float32 `json:"values"`
	Tokens  []string  `json:"tokens"`
}

type sparseResponse struct {
	Object string         `json:"object"`
	Model  string         `json:"model"`
	Data   []sparseObject `json:"data"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

type teiSparseValue struct {
	Index int32   `json:"index"`
	Value float32 `json:"value"`
}

var sparseInputs = []string{
	"the quick brown fox jumps over the lazy dog",
	"splade expands a query with related terms.",
	"a",
}

// checkSparseAgainstReference compares a served sparse vector with the float64 reference of the
// same text: the same non-zero set and values within 1e-3 relative. Entries whose reference value
// is under deadBand (a logit within float32 rounding of 0) may fall either way.
func checkSparseAgainstReference(t *testing.T, i int, indices []int32, values []float32, want []float64) {
	t.Helper()
	const deadBand = 1e-4
	if !slices.IsSorted(indices) || len(indices) != len(values) {
		t.Fatalf("text %d: indices unsorted or %d indices for %d values", i, len(indices), len(values))
	}
	have := map[int32]float32{}
	for k, idx := range indices {
		if k > 0 && idx == indices[k-1] {
			t.Fatalf("text %d: index %d repeated", i, idx)
		}
		have[idx] = values[k]
	}
	nonzero := 0
	for idx, w := range want {
		g, ok := have[int32(idx)]
		switch {
		case w > deadBand:
			nonzero++
			if !ok {
				t.Errorf("text %d: entry %d missing, reference %.6g", i, idx, w)
			} else if d := math.Abs(float64(g) - w); d > 1e-3*w+1e-5 {
				t.Errorf("text %d: entry %d = %.6g, reference %.6g", i, idx, g, w)
			}
		case ok && float64(g) > 2*deadBand:
			t.Errorf("text %d: entry %d = %.6g, reference %.3g", i, idx, g, w)
		}
	}
	if nonzero == 0 || nonzero > len(want)/10 {
		t.Errorf("text %d: %d non-zero reference entries: not sparse", i, nonzero)
	}
}

func TestEmbedSparseDialects(t *testing.T) {
	ts := newRSServer(t, "", "")
	local := loadLocal(t, ts.files.splade, model.KindSparse)
	ref := loadRef(t, ts.files.splade)
	want := make([][]float64, len(sparseInputs))
	tokens := 0
	for i, text := range sparseInputs {
		enc := local.Tokenizer().Encode(text)
		tokens += len(enc.IDs)
		var err error
		if want[i], err = ref.Splade(enc.IDs, enc.TypeIDs); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("api v1 with tokens", func(t *testing.T) {
		var resp sparseResponse
		ts.callOK(t, "/api/v1/embed_sparse", map[string]any{"model": "splade", "input": sparseInputs, "return_tokens": true}, &resp)
		if resp.Object != "list" || resp.Model != "splade" || len(resp.Data) != len(sparseInputs) {
			t.Fatalf("object %q model %q, %d vectors", resp.Object, resp.Model, len(resp.Data))
		}
		if resp.Usage.TotalTokens != tokens || resp.Usage.PromptTokens != tokens {
			t.Errorf("usage %+v, want %d", resp.Usage, tokens)
		}
		for i, d := range resp.Data {
			if d.Object != "sparse_embedding" || d.Index != i {
				t.Errorf("data[%d]: object %q index %d", i, d.Object, d.Index)
			}
			checkSparseAgainstReference(t, i, d.Indices, d.Values, want[i])
			wantTokens, err := local.TokenStrings(d.Indices)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Tokens, wantTokens) {
				t.Errorf("data[%d]: tokens differ from the vocabulary strings of its indices", i)
			}
		}
	})
	t.Run("api v1 single string, top_k and threshold", func(t *testing.T) {
		var all, top sparseResponse
		ts.callOK(t, "/api/v1/embed_sparse", map[string]any{"model": "splade", "input": sparseInputs[0]}, &all)
		ts.callOK(t, "/api/v1/embed_sparse", map[string]any{"model": "splade", "input": sparseInputs[0], "top_k": 5, "threshold": 0.05}, &top)
		if len(all.Data) != 1 || len(top.Data) != 1 || all.Data[0].Tokens != nil {
			t.Fatalf("%d and %d vectors; tokens %v without return_tokens", len(all.Data), len(top.Data), all.Data[0].Tokens)
		}
		full := map[int32]float32{}
		var vals []float32
		for k, idx := range all.Data[0].Indices {
			full[idx] = all.Data[0].Values[k]
			if all.Data[0].Values[k] > 0.05 {
				vals = append(vals, all.Data[0].Values[k])
			}
		}
		slices.Sort(vals)
		fifth := vals[len(vals)-5]
		d := top.Data[0]
		if len(d.Indices) != 5 || !slices.IsSorted(d.Indices) {
			t.Fatalf("top_k 5: indices %v", d.Indices)
		}
		for k, idx := range d.Indices {
			if d.Values[k] != full[idx] || d.Values[k] < fifth {
				t.Errorf("top_k entry %d = %g: not among the five largest (fifth %g) or differs from %g", idx, d.Values[k], fifth, full[idx])
			}
		}
	})
	t.Run("nothing above the threshold gives empty lists, not null", func(t *testing.T) {
		status, body := ts.call(t, "/api/v1/embed_sparse", map[string]any{"model": "splade", "input": "a", "threshold": 1e6, "return_tokens": true})
		if status != http.StatusOK || !strings.Contains(string(body), `"indices":[],"values":[],"tokens":[]`) {
			t.Errorf("status %d: %s", status, body)
		}
	})
	t.Run("tei", func(t *testing.T) {
		var resp [][]teiSparseValue
		// The only sparse model is the default: TEI requests need not name it.
		ts.callOK(t, "/embed_sparse", map[string]any{"inputs": sparseInputs}, &resp)
		if len(resp) != len(sparseInputs) {
			t.Fatalf("%d vectors", len(resp))
		}
		for i, v := range resp {
			idx := make([]int32, len(v))
			val := make([]float32, len(v))
			for k, e := range v {
				idx[k], val[k] = e.Index, e.Value
			}
			checkSparseAgainstReference(t, i, idx, val, want[i])
		}
		var one [][]teiSparseValue
		ts.callOK(t, "/embed_sparse", map[string]any{"inputs": sparseInputs[2], "model": "splade"}, &one)
		if len(one) != 1 || len(one[0]) != len(resp[2]) {
			t.Errorf("single input: %d vectors", len(one))
		}
	})
}

func TestEmbedSparseBadRequests(t *testing.T) {
	ts := newRSServer(t, "", "")
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"missing input", "/api/v1/embed_sparse", `{"model": "splade"}`, 400, "missing_input"},
		{"empty input", "/api/v1/embed_sparse", `{"model": "splade", "input": []}`, 400, "empty_input"},
		{"empty string", "/api/v1/embed_sparse", `{"model": "splade", "input": ["a", ""]}`, 400, "empty_input"},
		{"negative top_k", "/api/v1/embed_sparse", `{"model": "splade", "input": "a", "top_k": -1}`, 400, "invalid_top_k"},
		{"negative threshold", "/api/v1/embed_sparse", `{"model": "splade", "input": "a", "threshold": -0.5}`, 400, "invalid_threshold"},
		{"threshold not a number", "/api/v1/embed_sparse", `{"model": "splade", "input": "a", "threshold": "high"}`, 400, "invalid_type"},
		{"token id out of range", "/api/v1/embed_sparse", `{"model": "splade", "input": [[101, 99999]]}`, 400, "invalid_token_id"},
		{"dense model", "/api/v1/embed_sparse", `{"model": "minilm", "input": "a"}`, 400, "wrong_model_type"},
		{"rerank model", "/api/v1/embed_sparse", `{"model": "ranker", "input": "a"}`, 400, "wrong_model_type"},
		{"unknown model", "/api/v1/embed_sparse", `{"model": "nope", "input": "a"}`, 404, "model_not_found"},
		{"sparse model asked to embed", "/v1/embeddings", `{"model": "splade", "input": "a"}`, 400, "wrong_model_type"},
		{"too long without truncate", "/api/v1/embed_sparse", `{"model": "splade", "input": "` + rsLongDoc + `", "truncate": false}`, 400, "context_length_exceeded"},
		{"tei empty inputs", "/embed_sparse", `{"inputs": []}`, 422, "validation"},
		{"tei too long (no truncation by default)", "/embed_sparse", `{"inputs": "` + rsLongDoc + `"}`, 422, "validation"},
		{"tei dense model", "/embed_sparse", `{"inputs": "a", "model": "minilm"}`, 422, "validation"},
		{"tei not json", "/embed_sparse", `inputs=a`, 422, "validation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ts.call(t, tc.path, tc.body)
			if tc.path == "/embed_sparse" {
				checkTEIError(t, status, body, tc.status, tc.code)
			} else {
				checkOpenAIError(t, status, body, tc.status, tc.code)
			}
		})
	}
	status, _ := ts.call(t, "/api/v1/embed_sparse", `{"model": "splade", "input": "still serving"}`)
	if status != http.StatusOK {
		t.Errorf("after bad requests: status %d", status)
	}
}
