// Package registry is the set of served models: it loads them (at start-up or lazily on first use),
// resolves ids and aliases, counts in-flight work, and swaps in a new models.toml on reload without
// dropping requests: unchanged models keep their loaded instance, removed or changed ones are closed
// only after their in-flight work has finished, and a config that fails to load is rejected whole.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/metrics"
)

// Info describes a loaded model (what /v1/models reports).
type Info struct {
	Dim          int
	Vocab        int
	MaxTokens    int // effective sequence limit including [CLS]/[SEP]
	Layers       int
	Pooling      string
	Quantization string
	Arch         string
	Labels       []string
	FileBytes    int64
	MemoryBytes  int64
}

// Encoding is a tokenized text.
type Encoding struct {
	Input     batcher.Input
	Truncated bool // the text was longer than MaxTokens and was cut
}

// Model is a loaded engine instance. Encode and SpecialTokens are safe for concurrent use; Run is
// called by the scheduler, one batch at a time.
type Model interface {
	batcher.Runner
	Info() Info
	// Encode tokenizes text into [CLS] ... [SEP], truncated to Info().MaxTokens.
	Encode(text string) Encoding
	// SpecialTokens are the ids of [CLS] and [SEP], added around raw token-id inputs.
	SpecialTokens() (cls, sep int32)
	Close() error
}

// Loader loads the model a config entry declares.
type Loader func(spec config.Model) (Model, error)

// Model states reported by health and /v1/models.
const (
	StateNotLoaded = "not_loaded"
	StateLoading   = "loading"
	StateReady     = "ready"
	StateFailed    = "failed"
)

// Errors of Acquire.
var (
	ErrUnknownModel = errors.New("unknown model")
	ErrLoadFailed   = errors.New("model failed to load")
	ErrClosed       = errors.New("registry closed")
)

// instance is one loaded (or loadable) model and its queue. Instances survive reloads when their
// loading-relevant settings do not change.
type instance struct {
	key    string // what must not change for the instance to be reused
	name   string // metrics label: the model id at creation
	spec   config.Model
	loader Loader
	sched  *batcher.Scheduler
	met    *metrics.Metrics

	loadMu sync.Mutex // serializes loading
	mu     sync.Mutex
	state  string
	model  Model
	queue  *batcher.Queue
	err    error

	inflight int
	retired  bool
	idle     *sync.Cond // signaled when inflight drops to 0
}

func newInstance(spec config.Model, loader Loader, sched *batcher.Scheduler, met *metrics.Metrics) *instance {
	in := &instance{
		key:    instanceKey(spec),
		name:   spec.ID,
		spec:   spec,
		loader: loader,
		sched:  sched,
		met:    met,
		state:  StateNotLoaded,
	}
	in.idle = sync.NewCond(&in.mu)
	met.SetModelLoaded(spec.ID, false)
	return in
}

// instanceKey holds the settings baked into a loaded instance: a change of any of them loads a new
// one. Aliases and prefixes apply per request and can change freely.
func instanceKey(m config.Model) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%t", m.ID, m.Path, m.Hub, m.File,
		m.Revision, m.SHA256, m.Type, m.MaxTokens, m.Normalized())
}

// load loads the model if it is not loaded yet, waiting for a load in progress.
func (in *instance) load(ctx context.Context) error {
	in.mu.Lock()
	if in.state == StateReady {
		in.mu.Unlock()
		return nil
	}
	in.mu.Unlock()

	// loadMu is held for the whole load; waiting for it honors ctx so that a canceled request does
	// not hang behind a slow load.
	acquired := make(chan struct{})
	go func() { in.loadMu.Lock(); close(acquired) }()
	select {
	case <-acquired:
	case <-ctx.Done():
		go func() { <-acquired; in.loadMu.Unlock() }()
		return ctx.Err()
	}
	defer in.loadMu.Unlock()

	in.mu.Lock()
	if in.state == StateReady {
		in.mu.Unlock()
		return nil
	}
	if in.retired {
		in.mu.Unlock()
		return ErrClosed
	}
	in.state = StateLoading
	in.mu.Unlock()

	t0 := time.Now()
	m, err := in.loader(in.spec)
	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil {
		in.state, in.err = StateFailed, err
		slog.Error("model load failed", "model", in.spec.ID, "path", in.spec.Path, "err", err)
		return fmt.Errorf("%w: %s: %v", ErrLoadFailed, in.spec.ID, err)
	}
	if in.retired { // removed by a reload while loading
		_ = m.Close()
		return ErrClosed
	}
	in.model, in.err, in.state = m, nil, StateReady
	in.queue = in.sched.NewQueue(in.name, m, in.spec.Normalized())
	in.met.SetModelLoaded(in.name, true)
	info := m.Info()
	slog.Info("model loaded", "model", in.spec.ID, "path", in.spec.Path, "dim", info.Dim,
		"max_tokens", info.MaxTokens, "quantization", info.Quantization, "seconds", time.Since(t0).Seconds())
	return nil
}

