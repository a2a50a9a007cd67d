package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const installHint = "install it: apt-get update && apt-get install -y prometheus (or run scripts/install-test-deps.sh)"

// findTool looks for a Prometheus binary on PATH and in /usr/bin; its absence fails the test.
func findTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	t.Fatalf("%s not found on PATH or in /usr/bin; %s", name, installHint)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func scrapeMetrics(t *testing.T, ts *testServer) []byte {
	t.Helper()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return body
}

// promtool finds nothing to complain about in /metrics, and the expected series are there.
func TestMetricsPromtoolClean(t *testing.T) {
	promtool := findTool(t, "promtool")
	ts := newTestServer(t, "", "")
	ts.embed(t, map[string]any{"model": "minilm", "input": []string{"one", "two"}})
	ts.post(t, "/v1/embeddings", `{"model": "nope", "input": "x"}`, nil)
	body := scrapeMetrics(t, ts)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	text := string(body)
	for _, want := range []string{
		`embedd_requests_total{endpoint="embeddings",model="all-MiniLM-L6-v2",outcome="ok"} 1`,
		`embedd_requests_total{endpoint="embeddings",model="unknown",outcome="not_found"} 1`,
		`embedd_inputs_total{model="all-MiniLM-L6-v2",outcome="ok"} 2`,
		`embedd_batch_duration_seconds_bucket{model="all-MiniLM-L6-v2",le="5e-05"}`,
		`embedd_queue_wait_seconds_count{model="all-MiniLM-L6-v2"} 1`,
		`embedd_batch_tokens_count{model="all-MiniLM-L6-v2"} 1`,
		`embedd_request_duration_seconds_count{endpoint="embeddings",model="all-MiniLM-L6-v2"} 1`,
		`embedd_queue_requests{model="all-MiniLM-L6-v2"} 0`,
		`embedd_model_loaded{model="all-MiniLM-L6-v2"} 1`,
		`embedd_build_info{`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(text, `embedd_tokens_total{model="all-MiniLM-L6-v2"} 6`) {
		t.Errorf("tokens_total is not the 6 tokens of [CLS] one [SEP] [CLS] two [SEP]")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A real Prometheus scrapes the server and its query API returns the batch-latency histogram.
func TestPrometheusScrapes(t *testing.T) {
	prom := findTool(t, "prometheus")
	ts := newTestServer(t, "", "")
	for i := range 5 {
		ts.embed(t, map[string]any{"model": "minilm", "input": []string{sentence(i), sentence(i + 1)}})
	}
	target := strings.TrimPrefix(ts.URL, "http://")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: embedd
    scrape_interval: 1s
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn",
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})

	query := "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/query?query=" +
		url.QueryEscape(`sum(embedd_batch_duration_seconds_count{job="embedd"})`)
	deadline := time.Now().Add(45 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		resp, err := http.Get(query)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(body)
		var out struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &out) != nil || out.Status != "success" || len(out.Data.Result) == 0 {
			continue
		}
		v, _ := strconv.ParseFloat(fmt.Sprint(out.Data.Result[0].Value[1]), 64)
		if v >= 5 {
			// The histogram's buckets are there too.
			bq := "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/query?query=" +
				url.QueryEscape(`embedd_batch_duration_seconds_bucket{le="+Inf"}`)
			resp, err := http.Get(bq)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `"all-MiniLM-L6-v2"`) {
				t.Errorf("bucket query: %s", body)
			}
			return
		}
	}
	t.Fatalf("prometheus never reported batch-latency samples; last answer: %s\nprometheus log:\n%s", last, logs.String())
}
