package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/model"
)

// teiEmbed posts a TEI embed request to path, requires 200 and returns the vectors.
func teiEmbed(t testing.TB, ts *testServer, path string, body any) [][]float64 {
	t.Helper()
	status, data := request(t, ts.URL, http.MethodPost, path, body)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", path, status, data)
	}
	var out [][]float64
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: answer %.200s is not an array of float arrays: %v", path, data, err)
	}
	return out
}

func sameVectors(t *testing.T, what string, got, want [][]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d vectors, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := maxAbsDiff(got[i], want[i]); d != 0 {
			t.Errorf("%s: vector %d differs by up to %g", what, i, d)
		}
	}
}

// TestTEIEmbed checks /embed and POST / against /v1/embeddings, which the OpenAI tests check
// against the reference: the same inputs give the same vectors, for every input form and option.
func TestTEIEmbed(t *testing.T) {
	ts := newTestServer(t, "", "")
	texts := []string{"the quick brown fox", "Embeddings map text to vectors.", "a"}
	want := ts.embed(t, map[string]any{"model": "minilm", "input": texts})
	for _, path := range []string{"/embed", "/"} {
		sameVectors(t, path+" strings", teiEmbed(t, ts, path, map[string]any{"inputs": texts}), want)
	}
	sameVectors(t, "one string", teiEmbed(t, ts, "/embed", map[string]any{"inputs": texts[1]}), want[1:2])
	sameVectors(t, "model named", teiEmbed(t, ts, "/embed", map[string]any{"inputs": texts, "model": "sentence-transformers/all-MiniLM-L6-v2"}), want)

	ids := []int{101, 7592, 2088, 102}
	sameVectors(t, "token ids",
		teiEmbed(t, ts, "/embed", map[string]any{"inputs": ids}),
		ts.embed(t, map[string]any{"model": "minilm", "input": ids}))

	// normalize: default true; explicit true is the same.
	for _, v := range teiEmbed(t, ts, "/embed", map[string]any{"inputs": texts, "normalize": true}) {
		if n := norm(v); math.Abs(n-1) > 1e-5 {
			t.Errorf("normalized vector has norm %g", n)
		}
	}
	// dimensions: as /v1/embeddings (the first N, re-normalized).
	sameVectors(t, "dimensions",
		teiEmbed(t, ts, "/embed", map[string]any{"inputs": texts, "dimensions": 64}),
		ts.embed(t, map[string]any{"model": "minilm", "input": texts, "dimensions": 64}))
	// A model served unnormalized: normalize (default true) scales its vectors, false keeps them.
	raw := startStack(t, fmt.Sprintf(`
[[models]]
id = "raw"
path = %q
type = "embeddings"
normalize = false
`, bundledModel(t)), false)
	rawVecs := raw.embed(t, map[string]any{"model": "raw", "input": texts})
	sameVectors(t, "normalize false", teiEmbed(t, raw, "/embed", map[string]any{"inputs": texts, "normalize": false}), rawVecs)
	for i, v := range teiEmbed(t, raw, "/embed", map[string]any{"inputs": texts}) {
		if n := norm(rawVecs[i]); math.Abs(n-1) < 1e-3 {
			t.Fatalf("the raw vector %d has norm %g: the test cannot tell normalized from raw", i, n)
		}
		if n := norm(v); math.Abs(n-1) > 1e-5 || cosine(v, rawVecs[i]) < 1-1e-6 {
			t.Errorf("vector %d: norm %g, cosine to the raw vector %g", i, n, cosine(v, rawVecs[i]))
		}
	}
	// prompt_name query: the model's query_prefix, as input_type query.
	sameVectors(t, "prompt_name",
		teiEmbed(t, ts, "/embed", map[string]any{"inputs": texts, "prompt_name": "query"}),
		ts.embed(t, map[string]any{"model": "minilm", "input": texts, "input_type": "query"}))
}

