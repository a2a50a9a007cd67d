package httpapi

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/registry"
)

// The text-embeddings-inference (TEI) dialect of dense embeddings, tokenization and model info,
// beside its /rerank and /embed_sparse (rerank.go, sparse.go). A TEI server serves one model, so
// these routes take the model from an optional "model" field (an extension) or default to the one
// configured embeddings model. Errors come in TEI's shape (failTEI).

// Endpoint labels of the TEI routes that run no model.
const (
	endpointTokenize = "tokenize"
	endpointDecode   = "decode"
)

// routeTEI adds the TEI dense-embedding, similarity, tokenization, decoding and info routes to r. POST / is TEI's route
// for "whatever the model does", where Hugging Face's InferenceClient.feature_extraction (and
// LangChain's HuggingFaceEndpointEmbeddings) send their requests; here it embeds.
func (s *Server) routeTEI(r *mux.Router) {
	for _, path := range []string{"/embed", "/"} {
		r.Handle(path, s.authenticate(http.HandlerFunc(s.handleEmbedTEI))).Methods(http.MethodPost)
	}
	r.Handle("/similarity", s.authenticate(http.HandlerFunc(s.handleSimilarityTEI))).Methods(http.MethodPost)
	r.Handle("/tokenize", s.authenticate(http.HandlerFunc(s.handleTokenizeTEI))).Methods(http.MethodPost)
	r.Handle("/decode", s.authenticate(http.HandlerFunc(s.handleDecodeTEI))).Methods(http.MethodPost)
	r.Handle("/info", s.authenticate(http.HandlerFunc(s.handleInfoTEI))).Methods(http.MethodGet)
}

// teiModel is the model a TEI request names, or when it names none the only configured model,
// or else the one embeddings model.
func (s *Server) teiModel(name string) (string, *apiError) {
	if name == "" {
		if list := s.reg.List(); len(list) == 1 {
			return list[0].Spec.ID, nil
		}
	}
	return s.modelOrDefault(name, config.TypeEmbeddings)
}

type teiEmbedRequest struct {
	// Inputs is a string, an array of strings, an array of token ids or an array of such arrays.
	Inputs json.RawMessage `json:"inputs"`
	// Model (extension) may be left out when exactly one embeddings model is configured.
	Model string `json:"model"`
	// Truncate defaults to false as in TEI: an input over the model's limit is an error.
	Truncate bool `json:"truncate"`
	// TruncationDirection "right" (the default: keep the start) or "left" (keep the end).
	TruncationDirection string `json:"truncation_direction"`
	// PromptName "query" or "document" prepends the model's query_prefix or document_prefix.
	PromptName *string `json:"prompt_name"`
	// Normalize defaults to true.
	Normalize *bool `json:"normalize"`
	// Dimensions keeps the first N components (Matryoshka), re-normalized when normalizing.
	Dimensions *int `json:"dimensions"`
}

// truncateLeft parses TEI's truncation_direction (its enum accepts either capitalisation).
func truncateLeft(direction string) (bool, *apiError) {
	switch direction {
	case "", "right", "Right":
		return false, nil
	case "left", "Left":
		return true, nil
	}
	return false, badRequest("truncation_direction", "invalid_truncation_direction",
		"truncation_direction must be \"right\" or \"left\", not %q", direction)
}

// promptPrefix is the text a TEI prompt_name selects. TEI refuses a prompt the model does not
// define, so a name whose prefix models.toml leaves empty is an error too.
func promptPrefix(spec config.Model, name *string) (string, *apiError) {
	if name == nil {
		return "", nil
	}
	var prefix string
	switch *name {
	case "query":
		prefix = spec.QueryPrefix
	case "document":
		prefix = spec.DocumentPrefix
	default:
		return "", badRequest("prompt_name", "invalid_prompt_name",
			"prompt_name must be \"query\" or \"document\" (the model's query_prefix and document_prefix), not %q", *name)
	}
	if prefix == "" {
		return "", badRequest("prompt_name", "invalid_prompt_name",
			"the model %q has no %s prompt: its %s_prefix is not set in models.toml", spec.ID, *name, *name)
	}
	return prefix, nil
}

