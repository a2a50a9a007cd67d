package httpapi_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Reloading keeps serving: requests running throughout all succeed, an added alias and a changed
// model appear, a bad config is rejected while the old one keeps serving, and reload needs the key.
func TestReloadKeepsServing(t *testing.T) {
	ts := newTestServer(t, `api_key = "k"`, "")
	auth := http.Header{"Authorization": {"Bearer k"}}
	before := ts.embed2(t, auth, "minilm", "reload me")

	stop := make(chan struct{})
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, out := ts.post(t, "/v1/embeddings", map[string]any{"model": "all-MiniLM-L6-v2", "input": sentence(w*1000 + i)}, auth)
				if status == 200 {
					served.Add(1)
				} else {
					failed.Add(1)
					t.Errorf("request during reload: %d %v", status, out)
				}
			}
		}()
	}

	original, err := os.ReadFile(ts.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(ts.cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 1. Add an alias and a second instance of the model with a shorter context.
	updated := strings.Replace(string(original), `aliases = ["sentence-transformers/all-MiniLM-L6-v2", "minilm"]`,
		`aliases = ["sentence-transformers/all-MiniLM-L6-v2", "minilm", "fresh-alias"]`, 1)
	updated = strings.Replace(updated, `id = "reranker"`, `id = "short"`, 1)
	updated = strings.Replace(updated, `type = "rerank"`, "type = \"embeddings\"\nmax_tokens = 8", 1)
	write(updated)
	if status, out := ts.post(t, "/admin/reload", "", auth); status != 200 {
		t.Fatalf("reload: %d %v", status, out)
	}
	if d := maxAbsDiff(ts.embed2(t, auth, "fresh-alias", "reload me"), before); d > 1e-6 {
		t.Errorf("the unchanged model answers differently after reload (%g)", d)
	}
	status, out := ts.post(t, "/v1/embeddings", map[string]any{"model": "short", "input": strings.Repeat("word ", 50)}, auth)
	if status != 200 || out["usage"].(map[string]any)["prompt_tokens"].(float64) != 8 {
		t.Errorf("the new model with max_tokens 8: %d %v", status, out)
	}
	if status, _ := ts.post(t, "/v1/embeddings", map[string]any{"model": "reranker", "input": "x"}, auth); status != 404 {
		t.Errorf("removed model answers %d, want 404", status)
	}

	// 2. A bad config is rejected and the previous one keeps serving.
	write(updated + "\n[[models]]\nid = \"broken\"\npath = \"/nonexistent.gguf\"\ntype = \"embeddings\"\n")
	if status, out := ts.post(t, "/admin/reload", "", auth); status != 400 || out["error"] == nil {
		t.Errorf("bad config reload: %d %v", status, out)
	} else if msg := fmt.Sprint(out["error"].(map[string]any)["message"]); !strings.Contains(msg, "models[2].path") {
		t.Errorf("bad config reload error does not name the key: %s", msg)
	}
	// A file that is not a GGUF model fails to load: rejected too.
	junk := ts.cfgPath + ".junk.gguf"
	if err := os.WriteFile(junk, []byte("definitely not gguf"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(updated + fmt.Sprintf("\n[[models]]\nid = \"junk\"\npath = %q\ntype = \"embeddings\"\n", junk))
	if status, out := ts.post(t, "/admin/reload", "", auth); status != 400 {
		t.Errorf("unloadable model reload: %d %v", status, out)
	}
	if d := maxAbsDiff(ts.embed2(t, auth, "fresh-alias", "reload me"), before); d > 1e-6 {
		t.Errorf("the old config stopped serving after a rejected reload (%g)", d)
	}

	// 3. Reload needs the key.
	if status, _ := ts.post(t, "/admin/reload", "", nil); status != 401 {
		t.Errorf("reload without key: %d", status)
	}
	close(stop)
	wg.Wait()
	if served.Load() == 0 || failed.Load() != 0 {
		t.Errorf("during reloads: %d served, %d failed", served.Load(), failed.Load())
	}
}

func TestReloadRefusedWithoutKey(t *testing.T) {
	ts := newTestServer(t, "", "")
	status, out := ts.post(t, "/admin/reload", "", nil)
	if status != 403 || out["error"] == nil {
		t.Errorf("reload with no key configured: %d %v", status, out)
	}
}

func (ts *testServer) embed2(t *testing.T, auth http.Header, model, text string) []float64 {
	t.Helper()
	status, out := ts.post(t, "/v1/embeddings", map[string]any{"model": model, "input": text}, auth)
	if status != 200 {
		t.Fatalf("embed via %s: %d %v", model, status, out)
	}
	return vectorsOf(t, out)[0]
}
