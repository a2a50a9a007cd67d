package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

func init() {
	register("bench", "load-test an OpenAI-compatible embeddings server over HTTP", runBench)
}

// benchConfig is `embedd bench`'s flags.
type benchConfig struct {
	url, model, corpus, apiKey string
	batch, concurrency, words  int
	rounds, warmup             int
	timeout                    time.Duration
	jsonOut                    bool
}

// benchReport is what one run measured.
type benchReport struct {
	URL          string  `json:"url"`
	Model        string  `json:"model"`
	Batch        int     `json:"batch"`
	Concurrency  int     `json:"concurrency"`
	Requests     int     `json:"requests"`
	Inputs       int     `json:"inputs"`
	Tokens       int64   `json:"tokens"`
	Errors       int     `json:"errors"`
	Seconds      float64 `json:"seconds"`
	RequestsPerS float64 `json:"requests_per_second"`
	InputsPerS   float64 `json:"inputs_per_second"`
	TokensPerS   float64 `json:"tokens_per_second"`
	P50Ms        float64 `json:"p50_ms"`
	P90Ms        float64 `json:"p90_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	FirstError   string  `json:"first_error,omitempty"`
}

func parseBenchFlags(args []string) (*benchConfig, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := &benchConfig{}
	fs.StringVar(&c.url, "url", "http://127.0.0.1:7860", "server base URL (with or without /v1)")
	fs.StringVar(&c.model, "model", "", "model id to request (required)")
	fs.IntVar(&c.batch, "batch", 32, "inputs per request")
	fs.IntVar(&c.concurrency, "concurrency", 2, "concurrent clients")
	fs.StringVar(&c.corpus, "corpus", "", "texts: a JSON array of strings or one text per line (default: the license corpus of /work/shared/bench/corpus.py)")
	fs.IntVar(&c.words, "words", 0, "cut each text to its first N words (8 = the short-query workload)")
	fs.IntVar(&c.rounds, "rounds", 1, "passes over the corpus")
	fs.IntVar(&c.warmup, "warmup", 2, "untimed requests first")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "per-request timeout")
	fs.StringVar(&c.apiKey, "api-key", "", "bearer key (default $EMBEDD_API_KEY, else $OPENAI_API_KEY)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return nil, usagef("bench: %v", err)
	}
	switch {
	case fs.NArg() > 0:
		return nil, usagef("bench: unexpected arguments %q", fs.Args())
	case c.model == "":
		return nil, usagef("bench: --model is required")
	case c.batch < 1 || c.batch > 1<<16:
		return nil, usagef("bench: --batch %d is outside 1..65536", c.batch)
	case c.concurrency < 1 || c.concurrency > 4096:
		return nil, usagef("bench: --concurrency %d is outside 1..4096", c.concurrency)
	case c.words < 0, c.rounds < 1, c.warmup < 0, c.timeout <= 0:
		return nil, usagef("bench: --words, --rounds, --warmup and --timeout must be positive")
	}
	if c.apiKey == "" {
		c.apiKey = os.Getenv("EMBEDD_API_KEY")
	}
	if c.apiKey == "" {
		c.apiKey = os.Getenv("OPENAI_API_KEY")
	}
	return c, nil
}

// embeddingsURL turns a base URL into the embeddings endpoint.
func embeddingsURL(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/v1") {
		return base + "/embeddings"
	}
	return base + "/v1/embeddings"
}

func runBench(args []string) error {
	c, err := parseBenchFlags(args)
	if err != nil {
		return err
	}
	var texts []string
	if c.corpus != "" {
		texts, err = readTextsFile(c.corpus)
		if err == nil && c.words > 0 {
			texts = firstWords(texts, c.words)
		}
	} else {
		texts, err = licenseCorpus(licenseDir, c.words)
	}
	if err != nil {
		return err
	}
	rep, err := benchHTTP(context.Background(), c, texts)
	if err != nil {
		return err
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("%s model=%s batch=%d concurrency=%d\n", rep.URL, rep.Model, rep.Batch, rep.Concurrency)
	fmt.Printf("  %d requests, %d inputs, %d tokens in %.2fs (%d errors)\n", rep.Requests, rep.Inputs, rep.Tokens, rep.Seconds, rep.Errors)
	fmt.Printf("  %.1f requests/s  %.1f inputs/s  %.0f tokens/s\n", rep.RequestsPerS, rep.InputsPerS, rep.TokensPerS)
	fmt.Printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", rep.P50Ms, rep.P90Ms, rep.P99Ms, rep.MaxMs)
	if rep.FirstError != "" {
		fmt.Printf("  first error: %s\n", rep.FirstError)
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed", rep.Errors, rep.Requests)
	}
	return nil
}

// benchClient sends embeddings requests over keep-alive connections.
type benchClient struct {
	http     *http.Client
	url, key string
	model    string
}

// embed sends one prepared request body of n inputs and returns the prompt tokens the server
// reports. The answer is read into buf (reused across requests) and checked without decoding it:
// json.Unmarshal spent ~45 us per short answer, which the latency figures would have charged to
// the server (gjson validates and picks the fields in ~9 us).
func (bc *benchClient) embed(ctx context.Context, body []byte, n int, buf *bytes.Buffer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, bc.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bc.key != "" {
		req.Header.Set("Authorization", "Bearer "+bc.key)
	}
	resp, err := bc.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 256<<20)); err != nil {
		return 0, err
	}
	data := buf.Bytes()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	if !gjson.ValidBytes(data) {
		return 0, fmt.Errorf("the answer is not valid JSON: %.200s", data)
	}
	if got := gjson.GetBytes(data, "data.#.embedding|#").Int(); got != int64(n) {
		return 0, fmt.Errorf("%d embeddings for %d inputs", got, n)
	}
	return gjson.GetBytes(data, "usage.prompt_tokens").Int(), nil
}

// requestBody is the JSON of one embeddings request.
func (bc *benchClient) requestBody(texts []string) ([]byte, error) {
	return json.Marshal(map[string]any{"model": bc.model, "input": texts})
}

// benchHTTP sends the corpus in requests of c.batch texts from c.concurrency clients.
func benchHTTP(ctx context.Context, c *benchConfig, texts []string) (*benchReport, error) {
	if len(texts) == 0 {
		return nil, errors.New("bench: no texts")
	}
	bc := &benchClient{
		http: &http.Client{Timeout: c.timeout, Transport: &http.Transport{
			MaxIdleConns: c.concurrency, MaxIdleConnsPerHost: c.concurrency, IdleConnTimeout: time.Minute,
		}},
		url: embeddingsURL(c.url), key: c.apiKey, model: c.model,
	}
	// Request bodies are encoded before the clock starts: latency is the server's answer time.
	type batch struct {
		body []byte
		n    int
	}
	var batches []batch
	for i := 0; i < len(texts); i += c.batch {
		part := texts[i:min(i+c.batch, len(texts))]
		body, err := bc.requestBody(part)
		if err != nil {
			return nil, err
		}
		batches = append(batches, batch{body, len(part)})
	}
	var buf bytes.Buffer
	for i := 0; i < c.warmup; i++ {
		b := batches[i%len(batches)]
		if _, err := bc.embed(ctx, b.body, b.n, &buf); err != nil {
			return nil, fmt.Errorf("warm-up request to %s: %w", bc.url, err)
		}
	}

	work := make(chan batch)
	var mu sync.Mutex
	rep := &benchReport{URL: bc.url, Model: c.model, Batch: c.batch, Concurrency: c.concurrency}
	latencies := make([]float64, 0, len(batches)*c.rounds)
	var wg sync.WaitGroup
	start := time.Now()
	for range c.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for b := range work {
				t0 := time.Now()
				tokens, err := bc.embed(ctx, b.body, b.n, &buf)
				ms := float64(time.Since(t0).Nanoseconds()) / 1e6
				mu.Lock()
				rep.Requests++
				if err != nil {
					rep.Errors++
					if rep.FirstError == "" {
						rep.FirstError = err.Error()
					}
				} else {
					rep.Inputs += b.n
					rep.Tokens += tokens
					latencies = append(latencies, ms)
				}
				mu.Unlock()
			}
		}()
	}
	for r := 0; r < c.rounds; r++ {
		for _, b := range batches {
			work <- b
		}
	}
	close(work)
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	ok := float64(rep.Requests - rep.Errors)
	rep.RequestsPerS = ok / rep.Seconds
	rep.InputsPerS = float64(rep.Inputs) / rep.Seconds
	rep.TokensPerS = float64(rep.Tokens) / rep.Seconds
	sort.Float64s(latencies)
	if len(latencies) > 0 {
		rep.P50Ms, rep.P90Ms = percentile(latencies, 50), percentile(latencies, 90)
		rep.P99Ms, rep.MaxMs = percentile(latencies, 99), latencies[len(latencies)-1]
	}
	return rep, nil
}
