package httpapi

import (
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/metrics"
)

// sparseModel is what a loaded sparse-embeddings model offers beyond registry.Model: the
// reduction of a SPLADE row (one weight per vocabulary entry) to its kept entries, sorted by index
// (weights above threshold and, with topK > 0, among the topK largest), and the strings of token
// ids for return_tokens.
type sparseModel interface {
	Sparsify(row []float32, topK int, threshold float32) (indices []int32, values []float32)
	TokenStrings(ids []int32) ([]string, error)
}

// sparseVector is one text's kept SPLADE weights, sorted by index.
type sparseVector struct {
	indices []int32
	values  []float32
}

// sparseOptions select the entries kept.
type sparseOptions struct {
	topK      int     // keep the K largest (ties: lower index); 0 keeps all
	threshold float32 // keep weights strictly above it
}

// sparseJob is one sparse-embedding request in dialect-neutral form.
type sparseJob struct {
	model     string
	in        rawInputs
	truncate  bool
	opts      sparseOptions
	tokens    bool // also return the vocabulary strings
	inputType string
	field     string  // the inputs' field name, for errors
	keepEnd   bool    // truncate from the left (TEI's truncation_direction "left")
	prompt    *string // TEI's prompt_name, instead of inputType (promptPrefix)
}

type sparseOutcome struct {
	model   string
	vectors []sparseVector
	tokens  [][]string // per vector when asked for
	usage   int
}

// runSparse tokenizes the inputs and runs them on the model's batcher queue. A SPLADE row has one
// float per vocabulary entry (30522 for BERT), so a large request is submitted in slices of one
// batch's inputs, each reduced to its sparse form before the next: memory stays bounded by one
// batch, while each slice still packs with the inputs of concurrent requests.
func (s *Server) runSparse(r *http.Request, c *call, job sparseJob) (*sparseOutcome, *apiError) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	h, prefix, e := s.openModel(ctx, r, c, job.model, config.TypeSparseEmbeddings, job.in.len(), job.inputType)
	if e != nil {
		return nil, e
	}
	defer h.Release()
	sm, ok := h.Model.(sparseModel)
	if !ok {
		return nil, internal("the model %q cannot produce sparse vectors", h.Spec.ID)
	}
	if job.prompt != nil {
		if prefix, e = promptPrefix(h.Spec, job.prompt); e != nil {
			return nil, e
		}
	}
	inputs, tokens, e := tokenizeDirected(h, job.in, job.truncate, job.keepEnd, prefix, job.field)
	if e != nil {
		return nil, e
	}
	out := &sparseOutcome{model: h.Spec.ID, vectors: make([]sparseVector, 0, len(inputs)), usage: tokens}
	step := max(s.cfg().Batching.MaxBatchInputs, 1)
	vocabSize := h.Model.Info().Vocab
	for start := 0; start < len(inputs); start += step {
		part := inputs[start:min(start+step, len(inputs))]
		rows, e := s.submit(ctx, r, h, part)
		if e != nil {
			return nil, e
		}
		if len(rows) != len(part) {
			return nil, internal("inference returned %d results for %d inputs", len(rows), len(part))
		}
		for _, row := range rows {
			if len(row) != vocabSize {
				return nil, internal("inference returned %d weights for a vocabulary of %d", len(row), vocabSize)
			}
			idx, val := sm.Sparsify(row, job.opts.topK, job.opts.threshold)
			out.vectors = append(out.vectors, sparseVector{indices: idx, values: val})
		}
	}
	if job.tokens {
		out.tokens = make([][]string, len(out.vectors))
		for i, v := range out.vectors {
			toks, err := sm.TokenStrings(v.indices)
			if err != nil {
				return nil, internal("input %d: %v", i, err)
			}
			out.tokens[i] = toks
		}
	}
	return out, nil
}

// sparseBody is the part both sparse dialects' requests share; the inputs' field name differs.
type sparseBody interface {
	sparseFields() (model string, input json.RawMessage)
}

func (q *sparseRequest) sparseFields() (string, json.RawMessage) { return q.Model, q.Input }

func (q *teiSparseRequest) sparseFields() (string, json.RawMessage) { return q.Model, q.Inputs }

// readSparse reads a sparse-embedding request of either dialect into req, attributes the call to
// the model it names and parses its inputs, reporting input errors under param.
func (s *Server) readSparse(w http.ResponseWriter, r *http.Request, c *call, req sparseBody, param string) (rawInputs, *apiError) {
	if e := s.readBody(w, r, req); e != nil {
		return rawInputs{}, e
	}
	model, raw := req.sparseFields()
	s.label(c, model)
	in, e := parseInputAs(raw, param)
	if e != nil {
		return in, e
	}
	c.inputs = in.len()
	return in, nil
}

