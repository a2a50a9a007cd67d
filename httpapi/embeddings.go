package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/internal/jsonfloat"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/registry"
)

// embeddingsRequest is OpenAI's embeddings request plus embedd's extension fields.
type embeddingsRequest struct {
	// Input is a string, an array of strings, an array of token ids or an array of token-id arrays.
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	EncodingFormat string          `json:"encoding_format"`
	// Dimensions keeps the first N components (Matryoshka) and re-normalizes them.
	Dimensions *int   `json:"dimensions"`
	User       string `json:"user"`
	// Truncate (extension, default true) cuts inputs longer than the model's context; false makes
	// them a 400 error instead.
	Truncate *bool `json:"truncate"`
	// InputType (extension) "query" or "document" prepends the model's configured prefix to texts.
	InputType string `json:"input_type"`
}

type embeddingObject struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32
}

type usage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

type embeddingsResponse struct {
	Object string            `json:"object"`
	Data   []embeddingObject `json:"data"`
	Model  string            `json:"model"`
	Usage  usage             `json:"usage"`
}

// rawInputs are a request's inputs before tokenization: texts or token-id sequences.
type rawInputs struct {
	texts []string
	ids   [][]int64
}

func (in rawInputs) len() int { return len(in.texts) + len(in.ids) }

// call tracks one inference request for metrics.
type call struct {
	endpoint string
	model    string // canonical id once resolved
	inputs   int
	start    time.Time
}

func (s *Server) finish(c *call, outcome string) {
	model := c.model
	if model == "" {
		model = "unknown"
	}
	s.met.ObserveRequest(model, c.endpoint, outcome, c.inputs, time.Since(c.start).Seconds())
}

// fail answers an error and records it.
func (s *Server) fail(w http.ResponseWriter, c *call, e *apiError) {
	if e == nil { // the client went away: nothing to answer
		s.finish(c, metrics.OutcomeCanceled)
		return
	}
	writeError(w, e)
	s.finish(c, e.outcome())
}

// readBody reads a JSON request body within the configured limit and checks it is UTF-8.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, dst any) *apiError {
	limit := s.cfg().Server.MaxBodyBytes
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge("", "the request body exceeds the limit of %d bytes", limit)
		}
		return badRequest("", "invalid_body", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "invalid_json", "the request body is empty; send a JSON object")
	}
	// encoding/json would silently replace invalid UTF-8 with U+FFFD; texts must arrive intact.
	if !utf8.Valid(body) {
		return badRequest("", "invalid_encoding", "the request body is not valid UTF-8")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return badRequest(typeErr.Field, "invalid_type", "%s must be of type %s, not a JSON %s",
				typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return badRequest("", "invalid_json", "the request body is not valid JSON: %v", err)
	}
	return nil
}

// parseInputAs is parseInput for a dialect whose inputs field is called param: errors name it.
func parseInputAs(raw json.RawMessage, param string) (rawInputs, *apiError) {
	in, e := parseInput(raw)
	if e != nil && e.Param != nil && *e.Param == "input" {
		e.Param = strPtr(param)
	}
	return in, e
}

// parseInput decodes OpenAI's four input forms.
func parseInput(raw json.RawMessage) (rawInputs, *apiError) {
	var out rawInputs
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return out, badRequest("input", "missing_input", "input is required")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return out, badRequest("input", "invalid_input", "input is not a valid JSON string: %v", err)
		}
		out.texts = []string{s}
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return out, badRequest("input", "invalid_input", "input is not a valid JSON array: %v", err)
		}
		if len(items) == 0 {
			return out, badRequest("input", "empty_input", "input must not be an empty array")
		}
		first := bytes.TrimSpace(items[0])
		switch {
		case len(first) > 0 && first[0] == '"':
			out.texts = make([]string, len(items))
			for i, it := range items {
				if err := json.Unmarshal(it, &out.texts[i]); err != nil || !isJSONString(it) {
					return out, badRequest("input", "invalid_input", "input[%d]: an array of strings may only hold strings", i)
				}
			}
		case len(first) > 0 && first[0] == '[':
			out.ids = make([][]int64, len(items))
			for i, it := range items {
				if err := json.Unmarshal(it, &out.ids[i]); err != nil || !isJSONArray(it) {
					return out, badRequest("input", "invalid_input", "input[%d]: an array of token-id arrays may only hold arrays of integers", i)
				}
			}
		default:
			var ids []int64
			if err := json.Unmarshal(raw, &ids); err != nil {
				return out, badRequest("input", "invalid_input", "input must be a string, an array of strings, an array of integer token ids or an array of such arrays")
			}
			out.ids = [][]int64{ids}
		}
	default:
		return out, badRequest("input", "invalid_input", "input must be a string, an array of strings, an array of integer token ids or an array of such arrays")
	}
	for i, t := range out.texts {
		if t == "" {
			return out, badRequest("input", "empty_input", "input[%d] is an empty string", i)
		}
	}
	for i, ids := range out.ids {
		if len(ids) == 0 {
			return out, badRequest("input", "empty_input", "input[%d] is an empty token-id array", i)
		}
	}
	return out, nil
}

