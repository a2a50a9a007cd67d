package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/internal/testmodel"
	"github.com/embedd-dev/embedd/registry"
	"github.com/embedd-dev/embedd/registry/engine"
)

// fakeHub serves the bundled model as org/minilm/main/model.gguf the way huggingface.co does: a
// redirect carrying X-Linked-Etag (the sha256) to a second "CDN" server that sends the bytes.
func fakeHub(t *testing.T, data []byte) (endpoint string, hubRequests *atomic.Int64) {
	t.Helper()
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/blob/"+sha {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(data)))
	}))
	hubRequests = new(atomic.Int64)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hubRequests.Add(1)
		if r.URL.Path != "/org/minilm/resolve/main/model.gguf" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Linked-Etag", `"`+sha+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		http.Redirect(w, r, cdn.URL+"/blob/"+sha, http.StatusFound)
	}))
	t.Cleanup(func() { hub.Close(); cdn.Close() })
	return hub.URL, hubRequests
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// referenceVector reads the published full-precision embedding of text.
func referenceVector(t *testing.T, text string) []float32 {
	t.Helper()
	dir, err := testmodel.SharedDir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "testdata", "minilm_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Embeddings []struct {
			Text   string    `json:"text"`
			Vector []float32 `json:"vector"`
		} `json:"embeddings"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, e := range ref.Embeddings {
		if e.Text == text {
			return e.Vector
		}
	}
	t.Fatalf("no reference embedding of %q", text)
	return nil
}

func TestHubSourceLoadsRealModel(t *testing.T) {
	modelPath, err := testmodel.RealModelPath()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, hubRequests := fakeHub(t, data)
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", endpoint)
	t.Setenv("EMBEDD_CACHE", cache)
	t.Setenv("HF_TOKEN", "")

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "models.toml")
	toml := fmt.Sprintf(`
[[models]]
id = "from-hub"
hub = "org/minilm"
file = "model.gguf"
type = "embeddings"

[[models]]
id = "local"
path = %q
type = "embeddings"

[[models]]
id = "missing"
hub = "org/minilm"
file = "absent.gguf"
type = "embeddings"
preload = false
`, modelPath)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}

	pool, err := bindings.NewPool(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sched, err := batcher.New(batcher.Config{MaxBatchTokens: 4096, MaxBatchInputs: 32, QueueLength: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Stop()
	reg := registry.New(cfg, engine.Loader(pool), sched, nil)
	defer reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := reg.Preload(ctx); err != nil {
		t.Fatal(err)
	}

	cached := filepath.Join(cache, "org--minilm", "main", "model.gguf")
	if st, err := os.Stat(cached); err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("cached model: %v, %v", st, err)
	}

	embed := func(id, text string) []float32 {
		h, err := reg.Acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		if h.Model.Info().Dim != 384 {
			t.Errorf("%s: dim %d", id, h.Model.Info().Dim)
		}
		out, err := h.Queue.Submit(ctx, []batcher.Input{h.Model.Encode(text).Input})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	const text = "robert smith"
	fromHub, local := embed("from-hub", text), embed("local", text)
	for i := range local {
		if fromHub[i] != local[i] {
			t.Fatalf("hub and local models differ at %d: %g vs %g", i, fromHub[i], local[i])
		}
	}
	if c := cosine(fromHub, referenceVector(t, text)); c < 0.98 {
		t.Errorf("cosine to the reference %.4f", c)
	}

	// A lazy hub model that does not exist fails on first use, with the hub's error as its load error.
	before := hubRequests.Load()
	_, err = reg.Acquire(ctx, "missing")
	if !errors.Is(err, registry.ErrLoadFailed) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing hub file: err = %v", err)
	}
	if hubRequests.Load() == before {
		t.Error("the lazy model was not fetched on first use")
	}
	for _, st := range reg.List() {
		if st.Spec.ID == "missing" && (st.State != registry.StateFailed || !strings.Contains(st.Error, "absent.gguf")) {
			t.Errorf("status of the missing model: %+v", st)
		}
	}

	// A second registry on the same cache loads without asking the hub again.
	before = hubRequests.Load()
	reg2 := registry.New(cfg, engine.Loader(pool), sched, nil)
	defer reg2.Close()
	if err := reg2.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	if hubRequests.Load() != before {
		t.Error("a cached hub model was downloaded again")
	}
}
