package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
	ref64 "github.com/embedd-dev/embedd/internal/reference"
	"github.com/embedd-dev/embedd/internal/testmodel"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/model"
)

// rsModels are the synthetic models (real MiniLM vocabulary, F32 weights so the engine matches the
// float64 reference) that the rerank and sparse tests serve, written once per test binary.
type rsModels struct {
	dir                     string
	ranker, ranker2, splade string
	once                    sync.Once
	err                     error
}

var rsFiles rsModels

// rsContext is the synthetic models' context: long enough for the test texts, short enough to
// truncate a long document.
const rsContext = 64

func rsModelFiles(t testing.TB) *rsModels {
	t.Helper()
	rsFiles.once.Do(func() {
		dir, err := os.MkdirTemp("", "embedd-rerank-sparse-")
		if err != nil {
			rsFiles.err = err
			return
		}
		rsFiles.dir = dir
		src, err := testmodel.RealModelPath()
		if err != nil {
			rsFiles.err = err
			return
		}
		base := testmodel.Config{Embd: 64, Heads: 4, FF: 128, Layers: 2, Context: rsContext,
			WeightType: gguf.TypeF32, RealVocabFrom: src}
		rank := base
		rank.Pooling, rank.Head, rank.Seed = 4, testmodel.HeadRank, 11
		rank2 := rank
		rank2.Labels, rank2.Seed = []string{"irrelevant", "relevant"}, 12
		splade := base
		splade.Pooling, splade.Head, splade.Seed, splade.SpladeBias = 1, testmodel.HeadSplade, 13, -3
		rsFiles.ranker = filepath.Join(dir, "ranker.gguf")
		rsFiles.ranker2 = filepath.Join(dir, "ranker2.gguf")
		rsFiles.splade = filepath.Join(dir, "splade.gguf")
		for _, w := range []struct {
			path string
			cfg  testmodel.Config
		}{{rsFiles.ranker, rank}, {rsFiles.ranker2, rank2}, {rsFiles.splade, splade}} {
			if rsFiles.err = testmodel.Write(w.path, w.cfg); rsFiles.err != nil {
				return
			}
		}
	})
	if rsFiles.err != nil {
		t.Fatalf("synthetic models: %v", rsFiles.err)
	}
	return &rsFiles
}

// rsServer is the full stack (config, metrics, scheduler, registry, HTTP API) serving a dense
// model, two rerankers and a SPLADE model.
type rsServer struct {
	*httptest.Server
	met   *metrics.Metrics
	files *rsModels
}

func newRSServer(t testing.TB, server, batching string) *rsServer {
	t.Helper()
	files := rsModelFiles(t)
	toml := fmt.Sprintf(`
[server]
%s
[batching]
%s
[[models]]
id = "minilm"
path = %q
type = "embeddings"

[[models]]
id = "ranker"
path = %q
type = "rerank"
aliases = ["cross-encoder/ms-marco-synthetic"]

[[models]]
id = "ranker-2"
path = %q
type = "rerank"

[[models]]
id = "splade"
path = %q
type = "sparse-embeddings"
`, server, batching, bundledModel(t), files.ranker, files.ranker2, files.splade)
	ts := startStack(t, toml, false)
	return &rsServer{Server: ts.Server, met: ts.met, files: files}
}

// call posts body (marshalled unless already a string) and returns the status and raw answer.
func (ts *rsServer) call(t testing.TB, path string, body any) (int, []byte) {
	t.Helper()
	return request(t, ts.URL, http.MethodPost, path, body)
}

// callOK posts body, requires 200 and decodes the answer into out.
func (ts *rsServer) callOK(t testing.TB, path string, body, out any) {
	t.Helper()
	status, data := ts.call(t, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", path, status, data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: answer %s does not decode: %v", path, data, err)
	}
}