func isJSONString(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '"'
}

func isJSONArray(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '['
}

// resolve finds the model a request names and checks it serves the endpoint's type, before
// anything is loaded.
func (s *Server) resolve(c *call, name, wantType string) (config.Model, *apiError) {
	if name == "" {
		return config.Model{}, badRequest("model", "missing_model", "model is required")
	}
	spec, ok := s.reg.Lookup(name)
	if !ok {
		return config.Model{}, notFound("model", "model_not_found", "the model %q does not exist", name)
	}
	c.model = spec.ID
	if spec.Type != wantType {
		return spec, badRequest("model", "wrong_model_type", "the model %q is a %s model; %s needs a %s model",
			name, spec.Type, c.endpoint, wantType)
	}
	return spec, nil
}

// requestContext is the request's context bounded by the configured request timeout.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg().Server.RequestTimeout.Duration)
}

// acquire loads (if needed) and pins the model for the request.
func (s *Server) acquire(ctx context.Context, r *http.Request, name string) (*registry.Handle, *apiError) {
	h, err := s.reg.Acquire(ctx, name)
	switch {
	case err == nil:
		return h, nil
	case errors.Is(err, registry.ErrUnknownModel):
		return nil, notFound("model", "model_not_found", "the model %q does not exist", name)
	case errors.Is(err, registry.ErrLoadFailed):
		return nil, unavailable("model_unavailable", "%v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, errorFromContext(r, err)
	default:
		return nil, unavailable("model_unavailable", "the model %q is not available: %v", name, err)
	}
}

// tokenize turns texts or token ids into engine inputs, honoring truncate and the input-type prefix.
// Inputs over the model's limit keep their start.
func tokenize(h *registry.Handle, in rawInputs, truncate bool, prefix string) ([]batcher.Input, int, *apiError) {
	return tokenizeDirected(h, in, truncate, false, prefix, "input")
}

// tokenizeDirected is tokenize with the truncation side chosen: keepEnd cuts inputs over the limit
// from the left, keeping their end (TEI's truncation_direction "left"). param names the inputs'
// field in errors.
func tokenizeDirected(h *registry.Handle, in rawInputs, truncate, keepEnd bool, prefix, param string) ([]batcher.Input, int, *apiError) {
	info := h.Model.Info()
	inputs := make([]batcher.Input, 0, in.len())
	tokens := 0
	cls, sep := h.Model.SpecialTokens()
	lister, canList := h.Model.(tokenLister)
	for i, text := range in.texts {
		var enc registry.Encoding
		if keepEnd && canList {
			// One tokenization, framed here: the tokenizer's own Encode keeps the start.
			ids, _ := lister.Tokenize(prefix + text)
			enc.Input.IDs = frameTokens(ids, cls, sep, false, false, info.MaxTokens, true)
			enc.Truncated = len(ids)+2 > info.MaxTokens
		} else {
			enc = h.Model.Encode(prefix + text)
		}
		if enc.Truncated && !truncate {
			return nil, 0, badRequest(param, "context_length_exceeded",
				"%s[%d] is longer than the model's limit of %d tokens and truncate is false", param, i, info.MaxTokens)
		}
		if enc.Truncated && keepEnd && !canList {
			return nil, 0, badRequest("truncation_direction", "invalid_truncation_direction",
				"the model %q cannot truncate from the left", h.Spec.ID)
		}
		inputs = append(inputs, enc.Input)
		tokens += len(enc.Input.IDs)
	}
	for i, ids := range in.ids {
		seq, e := tokenIDs(i, ids, info, cls, sep, truncate, keepEnd, param)
		if e != nil {
			return nil, 0, e
		}
		inputs = append(inputs, batcher.Input{IDs: seq})
		tokens += len(seq)
	}
	return inputs, tokens, nil
}

// tokenIDs checks raw token ids against the vocabulary and frames them as [CLS] ids [SEP]: [CLS] is
// added unless the sequence starts with it and [SEP] unless it ends with it. A sequence longer than
// the limit keeps its head and its final [SEP], or with keepEnd its [CLS] and its tail.
func tokenIDs(i int, ids []int64, info registry.Info, cls, sep int32, truncate, keepEnd bool, param string) ([]int32, *apiError) {
	for j, id := range ids {
		if id < 0 || id >= int64(info.Vocab) {
			return nil, badRequest(param, "invalid_token_id",
				"%s[%d][%d]: token id %d is outside the model's vocabulary [0, %d)", param, i, j, id, info.Vocab)
		}
	}
	n := len(ids)
	hasCLS, hasSEP := int32(ids[0]) == cls, int32(ids[n-1]) == sep
	total := n
	if !hasCLS {
		total++
	}
	if !hasSEP {
		total++
	}
	if total > info.MaxTokens && !truncate {
		return nil, badRequest(param, "context_length_exceeded",
			"%s[%d] has %d tokens with [CLS]/[SEP], more than the model's limit of %d, and truncate is false", param, i, total, info.MaxTokens)
	}
	seq := make([]int32, n)
	for j, id := range ids {
		seq[j] = int32(id)
	}
	return frameTokens(seq, cls, sep, hasCLS, hasSEP, info.MaxTokens, keepEnd), nil
}

// frameTokens returns [CLS] ids [SEP] (each added unless hasCLS / hasSEP say ids carry it) cut to
// limit tokens: the head and [SEP] kept, or with keepEnd [CLS] and the tail.
func frameTokens(ids []int32, cls, sep int32, hasCLS, hasSEP bool, limit int, keepEnd bool) []int32 {
	body := ids
	if hasCLS {
		body = body[1:]
	}
	if hasSEP && len(body) > 0 {
		body = body[:len(body)-1]
	}
	if room := max(limit-2, 0); len(body) > room {
		if keepEnd {
			body = body[len(body)-room:]
		} else {
			body = body[:room]
		}
	}
	seq := make([]int32, 0, len(body)+2)
	seq = append(seq, cls)
	seq = append(seq, body...)
	return append(seq, sep)
}

// submit queues the inputs and maps the batcher's errors.
func (s *Server) submit(ctx context.Context, r *http.Request, h *registry.Handle, inputs []batcher.Input) ([][]float32, *apiError) {
	out, err := h.Queue.Submit(ctx, inputs)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, batcher.ErrQueueFull):
		return nil, overloaded(h.Spec.ID)
	case errors.Is(err, batcher.ErrClosed):
		return nil, unavailable("model_unavailable", "the model %q is shutting down", h.Spec.ID)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, errorFromContext(r, err)
	default:
		return nil, internal("inference failed: %v", err)
	}
}