// TestTEISimilarity checks /similarity against the cosines of /v1/embeddings vectors.
func TestTEISimilarity(t *testing.T) {
	ts := newTestServer(t, "", "")
	source := "how long do dogs sleep?"
	sentences := []string{"Dogs sleep 12 to 14 hours a day.", "Paris is the capital of France.", "puppies nap a lot"}
	check := func(body map[string]any, inputType string) {
		t.Helper()
		req := map[string]any{"model": "minilm", "input": append([]string{source}, sentences...)}
		if inputType != "" {
			req["input_type"] = inputType
		}
		vecs := ts.embed(t, req)
		status, data := request(t, ts.URL, http.MethodPost, "/similarity", body)
		var got []float64
		if status != http.StatusOK || json.Unmarshal(data, &got) != nil || len(got) != len(sentences) {
			t.Fatalf("/similarity: %d %s", status, data)
		}
		for i, g := range got {
			if want := cosine(vecs[0], vecs[i+1]); math.Abs(g-want) > 1e-6 {
				t.Errorf("sentence %d: similarity %g, cosine of the embeddings %g", i, g, want)
			}
		}
		if !(got[0] > got[1] && got[2] > got[1]) {
			t.Errorf("similarities %v do not rank the dog sentences above Paris", got)
		}
	}
	inputs := map[string]any{"source_sentence": source, "sentences": sentences}
	check(map[string]any{"inputs": inputs}, "")
	check(map[string]any{"inputs": inputs, "parameters": map[string]any{"prompt_name": "query", "truncate": true}}, "query")

	for _, tc := range []struct{ name, body, says string }{
		{"no source", `{"inputs": {"sentences": ["a"]}}`, "source_sentence"},
		{"no sentences", `{"inputs": {"source_sentence": "a", "sentences": []}}`, "at least one"},
		{"empty sentence", `{"inputs": {"source_sentence": "a", "sentences": ["b", ""]}}`, "sentence 2"},
		{"unknown prompt", `{"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"prompt_name": "x"}}`, "prompt_name"},
		{"too long", `{"inputs": {"source_sentence": "a", "sentences": ["` + strings.Repeat("word ", 600) + `"]}}`, "truncate is false"},
	} {
		status, data := request(t, ts.URL, http.MethodPost, "/similarity", tc.body)
		checkTEIError(t, status, data, http.StatusUnprocessableEntity, "validation")
		if !strings.Contains(string(data), tc.says) {
			t.Errorf("%s: the message does not say %q: %s", tc.name, tc.says, data)
		}
	}
}

// tokensOverLimit returns text's token ids (no [CLS]/[SEP]) from the server's /tokenize and the
// number of them model keeps (/info's max_input_length less [CLS] and [SEP]); text must have more.
func tokensOverLimit(t *testing.T, base, model, text string) ([]int, int) {
	t.Helper()
	var info struct {
		MaxInputLength int `json:"max_input_length"`
	}
	status, data := request(t, base, http.MethodGet, "/info?model="+model, nil)
	if status != http.StatusOK || json.Unmarshal(data, &info) != nil || info.MaxInputLength < 3 {
		t.Fatalf("/info: %d %s", status, data)
	}
	var toks [][]struct {
		ID int `json:"id"`
	}
	status, data = request(t, base, http.MethodPost, "/tokenize", map[string]any{"model": model, "inputs": text, "add_special_tokens": false})
	if status != http.StatusOK || json.Unmarshal(data, &toks) != nil || len(toks) != 1 {
		t.Fatalf("/tokenize: %d %.200s", status, data)
	}
	ids := make([]int, len(toks[0]))
	for i, tok := range toks[0] {
		ids[i] = tok.ID
	}
	room := info.MaxInputLength - 2
	if len(ids) <= room {
		t.Fatalf("the long text has %d tokens, not more than %d", len(ids), room)
	}
	return ids, room
}

// TestTEIEmbedTruncation checks truncate (default false, as in TEI) and both truncation
// directions, for texts and for token ids: the kept tokens are those of /tokenize's list.
func TestTEIEmbedTruncation(t *testing.T) {
	ts := newTestServer(t, "", "")
	long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 80) + "and then it stopped"
	status, data := request(t, ts.URL, http.MethodPost, "/embed", map[string]any{"inputs": long})
	checkTEIError(t, status, data, http.StatusUnprocessableEntity, "validation")
	if !strings.Contains(string(data), "truncate is false") {
		t.Errorf("the error does not say why: %s", data)
	}

	ids, room := tokensOverLimit(t, ts.URL, "all-MiniLM-L6-v2", long)
	head := ts.embed(t, map[string]any{"model": "minilm", "input": ids[:room]})
	tail := ts.embed(t, map[string]any{"model": "minilm", "input": ids[len(ids)-room:]})
	if cosine(head[0], tail[0]) > 0.9999 {
		t.Fatalf("head and tail embed alike (cosine %g): the test cannot tell the directions apart", cosine(head[0], tail[0]))
	}
	for _, tc := range []struct {
		direction string
		want      [][]float64
	}{{"", head}, {"right", head}, {"Right", head}, {"left", tail}, {"Left", tail}} {
		body := map[string]any{"inputs": long, "truncate": true}
		if tc.direction != "" {
			body["truncation_direction"] = tc.direction
		}
		sameVectors(t, "text, direction "+tc.direction, teiEmbed(t, ts, "/embed", body), tc.want)
		body["inputs"] = [][]int{ids}
		sameVectors(t, "token ids, direction "+tc.direction, teiEmbed(t, ts, "/embed", body), tc.want)
	}
}

