package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/httpapi"
	"github.com/embedd-dev/embedd/internal/testmodel"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/registry"
	"github.com/embedd-dev/embedd/registry/engine"
)

// The end-to-end tests run the real engine on the bundled model; one compute pool serves them all,
// as one pool serves all models in the server.
var testPool *bindings.Pool

func TestMain(m *testing.M) {
	var err error
	testPool, err = bindings.NewPool(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "thread pool:", err)
		os.Exit(1)
	}
	code := m.Run()
	testPool.Close()
	if rsFiles.dir != "" { // the rerank and sparse tests' synthetic models
		os.RemoveAll(rsFiles.dir)
	}
	os.Exit(code)
}

func bundledModel(t testing.TB) string {
	t.Helper()
	p, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testConfigTOML is a models.toml serving the bundled model; extra is appended to [server].
func testConfigTOML(model, server, batching string) string {
	return fmt.Sprintf(`
[server]
%s
[batching]
%s
[[models]]
id = "all-MiniLM-L6-v2"
path = %q
type = "embeddings"
aliases = ["sentence-transformers/all-MiniLM-L6-v2", "minilm"]
query_prefix = "query: "

[[models]]
id = "reranker"
path = %q
type = "rerank"
preload = false
`, server, batching, model, model)
}

type testServer struct {
	*httptest.Server
	api     *httpapi.Server
	met     *metrics.Metrics
	cfgPath string
}

// newTestServer starts the full stack serving the bundled model (see testConfigTOML), with
// POST /admin/reload re-reading its models.toml.
func newTestServer(t testing.TB, server, batching string) *testServer {
	t.Helper()
	return startStack(t, testConfigTOML(bundledModel(t), server, batching), true)
}

// startStack writes toml as a models.toml and starts the full stack (config, metrics, scheduler,
// registry with the real engine, HTTP API) on a loopback port. withReload makes POST /admin/reload
// re-read the file; without it the server cannot reload.
func startStack(t testing.TB, toml string, withReload bool) *testServer {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "models.toml")
	if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New("test", bindings.ActiveSIMD())
	sched, err := batcher.New(batcher.Config{
		MaxBatchTokens: cfg.Batching.MaxBatchTokens, MaxBatchInputs: cfg.Batching.MaxBatchInputs,
		MaxWait: cfg.Batching.MaxWait.Duration, QueueLength: cfg.Batching.QueueLength,
	}, met)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(cfg, engine.Loader(testPool), sched, met)
	if err := reg.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	var reload httpapi.ReloadFunc
	if withReload {
		reload = func(ctx context.Context) error {
			next, err := config.Load(cfgPath, nil)
			if err != nil {
				return err
			}
			return reg.Reload(ctx, next)
		}
	}
	ts := &testServer{met: met, cfgPath: cfgPath, api: httpapi.New(reg, met, reload)}
	ts.Server = httptest.NewServer(ts.api.Handler())
	t.Cleanup(func() {
		ts.Server.Close()
		sched.Stop()
		reg.Close()
	})
	return ts
}

// post sends a JSON body and returns the status and decoded body.
func (ts *testServer) post(t testing.TB, path string, body any, header http.Header) (int, map[string]any) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func (ts *testServer) get(t testing.TB, path string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (int, map[string]any) {
	t.Helper()
	status, data := send(t, req)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object: %q", req.Method, req.URL.Path, status, data)
	}
	return status, out
}

// send does req and returns the status and the raw answer.
func send(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// request sends body (a string, or a value to encode as JSON; nil: none) with method to the
// server at base + path and returns the status and the raw answer.
func request(t testing.TB, base, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			raw = string(b)
		}
		r = strings.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return send(t, req)
}

// embedRaw posts an embeddings request and returns the float vectors (status must be 200).
func (ts *testServer) embed(t testing.TB, body map[string]any) [][]float64 {
	t.Helper()
	status, out := ts.post(t, "/v1/embeddings", body, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, out)
	}
	return vectorsOf(t, out)
}

func vectorsOf(t testing.TB, out map[string]any) [][]float64 {
	t.Helper()
	data, ok := out["data"].([]any)
	if !ok {
		t.Fatalf("no data in %v", out)
	}
	vecs := make([][]float64, len(data))
	for i, d := range data {
		obj := d.(map[string]any)
		if int(obj["index"].(float64)) != i {
			t.Fatalf("data[%d] has index %v", i, obj["index"])
		}
		for _, x := range obj["embedding"].([]any) {
			vecs[i] = append(vecs[i], x.(float64))
		}
	}
	return vecs
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func cosine(a, b []float64) float64 {
	var dot float64
	for i := range a {
		dot += a[i] * b[i]
	}
	return dot / (norm(a) * norm(b))
}

func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}
