package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/embedd-dev/embedd/internal/testmodel"
)

func newClient(ts *testServer, key string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(ts.URL+"/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
}

// The official OpenAI Go client against a running server: float and base64 agree, dimensions
// returns the normalized prefix direction, token inputs equal text inputs, errors surface as the
// client's error type with the right status.
func TestOpenAIClient(t *testing.T) {
	ts := newTestServer(t, `api_key = "sekret"`, "")
	client := newClient(ts, "sekret")
	ctx := context.Background()
	texts := []string{"robert smith", "brown fox jumps over the lazy dog", "The quick brown fox."}

	floatResp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "sentence-transformers/all-MiniLM-L6-v2",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(floatResp.Data) != len(texts) || floatResp.Model != "all-MiniLM-L6-v2" {
		t.Fatalf("response: %d vectors, model %q", len(floatResp.Data), floatResp.Model)
	}
	if floatResp.Usage.PromptTokens < int64(len(texts)*3) || floatResp.Usage.TotalTokens != floatResp.Usage.PromptTokens {
		t.Errorf("usage = %+v", floatResp.Usage)
	}
	for i, d := range floatResp.Data {
		if len(d.Embedding) != 384 {
			t.Fatalf("vector %d has %d dims", i, len(d.Embedding))
		}
		if n := norm(d.Embedding); math.Abs(n-1) > 1e-4 {
			t.Errorf("vector %d norm %f", i, n)
		}
	}

	b64Resp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model:          "all-MiniLM-L6-v2",
		Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		raw := b64Resp.Data[i].JSON.Embedding.Raw()
		if len(raw) == 0 || raw[0] != '"' {
			t.Fatalf("base64 answer %d is not a string: %.40s", i, raw)
		}
		// float JSON is float32 printed in shortest form, so both decode to the same float32.
		for j, x := range floatResp.Data[i].Embedding {
			if float32(x) != float32(b64Resp.Data[i].Embedding[j]) {
				t.Fatalf("vector %d[%d]: float %v vs base64 %v", i, j, x, b64Resp.Data[i].Embedding[j])
			}
		}
	}

	// Matryoshka: the first N components, re-normalized, point the same way as the full prefix.
	const dims = 64
	dimResp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model:      "minilm",
		Input:      openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
		Dimensions: openai.Int(dims),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dimResp.Data {
		if len(d.Embedding) != dims {
			t.Fatalf("dimensions: vector %d has %d dims", i, len(d.Embedding))
		}
		if n := norm(d.Embedding); math.Abs(n-1) > 1e-4 {
			t.Errorf("dimensions: vector %d norm %f", i, n)
		}
		if c := cosine(d.Embedding, floatResp.Data[i].Embedding[:dims]); c < 0.99999 {
			t.Errorf("dimensions: vector %d cosine to the full prefix %f", i, c)
		}
	}

	// Token ids (without specials; the server frames them with [CLS]/[SEP]) equal the text.
	ref := loadReference(t)
	tokResp, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "minilm",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokenArrays: [][]int64{ref.plainIDs, ref.specialIDs}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		if d := maxAbsDiff(tokResp.Data[k].Embedding, floatResp.Data[1].Embedding); d > 1e-5 {
			t.Errorf("token-id input %d differs from its text by %g", k, d)
		}
	}
	if tokResp.Usage.PromptTokens != int64(2*len(ref.specialIDs)) {
		t.Errorf("token-id usage %d, want %d", tokResp.Usage.PromptTokens, 2*len(ref.specialIDs))
	}

	// Published reference output of the full-precision model: the quantized one must agree.
	if c := cosine(floatResp.Data[0].Embedding, ref.robertSmith); c < 0.99 {
		t.Errorf("cosine to the published reference for %q is %f, want >= 0.99", texts[0], c)
	}

	// Errors arrive as *openai.Error with the status and OpenAI's fields.
	var apiErr *openai.Error
	_, err = client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "no-such-model", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
	_, err = client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "minilm", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
		Dimensions: openai.Int(385),
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Param != "dimensions" {
		t.Errorf("dimensions too large: %v", err)
	}
	wrongKey := newClient(ts, "wrong")
	_, err = wrongKey.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "minilm", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Type != "authentication_error" {
		t.Errorf("wrong key: %v", err)
	}

	// The models list in OpenAI's shape.
	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].ID != "all-MiniLM-L6-v2" || page.Data[0].OwnedBy == "" {
		t.Errorf("models = %+v", page.Data)
	}
	m, err := client.Models.Get(ctx, "sentence-transformers/all-MiniLM-L6-v2")
	if err != nil || m.ID != "all-MiniLM-L6-v2" {
		t.Errorf("get model by alias: %v %+v", err, m)
	}
	var extra struct {
		Type         string `json:"type"`
		Dimensions   int    `json:"dimensions"`
		MaxTokens    int    `json:"max_tokens"`
		Quantization string `json:"quantization"`
		Loaded       bool   `json:"loaded"`
	}
	if err := json.Unmarshal([]byte(m.RawJSON()), &extra); err != nil {
		t.Fatal(err)
	}
	if extra.Type != "embeddings" || extra.Dimensions != 384 || extra.MaxTokens != 512 || extra.Quantization != "Q4_K_M" || !extra.Loaded {
		t.Errorf("model extras = %+v", extra)
	}
	if _, err := client.Models.Get(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("get unknown model: %v", err)
	}
}

type reference struct {
	robertSmith          []float64
	plainIDs, specialIDs []int64
}

func loadReference(t *testing.T) reference {
	t.Helper()
	shared, err := testmodel.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(shared, "testdata", "minilm_reference.json"))
	if err != nil {
		t.Fatalf("reference outputs: %v", err)
	}
	var doc struct {
		Embeddings []struct {
			Text   string    `json:"text"`
			Vector []float64 `json:"vector"`
		} `json:"embeddings"`
		TokenIDs []struct {
			Text    string  `json:"text"`
			Special bool    `json:"add_special_tokens"`
			IDs     []int64 `json:"ids"`
		} `json:"token_ids"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var ref reference
	for _, e := range doc.Embeddings {
		if e.Text == "robert smith" && ref.robertSmith == nil {
			ref.robertSmith = e.Vector
		}
	}
	for _, tk := range doc.TokenIDs {
		if tk.Text != "brown fox jumps over the lazy dog" {
			continue
		}
		if tk.Special {
			ref.specialIDs = tk.IDs
		} else {
			ref.plainIDs = tk.IDs
		}
	}
	if ref.robertSmith == nil || ref.plainIDs == nil || ref.specialIDs == nil {
		t.Fatal("reference file lacks the expected entries")
	}
	return ref
}
