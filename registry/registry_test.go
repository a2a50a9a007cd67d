package registry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/internal/testmodel"
	"github.com/embedd-dev/embedd/registry"
	"github.com/embedd-dev/embedd/registry/engine"
)

var (
	pool      *bindings.Pool
	modelPath string // the bundled model
)

func TestMain(m *testing.M) {
	var err error
	if modelPath, err = testmodel.RealModelPath(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if pool, err = bindings.NewPool(0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	pool.Close()
	os.Exit(code)
}

// countingLoader wraps the real engine loader and counts loads and closes.
type countingLoader struct {
	loads, closes chan string
}

type closeWatch struct {
	registry.Model
	id     string
	closes chan string
}

func (c closeWatch) Close() error {
	c.closes <- c.id
	return c.Model.Close()
}

func (l *countingLoader) load(spec config.Model) (registry.Model, error) {
	m, err := engine.Loader(pool)(spec)
	if err != nil {
		return nil, err
	}
	l.loads <- spec.ID
	return closeWatch{Model: m, id: spec.ID, closes: l.closes}, nil
}

func writeConfig(t *testing.T, dir, models string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "models.toml")
	if err := os.WriteFile(path, []byte(models), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func modelEntry(id, extra string) string {
	return fmt.Sprintf("[[models]]\nid = %q\npath = %q\ntype = \"embeddings\"\n%s\n", id, modelPath, extra)
}

func newRegistry(t *testing.T, cfg *config.Config) (*registry.Registry, *countingLoader) {
	t.Helper()
	sched, err := batcher.New(batcher.Config{MaxBatchTokens: 4096, MaxBatchInputs: 32, QueueLength: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &countingLoader{loads: make(chan string, 16), closes: make(chan string, 16)}
	reg := registry.New(cfg, l.load, sched, nil)
	t.Cleanup(func() {
		sched.Stop()
		if !t.Failed() { // a failed test may hold a handle, and Close waits for in-flight work
			reg.Close()
		}
	})
	return reg, l
}

func embedOne(t *testing.T, h *registry.Handle, text string) []float32 {
	t.Helper()
	out, err := h.Queue.Submit(context.Background(), []batcher.Input{h.Model.Encode(text).Input})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestPreloadLazyAndAliases(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, modelEntry("eager", `aliases = ["e"]`)+modelEntry("lazy", "preload = false"))
	reg, l := newRegistry(t, cfg)
	if reg.Ready() {
		t.Error("ready before preloading")
	}
	if err := reg.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !reg.Ready() {
		t.Error("not ready after preloading")
	}
	if got := <-l.loads; got != "eager" {
		t.Errorf("preloaded %s", got)
	}
	states := map[string]string{}
	for _, st := range reg.List() {
		states[st.Spec.ID] = st.State
	}
	if states["eager"] != registry.StateReady || states["lazy"] != registry.StateNotLoaded {
		t.Errorf("states %v", states)
	}
	h, err := reg.Acquire(context.Background(), "e")
	if err != nil || h.Spec.ID != "eager" {
		t.Fatalf("alias: %v", err)
	}
	h.Release()
	h, err = reg.Acquire(context.Background(), "lazy")
	if err != nil {
		t.Fatal(err)
	}
	if got := <-l.loads; got != "lazy" {
		t.Errorf("lazily loaded %s", got)
	}
	if v := embedOne(t, h, "hello"); len(v) != 384 {
		t.Errorf("%d dims", len(v))
	}
	h.Release()
	if _, err := reg.Acquire(context.Background(), "nope"); !errors.Is(err, registry.ErrUnknownModel) {
		t.Errorf("unknown model: %v", err)
	}
}

// Reload keeps unchanged instances, and closes a removed one only after its in-flight work.
func TestReloadLifecycle(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, modelEntry("keep", "")+modelEntry("drop", ""))
	reg, l := newRegistry(t, cfg)
	if err := reg.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-l.loads
	<-l.loads
	keep, err := reg.Acquire(context.Background(), "keep")
	if err != nil {
		t.Fatal(err)
	}
	before := embedOne(t, keep, "stable")
	keep.Release()
	inflight, err := reg.Acquire(context.Background(), "drop")
	if err != nil {
		t.Fatal(err)
	}

	next := writeConfig(t, dir, modelEntry("keep", `aliases = ["k2"]`)+modelEntry("new", ""))
	if err := reg.Reload(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if got := <-l.loads; got != "new" {
		t.Errorf("reload loaded %s, want only the new model", got)
	}
	select {
	case id := <-l.closes:
		t.Fatalf("%s closed while a request still holds it", id)
	case <-time.After(50 * time.Millisecond):
	}
	// The in-flight request on the removed model still completes.
	if v := embedOne(t, inflight, "still works"); len(v) != 384 {
		t.Errorf("in-flight request on the removed model: %d dims", len(v))
	}
	inflight.Release()
	select {
	case id := <-l.closes:
		if id != "drop" {
			t.Errorf("closed %s, want drop", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the removed model was never closed")
	}
	h, err := reg.Acquire(context.Background(), "k2")
	if err != nil {
		t.Fatal(err)
	}
	if after := embedOne(t, h, "stable"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the kept model answers differently")
	}
	h.Release()
	if _, err := reg.Acquire(context.Background(), "drop"); !errors.Is(err, registry.ErrUnknownModel) {
		t.Errorf("removed model: %v", err)
	}

	// A new model that fails to load rejects the whole config.
	junk := filepath.Join(dir, "junk.gguf")
	if err := os.WriteFile(junk, []byte("GGUF but not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := writeConfig(t, dir, modelEntry("keep", "")+fmt.Sprintf("[[models]]\nid = \"junk\"\npath = %q\ntype = \"embeddings\"\n", junk))
	if err := reg.Reload(context.Background(), bad); err == nil {
		t.Fatal("a config with an unloadable model was accepted")
	}
	h, err = reg.Acquire(context.Background(), "new")
	if err != nil {
		t.Fatalf("old config no longer served after a rejected reload: %v", err)
	}
	h.Release()
}