// prepared is an inference request ready to queue.
type prepared struct {
	handle *registry.Handle
	inputs []batcher.Input
	tokens int
}

// openModel resolves the model a request names, checks its type, the input type and the number of
// inputs, and acquires the model. It returns the handle, which the caller must Release, and the
// text prefix the input type selects.
func (s *Server) openModel(ctx context.Context, r *http.Request, c *call, name, wantType string, inputs int,
	inputType string) (*registry.Handle, string, *apiError) {
	spec, e := s.resolve(c, name, wantType)
	if e != nil {
		return nil, "", e
	}
	var prefix string
	switch inputType {
	case "":
	case "query":
		prefix = spec.QueryPrefix
	case "document":
		prefix = spec.DocumentPrefix
	default:
		return nil, "", badRequest("input_type", "invalid_input_type", "input_type must be \"query\" or \"document\", not %q", inputType)
	}
	if max := s.cfg().Server.MaxRequestInputs; inputs > max {
		return nil, "", tooLarge("input", "%d inputs exceed the limit of %d per request", inputs, max)
	}
	h, e := s.acquire(ctx, r, name)
	if e != nil {
		return nil, "", e
	}
	return h, prefix, nil
}

// infer is the path every inference endpoint shares: it resolves and checks the model, validates
// the request against it (check may be nil), tokenizes in the caller's goroutine, and runs the
// inputs through the model's queue. The caller must Release the handle when it is not nil.
func (s *Server) infer(ctx context.Context, r *http.Request, c *call, name, wantType string, in rawInputs,
	truncate bool, inputType string, check func(registry.Info) *apiError) (*prepared, [][]float32, *apiError) {
	h, prefix, e := s.openModel(ctx, r, c, name, wantType, in.len(), inputType)
	if e != nil {
		return nil, nil, e
	}
	p := &prepared{handle: h}
	if check != nil {
		if e := check(h.Model.Info()); e != nil {
			return p, nil, e
		}
	}
	p.inputs, p.tokens, e = tokenize(h, in, truncate, prefix)
	if e != nil {
		return p, nil, e
	}
	out, e := s.submit(ctx, r, h, p.inputs)
	return p, out, e
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	c := &call{endpoint: "embeddings", start: time.Now()}
	var req embeddingsRequest
	if e := s.readBody(w, r, &req); e != nil {
		s.fail(w, c, e)
		return
	}
	in, e := parseInput(req.Input)
	if e != nil {
		s.fail(w, c, e)
		return
	}
	c.inputs = in.len()
	useBase64 := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		useBase64 = true
	default:
		s.fail(w, c, badRequest("encoding_format", "invalid_encoding_format",
			"encoding_format must be \"float\" or \"base64\", not %q", req.EncodingFormat))
		return
	}
	if e := checkDimensions(req.Dimensions, 0); e != nil {
		s.fail(w, c, e)
		return
	}
	truncate := req.Truncate == nil || *req.Truncate

	ctx, cancel := s.requestContext(r)
	defer cancel()
	checkDims := func(info registry.Info) *apiError { return checkDimensions(req.Dimensions, info.Dim) }
	p, vectors, e := s.infer(ctx, r, c, req.Model, config.TypeEmbeddings, in, truncate, req.InputType, checkDims)
	if p != nil {
		defer p.handle.Release()
	}
	if e != nil || vectors == nil {
		if e == nil {
			e = internal("inference returned no vectors")
		}
		s.fail(w, c, e)
		return
	}
	normalize := p.handle.Spec.Normalized()
	resp := embeddingsResponse{
		Object: "list",
		Data:   make([]embeddingObject, len(vectors)),
		Model:  p.handle.Spec.ID,
		Usage:  usage{PromptTokens: p.tokens, TotalTokens: p.tokens},
	}
	for i, v := range vectors {
		v = shapeVector(v, req.Dimensions, normalize, normalize)
		var emb any = v
		if useBase64 {
			emb = encodeBase64(v)
		}
		resp.Data[i] = embeddingObject{Object: "embedding", Index: i, Embedding: emb}
	}
	writeEmbeddings(w, &resp)
	s.finish(c, metrics.OutcomeOK)
}