// TestTEITokenize checks /tokenize against the model's own tokenizer: ids, special flags and
// byte offsets whose slice of the text is each token's text.
func TestTEITokenize(t *testing.T) {
	ts := newTestServer(t, "", "")
	m := loadLocal(t, bundledModel(t), model.KindEmbeddings)
	texts := []string{"Hello, world!", "naïve café — déjà vu", "tokenization"}
	type token struct {
		ID      int32  `json:"id"`
		Text    string `json:"text"`
		Special bool   `json:"special"`
		Start   *int   `json:"start"`
		Stop    *int   `json:"stop"`
	}
	for _, special := range []bool{true, false} {
		status, data := request(t, ts.URL, http.MethodPost, "/tokenize", map[string]any{"inputs": texts, "add_special_tokens": special})
		var got [][]token
		if status != http.StatusOK || json.Unmarshal(data, &got) != nil || len(got) != len(texts) {
			t.Fatalf("/tokenize: %d %s", status, data)
		}
		for i, text := range texts {
			want := m.Tokenizer().Encode(text).IDs
			if !special {
				want = want[1 : len(want)-1]
			}
			if len(got[i]) != len(want) {
				t.Fatalf("text %d: %d tokens, want %d: %s", i, len(got[i]), len(want), data)
			}
			for j, tok := range got[i] {
				edge := special && (j == 0 || j == len(want)-1)
				switch {
				case tok.ID != want[j]:
					t.Errorf("text %d token %d: id %d, want %d", i, j, tok.ID, want[j])
				case tok.Special != edge:
					t.Errorf("text %d token %d: special %v", i, j, tok.Special)
				case edge && (tok.Start != nil || tok.Stop != nil || (tok.Text != "[CLS]" && tok.Text != "[SEP]")):
					t.Errorf("text %d token %d: special token %+v", i, j, tok)
				case !edge && (tok.Start == nil || tok.Stop == nil || *tok.Start < 0 || *tok.Start >= *tok.Stop ||
					*tok.Stop > len(text) || text[*tok.Start:*tok.Stop] != tok.Text):
					t.Errorf("text %d token %d: %+v is not a slice of %q", i, j, tok, text)
				}
			}
		}
	}
	// prompt_name: the offsets are into the text with its prompt.
	status, data := request(t, ts.URL, http.MethodPost, "/tokenize", map[string]any{"inputs": "fox", "prompt_name": "query"})
	var got [][]token
	if status != http.StatusOK || json.Unmarshal(data, &got) != nil || len(got) != 1 {
		t.Fatalf("/tokenize with a prompt: %d %s", status, data)
	}
	var words []string
	for _, tok := range got[0] {
		words = append(words, tok.Text)
	}
	if strings.Join(words, " ") != "[CLS] query : fox [SEP]" {
		t.Errorf("tokens with the query prompt: %q", words)
	}
}

// TestTEIDecode checks /decode against the model's tokenizer (whose decoder is compared with
// Hugging Face's in package tokenizer): /tokenize's ids decode back to the text.
func TestTEIDecode(t *testing.T) {
	ts := newTestServer(t, "", "")
	m := loadLocal(t, bundledModel(t), model.KindEmbeddings)
	a := m.Tokenizer().Encode("Hello, world!").IDs
	b := m.Tokenizer().Encode("tokenization").IDs
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"ids": a}, `["hello, world!"]`},
		{map[string]any{"ids": [][]int32{a, b}}, `["hello, world!","tokenization"]`},
		{map[string]any{"ids": a, "skip_special_tokens": false}, `["[CLS] hello, world! [SEP]"]`},
		{map[string]any{"ids": []int{}}, `[""]`},
	} {
		status, data := request(t, ts.URL, http.MethodPost, "/decode", tc.body)
		if status != http.StatusOK || strings.TrimSpace(string(data)) != tc.want {
			t.Errorf("/decode %v: %d %s, want %s", tc.body, status, data, tc.want)
		}
	}
	for _, body := range []string{`{"ids": [1, 99999999]}`, `{"ids": [[1], [-1]]}`, `{"ids": "a"}`, `{}`} {
		status, data := request(t, ts.URL, http.MethodPost, "/decode", body)
		checkTEIError(t, status, data, http.StatusUnprocessableEntity, "validation")
	}
}