// teiEmbedJob is a TEI dense-embedding request in checked form.
type teiEmbedJob struct {
	model     string // may be empty: the one embeddings model
	in        rawInputs
	truncate  bool
	keepEnd   bool
	prompt    *string
	normalize bool
	dims      *int
}

// embedTEI runs a TEI dense-embedding job: the vectors, cut to dims and normalized as asked.
func (s *Server) embedTEI(r *http.Request, c *call, job teiEmbedJob) ([][]float32, *apiError) {
	name, e := s.modelOrDefault(job.model, config.TypeEmbeddings)
	if e != nil {
		return nil, e
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	h, _, e := s.openModel(ctx, r, c, name, config.TypeEmbeddings, job.in.len(), "")
	if e != nil {
		return nil, e
	}
	defer h.Release()
	if !job.normalize && h.Spec.Normalized() {
		// The queue computes what models.toml configures; raw vectors cannot be recovered from
		// unit-length ones.
		return nil, badRequest("normalize", "invalid_normalize",
			"the model %q is served normalized (normalize = true in models.toml), so normalize = false is not available", h.Spec.ID)
	}
	if e := checkDimensions(job.dims, h.Model.Info().Dim); e != nil {
		return nil, e
	}
	prefix, e := promptPrefix(h.Spec, job.prompt)
	if e != nil {
		return nil, e
	}
	inputs, _, e := tokenizeDirected(h, job.in, job.truncate, job.keepEnd, prefix, "inputs")
	if e != nil {
		return nil, e
	}
	vectors, e := s.submit(ctx, r, h, inputs)
	if e != nil {
		return nil, e
	}
	for i, v := range vectors {
		vectors[i] = shapeVector(v, job.dims, h.Spec.Normalized(), job.normalize)
	}
	return vectors, nil
}

// handleEmbedTEI serves POST /embed (and POST /): the vectors as an array of float arrays.
func (s *Server) handleEmbedTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: "embeddings", start: time.Now()}
	var req teiEmbedRequest
	if e := s.readBody(w, r, &req); e != nil {
		s.failTEI(w, c, e)
		return
	}
	s.label(c, req.Model)
	in, e := parseInputAs(req.Inputs, "inputs")
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	c.inputs = in.len()
	left, e := truncateLeft(req.TruncationDirection)
	if e == nil {
		e = checkDimensions(req.Dimensions, 0)
	}
	var vectors [][]float32
	if e == nil {
		vectors, e = s.embedTEI(r, c, teiEmbedJob{model: req.Model, in: in, truncate: req.Truncate, keepEnd: left,
			prompt: req.PromptName, normalize: req.Normalize == nil || *req.Normalize, dims: req.Dimensions})
	}
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	size := 16
	for _, v := range vectors {
		size += 2 + 16*len(v)
	}
	writeBody(w, size, func(b []byte) ([]byte, bool) { return appendFloatArrays(b, vectors) }, vectors)
	s.finish(c, metrics.OutcomeOK)
}

// ---- POST /similarity ----

// teiSimilarityRequest is TEI's sentence-similarity request (Hugging Face's
// InferenceClient.sentence_similarity sends it).
type teiSimilarityRequest struct {
	Inputs *struct {
		SourceSentence *string  `json:"source_sentence"`
		Sentences      []string `json:"sentences"`
	} `json:"inputs"`
	Parameters *struct {
		Truncate            bool    `json:"truncate"`
		TruncationDirection string  `json:"truncation_direction"`
		PromptName          *string `json:"prompt_name"`
	} `json:"parameters"`
	Model string `json:"model"`
}

