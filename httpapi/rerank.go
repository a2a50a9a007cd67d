package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/registry"
)

// reranker is what a loaded rerank model offers beyond registry.Model: cross-encoder pair
// encoding ([CLS] query [SEP] document [SEP] with token types 0 then 1, the document truncated
// first) and the score of one pair's logits (sigmoid of one label, or the softmax probability of
// the last of several; raw gives the logit / log-odds).
type reranker interface {
	EncodePair(query, document string) registry.Encoding
	Score(logits []float32, raw bool) (float64, error)
}

// Metrics endpoint labels of the rerank and sparse routes (all dialects share one label).
const (
	endpointRerank      = "rerank"
	endpointEmbedSparse = "embed_sparse"
)

// routeRerankSparse adds the rerank and sparse-embedding routes of every dialect to r.
func (s *Server) routeRerankSparse(r *mux.Router) {
	for path, h := range map[string]http.HandlerFunc{
		"/v1/rerank":           s.handleRerank,       // Jina / Cohere
		"/api/v1/rerank":       s.handleRerankLegacy, // the Python original
		"/rerank":              s.handleRerankTEI,    // text-embeddings-inference
		"/api/v1/embed_sparse": s.handleEmbedSparse,
		"/embed_sparse":        s.handleEmbedSparseTEI,
	} {
		r.Handle(path, s.authenticate(h)).Methods(http.MethodPost)
	}
}

// rerankJob is one rerank request in dialect-neutral form.
type rerankJob struct {
	model     string
	query     string
	documents []string
	raw       bool
	truncate  bool
}

// rankedDoc is one document's score.
type rankedDoc struct {
	index int
	score float64
}

// rerankOutcome is a computed rerank request.
type rerankOutcome struct {
	model  string      // canonical model id
	ranked []rankedDoc // sorted by score, highest first; ties keep document order
	tokens int
}

// runRerank scores every document against the query on the model's batcher queue: all pairs of
// the request are submitted together, so they pack into batches with each other and with the
// pairs of concurrent requests.
func (s *Server) runRerank(r *http.Request, c *call, job rerankJob) (*rerankOutcome, *apiError) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	if _, e := s.resolve(c, job.model, config.TypeRerank); e != nil {
		return nil, e
	}
	if max := s.cfg().Server.MaxRequestInputs; len(job.documents) > max {
		return nil, tooLarge("documents", "%d documents exceed the limit of %d per request", len(job.documents), max)
	}
	h, e := s.acquire(ctx, r, job.model)
	if e != nil {
		return nil, e
	}
	defer h.Release()
	rr, ok := h.Model.(reranker)
	if !ok {
		return nil, internal("the model %q cannot encode query/document pairs", h.Spec.ID)
	}
	inputs := make([]batcher.Input, len(job.documents))
	tokens := 0
	for i, d := range job.documents {
		enc := rr.EncodePair(job.query, d)
		if enc.Truncated && !job.truncate {
			return nil, badRequest("documents", "context_length_exceeded",
				"the query with document %d is longer than the model's limit of %d tokens and truncate is false",
				i, h.Model.Info().MaxTokens)
		}
		inputs[i] = enc.Input
		tokens += len(enc.Input.IDs)
	}
	rows, e := s.submit(ctx, r, h, inputs)
	if e != nil {
		return nil, e
	}
	if len(rows) != len(inputs) {
		return nil, internal("inference returned %d results for %d documents", len(rows), len(inputs))
	}
	out := &rerankOutcome{model: h.Spec.ID, ranked: make([]rankedDoc, len(rows)), tokens: tokens}
	for i, row := range rows {
		score, err := rr.Score(row, job.raw)
		if err != nil {
			return nil, internal("document %d: %v", i, err)
		}
		out.ranked[i] = rankedDoc{index: i, score: score}
	}
	sort.SliceStable(out.ranked, func(a, b int) bool { return out.ranked[a].score > out.ranked[b].score })
	return out, nil
}

// label attributes the request to the model it names, when that exists, so that requests refused
// before the model is resolved still count in its metrics.
func (s *Server) label(c *call, name string) {
	if spec, ok := s.reg.Lookup(name); ok {
		c.model = spec.ID
	}
}

// rerankBody is the part every rerank dialect's request shares; the documents' field name differs.
type rerankBody interface {
	rerankFields() (model string, query *string, documents json.RawMessage)
}

func (q *rerankRequest) rerankFields() (string, *string, json.RawMessage) {
	return q.Model, q.Query, q.Documents
}

func (q *legacyRerankRequest) rerankFields() (string, *string, json.RawMessage) {
	return q.Model, q.Query, q.Documents
}

func (q *teiRerankRequest) rerankFields() (string, *string, json.RawMessage) {
	return q.Model, q.Query, q.Texts
}