// retire marks the instance removed and closes it once its in-flight work has finished.
func (in *instance) retire() {
	in.mu.Lock()
	in.retired = true
	for in.inflight > 0 {
		in.idle.Wait()
	}
	m, q := in.model, in.queue
	in.model, in.queue, in.state = nil, nil, StateNotLoaded
	in.mu.Unlock()
	in.met.SetModelLoaded(in.name, false)
	if q != nil {
		q.Close()
	}
	if m != nil {
		if err := m.Close(); err != nil {
			slog.Warn("closing model", "model", in.name, "err", err)
		}
	}
}

func (in *instance) status() (state string, m Model, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state, in.model, in.err
}

// entry is one configured model: its spec (as the current config declares it) and its instance.
type entry struct {
	spec config.Model
	inst *instance
}

// Registry holds the served models of the current configuration.
type Registry struct {
	loader Loader
	sched  *batcher.Scheduler
	met    *metrics.Metrics

	mu      sync.RWMutex
	cfg     *config.Config
	entries []*entry          // config order
	names   map[string]*entry // ids and aliases
	closed  bool
}

// New builds a registry for cfg. Nothing is loaded yet: call Preload (start-up) or let Acquire load
// models lazily.
func New(cfg *config.Config, loader Loader, sched *batcher.Scheduler, met *metrics.Metrics) *Registry {
	r := &Registry{loader: loader, sched: sched, met: met}
	r.entries, r.names = r.build(cfg, nil)
	r.cfg = cfg
	return r
}

// build creates the entries of cfg, reusing instances of old whose key is unchanged.
func (r *Registry) build(cfg *config.Config, old map[string]*instance) ([]*entry, map[string]*entry) {
	entries := make([]*entry, 0, len(cfg.Models))
	names := make(map[string]*entry)
	for _, spec := range cfg.Models {
		inst := old[instanceKey(spec)]
		if inst == nil {
			inst = newInstance(spec, r.loader, r.sched, r.met)
		}
		e := &entry{spec: spec, inst: inst}
		entries = append(entries, e)
		names[spec.ID] = e
		for _, a := range spec.Aliases {
			names[a] = e
		}
	}
	return entries, names
}

// Config returns the configuration currently served.
func (r *Registry) Config() *config.Config {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cfg
}

