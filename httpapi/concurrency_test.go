package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// sentence i of a small synthetic corpus: distinct texts of varying lengths.
func sentence(i int) string {
	words := []string{"the", "server", "batches", "requests", "from", "many", "clients", "into", "one", "engine", "call", "quickly"}
	var b strings.Builder
	fmt.Fprintf(&b, "request %d:", i)
	for k := 0; k < 3+i%17; k++ {
		b.WriteString(" " + words[(i*7+k*3)%len(words)])
	}
	return b.String()
}

// 64 concurrent clients get exactly the vectors they get alone, although the scheduler packs their
// inputs into shared batches.
func TestConcurrentClientsGetTheirOwnVectors(t *testing.T) {
	ts := newTestServer(t, "", "max_batch_inputs = 32")
	const clients = 64
	alone := make([][][]float64, clients)
	inputsOf := func(i int) []string { return []string{sentence(i), sentence(i + 1000)} }
	for i := range clients {
		alone[i] = ts.embed(t, map[string]any{"model": "minilm", "input": inputsOf(i)})
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, out, err := postRaw(ts.URL+"/v1/embeddings", map[string]any{"model": "minilm", "input": inputsOf(i)})
			if err != nil || status != 200 {
				errs <- fmt.Errorf("client %d: status %d %v %v", i, status, err, out)
				return
			}
			got := vectorsOf(t, out)
			for k := range got {
				if d := maxAbsDiff(got[k], alone[i][k]); d > 1e-6 {
					errs <- fmt.Errorf("client %d input %d: differs from its solo vector by %g", i, k, d)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The concurrent phase really batched: some batch held more than one request's inputs.
	if max := maxBatchInputs(t, ts); max <= 2 {
		t.Errorf("largest batch had %v inputs; concurrent requests were never batched together", max)
	}
}

// A tiny queue under load answers 429 with Retry-After, and every accepted request still gets
// exactly its own vectors.
func TestOverloadGives429(t *testing.T) {
	ts := newTestServer(t, "", "queue_length = 1\nmax_batch_inputs = 2")
	const clients = 32
	inputsOf := func(i int) []string {
		in := make([]string, 6)
		for k := range in {
			in[k] = strings.Repeat(sentence(i*10+k)+" ", 4)
		}
		return in
	}
	alone := make([][][]float64, clients)
	for i := range clients {
		alone[i] = ts.embed(t, map[string]any{"model": "minilm", "input": inputsOf(i)})
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"model": "minilm", "input": inputsOf(i)})
			resp, err := http.Post(ts.URL+"/v1/embeddings", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			var out map[string]any
			if err := json.Unmarshal(data, &out); err != nil {
				t.Errorf("client %d: %q", i, data)
				return
			}
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
			switch resp.StatusCode {
			case 200:
				got := vectorsOf(t, out)
				for k := range got {
					if d := maxAbsDiff(got[k], alone[i][k]); d > 1e-6 {
						t.Errorf("client %d input %d: mixed up (diff %g)", i, k, d)
					}
				}
			case 429:
				if resp.Header.Get("Retry-After") == "" || out["error"] == nil {
					t.Errorf("429 without Retry-After or error body: %v", out)
				}
			default:
				t.Errorf("client %d: unexpected status %d: %v", i, resp.StatusCode, out)
			}
		}()
	}
	wg.Wait()
	if counts[200] == 0 || counts[429] == 0 || counts[200]+counts[429] != clients {
		t.Errorf("statuses %v: want both 200s and 429s and nothing else", counts)
	}
	if status, _ := ts.get(t, "/health/ready", nil); status != 200 {
		t.Errorf("not ready after overload: %d", status)
	}
}

func postRaw(url string, body any) (int, map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("body %q: %w", data, err)
	}
	return resp.StatusCode, out, nil
}

// maxBatchInputs reads the largest non-empty bucket bound of the batch-size histogram.
func maxBatchInputs(t *testing.T, ts *testServer) float64 {
	t.Helper()
	families, err := ts.met.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	largest := 0.0
	for _, f := range families {
		if f.GetName() != "embedd_batch_inputs" {
			continue
		}
		for _, m := range f.GetMetric() {
			prev := uint64(0)
			for _, b := range m.GetHistogram().GetBucket() {
				if b.GetCumulativeCount() > prev {
					largest = b.GetUpperBound()
				}
				prev = b.GetCumulativeCount()
			}
		}
	}
	return largest
}