// readRerank reads a rerank request of any dialect into req, attributes the call to the model it
// names, and checks its query and its documents (the array param; see parseDocuments).
func (s *Server) readRerank(w http.ResponseWriter, r *http.Request, c *call, req rerankBody, param string,
	allowObjects bool) ([]string, *apiError) {
	if e := s.readBody(w, r, req); e != nil {
		return nil, e
	}
	model, query, raw := req.rerankFields()
	s.label(c, model)
	if e := checkQuery(query); e != nil {
		return nil, e
	}
	docs, e := parseDocuments(param, raw, allowObjects)
	if e != nil {
		return nil, e
	}
	c.inputs = len(docs)
	return docs, nil
}

// checkQuery validates a rerank query.
func checkQuery(q *string) *apiError {
	if q == nil {
		return badRequest("query", "missing_query", "query is required")
	}
	if *q == "" {
		return badRequest("query", "empty_query", "query must not be an empty string")
	}
	return nil
}

// parseDocuments decodes a documents array whose items are strings or, if objects are allowed,
// {"text": "..."} objects (Cohere / Jina). Every document must be a non-empty text.
func parseDocuments(param string, raw json.RawMessage, allowObjects bool) ([]string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, badRequest(param, "missing_documents", "%s is required", param)
	}
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, badRequest(param, "invalid_documents", "%s must be an array of strings", param)
	}
	if len(items) == 0 {
		return nil, badRequest(param, "empty_documents", "%s must not be an empty array", param)
	}
	docs := make([]string, len(items))
	for i, it := range items {
		switch {
		case isJSONString(it):
			if err := json.Unmarshal(it, &docs[i]); err != nil {
				return nil, badRequest(param, "invalid_documents", "%s[%d] is not a valid JSON string", param, i)
			}
		case allowObjects && len(bytes.TrimSpace(it)) > 0 && bytes.TrimSpace(it)[0] == '{':
			var obj struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal(it, &obj); err != nil || obj.Text == nil {
				return nil, badRequest(param, "invalid_documents", "%s[%d] must be a string or an object with a string \"text\"", param, i)
			}
			docs[i] = *obj.Text
		default:
			if allowObjects {
				return nil, badRequest(param, "invalid_documents", "%s[%d] must be a string or an object with a string \"text\"", param, i)
			}
			return nil, badRequest(param, "invalid_documents", "%s[%d] must be a string", param, i)
		}
		if docs[i] == "" {
			return nil, badRequest(param, "empty_document", "%s[%d] is an empty string", param, i)
		}
	}
	return docs, nil
}

// ---- POST /v1/rerank (Jina / Cohere) ----

type rerankRequest struct {
	Model     string          `json:"model"`
	Query     *string         `json:"query"`
	Documents json.RawMessage `json:"documents"`
	// TopN keeps the best N results; it must be between 1 and the number of documents (Jina and
	// Cohere clamp a larger value; embedd answers 400 so that a client bug does not go unnoticed).
	TopN *int `json:"top_n"`
	// ReturnDocuments adds each document's text to its result (default false, as Cohere).
	ReturnDocuments bool `json:"return_documents"`
	// Truncate (extension, default true) cuts pairs longer than the model's context, document
	// first; false makes that a 400.
	Truncate *bool `json:"truncate"`
}

type rerankDocumentObject struct {
	Text string `json:"text"`
}

type rerankResult struct {
	Index          int                   `json:"index"`
	RelevanceScore float64               `json:"relevance_score"`
	Document       *rerankDocumentObject `json:"document,omitempty"`
}

type rerankResponse struct {
	Model   string         `json:"model"`
	Results []rerankResult `json:"results"`
	Usage   usage          `json:"usage"`
}

func (s *Server) handleRerank(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointRerank, start: time.Now()}
	var req rerankRequest
	docs, e := s.readRerank(w, r, c, &req, "documents", true)
	if e != nil {
		s.fail(w, c, e)
		return
	}
	topN := len(docs)
	if req.TopN != nil {
		if *req.TopN < 1 || *req.TopN > len(docs) {
			s.fail(w, c, badRequest("top_n", "invalid_top_n", "top_n must be between 1 and the number of documents (%d), not %d",
				len(docs), *req.TopN))
			return
		}
		topN = *req.TopN
	}
	out, e := s.runRerank(r, c, rerankJob{model: req.Model, query: *req.Query, documents: docs,
		truncate: req.Truncate == nil || *req.Truncate})
	if e != nil {
		s.fail(w, c, e)
		return
	}
	resp := rerankResponse{Model: out.model, Results: make([]rerankResult, topN),
		Usage: usage{PromptTokens: out.tokens, TotalTokens: out.tokens}}
	for i, rd := range out.ranked[:topN] {
		resp.Results[i] = rerankResult{Index: rd.index, RelevanceScore: rd.score}
		if req.ReturnDocuments {
			resp.Results[i].Document = &rerankDocumentObject{Text: docs[rd.index]}
		}
	}
	writeJSON(w, http.StatusOK, resp)
	s.finish(c, metrics.OutcomeOK)
}

// ---- POST /api/v1/rerank (the Python original) ----