// Preload loads every model marked preload, in config order, and returns the first error.
func (r *Registry) Preload(ctx context.Context) error {
	r.mu.RLock()
	entries := append([]*entry(nil), r.entries...)
	r.mu.RUnlock()
	for _, e := range entries {
		if !e.spec.Preloaded() {
			continue
		}
		if err := e.inst.load(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Ready reports whether every preload model of the current config is loaded.
func (r *Registry) Ready() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false
	}
	for _, e := range r.entries {
		if !e.spec.Preloaded() {
			continue
		}
		if st, _, _ := e.inst.status(); st != StateReady {
			return false
		}
	}
	return true
}

// Handle is an acquired model: the model stays open until Release.
type Handle struct {
	Spec  config.Model // the entry as configured (ID is the canonical id)
	Model Model
	Queue *batcher.Queue
	inst  *instance
	once  sync.Once
}

// Release ends the request's use of the model.
func (h *Handle) Release() {
	h.once.Do(func() {
		in := h.inst
		in.mu.Lock()
		in.inflight--
		if in.inflight == 0 {
			in.idle.Broadcast()
		}
		in.mu.Unlock()
	})
}

// Lookup resolves an id or alias to its configuration without loading anything.
func (r *Registry) Lookup(name string) (config.Model, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.names[name]
	if !ok {
		return config.Model{}, false
	}
	return e.spec, true
}

// Acquire resolves an id or alias, loads the model if needed (waiting at most until ctx ends) and
// counts the caller as in-flight work until Handle.Release.
func (r *Registry) Acquire(ctx context.Context, name string) (*Handle, error) {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return nil, ErrClosed
	}
	e, ok := r.names[name]
	if !ok {
		r.mu.RUnlock()
		return nil, fmt.Errorf("%w: %q", ErrUnknownModel, name)
	}
	in := e.inst
	// Counting in-flight under the registry lock means a reload cannot retire the instance between
	// the lookup and the count.
	in.mu.Lock()
	in.inflight++
	in.mu.Unlock()
	r.mu.RUnlock()

	h := &Handle{Spec: e.spec, inst: in}
	if err := in.load(ctx); err != nil {
		h.Release()
		return nil, err
	}
	in.mu.Lock()
	h.Model, h.Queue = in.model, in.queue
	in.mu.Unlock()
	if h.Model == nil {
		h.Release()
		return nil, ErrClosed
	}
	return h, nil
}

// Status is a model's entry in /health and /v1/models.
type Status struct {
	Spec  config.Model
	State string
	Info  *Info // nil until loaded
	Error string
}

// List reports every configured model in config order.
func (r *Registry) List() []Status {
	r.mu.RLock()
	entries := append([]*entry(nil), r.entries...)
	r.mu.RUnlock()
	out := make([]Status, 0, len(entries))
	for _, e := range entries {
		st, m, err := e.inst.status()
		s := Status{Spec: e.spec, State: st}
		if m != nil {
			info := m.Info()
			s.Info = &info
		}
		if err != nil && st == StateFailed {
			s.Error = err.Error()
		}
		out = append(out, s)
	}
	return out
}

// Names returns every id and alias, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Reload switches to cfg (already validated by config.Load). New preload models are loaded first; if
// any fails, the new config is rejected and the old one keeps serving. Models whose instance settings
// are unchanged keep their loaded instance; the others are closed in the background once their
// in-flight requests have finished.
func (r *Registry) Reload(ctx context.Context, cfg *config.Config) error {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return ErrClosed
	}
	old := make(map[string]*instance, len(r.entries))
	for _, e := range r.entries {
		old[e.inst.key] = e.inst
	}
	r.mu.RUnlock()

	entries, names := r.build(cfg, old)
	var fresh []*instance
	for _, e := range entries {
		if old[e.inst.key] == e.inst {
			continue
		}
		fresh = append(fresh, e.inst)
		if e.spec.Preloaded() {
			if err := e.inst.load(ctx); err != nil {
				for _, in := range fresh {
					in.retire()
				}
				r.met.ObserveReload(false)
				return fmt.Errorf("reload %s: %w", cfg.File, err)
			}
		}
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		for _, in := range fresh {
			in.retire()
		}
		return ErrClosed
	}
	kept := make(map[*instance]bool, len(entries))
	for _, e := range entries {
		kept[e.inst] = true
	}
	var gone []*instance
	for _, e := range r.entries {
		if !kept[e.inst] {
			gone = append(gone, e.inst)
		}
	}
	r.cfg, r.entries, r.names = cfg, entries, names
	r.mu.Unlock()

	for _, in := range gone {
		go in.retire()
	}
	r.met.ObserveReload(true)
	slog.Info("configuration reloaded", "file", cfg.File, "models", len(entries), "replaced", len(gone), "new", len(fresh))
	return nil
}

// Close stops serving and closes every model after its in-flight work.
func (r *Registry) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	entries := r.entries
	r.mu.Unlock()
	for _, e := range entries {
		e.inst.retire()
	}
}