// loadLocal loads a model file directly (not through the server) for expected values.
func loadLocal(t testing.TB, path string, kind model.Kind) *model.Model {
	t.Helper()
	m, err := model.Load(path, model.Options{Kind: kind, Pool: testPool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func loadRef(t testing.TB, path string) *ref64.Model {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ref64.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	rsQuery = "how long do dogs sleep?"
	rsDocs  = []string{
		"the quick brown fox jumps over the lazy dog",
		"dogs sleep twelve to fourteen hours a day.",
		"paris is the capital of france",
		"puppies and old dogs sleep even longer, up to eighteen hours.",
		"a",
	}
	// rsLongDoc is longer than the synthetic models' context of 64 tokens.
	rsLongDoc = strings.Repeat("a dog sleeps on the warm sofa all afternoon. ", 12)
)

// refScores are the float64 reference's scores of query with each document, encoded as the
// model encodes pairs.
func refScores(t testing.TB, path, query string, docs []string, labels int) []float64 {
	t.Helper()
	m := loadLocal(t, path, model.KindRerank)
	ref := loadRef(t, path)
	out := make([]float64, len(docs))
	for i, d := range docs {
		enc := m.EncodePair(query, d)
		logits, err := ref.Rank(enc.IDs, enc.TypeIDs)
		if err != nil {
			t.Fatal(err)
		}
		if len(logits) != labels {
			t.Fatalf("reference gives %d logits, want %d", len(logits), labels)
		}
		if labels == 1 {
			out[i] = 1 / (1 + math.Exp(-logits[0]))
		} else {
			out[i] = 1 / (1 + math.Exp(logits[0]-logits[1])) // softmax of the last of two
		}
	}
	return out
}

// checkRanking checks that results are sorted by score and that each score matches the
// reference of its document within tol.
func checkRanking(t *testing.T, indices []int, scores, want []float64, tol float64) {
	t.Helper()
	if !sort.SliceIsSorted(scores, func(a, b int) bool { return scores[a] > scores[b] }) {
		t.Errorf("scores not sorted high to low: %v", scores)
	}
	seen := map[int]bool{}
	for k, i := range indices {
		if i < 0 || i >= len(want) || seen[i] {
			t.Fatalf("result %d has index %d (repeated or out of range)", k, i)
		}
		seen[i] = true
		if d := math.Abs(scores[k] - want[i]); !(d <= tol) {
			t.Errorf("document %d: score %.6f, reference %.6f", i, scores[k], want[i])
		}
	}
}

type jinaResult struct {
	Index          int     `json:"index"`
	RelevanceScore float64 `json:"relevance_score"`
	Document       *struct {
		Text string `json:"text"`
	} `json:"document"`
}

type jinaResponse struct {
	Model   string       `json:"model"`
	Results []jinaResult `json:"results"`
	Usage   struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// ranking lists the results' document indices and scores, best first.
func (r jinaResponse) ranking() (indices []int, scores []float64) {
	for _, res := range r.Results {
		indices, scores = append(indices, res.Index), append(scores, res.RelevanceScore)
	}
	return indices, scores
}

type teiRank struct {
	Index int     `json:"index"`
	Score float64 `json:"score"`
	Text  *string `json:"text"`
}

type legacyResponse struct {
	Results []struct {
		Index int     `json:"index"`
		Score float64 `json:"score"`
		Text  string  `json:"text"`
	} `json:"results"`
	Model string `json:"model"`
	Query string `json:"query"`
}

func TestRerankDialects(t *testing.T) {
	ts := newRSServer(t, "", "")
	want := refScores(t, ts.files.ranker, rsQuery, rsDocs, 1)
	local := loadLocal(t, ts.files.ranker, model.KindRerank)
	tokens := 0
	for _, d := range rsDocs {
		tokens += len(local.EncodePair(rsQuery, d).IDs)
	}

	t.Run("v1 strings, all results", func(t *testing.T) {
		var resp jinaResponse
		ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker", "query": rsQuery, "documents": rsDocs}, &resp)
		if resp.Model != "ranker" || len(resp.Results) != len(rsDocs) {
			t.Fatalf("model %q, %d results", resp.Model, len(resp.Results))
		}
		if resp.Usage.TotalTokens != tokens || resp.Usage.PromptTokens != tokens {
			t.Errorf("usage %+v, want %d tokens", resp.Usage, tokens)
		}
		idx, scores := resp.ranking()
		for _, r := range resp.Results {
			if r.Document != nil {
				t.Errorf("document returned without return_documents")
			}
		}
		checkRanking(t, idx, scores, want, 1e-3)
	})
	t.Run("v1 objects, top_n, return_documents, alias", func(t *testing.T) {
		docs := make([]map[string]string, len(rsDocs))
		for i, d := range rsDocs {
			docs[i] = map[string]string{"text": d}
		}
		var resp jinaResponse
		ts.callOK(t, "/v1/rerank", map[string]any{"model": "cross-encoder/ms-marco-synthetic", "query": rsQuery,
			"documents": docs, "top_n": 2, "return_documents": true}, &resp)
		if resp.Model != "ranker" || len(resp.Results) != 2 {
			t.Fatalf("model %q, %d results, want ranker and 2", resp.Model, len(resp.Results))
		}
		best := argsortDesc(want)
		for k, r := range resp.Results {
			if r.Index != best[k] || r.Document == nil || r.Document.Text != rsDocs[r.Index] {
				t.Errorf("result %d: index %d document %v, want index %d with its text", k, r.Index, r.Document, best[k])
			}
		}
	})
	t.Run("tei raw scores and texts", func(t *testing.T) {
		var resp []teiRank
		// One rerank model would be the default; two are configured, so TEI requests name it.
		ts.callOK(t, "/rerank", map[string]any{"model": "ranker", "query": rsQuery, "texts": rsDocs,
			"raw_scores": true, "return_text": true}, &resp)
		if len(resp) != len(rsDocs) {
			t.Fatalf("%d results", len(resp))
		}
		var idx []int
		var scores []float64
		for _, r := range resp {
			idx = append(idx, r.Index)
			scores = append(scores, 1/(1+math.Exp(-r.Score))) // raw logits: sigmoid for the check
			if r.Text == nil || *r.Text != rsDocs[r.Index] {
				t.Errorf("result for %d: text %v", r.Index, r.Text)
			}
		}
		checkRanking(t, idx, scores, want, 1e-3)
	})
	t.Run("legacy top_k beyond the list keeps all", func(t *testing.T) {
		var resp legacyResponse
		ts.callOK(t, "/api/v1/rerank", map[string]any{"model": "ranker", "query": rsQuery, "documents": rsDocs, "top_k": 50}, &resp)
		if resp.Model != "ranker" || resp.Query != rsQuery || len(resp.Results) != len(rsDocs) {
			t.Fatalf("model %q query %q, %d results", resp.Model, resp.Query, len(resp.Results))
		}
		var idx []int
		var scores []float64
		for _, r := range resp.Results {
			idx, scores = append(idx, r.Index), append(scores, r.Score)
			if r.Text != rsDocs[r.Index] {
				t.Errorf("result for %d: text %q", r.Index, r.Text)
			}
		}
		checkRanking(t, idx, scores, want, 1e-3)
		ts.callOK(t, "/api/v1/rerank", map[string]any{"model": "ranker", "query": rsQuery, "documents": rsDocs, "top_k": 1}, &resp)
		if len(resp.Results) != 1 || resp.Results[0].Index != argsortDesc(want)[0] {
			t.Errorf("top_k 1: %+v", resp.Results)
		}
	})
	t.Run("two labels give the probability of the last", func(t *testing.T) {
		want2 := refScores(t, ts.files.ranker2, rsQuery, rsDocs, 2)
		var resp jinaResponse
		ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker-2", "query": rsQuery, "documents": rsDocs}, &resp)
		idx, scores := resp.ranking()
		checkRanking(t, idx, scores, want2, 1e-3)
	})
	t.Run("long document truncated by default, refused without truncate", func(t *testing.T) {
		docs := []string{rsDocs[1], rsLongDoc}
		wantLong := refScores(t, ts.files.ranker, rsQuery, docs, 1)
		var resp jinaResponse
		ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker", "query": rsQuery, "documents": docs}, &resp)
		idx, scores := resp.ranking()
		checkRanking(t, idx, scores, wantLong, 1e-3)
		if resp.Usage.TotalTokens > 2*rsContext {
			t.Errorf("usage %d tokens: the long document was not truncated", resp.Usage.TotalTokens)
		}
		status, body := ts.call(t, "/v1/rerank", map[string]any{"model": "ranker", "query": rsQuery, "documents": docs, "truncate": false})
		checkOpenAIError(t, status, body, http.StatusBadRequest, "context_length_exceeded")
		// TEI's default is not to truncate.
		status, body = ts.call(t, "/rerank", map[string]any{"model": "ranker", "query": rsQuery, "texts": docs})
		checkTEIError(t, status, body, http.StatusUnprocessableEntity, "validation")
	})
}

func argsortDesc(v []float64) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] > v[idx[b]] })
	return idx
}