// handleSimilarityTEI serves POST /similarity: the cosine of each sentence to the source sentence.
func (s *Server) handleSimilarityTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: "embeddings", start: time.Now()}
	var req teiSimilarityRequest
	if e := s.readBody(w, r, &req); e != nil {
		s.failTEI(w, c, e)
		return
	}
	s.label(c, req.Model)
	job := teiEmbedJob{model: req.Model, normalize: true}
	var e *apiError
	switch {
	case req.Inputs == nil || req.Inputs.SourceSentence == nil:
		e = badRequest("inputs", "missing_input", "inputs.source_sentence is required")
	case len(req.Inputs.Sentences) == 0:
		e = badRequest("inputs", "empty_input", "inputs.sentences must hold at least one sentence")
	default:
		job.in.texts = append([]string{*req.Inputs.SourceSentence}, req.Inputs.Sentences...)
		for i, t := range job.in.texts {
			if t == "" {
				e = badRequest("inputs", "empty_input", "sentence %d is an empty string (0 is the source)", i)
				break
			}
		}
	}
	if e == nil && req.Parameters != nil {
		job.truncate, job.prompt = req.Parameters.Truncate, req.Parameters.PromptName
		job.keepEnd, e = truncateLeft(req.Parameters.TruncationDirection)
	}
	var vectors [][]float32
	if e == nil {
		c.inputs = job.in.len()
		vectors, e = s.embedTEI(r, c, job)
	}
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	scores := make([]float32, len(vectors)-1)
	for i, v := range vectors[1:] {
		var dot float64
		for k, x := range v {
			dot += float64(x) * float64(vectors[0][k])
		}
		scores[i] = float32(dot) // both unit length
	}
	writeJSON(w, http.StatusOK, scores)
	s.finish(c, metrics.OutcomeOK)
}

// appendFloatArrays appends vs as a JSON array of float arrays; false if a value is not finite.
func appendFloatArrays(b []byte, vs [][]float32) ([]byte, bool) {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendJSONFloats(b, v); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// ---- POST /tokenize ----

type teiTokenizeRequest struct {
	// Inputs is a string or an array of strings.
	Inputs json.RawMessage `json:"inputs"`
	Model  string          `json:"model"`
	// AddSpecialTokens (default true) frames each text with [CLS] and [SEP].
	AddSpecialTokens *bool   `json:"add_special_tokens"`
	PromptName       *string `json:"prompt_name"`
}

// teiToken is one token as TEI lists it: start and stop are byte offsets into the text (with its
// prompt), and text is that slice of it, or the token itself for a special token.
type teiToken struct {
	ID      int32  `json:"id"`
	Text    string `json:"text"`
	Special bool   `json:"special"`
	Start   *int   `json:"start"`
	Stop    *int   `json:"stop"`
}

// tokenLister is a model that lists a text's tokens with their byte offsets, untruncated and
// without [CLS]/[SEP], and names token ids (the engine's models do: registry/engine).
type tokenLister interface {
	Tokenize(text string) (ids []int32, offsets [][2]int)
	TokenStrings(ids []int32) ([]string, error)
}

func (s *Server) handleTokenizeTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointTokenize, start: time.Now()}
	var req teiTokenizeRequest
	if e := s.readBody(w, r, &req); e != nil {
		s.failTEI(w, c, e)
		return
	}
	s.label(c, req.Model)
	in, e := parseInputAs(req.Inputs, "inputs")
	if e == nil && in.ids != nil {
		e = badRequest("inputs", "invalid_input", "inputs must be a string or an array of strings")
	}
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	h, prefix, e := s.openTEI(r, c, req.Model, req.PromptName)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	defer h.Release()
	lister, ok := h.Model.(tokenLister)
	if !ok {
		s.failTEI(w, c, internal("the model %q cannot list its tokens", h.Spec.ID))
		return
	}
	cls, sep := h.Model.SpecialTokens()
	special := req.AddSpecialTokens == nil || *req.AddSpecialTokens
	resp := make([][]teiToken, len(in.texts))
	for i, text := range in.texts {
		text = prefix + text
		ids, offsets := lister.Tokenize(text)
		if special {
			ids = append(append([]int32{cls}, ids...), sep)
		}
		strs, err := lister.TokenStrings(ids)
		if err != nil {
			s.failTEI(w, c, internal("listing the tokens of input %d: %v", i, err))
			return
		}
		list := make([]teiToken, len(ids))
		for j, id := range ids {
			t := teiToken{ID: id, Text: strs[j]}
			k := j
			if special {
				k--
			}
			if k < 0 || k >= len(offsets) {
				t.Special = true
			} else {
				start, stop := offsets[k][0], offsets[k][1]
				if start < 0 || start > stop || stop > len(text) {
					s.failTEI(w, c, internal("token %d of input %d has offsets [%d, %d) outside its %d bytes", j, i, start, stop, len(text)))
					return
				}
				t.Text, t.Start, t.Stop = text[start:stop], &start, &stop
			}
			list[j] = t
		}
		resp[i] = list
	}
	writeJSON(w, http.StatusOK, resp)
	s.finish(c, metrics.OutcomeOK)
}

