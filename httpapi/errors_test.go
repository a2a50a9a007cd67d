package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Every bad request gets its documented 4xx in OpenAI's error shape, and the server stays healthy.
func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, "api_key = \"k\"\nmax_body_bytes = 4096\nmax_request_inputs = 4", "")
	auth := http.Header{"Authorization": {"Bearer k"}}
	long := strings.Repeat("word ", 600)
	longIDs := make([]int, 600)
	for i := range longIDs {
		longIDs[i] = 2000
	}
	cases := []struct {
		name   string
		body   any
		header http.Header
		status int
		param  string
	}{
		{"invalid json", `{"model": "minilm", "input": `, auth, 400, ""},
		{"not an object", `[1,2]`, auth, 400, ""},
		{"empty body", ``, auth, 400, ""},
		{"model of wrong type", `{"model": 5, "input": "x"}`, auth, 400, "model"},
		{"input of wrong type", `{"model": "minilm", "input": {"a": 1}}`, auth, 400, "input"},
		{"input number", `{"model": "minilm", "input": 5}`, auth, 400, "input"},
		{"mixed array", `{"model": "minilm", "input": ["a", 5]}`, auth, 400, "input"},
		{"float token", `{"model": "minilm", "input": [101, 1.5]}`, auth, 400, "input"},
		{"missing input", `{"model": "minilm"}`, auth, 400, "input"},
		{"null input", `{"model": "minilm", "input": null}`, auth, 400, "input"},
		{"empty array", `{"model": "minilm", "input": []}`, auth, 400, "input"},
		{"empty string", `{"model": "minilm", "input": ""}`, auth, 400, "input"},
		{"empty string in array", `{"model": "minilm", "input": ["a", ""]}`, auth, 400, "input"},
		{"empty token array", `{"model": "minilm", "input": [[101], []]}`, auth, 400, "input"},
		{"missing model", `{"input": "x"}`, auth, 400, "model"},
		{"unknown model", `{"model": "gpt-9", "input": "x"}`, auth, 404, "model"},
		{"rerank model on embeddings", `{"model": "reranker", "input": "x"}`, auth, 400, "model"},
		{"bad encoding_format", `{"model": "minilm", "input": "x", "encoding_format": "hex"}`, auth, 400, "encoding_format"},
		{"dimensions 0", `{"model": "minilm", "input": "x", "dimensions": 0}`, auth, 400, "dimensions"},
		{"dimensions negative", `{"model": "minilm", "input": "x", "dimensions": -3}`, auth, 400, "dimensions"},
		{"dimensions too large", `{"model": "minilm", "input": "x", "dimensions": 385}`, auth, 400, "dimensions"},
		{"dimensions not integer", `{"model": "minilm", "input": "x", "dimensions": "64"}`, auth, 400, "dimensions"},
		{"token id too large", `{"model": "minilm", "input": [101, 30522]}`, auth, 400, "input"},
		{"token id negative", `{"model": "minilm", "input": [[101, -1]]}`, auth, 400, "input"},
		{"token id overflow", `{"model": "minilm", "input": [101, 99999999999999999999]}`, auth, 400, "input"},
		{"bad input_type", `{"model": "minilm", "input": "x", "input_type": "passage"}`, auth, 400, "input_type"},
		{"body over the limit", fmt.Sprintf(`{"model": "minilm", "input": %q}`, strings.Repeat("a", 5000)), auth, 413, ""},
		{"too many inputs", `{"model": "minilm", "input": ["a","b","c","d","e"]}`, auth, 413, "input"},
		{"non-UTF-8 bytes", []byte("{\"model\": \"minilm\", \"input\": \"caf\xe9\"}"), auth, 400, ""},
		{"missing api key", `{"model": "minilm", "input": "x"}`, nil, 401, ""},
		{"wrong api key", `{"model": "minilm", "input": "x"}`, http.Header{"Authorization": {"Bearer nope"}}, 401, ""},
		{"malformed auth", `{"model": "minilm", "input": "x"}`, http.Header{"Authorization": {"k"}}, 401, ""},
		{"truncate false, long text", fmt.Sprintf(`{"model": "minilm", "input": %q, "truncate": false}`, long[:3000]), auth, 400, "input"},
		{"truncate false, long ids", fmt.Sprintf(`{"model": "minilm", "input": %s, "truncate": false}`, jsonInts(longIDs)), auth, 400, "input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := ts.post(t, "/v1/embeddings", tc.body, tc.header)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, out)
			}
			e, ok := out["error"].(map[string]any)
			if !ok {
				t.Fatalf("no error object: %v", out)
			}
			for _, field := range []string{"message", "type", "param", "code"} {
				if _, present := e[field]; !present {
					t.Errorf("error lacks %q: %v", field, e)
				}
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("empty message: %v", e)
			}
			if tc.param != "" && e["param"] != tc.param {
				t.Errorf("param %v, want %q", e["param"], tc.param)
			}
		})
	}

	// The server is still healthy and serving, and long inputs truncate by default.
	if status, out := ts.get(t, "/health/ready", nil); status != 200 {
		t.Fatalf("not ready after the bad requests: %d %v", status, out)
	}
	status, out := ts.post(t, "/api/v1/embeddings", map[string]any{"model": "minilm", "input": []string{long[:3000]}}, auth)
	if status != 200 {
		t.Fatalf("long input with default truncation: %d %v", status, out)
	}
	if u := out["usage"].(map[string]any); u["prompt_tokens"].(float64) != 512 {
		t.Errorf("truncated input used %v tokens, want 512", u["prompt_tokens"])
	}
	status, _ = ts.post(t, "/v1/embeddings", fmt.Sprintf(`{"model": "minilm", "input": %s}`, jsonInts(longIDs)), auth)
	if status != 200 {
		t.Errorf("long token ids with default truncation: %d", status)
	}

	// Unknown routes and methods also answer in OpenAI's shape.
	if status, out := ts.get(t, "/v1/nothing", auth); status != 404 || out["error"] == nil {
		t.Errorf("unknown route: %d %v", status, out)
	}
	if status, out := ts.get(t, "/v1/embeddings", auth); status != 405 || out["error"] == nil {
		t.Errorf("GET embeddings: %d %v", status, out)
	}
}