func TestTEIInfo(t *testing.T) {
	ts := newTestServer(t, "max_request_inputs = 77", "")
	var info map[string]any
	status, data := request(t, ts.URL, http.MethodGet, "/info", nil)
	if status != http.StatusOK || json.Unmarshal(data, &info) != nil {
		t.Fatalf("/info: %d %s", status, data)
	}
	want := map[string]any{
		"model_id":              "all-MiniLM-L6-v2",
		"model_dtype":           "q4_k_m",
		"max_input_length":      512.0,
		"max_client_batch_size": 77.0,
		"auto_truncate":         false,
	}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("/info %s = %v, want %v", k, info[k], v)
		}
	}
	if mt, _ := json.Marshal(info["model_type"]); string(mt) != `{"embedding":{"pooling":"mean"}}` {
		t.Errorf("/info model_type = %s", mt)
	}
	if p, _ := json.Marshal(info["prompts"]); string(p) != `{"query":"query: "}` {
		t.Errorf("/info prompts = %s", p)
	}
	status, data = request(t, ts.URL, http.MethodGet, "/info?model=nope", nil)
	checkTEIError(t, status, data, http.StatusNotFound, "validation")

	// The other model types, on the server with rerank and SPLADE models.
	rs := newRSServer(t, "", "")
	for _, tc := range []struct{ query, want string }{
		{"", `"model_id":"minilm"`},
		{"?model=ranker", `"model_type":{"reranker":{"id2label":{"0":`},
		{"?model=splade", `"model_type":{"embedding":{"pooling":"splade"}}`},
	} {
		status, data := request(t, rs.URL, http.MethodGet, "/info"+tc.query, nil)
		if status != http.StatusOK || !bytes.Contains(data, []byte(tc.want)) {
			t.Errorf("/info%s: %d %s, want it to hold %s", tc.query, status, data, tc.want)
		}
	}
}

func TestTEIBadRequests(t *testing.T) {
	ts := newTestServer(t, "max_request_inputs = 4", "")
	tests := []struct {
		name, path, body string
		status           int
		says             string // a part of the message
	}{
		{"invalid json", "/embed", `{"inputs": `, 422, "not valid JSON"},
		{"missing inputs", "/embed", `{}`, 422, "required"},
		{"empty inputs", "/embed", `{"inputs": []}`, 422, "empty"},
		{"empty string", "/embed", `{"inputs": ["a", ""]}`, 422, "empty string"},
		{"inputs a number", "/embed", `{"inputs": 5}`, 422, "must be a string"},
		{"token id out of range", "/embed", `{"inputs": [1, 99999999]}`, 422, "vocabulary"},
		{"too many inputs", "/embed", `{"inputs": ["a", "b", "c", "d", "e"]}`, 413, "limit of 4"},
		{"dimensions 0", "/embed", `{"inputs": "a", "dimensions": 0}`, 422, "at least 1"},
		{"dimensions too large", "/embed", `{"inputs": "a", "dimensions": 385}`, 422, "exceeds"},
		{"unknown prompt", "/embed", `{"inputs": "a", "prompt_name": "passage"}`, 422, "prompt_name"},
		{"prompt not configured", "/embed", `{"inputs": "a", "prompt_name": "document"}`, 422, "document_prefix"},
		{"bad direction", "/embed", `{"inputs": "a", "truncation_direction": "up"}`, 422, "truncation_direction"},
		{"normalize false on a normalized model", "/embed", `{"inputs": "a", "normalize": false}`, 422, "normalize"},
		{"unknown model", "/embed", `{"inputs": "a", "model": "nope"}`, 404, "does not exist"},
		{"rerank model", "/embed", `{"inputs": "a", "model": "reranker"}`, 422, "rerank model"},
		{"root route too", "/", `{"inputs": []}`, 422, "empty"},
		{"tokenize token ids", "/tokenize", `{"inputs": [1, 2]}`, 422, "string"},
		{"tokenize unknown prompt", "/tokenize", `{"inputs": "a", "prompt_name": "x"}`, 422, "prompt_name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, data := request(t, ts.URL, http.MethodPost, tc.path, tc.body)
			checkTEIError(t, status, data, tc.status, "validation")
			if !strings.Contains(string(data), tc.says) {
				t.Errorf("the message does not say %q: %s", tc.says, data)
			}
		})
	}
	// Still serving after all that.
	teiEmbed(t, ts, "/embed", map[string]any{"inputs": "still here"})
}