// ---- POST /decode ----

type teiDecodeRequest struct {
	// IDs is an array of token ids or an array of such arrays.
	IDs   json.RawMessage `json:"ids"`
	Model string          `json:"model"`
	// SkipSpecialTokens (default true) leaves [CLS], [SEP], [PAD], [MASK] and [UNK] out.
	SkipSpecialTokens *bool `json:"skip_special_tokens"`
}

// tokenDecoder is a model that turns token ids back into text (the engine's models do).
type tokenDecoder interface {
	Decode(ids []int32, skipSpecial bool) (string, error)
}

// parseIDLists decodes TEI's ids: one array of token ids, or an array of them.
func parseIDLists(raw json.RawMessage) ([][]int64, *apiError) {
	var lists [][]int64
	if err := json.Unmarshal(raw, &lists); err == nil && len(lists) > 0 {
		return lists, nil
	}
	var one []int64
	if err := json.Unmarshal(raw, &one); err != nil || one == nil {
		return nil, badRequest("ids", "invalid_ids", "ids must be an array of token ids or an array of such arrays")
	}
	return [][]int64{one}, nil
}

// handleDecodeTEI serves POST /decode: one text per id array.
func (s *Server) handleDecodeTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: endpointDecode, start: time.Now()}
	var req teiDecodeRequest
	if e := s.readBody(w, r, &req); e != nil {
		s.failTEI(w, c, e)
		return
	}
	s.label(c, req.Model)
	lists, e := parseIDLists(req.IDs)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	h, _, e := s.openTEI(r, c, req.Model, nil)
	if e != nil {
		s.failTEI(w, c, e)
		return
	}
	defer h.Release()
	dec, ok := h.Model.(tokenDecoder)
	if !ok {
		s.failTEI(w, c, internal("the model %q cannot decode token ids", h.Spec.ID))
		return
	}
	vocab := h.Model.Info().Vocab
	skip := req.SkipSpecialTokens == nil || *req.SkipSpecialTokens
	texts := make([]string, len(lists))
	for i, list := range lists {
		ids := make([]int32, len(list))
		for j, id := range list {
			if id < 0 || id >= int64(vocab) {
				s.failTEI(w, c, badRequest("ids", "invalid_token_id",
					"ids[%d][%d]: token id %d is outside the model's vocabulary [0, %d)", i, j, id, vocab))
				return
			}
			ids[j] = int32(id)
		}
		text, err := dec.Decode(ids, skip)
		if err != nil {
			s.failTEI(w, c, internal("decoding ids[%d]: %v", i, err))
			return
		}
		texts[i] = text
	}
	writeJSON(w, http.StatusOK, texts)
	s.finish(c, metrics.OutcomeOK)
}