type legacyRerankRequest struct {
	Model     string          `json:"model"`
	Query     *string         `json:"query"`
	Documents json.RawMessage `json:"documents"`
	// TopK keeps the best K results: at least 1; a K beyond the number of documents keeps all, as
	// the original's slicing did.
	TopK *int `json:"top_k"`
}

type legacyRerankResult struct {
	Index int     `json:"index"`
	Score float64 `json:"score"`
	Text  string  `json:"text"`
}

type legacyRerankResponse struct {
	Results []legacyRerankResult `json:"results"`
	Model   string               `json:"model"`
	Query   string               `json:"query"`
}

func (s *Server) handleRerankLegacy(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointRerank, start: time.Now()}
	var req legacyRerankRequest
	docs, e := s.readRerank(w, r, c, &req, "documents", false)
	if e != nil {
		s.fail(w, c, e)
		return
	}
	topK := len(docs)
	if req.TopK != nil {
		if *req.TopK < 1 {
			s.fail(w, c, badRequest("top_k", "invalid_top_k", "top_k must be at least 1, not %d", *req.TopK))
			return
		}
		topK = min(*req.TopK, len(docs))
	}
	out, e := s.runRerank(r, c, rerankJob{model: req.Model, query: *req.Query, documents: docs, truncate: true})
	if e != nil {
		s.fail(w, c, e)
		return
	}
	resp := legacyRerankResponse{Results: make([]legacyRerankResult, topK), Model: out.model, Query: *req.Query}
	for i, rd := range out.ranked[:topK] {
		resp.Results[i] = legacyRerankResult{Index: rd.index, Score: rd.score, Text: docs[rd.index]}
	}
	writeJSON(w, http.StatusOK, resp)
	s.finish(c, metrics.OutcomeOK)
}

// ---- POST /rerank (text-embeddings-inference) ----

type teiRerankRequest struct {
	// Model (extension) names the model; TEI serves one, so it may be left out when exactly one
	// rerank model is configured.
	Model     string          `json:"model"`
	Query     *string         `json:"query"`
	Texts     json.RawMessage `json:"texts"`
	RawScores bool            `json:"raw_scores"`
	// ReturnText adds each text to its result.
	ReturnText bool `json:"return_text"`
	// Truncate defaults to false as in TEI: a pair over the context is an error unless true.
	Truncate bool `json:"truncate"`
}

type teiRank struct {
	Index int     `json:"index"`
	Score float64 `json:"score"`
	Text  *string `json:"text,omitempty"`
}

func (s *Server) handleRerankTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointRerank, start: time.Now()}
	var req teiRerankRequest
	docs, e := s.readRerank(w, r, c, &req, "texts", false)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	name, e := s.modelOrDefault(req.Model, config.TypeRerank)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	out, e := s.runRerank(r, c, rerankJob{model: name, query: *req.Query, documents: docs,
		raw: req.RawScores, truncate: req.Truncate})
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	resp := make([]teiRank, len(out.ranked))
	for i, rd := range out.ranked {
		resp[i] = teiRank{Index: rd.index, Score: rd.score}
		if req.ReturnText {
			resp[i].Text = &docs[rd.index]
		}
	}
	writeJSON(w, http.StatusOK, resp)
	s.finish(c, metrics.OutcomeOK)
}

// modelOrDefault returns name, or when it is empty the id of the one configured model of the
// type (the TEI dialect has no model field: a TEI server serves one model).
func (s *Server) modelOrDefault(name, wantType string) (string, *apiError) {
	if name != "" {
		return name, nil
	}
	var ids []string
	for _, st := range s.reg.List() {
		if st.Spec.Type == wantType {
			ids = append(ids, st.Spec.ID)
		}
	}
	if len(ids) != 1 {
		return "", badRequest("model", "missing_model",
			"model is required: %d %s models are configured, so none is the default", len(ids), wantType)
	}
	return ids[0], nil
}

// teiError is text-embeddings-inference's error body.
type teiError struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type"`
}

// failTEI answers an error in TEI's shape (writeTEIError) and records it.
func (s *Server) failTEI(w http.ResponseWriter, c *call, e *apiError) {
	if e == nil { // the client went away: nothing to answer
		s.finish(c, metrics.OutcomeCanceled)
		return
	}
	writeTEIError(w, e)
	s.finish(c, e.outcome())
}

// writeTEIError answers e in TEI's shape. TEI reports invalid input as 422 "validation"; the
// other statuses keep their meaning. A nil e (the client went away) answers nothing.
func writeTEIError(w http.ResponseWriter, e *apiError) {
	if e == nil {
		return
	}
	status, kind := e.Status, "validation"
	switch e.Status {
	case http.StatusBadRequest:
		status = http.StatusUnprocessableEntity
	case http.StatusTooManyRequests:
		kind = "overloaded"
	case http.StatusServiceUnavailable:
		kind = "unhealthy"
	case http.StatusInternalServerError:
		kind = "backend"
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, status, teiError{Error: e.Message, ErrorType: kind})
}