// ---- POST /api/v1/embed_sparse ----

type sparseRequest struct {
	// Input is a string, an array of strings, or token ids, as for /v1/embeddings.
	Input        json.RawMessage `json:"input"`
	Model        string          `json:"model"`
	ReturnTokens bool            `json:"return_tokens"`
	// TopK keeps the K largest weights of each vector (0 or absent: all).
	TopK *int `json:"top_k"`
	// Threshold keeps weights strictly above it (default 0: every non-zero weight).
	Threshold *float64 `json:"threshold"`
	// Truncate (default true) cuts inputs longer than the model's context; false makes them a 400.
	Truncate  *bool  `json:"truncate"`
	InputType string `json:"input_type"`
}

type sparseEmbeddingObject struct {
	Object  string    `json:"object"`
	Index   int       `json:"index"`
	Indices []int32   `json:"indices"`
	Values  []float32 `json:"values"`
	Tokens  *[]string `json:"tokens,omitempty"` // a pointer so that an empty list is still written
}

type sparseResponse struct {
	Object string                  `json:"object"`
	Model  string                  `json:"model"`
	Data   []sparseEmbeddingObject `json:"data"`
	Usage  usage                   `json:"usage"`
}

func (s *Server) handleEmbedSparse(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointEmbedSparse, start: time.Now()}
	var req sparseRequest
	in, e := s.readSparse(w, r, c, &req, "input")
	if e != nil {
		s.fail(w, c, e)
		return
	}
	var opts sparseOptions
	if req.TopK != nil {
		if *req.TopK < 0 {
			s.fail(w, c, badRequest("top_k", "invalid_top_k", "top_k must be 0 (all) or more, not %d", *req.TopK))
			return
		}
		opts.topK = *req.TopK
	}
	if req.Threshold != nil {
		t := *req.Threshold
		if t < 0 || math.IsInf(t, 0) || t > math.MaxFloat32 {
			s.fail(w, c, badRequest("threshold", "invalid_threshold", "threshold must be a finite number >= 0, not %g", t))
			return
		}
		opts.threshold = float32(t)
	}
	out, e := s.runSparse(r, c, sparseJob{model: req.Model, in: in, field: "input", truncate: req.Truncate == nil || *req.Truncate,
		opts: opts, tokens: req.ReturnTokens, inputType: req.InputType})
	if e != nil {
		s.fail(w, c, e)
		return
	}
	resp := sparseResponse{Object: "list", Model: out.model, Data: make([]sparseEmbeddingObject, len(out.vectors)),
		Usage: usage{PromptTokens: out.usage, TotalTokens: out.usage}}
	for i, v := range out.vectors {
		obj := sparseEmbeddingObject{Object: "sparse_embedding", Index: i, Indices: v.indices, Values: v.values}
		if obj.Indices == nil { // an all-zero vector is [] in JSON, not null
			obj.Indices, obj.Values = []int32{}, []float32{}
		}
		if out.tokens != nil {
			toks := out.tokens[i]
			if toks == nil {
				toks = []string{}
			}
			obj.Tokens = &toks
		}
		resp.Data[i] = obj
	}
	writeJSON(w, http.StatusOK, resp)
	s.finish(c, metrics.OutcomeOK)
}

// ---- POST /embed_sparse (text-embeddings-inference) ----

type teiSparseRequest struct {
	Inputs json.RawMessage `json:"inputs"`
	// Model (extension) may be left out when exactly one sparse model is configured.
	Model string `json:"model"`
	// Truncate defaults to false as in TEI.
	Truncate bool `json:"truncate"`
	// TruncationDirection and PromptName as for /embed (tei.go).
	TruncationDirection string  `json:"truncation_direction"`
	PromptName          *string `json:"prompt_name"`
}

type teiSparseValue struct {
	Index int32   `json:"index"`
	Value float32 `json:"value"`
}

func (s *Server) handleEmbedSparseTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointEmbedSparse, start: time.Now()}
	var req teiSparseRequest
	in, e := s.readSparse(w, r, c, &req, "inputs")
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	left, e := truncateLeft(req.TruncationDirection)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	name, e := s.modelOrDefault(req.Model, config.TypeSparseEmbeddings)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	out, e := s.runSparse(r, c, sparseJob{model: name, in: in, field: "inputs", truncate: req.Truncate, keepEnd: left,
		prompt: req.PromptName})
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	resp := make([][]teiSparseValue, len(out.vectors))
	for i, v := range out.vectors {
		resp[i] = make([]teiSparseValue, len(v.indices))
		for k := range v.indices {
			resp[i][k] = teiSparseValue{Index: v.indices[k], Value: v.values[k]}
		}
	}
	writeJSON(w, http.StatusOK, resp)
	s.finish(c, metrics.OutcomeOK)
}