func jsonInts(v []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, x)
	}
	b.WriteByte(']')
	return b.String()
}

// input_type applies the configured prefix; the prefix changes the vector.
func TestInputTypePrefix(t *testing.T) {
	ts := newTestServer(t, "", "")
	plain := ts.embed(t, map[string]any{"model": "minilm", "input": "query: where is the fox"})
	prefixed := ts.embed(t, map[string]any{"model": "minilm", "input": "where is the fox", "input_type": "query"})
	bare := ts.embed(t, map[string]any{"model": "minilm", "input": "where is the fox"})
	if d := maxAbsDiff(plain[0], prefixed[0]); d > 1e-6 {
		t.Errorf("input_type query differs from the explicit prefix by %g", d)
	}
	if d := maxAbsDiff(bare[0], prefixed[0]); d < 1e-3 {
		t.Errorf("the prefix had no effect (diff %g)", d)
	}
	doc := ts.embed(t, map[string]any{"model": "minilm", "input": "where is the fox", "input_type": "document"})
	if d := maxAbsDiff(bare[0], doc[0]); d > 1e-6 {
		t.Errorf("empty document prefix changed the vector by %g", d)
	}
}

func TestHealthAndLazyLoading(t *testing.T) {
	ts := newTestServer(t, "", "")
	status, out := ts.get(t, "/health", nil)
	if status != 200 || out["status"] != "ok" {
		t.Fatalf("health: %d %v", status, out)
	}
	states := map[string]string{}
	for _, m := range out["models"].([]any) {
		mm := m.(map[string]any)
		states[mm["id"].(string)] = mm["state"].(string)
	}
	if states["all-MiniLM-L6-v2"] != "ready" || states["reranker"] != "not_loaded" {
		t.Errorf("states = %v", states)
	}
	if status, _ := ts.get(t, "/health/live", nil); status != 200 {
		t.Errorf("live: %d", status)
	}
	ts.api.SetDraining()
	if status, out := ts.get(t, "/health/ready", nil); status != 503 || out["error"] == nil {
		t.Errorf("ready while draining: %d %v", status, out)
	}
}

// The per-request timeout answers 503 with code "timeout" in OpenAI's shape.
func TestRequestTimeout(t *testing.T) {
	ts := newTestServer(t, `request_timeout = "1ns"`, "")
	status, out := ts.post(t, "/v1/embeddings", `{"model": "minilm", "input": "x"}`, nil)
	if status != 503 {
		t.Fatalf("status %d: %v", status, out)
	}
	if e := out["error"].(map[string]any); e["code"] != "timeout" {
		t.Errorf("error = %v", e)
	}
	if status, _ := ts.get(t, "/health/ready", nil); status != 200 {
		t.Errorf("not ready after a timeout: %d", status)
	}
}