// openTEI acquires the model a TEI request names (teiModel), whatever its type, and returns the
// prefix its prompt_name selects. The caller must Release the handle.
func (s *Server) openTEI(r *http.Request, c *call, name string, promptName *string) (*registry.Handle, string, *apiError) {
	name, e := s.teiModel(name)
	if e != nil {
		return nil, "", e
	}
	spec, ok := s.reg.Lookup(name)
	if !ok {
		return nil, "", notFound("model", "model_not_found", "the model %q does not exist", name)
	}
	c.model = spec.ID
	prefix, e := promptPrefix(spec, promptName)
	if e != nil {
		return nil, "", e
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	h, e := s.acquire(ctx, r, name)
	return h, prefix, e
}

// ---- GET /info ----

// teiInfo is the part of TEI's /info that describes the model and the server's limits.
type teiInfo struct {
	ModelID               string            `json:"model_id"`
	ModelSHA              *string           `json:"model_sha"`
	ModelDType            string            `json:"model_dtype"`
	ModelType             map[string]any    `json:"model_type"`
	Prompts               map[string]string `json:"prompts,omitempty"`
	MaxConcurrentRequests int               `json:"max_concurrent_requests"`
	MaxInputLength        int               `json:"max_input_length"`
	MaxBatchTokens        int               `json:"max_batch_tokens"`
	MaxBatchRequests      int               `json:"max_batch_requests"`
	MaxClientBatchSize    int               `json:"max_client_batch_size"`
	AutoTruncate          bool              `json:"auto_truncate"`
	TokenizationWorkers   int               `json:"tokenization_workers"`
	Version               string            `json:"version"`
}

// handleInfoTEI serves GET /info for ?model=ID (an extension), or the model teiModel picks.
func (s *Server) handleInfoTEI(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: "info", start: time.Now()}
	h, _, e := s.openTEI(r, c, r.URL.Query().Get("model"), nil)
	if e != nil {
		writeTEIError(w, e)
		return
	}
	spec, info := h.Spec, h.Model.Info()
	h.Release()
	cfg := s.cfg()
	out := teiInfo{
		ModelID: spec.ID, ModelDType: strings.ToLower(info.Quantization),
		MaxConcurrentRequests: cfg.Batching.QueueLength, MaxInputLength: info.MaxTokens,
		MaxBatchTokens: cfg.Batching.MaxBatchTokens, MaxBatchRequests: cfg.Batching.MaxBatchInputs,
		MaxClientBatchSize: cfg.Server.MaxRequestInputs, TokenizationWorkers: runtime.GOMAXPROCS(0),
		Version: "embedd",
	}
	switch spec.Type {
	case config.TypeRerank:
		labels := map[string]string{}
		ids := map[string]int{}
		names := info.Labels
		if len(names) == 0 { // a one-output relevance head, which the file does not name
			names = []string{"LABEL_0"}
		}
		for i, l := range names {
			labels[strconv.Itoa(i)] = l
			ids[l] = i
		}
		out.ModelType = map[string]any{"reranker": map[string]any{"id2label": labels, "label2id": ids}}
	case config.TypeSparseEmbeddings:
		out.ModelType = map[string]any{"embedding": map[string]any{"pooling": "splade"}}
	default:
		out.ModelType = map[string]any{"embedding": map[string]any{"pooling": info.Pooling}}
	}
	if spec.QueryPrefix != "" || spec.DocumentPrefix != "" {
		out.Prompts = map[string]string{}
		if spec.QueryPrefix != "" {
			out.Prompts["query"] = spec.QueryPrefix
		}
		if spec.DocumentPrefix != "" {
			out.Prompts["document"] = spec.DocumentPrefix
		}
	}
	writeJSON(w, http.StatusOK, out)
}
