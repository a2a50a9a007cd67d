package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"testing"
)

// The hand-written embeddings encoder must produce exactly what json.Marshal produces, and refuse
// what it refuses.
func TestAppendEmbeddingsJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	random := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	edge := []float32{0, float32(math.Copysign(0, -1)), 1e-6, 9.99e-7, -1e-7, 1e-9, 1e-10, 1e-45, 1e20, 1e21, -3e22,
		math.MaxFloat32, math.SmallestNonzeroFloat32, 0.1, 1.0 / 3, 123456789, -2.5e-8}
	cases := []struct {
		name string
		resp embeddingsResponse
	}{
		{"normalized floats", embeddingsResponse{Object: "list", Model: "all-MiniLM-L6-v2",
			Data:  []embeddingObject{{"embedding", 0, random(384, 0.05)}, {"embedding", 1, random(384, 0.05)}},
			Usage: usage{PromptTokens: 12, TotalTokens: 12}}},
		{"edge values", embeddingsResponse{Object: "list", Model: "m", Data: []embeddingObject{{"embedding", 0, edge}}}},
		{"wide range", embeddingsResponse{Object: "list", Model: "m", Data: []embeddingObject{{"embedding", 0, random(2000, 1e12)},
			{"embedding", 1, random(2000, 1e-8)}}}},
		{"base64 and escaped model", embeddingsResponse{Object: "list", Model: "a<b>&\"c\"\\ é\u2028",
			Data: []embeddingObject{{"embedding", 0, encodeBase64(random(8, 1))}}}},
		{"nil and empty", embeddingsResponse{Object: "list", Data: []embeddingObject{{"embedding", 0, []float32(nil)},
			{"embedding", 1, []float32{}}}}},
		{"no data", embeddingsResponse{Object: "list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(&tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendEmbeddingsJSON(nil, &tc.resp)
			if !ok {
				t.Fatal("refused an encodable response")
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encodings differ:\n got %.300s\nwant %.300s", got, want)
			}
		})
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		resp := embeddingsResponse{Object: "list", Data: []embeddingObject{{"embedding", 0, []float32{0.5, bad}}}}
		if _, err := json.Marshal(&resp); err == nil {
			t.Fatalf("json.Marshal accepted %v", bad)
		}
		if _, ok := appendEmbeddingsJSON(nil, &resp); ok {
			t.Errorf("accepted %v, which json.Marshal refuses", bad)
		}
	}
}

func BenchmarkEncodeEmbeddingResponse(b *testing.B) {
	v := make([]float32, 384)
	for i := range v {
		v[i] = float32(math.Sin(float64(i))) / 20
	}
	resp := embeddingsResponse{Object: "list", Model: "all-MiniLM-L6-v2", Data: []embeddingObject{{"embedding", 0, v}}}
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&resp)
		}
	})
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			_, _ = appendEmbeddingsJSON(make([]byte, 0, 4096), &resp)
		}
	})
}