// writeEmbeddings answers resp with 200. It encodes by hand what json.Marshal would produce byte
// for byte, because reflection over hundreds of float32 per vector was most of the server's own
// time on short queries; anything it cannot encode (NaN, Inf) falls back to writeJSON's answer.
func writeEmbeddings(w http.ResponseWriter, resp *embeddingsResponse) {
	// Up to 16 bytes per float ("-0.012345678" plus a comma).
	writeBody(w, 64+len(resp.Data)*(48+16*embeddingLen(resp)), func(b []byte) ([]byte, bool) {
		return appendEmbeddingsJSON(b, resp)
	}, resp)
}

// writeBody answers 200 with the JSON that appendBody appends to a pooled buffer of at least
// sizeHint bytes (one allocation at most), or, when appendBody reports a value it cannot encode,
// with writeJSON's encoding of fallback.
func writeBody(w http.ResponseWriter, sizeHint int, appendBody func([]byte) ([]byte, bool), fallback any) {
	bufp := responseBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bufp) <= maxPooledResponse {
			responseBuffers.Put(bufp)
		}
	}()
	if cap(*bufp) < sizeHint {
		*bufp = make([]byte, 0, sizeHint)
	}
	body, ok := appendBody((*bufp)[:0])
	*bufp = body[:0]
	if !ok {
		writeJSON(w, http.StatusOK, fallback)
		return
	}
	body = append(body, '\n')
	*bufp = body[:0]
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// responseBuffers recycles response bodies: a short query's ~6 KB answer was the server's largest
// allocation per request, and fewer allocations mean fewer GC cycles competing with the engine.
// Buffers above maxPooledResponse (bulk answers) are left to the GC rather than kept resident.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