// checkOpenAIError checks an error answer in OpenAI's shape {"error": {"message", "type", "param", "code"}}.
func checkOpenAIError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil {
		t.Errorf("status %d: body %s is not an OpenAI error: %v", status, body, err)
		return
	}
	if status != wantStatus || e.Error.Code == nil || *e.Error.Code != wantCode || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("status %d code %v, want %d %q: %s", status, e.Error.Code, wantStatus, wantCode, body)
	}
}

// checkTEIError checks an error answer in text-embeddings-inference's shape {"error", "error_type"}.
func checkTEIError(t *testing.T, status int, body []byte, wantStatus int, wantType string) {
	t.Helper()
	var e struct {
		Error     string `json:"error"`
		ErrorType string `json:"error_type"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Errorf("status %d: body %s is not a TEI error: %v", status, body, err)
		return
	}
	if status != wantStatus || e.ErrorType != wantType {
		t.Errorf("status %d type %q, want %d %q: %s", status, e.ErrorType, wantStatus, wantType, body)
	}
}

func TestRerankBadRequests(t *testing.T) {
	ts := newRSServer(t, "", "")
	docs := `["a dog", "a cat"]`
	tests := []struct {
		name, path, body string
		status           int
		code             string // OpenAI code, or TEI error_type for the TEI routes
	}{
		{"invalid json", "/v1/rerank", `{"model": "ranker", `, 400, "invalid_json"},
		{"missing query", "/v1/rerank", `{"model": "ranker", "documents": ` + docs + `}`, 400, "missing_query"},
		{"empty query", "/v1/rerank", `{"model": "ranker", "query": "", "documents": ` + docs + `}`, 400, "empty_query"},
		{"query not a string", "/v1/rerank", `{"model": "ranker", "query": 5, "documents": ` + docs + `}`, 400, "invalid_type"},
		{"missing documents", "/v1/rerank", `{"model": "ranker", "query": "q"}`, 400, "missing_documents"},
		{"empty documents", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": []}`, 400, "empty_documents"},
		{"documents not an array", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": "a dog"}`, 400, "invalid_documents"},
		{"document a number", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": ["a", 3]}`, 400, "invalid_documents"},
		{"document object without text", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": [{"title": "x"}]}`, 400, "invalid_documents"},
		{"empty document", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": ["a", ""]}`, 400, "empty_document"},
		{"top_n 0", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": ` + docs + `, "top_n": 0}`, 400, "invalid_top_n"},
		{"top_n larger than the list", "/v1/rerank", `{"model": "ranker", "query": "q", "documents": ` + docs + `, "top_n": 3}`, 400, "invalid_top_n"},
		{"missing model", "/v1/rerank", `{"query": "q", "documents": ` + docs + `}`, 400, "missing_model"},
		{"unknown model", "/v1/rerank", `{"model": "nope", "query": "q", "documents": ` + docs + `}`, 404, "model_not_found"},
		{"dense model asked to rerank", "/v1/rerank", `{"model": "minilm", "query": "q", "documents": ` + docs + `}`, 400, "wrong_model_type"},
		{"sparse model asked to rerank", "/v1/rerank", `{"model": "splade", "query": "q", "documents": ` + docs + `}`, 400, "wrong_model_type"},
		{"rerank model asked to embed", "/v1/embeddings", `{"model": "ranker", "input": "a dog"}`, 400, "wrong_model_type"},
		{"legacy top_k 0", "/api/v1/rerank", `{"model": "ranker", "query": "q", "documents": ` + docs + `, "top_k": 0}`, 400, "invalid_top_k"},
		{"legacy object documents", "/api/v1/rerank", `{"model": "ranker", "query": "q", "documents": [{"text": "a"}]}`, 400, "invalid_documents"},
		{"legacy dense model", "/api/v1/rerank", `{"model": "minilm", "query": "q", "documents": ` + docs + `}`, 400, "wrong_model_type"},
		{"legacy empty documents", "/api/v1/rerank", `{"model": "ranker", "query": "q", "documents": []}`, 400, "empty_documents"},
		{"tei empty texts", "/rerank", `{"model": "ranker", "query": "q", "texts": []}`, 422, "validation"},
		{"tei missing query", "/rerank", `{"model": "ranker", "texts": ["a"]}`, 422, "validation"},
		{"tei empty text", "/rerank", `{"model": "ranker", "query": "q", "texts": ["a", ""]}`, 422, "validation"},
		{"tei no model with two rerankers", "/rerank", `{"query": "q", "texts": ["a"]}`, 422, "validation"},
		{"tei dense model", "/rerank", `{"model": "minilm", "query": "q", "texts": ["a"]}`, 422, "validation"},
		{"tei unknown model", "/rerank", `{"model": "nope", "query": "q", "texts": ["a"]}`, 404, "validation"},
		{"tei invalid json", "/rerank", `[`, 422, "validation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ts.call(t, tc.path, tc.body)
			if tc.path == "/rerank" {
				checkTEIError(t, status, body, tc.status, tc.code)
			} else {
				checkOpenAIError(t, status, body, tc.status, tc.code)
			}
		})
	}
	// Still serving after all that.
	var resp jinaResponse
	ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker", "query": "q", "documents": []string{"a"}}, &resp)
}

// TestRerankPacksConcurrentRequests sends concurrent rerank requests while the batcher waits for
// arrivals: their pairs must share engine batches, and each request must get exactly the scores
// it gets alone.
func TestRerankPacksConcurrentRequests(t *testing.T) {
	ts := newRSServer(t, "", `max_wait = "400ms"`)
	queries := []string{"how long do dogs sleep?", "capital of france", "fast foxes", "old dogs"}
	alone := make([][]jinaResult, len(queries))
	for i, q := range queries {
		var resp jinaResponse
		ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker", "query": q, "documents": rsDocs}, &resp)
		alone[i] = resp.Results
	}
	before := histCount(t, ts.met, "ranker")
	var wg sync.WaitGroup
	together := make([][]jinaResult, len(queries))
	for i, q := range queries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp jinaResponse
			ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker", "query": q, "documents": rsDocs}, &resp)
			together[i] = resp.Results
		}()
	}
	wg.Wait()
	batches := histCount(t, ts.met, "ranker") - before
	if batches >= uint64(len(queries)) {
		t.Errorf("%d concurrent requests ran in %d batches: not packed together", len(queries), batches)
	}
	for i := range queries {
		if len(together[i]) != len(alone[i]) {
			t.Fatalf("query %d: %d results together, %d alone", i, len(together[i]), len(alone[i]))
		}
		for k := range alone[i] {
			a, b := alone[i][k], together[i][k]
			if a.Index != b.Index || math.Abs(a.RelevanceScore-b.RelevanceScore) > 1e-5 {
				t.Errorf("query %d result %d: %+v together, %+v alone", i, k, b, a)
			}
		}
	}
}

// metricValue is the value of the counter series of family name with exactly these labels (0 when
// absent).
func metricValue(t *testing.T, met *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := met.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// histCount is the number of engine batches the model has run.
func histCount(t *testing.T, met *metrics.Metrics, model string) uint64 {
	t.Helper()
	families, err := met.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "embedd_batch_inputs" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "model" && l.GetValue() == model {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestRerankAndSparseMetrics checks that rerank and sparse requests appear in the same per-model
// metrics as embeddings: request and input counters by outcome, tokens and batches.
func TestRerankAndSparseMetrics(t *testing.T) {
	ts := newRSServer(t, "", "")
	var jr jinaResponse
	ts.callOK(t, "/v1/rerank", map[string]any{"model": "ranker", "query": "q", "documents": rsDocs}, &jr)
	var tr []teiRank
	ts.callOK(t, "/rerank", map[string]any{"model": "ranker", "query": "q", "texts": rsDocs[:2]}, &tr)
	ts.call(t, "/v1/rerank", map[string]any{"model": "ranker", "query": "q", "documents": []string{"a"}, "top_n": 5})
	var sr sparseResponse
	ts.callOK(t, "/api/v1/embed_sparse", map[string]any{"model": "splade", "input": []string{"a dog", "a cat", "a fox"}}, &sr)
	ts.call(t, "/api/v1/embed_sparse", map[string]any{"model": "minilm", "input": "x"})

	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"rerank ok requests", metricValue(t, ts.met, "embedd_requests_total", map[string]string{"model": "ranker", "endpoint": "rerank", "outcome": "ok"}), 2},
		{"rerank bad requests", metricValue(t, ts.met, "embedd_requests_total", map[string]string{"model": "ranker", "endpoint": "rerank", "outcome": "bad_request"}), 1},
		{"rerank ok inputs", metricValue(t, ts.met, "embedd_inputs_total", map[string]string{"model": "ranker", "outcome": "ok"}), float64(len(rsDocs) + 2)},
		{"rerank tokens", metricValue(t, ts.met, "embedd_tokens_total", map[string]string{"model": "ranker"}), float64(jr.Usage.TotalTokens + tokensOfPairs(t, ts, "q", rsDocs[:2]))},
		{"sparse ok requests", metricValue(t, ts.met, "embedd_requests_total", map[string]string{"model": "splade", "endpoint": "embed_sparse", "outcome": "ok"}), 1},
		{"sparse ok inputs", metricValue(t, ts.met, "embedd_inputs_total", map[string]string{"model": "splade", "outcome": "ok"}), 3},
		{"sparse tokens", metricValue(t, ts.met, "embedd_tokens_total", map[string]string{"model": "splade"}), float64(sr.Usage.TotalTokens)},
		{"dense model on the sparse route", metricValue(t, ts.met, "embedd_requests_total", map[string]string{"model": "minilm", "endpoint": "embed_sparse", "outcome": "bad_request"}), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %g, want %g", c.name, c.got, c.want)
		}
	}
	if histCount(t, ts.met, "ranker") != 2 || histCount(t, ts.met, "splade") != 1 {
		t.Errorf("batches: ranker %d (want 2), splade %d (want 1)", histCount(t, ts.met, "ranker"), histCount(t, ts.met, "splade"))
	}
}

func tokensOfPairs(t *testing.T, ts *rsServer, q string, docs []string) int {
	m := loadLocal(t, ts.files.ranker, model.KindRerank)
	n := 0
	for _, d := range docs {
		n += len(m.EncodePair(q, d).IDs)
	}
	return n
}

// TestRerankSparseNeedKey checks that every rerank and sparse route requires the API key when one
// is configured.
func TestRerankSparseNeedKey(t *testing.T) {
	ts := newRSServer(t, `api_key = "sekrit"`, "")
	for _, path := range []string{"/v1/rerank", "/rerank", "/api/v1/rerank", "/api/v1/embed_sparse", "/embed_sparse"} {
		status, body := ts.call(t, path, `{"model": "ranker", "query": "q", "documents": ["a"], "texts": ["a"], "input": "a"}`)
		checkOpenAIError(t, status, body, http.StatusUnauthorized, "invalid_api_key")
		req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(
			`{"model": "splade", "query": "q", "documents": ["a"], "texts": ["a"], "input": "a", "inputs": "a"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer sekrit")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// With the key the request gets past authentication (the sparse model suits only the sparse
		// routes; the rerank routes refuse it as the wrong type).
		want := http.StatusOK
		if strings.Contains(path, "rerank") {
			want = http.StatusBadRequest
			if path == "/rerank" {
				want = http.StatusUnprocessableEntity
			}
		}
		if resp.StatusCode != want {
			t.Errorf("%s with the key: status %d, want %d", path, resp.StatusCode, want)
		}
	}
}