// TestTEINeedKey checks that the TEI routes require the API key when one is configured.
func TestTEINeedKey(t *testing.T) {
	ts := newTestServer(t, `api_key = "sekrit"`, "")
	for _, route := range []struct{ method, path, body string }{
		{http.MethodPost, "/embed", `{"inputs": "a"}`},
		{http.MethodPost, "/", `{"inputs": "a"}`},
		{http.MethodPost, "/similarity", `{"inputs": {"source_sentence": "a", "sentences": ["b"]}}`},
		{http.MethodPost, "/tokenize", `{"inputs": "a"}`},
		{http.MethodPost, "/decode", `{"ids": [101, 102]}`},
		{http.MethodGet, "/info", ""},
	} {
		for _, key := range []string{"", "sekrit"} {
			req, err := http.NewRequest(route.method, ts.URL+route.path, strings.NewReader(route.body))
			if err != nil {
				t.Fatal(err)
			}
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			status, data := send(t, req)
			want := http.StatusOK
			if key == "" {
				want = http.StatusUnauthorized
			}
			if status != want {
				t.Errorf("%s %s with key %q: status %d, want %d: %s", route.method, route.path, key, status, want, data)
			}
		}
	}
}

// TestTEISparseTruncationAndPrompt checks /embed_sparse's truncation_direction and prompt_name:
// a long text cut from the left gives the vector of its last tokens, as /api/v1/embed_sparse
// computes it from those token ids.
func TestTEISparseTruncationAndPrompt(t *testing.T) {
	rs := newRSServer(t, "", "")
	long := strings.Repeat("sleepy dogs and lazy cats ", 40) + "end with a very different tail of words"
	ids, room := tokensOverLimit(t, rs.URL, "splade", long)
	sparseOf := func(path string, body map[string]any) string {
		status, data := request(t, rs.URL, http.MethodPost, path, body)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, status, data)
		}
		if path == "/api/v1/embed_sparse" { // keep only the pairs, in the TEI shape
			var resp sparseResponse
			if err := json.Unmarshal(data, &resp); err != nil || len(resp.Data) != 1 {
				t.Fatalf("%s: %s", path, data)
			}
			pairs := make([]teiSparseValue, len(resp.Data[0].Indices))
			for k := range pairs {
				pairs[k] = teiSparseValue{Index: resp.Data[0].Indices[k], Value: resp.Data[0].Values[k]}
			}
			out, _ := json.Marshal([][]teiSparseValue{pairs})
			return string(out)
		}
		var pairs [][]teiSparseValue
		if err := json.Unmarshal(data, &pairs); err != nil {
			t.Fatalf("%s: %s", path, data)
		}
		out, _ := json.Marshal(pairs)
		return string(out)
	}
	tail := sparseOf("/api/v1/embed_sparse", map[string]any{"model": "splade", "input": ids[len(ids)-room:]})
	head := sparseOf("/api/v1/embed_sparse", map[string]any{"model": "splade", "input": ids[:room]})
	if tail == head {
		t.Fatal("head and tail give the same sparse vector: the test cannot tell the directions apart")
	}
	for direction, want := range map[string]string{"left": tail, "right": head} {
		got := sparseOf("/embed_sparse", map[string]any{"model": "splade", "inputs": long, "truncate": true, "truncation_direction": direction})
		if got != want {
			t.Errorf("direction %s: /embed_sparse and the token ids of that end differ", direction)
		}
	}
	status, data := request(t, rs.URL, http.MethodPost, "/embed_sparse", map[string]any{"model": "splade", "inputs": "a", "prompt_name": "query"})
	checkTEIError(t, status, data, http.StatusUnprocessableEntity, "validation")
	status, data = request(t, rs.URL, http.MethodPost, "/embed_sparse", map[string]any{"model": "splade", "inputs": "a", "truncation_direction": "up"})
	checkTEIError(t, status, data, http.StatusUnprocessableEntity, "validation")
}