const maxPooledResponse = 256 << 10

// embeddingLen is the length of the first embedding in floats or base64 bytes (a size hint).
func embeddingLen(resp *embeddingsResponse) int {
	if len(resp.Data) == 0 {
		return 0
	}
	switch e := resp.Data[0].Embedding.(type) {
	case []float32:
		return len(e)
	case string:
		return len(e) / 10
	}
	return 0
}

// appendEmbeddingsJSON appends resp as json.Marshal encodes it; false when it holds a value
// json.Marshal refuses (a non-finite float) or an embedding of another type.
func appendEmbeddingsJSON(b []byte, resp *embeddingsResponse) ([]byte, bool) {
	b = append(b, `{"object":`...)
	b = appendJSONString(b, resp.Object)
	b = append(b, `,"data":`...)
	if resp.Data == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, d := range resp.Data {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"object":`...)
			b = appendJSONString(b, d.Object)
			b = append(b, `,"index":`...)
			b = strconv.AppendInt(b, int64(d.Index), 10)
			b = append(b, `,"embedding":`...)
			switch e := d.Embedding.(type) {
			case []float32:
				var ok bool
				if b, ok = appendJSONFloats(b, e); !ok {
					return b, false
				}
			case string:
				b = appendJSONString(b, e)
			default:
				return b, false
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"model":`...)
	b = appendJSONString(b, resp.Model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(resp.Usage.PromptTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(resp.Usage.TotalTokens), 10)
	return append(b, "}}"...), true
}

// appendJSONString appends s as a JSON string. Plain strings (printable ASCII without quotes,
// backslashes or the HTML characters encoding/json escapes) are copied; others go through
// json.Marshal so that escaping stays identical.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONFloats appends v as a JSON array the way encoding/json formats float32 (jsonfloat);
// false on NaN or Inf, which JSON cannot hold.
func appendJSONFloats(b []byte, v []float32) ([]byte, bool) {
	if v == nil {
		return append(b, "null"...), true
	}
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = jsonfloat.Append(b, x); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// checkDimensions checks a request's dimensions (nil: all) against the model's size dim (0: not
// known yet, only the lower bound is checked).
func checkDimensions(d *int, dim int) *apiError {
	switch {
	case d == nil:
	case *d < 1:
		return badRequest("dimensions", "invalid_dimensions", "dimensions must be at least 1, not %d", *d)
	case dim > 0 && *d > dim:
		return badRequest("dimensions", "invalid_dimensions", "dimensions %d exceeds the model's %d", *d, dim)
	}
	return nil
}

// shapeVector keeps the first dims components of v (nil: all) and scales the result to unit length
// when unit is set, unless it already is: the whole vector of a model served normalized.
func shapeVector(v []float32, dims *int, served, unit bool) []float32 {
	cut := dims != nil && *dims < len(v)
	if cut {
		v = v[:*dims]
	}
	if unit && (cut || !served) {
		l2normalize(v)
	}
	return v
}

// l2normalize scales v to unit length in place (a zero vector stays zero).
func l2normalize(v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
}

// encodeBase64 is OpenAI's base64 format: the vector's little-endian float32 bytes.
func encodeBase64(v []float32) string {
	buf := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(buf)
}
