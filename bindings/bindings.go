// Package bindings is the thin, safe cgo layer over embedd's C inference core (native/embedd.h).
//
// It is the only package that imports "C". Every length, count and shape is validated in Go
// before C sees it, C never keeps a Go pointer after a call returns (the core copies model data
// during load), and the rules of the core's threading model are enforced with locks: a Context
// is used by one caller at a time, Encode calls sharing a Pool never overlap, and SetSIMD waits
// until no Encode is running.
package bindings

/*
#cgo CFLAGS: -I${SRCDIR}/../native
#cgo LDFLAGS: ${SRCDIR}/../native/build/libembedd.a -lm -lpthread
#include <stdlib.h>
#include "embedd.h"

// The batch struct holds pointers; building it on the C side lets Go pass each array as a
// plain argument (memory without Go pointers), as cgo's pointer rules require.
static int embedd_encode_packed(emb_ctx *c, emb_pool *p, int32_t n_seqs, const int32_t *seq_lens,
                                const int32_t *tokens, const int32_t *token_types, int32_t normalize,
                                float *out, int64_t out_len, char *err, size_t err_len) {
    emb_batch b;
    b.n_seqs = n_seqs;
    b.seq_lens = seq_lens;
    b.tokens = tokens;
    b.token_types = token_types;
    b.normalize = normalize;
    return emb_encode(c, p, &b, out, out_len, err, err_len);
}

static int64_t embedd_output_len_packed(const emb_model *m, int32_t n_seqs, const int32_t *seq_lens,
                                        const int32_t *tokens, const int32_t *token_types) {
    emb_batch b;
    b.n_seqs = n_seqs;
    b.seq_lens = seq_lens;
    b.tokens = tokens;
    b.token_types = token_types;
    b.normalize = 0;
    return emb_output_len(m, &b);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// errBufLen is the size of the buffer the core writes its one-line error messages into.
const errBufLen = 512

// MaxDims is the largest number of dimensions a tensor may have (EMB_MAX_DIMS).
const MaxDims = C.EMB_MAX_DIMS

// Pooling says how token states become one vector per sequence (emb_pooling).
type Pooling int32

// Pooling kinds, numbered as GGUF's bert.pooling_type numbers them.
const (
	PoolNone Pooling = C.EMB_POOL_NONE
	PoolMean Pooling = C.EMB_POOL_MEAN
	PoolCLS  Pooling = C.EMB_POOL_CLS
	PoolLast Pooling = C.EMB_POOL_LAST
	PoolRank Pooling = C.EMB_POOL_RANK
)

// String returns the pooling's lower-case name.
func (p Pooling) String() string {
	switch p {
	case PoolNone:
		return "none"
	case PoolMean:
		return "mean"
	case PoolCLS:
		return "cls"
	case PoolLast:
		return "last"
	case PoolRank:
		return "rank"
	}
	return fmt.Sprintf("pooling(%d)", int32(p))
}

// Head selects what the encoder outputs (emb_head).
type Head int32

// Output heads.
const (
	HeadEmbed  Head = C.EMB_HEAD_EMBED
	HeadRank   Head = C.EMB_HEAD_RANK
	HeadSplade Head = C.EMB_HEAD_SPLADE
)

// WeightMode selects how quantized weights are kept in memory (emb_weight_mode).
type WeightMode int32

// Weight modes: WeightsAuto repacks quantized weights to int8 rows (fast), WeightsBlocks keeps the
// GGUF blocks and dots them with the per-type kernels (exact weights, slower).
const (
	WeightsAuto   WeightMode = C.EMB_WEIGHTS_AUTO
	WeightsBlocks WeightMode = C.EMB_WEIGHTS_BLOCKS
)

// HParams are the encoder's hyper-parameters (emb_hparams).
type HParams struct {
	Vocab, Context, Embd, Heads, Layers, FF, TokenTypes int
	NormEps                                             float32
	Pooling                                             Pooling
	Head                                                Head
	WeightMode                                          WeightMode
}

// Tensor is one named tensor handed to LoadModel. Dims are in ggml order (Dims[0] is the
// contiguous dimension); Type is the GGUF type number. Data is only read during LoadModel.
type Tensor struct {
	Name string
	Type uint32
	Dims []int64
	Data []byte
}

// simdMu serialises SetSIMD against running encodes: encodes hold it shared.
var simdMu sync.RWMutex

func errString(buf []C.char) string {
	n := 0
	for n < len(buf) && buf[n] != 0 {
		n++
	}
	b := make([]byte, n)
	for i := 0; i < n; i++ {
		b[i] = byte(buf[i])
	}
	if n == 0 {
		return "unknown error"
	}
	return string(b)
}

func toInt32(name string, v int) (C.int32_t, error) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%s %d out of range", name, v)
	}
	return C.int32_t(v), nil
}

// Model is a loaded encoder. It is immutable after LoadModel and may be shared by contexts.
type Model struct {
	mu sync.RWMutex // Close takes it exclusively; users hold it shared
	m  *C.emb_model
}

// LoadModel checks the tensor table and hands it to the core, which copies (or repacks) all data.
// Its errors start with "core: " and name the offending tensor or hyper-parameter.
func LoadModel(hp HParams, tensors []Tensor) (*Model, error) {
	var chp C.emb_hparams
	fields := []struct {
		name string
		v    int
		dst  *C.int32_t
	}{
		{"vocab size", hp.Vocab, &chp.n_vocab},
		{"context length", hp.Context, &chp.n_ctx},
		{"embedding length", hp.Embd, &chp.n_embd},
		{"head count", hp.Heads, &chp.n_head},
		{"layer count", hp.Layers, &chp.n_layer},
		{"feed-forward length", hp.FF, &chp.n_ff},
		{"token type count", hp.TokenTypes, &chp.n_token_types},
	}
	for _, f := range fields {
		v, err := toInt32(f.name, f.v)
		if err != nil {
			return nil, fmt.Errorf("core: %w", err)
		}
		*f.dst = v
	}
	if math.IsNaN(float64(hp.NormEps)) || math.IsInf(float64(hp.NormEps), 0) || hp.NormEps < 0 {
		return nil, fmt.Errorf("core: layer norm epsilon %g is not a finite non-negative number", hp.NormEps)
	}
	chp.norm_eps = C.float(hp.NormEps)
	chp.pooling = C.int32_t(hp.Pooling)
	chp.head = C.int32_t(hp.Head)
	chp.weight_mode = C.int32_t(hp.WeightMode)

	if len(tensors) == 0 {
		return nil, errors.New("core: no tensors")
	}
	if len(tensors) > math.MaxInt32 {
		return nil, fmt.Errorf("core: %d tensors is too many", len(tensors))
	}
	// The table lives in C memory (it holds pointers); names are C strings; the data pointers point
	// at pinned Go memory (or at a file mapping, which the pinner ignores) for the call's duration.
	table := (*[1 << 28]C.emb_tensor)(C.calloc(C.size_t(len(tensors)), C.size_t(unsafe.Sizeof(C.emb_tensor{}))))
	if table == nil {
		return nil, errors.New("core: out of memory for the tensor table")
	}
	defer C.free(unsafe.Pointer(table))
	var names []*C.char
	defer func() {
		for _, n := range names {
			C.free(unsafe.Pointer(n))
		}
	}()
	var pinner runtime.Pinner
	defer pinner.Unpin()
	for i, t := range tensors {
		if len(t.Dims) < 1 || len(t.Dims) > MaxDims {
			return nil, fmt.Errorf("core: tensor %q has %d dimensions (want 1..%d)", t.Name, len(t.Dims), MaxDims)
		}
		if strings.IndexByte(t.Name, 0) >= 0 {
			return nil, fmt.Errorf("core: tensor name %q contains a NUL byte", t.Name)
		}
		if t.Type > math.MaxInt32 {
			return nil, fmt.Errorf("core: tensor %q has unknown type %d", t.Name, t.Type)
		}
		for j := range C.EMB_MAX_DIMS {
			table[i].ne[j] = 1
		}
		for j, d := range t.Dims {
			if d < 0 {
				return nil, fmt.Errorf("core: tensor %q has negative dimension %d", t.Name, d)
			}
			table[i].ne[j] = C.int64_t(d)
		}
		name := C.CString(t.Name)
		names = append(names, name)
		table[i].name = name
		table[i]._type = C.int32_t(t.Type)
		table[i].n_dims = C.int32_t(len(t.Dims))
		table[i].size = C.uint64_t(len(t.Data))
		if len(t.Data) > 0 {
			pinner.Pin(&t.Data[0])
			table[i].data = unsafe.Pointer(&t.Data[0])
		}
	}
	var errBuf [errBufLen]C.char
	m := C.emb_model_load(&chp, &table[0], C.int32_t(len(tensors)), &errBuf[0], errBufLen)
	if m == nil {
		return nil, fmt.Errorf("core: %s", errString(errBuf[:]))
	}
	return &Model{m: m}, nil
}

// OutputDim is the number of floats per sequence Encode writes: the embedding length, the number
// of rank labels or the vocabulary size (per token with PoolNone). 0 after Close.
func (m *Model) OutputDim() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.m == nil {
		return 0
	}
	return int(C.emb_model_output_dim(m.m))
}

// Bytes is the memory the model holds. 0 after Close.
func (m *Model) Bytes() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.m == nil {
		return 0
	}
	return int64(C.emb_model_bytes(m.m))
}

// Close frees the model. It waits for running encodes; contexts of the model must be closed first.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m != nil {
		C.emb_model_free(m.m)
		m.m = nil
	}
}

// Pool is a persistent set of worker threads. Encode calls sharing it run one at a time.
type Pool struct {
	mu sync.Mutex
	p  *C.emb_pool
	n  int
}

// NewPool starts a pool of threads workers (the calling goroutine's thread is worker 0);
// threads <= 0 means one per online core.
func NewPool(threads int) (*Pool, error) {
	if threads > 4096 {
		return nil, fmt.Errorf("new pool: %d threads is too many", threads)
	}
	if threads < 0 {
		threads = 0
	}
	var errBuf [errBufLen]C.char
	p := C.emb_pool_create(C.int32_t(threads), &errBuf[0], errBufLen)
	if p == nil {
		return nil, fmt.Errorf("new pool: %s", errString(errBuf[:]))
	}
	return &Pool{p: p, n: int(C.emb_pool_threads(p))}, nil
}

// Threads is the number of workers.
func (p *Pool) Threads() int { return p.n }

// ThreadIDs returns the operating-system ids (Linux thread ids) of the pool's own threads; the
// thread calling Encode, worker 0, is not among them. It is empty on other systems.
func (p *Pool) ThreadIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil || p.n <= 1 {
		return nil
	}
	ids := make([]C.int64_t, p.n)
	n := int(C.emb_pool_thread_ids(p.p, &ids[0], C.int32_t(len(ids))))
	out := make([]int, 0, min(n, len(ids)))
	for _, id := range ids[:min(n, len(ids))] {
		out = append(out, int(id))
	}
	return out
}

// Park tells the workers that no work is coming soon, so they sleep at once instead of spinning
// for the next task (emb_pool_park).
func (p *Pool) Park() { p.hint(func(cp *C.emb_pool) { C.emb_pool_park(cp) }) }

// Wake tells the workers that work is coming, so sleeping ones start spinning now and the next
// Encode does not wait for them to wake (emb_pool_wake).
func (p *Pool) Wake() { p.hint(func(cp *C.emb_pool) { C.emb_pool_wake(cp) }) }

// hint passes a scheduling hint to an open pool. While an Encode holds the pool (its workers are
// busy anyway) it does nothing rather than wait.
func (p *Pool) hint(fn func(*C.emb_pool)) {
	if !p.mu.TryLock() {
		return
	}
	defer p.mu.Unlock()
	if p.p != nil {
		fn(p.p)
	}
}

// Close stops the workers, after any running Encode finishes.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil {
		C.emb_pool_free(p.p)
		p.p = nil
	}
}

// Context holds one model's scratch memory. Encode calls on one context run one at a time.
type Context struct {
	mu    sync.Mutex
	c     *C.emb_ctx
	model *Model
	// errBuf receives Encode's error message (under mu). A local array would escape to the heap,
	// being passed to C: 512 bytes of garbage per call, which the collector must then reclaim.
	errBuf [errBufLen]C.char
}

// NewContext creates a context for m.
func NewContext(m *Model) (*Context, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.m == nil {
		return nil, errors.New("new context: model is closed")
	}
	var errBuf [errBufLen]C.char
	c := C.emb_ctx_create(m.m, &errBuf[0], errBufLen)
	if c == nil {
		return nil, fmt.Errorf("new context: %s", errString(errBuf[:]))
	}
	return &Context{c: c, model: m}, nil
}

// Close frees the context's memory.
func (c *Context) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		C.emb_ctx_free(c.c)
		c.c = nil
	}
}

// Batch is a packed batch: the sequences' tokens laid end to end, SeqLens giving each length.
// TokenTypes is nil (all zero) or as long as Tokens.
type Batch struct {
	Tokens, TokenTypes, SeqLens []int32
	Normalize                   bool
}

// check validates the batch's lengths in Go, so C only ever sees consistent arrays.
func (b Batch) check() error {
	if len(b.SeqLens) == 0 {
		return errors.New("empty batch")
	}
	if len(b.SeqLens) > math.MaxInt32 {
		return fmt.Errorf("%d sequences is too many", len(b.SeqLens))
	}
	var total int64
	for i, n := range b.SeqLens {
		if n < 1 {
			return fmt.Errorf("sequence %d has length %d", i, n)
		}
		total += int64(n)
	}
	if total != int64(len(b.Tokens)) {
		return fmt.Errorf("sequence lengths add up to %d but there are %d tokens", total, len(b.Tokens))
	}
	if b.TokenTypes != nil && len(b.TokenTypes) != len(b.Tokens) {
		return fmt.Errorf("%d token types for %d tokens", len(b.TokenTypes), len(b.Tokens))
	}
	return nil
}

func (b Batch) pointers() (lens, toks, types *C.int32_t) {
	lens = (*C.int32_t)(unsafe.Pointer(&b.SeqLens[0]))
	toks = (*C.int32_t)(unsafe.Pointer(&b.Tokens[0]))
	if len(b.TokenTypes) > 0 {
		types = (*C.int32_t)(unsafe.Pointer(&b.TokenTypes[0]))
	}
	return lens, toks, types
}

// OutputLen is the number of floats Encode writes for b, or an error if b is malformed (including
// token ids or types out of range, or sequences longer than the model's context).
func OutputLen(m *Model, b Batch) (int, error) {
	if err := b.check(); err != nil {
		return 0, fmt.Errorf("output length: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.m == nil {
		return 0, errors.New("output length: model is closed")
	}
	lens, toks, types := b.pointers()
	n := C.embedd_output_len_packed(m.m, C.int32_t(len(b.SeqLens)), lens, toks, types)
	if n < 0 {
		return 0, errors.New("output length: malformed batch (a sequence is empty or longer than the context, or a token id or type is out of range)")
	}
	if int64(n) > math.MaxInt {
		return 0, fmt.Errorf("output length: %d floats is too many", int64(n))
	}
	return int(n), nil
}

// Encode runs the encoder over b on p's workers and writes OutputLen(m, b) floats to out.
func (c *Context) Encode(p *Pool, b Batch, out []float32) error {
	if err := b.check(); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if len(out) == 0 {
		return errors.New("encode: empty output buffer")
	}
	simdMu.RLock()
	defer simdMu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return errors.New("encode: context is closed")
	}
	c.model.mu.RLock()
	defer c.model.mu.RUnlock()
	if c.model.m == nil {
		return errors.New("encode: model is closed")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil {
		return errors.New("encode: pool is closed")
	}
	lens, toks, types := b.pointers()
	normalize := C.int32_t(0)
	if b.Normalize {
		normalize = 1
	}
	rc := C.embedd_encode_packed(c.c, p.p, C.int32_t(len(b.SeqLens)), lens, toks, types, normalize,
		(*C.float)(unsafe.Pointer(&out[0])), C.int64_t(len(out)), &c.errBuf[0], errBufLen)
	if rc != 0 {
		return fmt.Errorf("encode: %s", errString(c.errBuf[:]))
	}
	return nil
}

// DetectedSIMD names the best SIMD level this CPU supports ("avx512vnni", "avxvnni", "avx2", "neon", ...).
func DetectedSIMD() string { return C.GoString(C.emb_simd_name(C.emb_simd_detect())) }

// ActiveSIMD names the SIMD level the kernels currently use.
func ActiveSIMD() string {
	simdMu.RLock()
	defer simdMu.RUnlock()
	return C.GoString(C.emb_simd_name(C.emb_simd_active()))
}

// simdLevels are all levels the core knows.
var simdLevels = []C.int{C.EMB_SIMD_SCALAR, C.EMB_SIMD_AVX2, C.EMB_SIMD_AVXVNNI, C.EMB_SIMD_AVX512, C.EMB_SIMD_AVX512VNNI, C.EMB_SIMD_NEON}

// SetSIMD forces the kernels to the named level ("scalar", "avx2", ...). It waits for running
// encodes to finish and fails if the name is unknown or the CPU cannot run that level.
func SetSIMD(name string) error {
	for _, l := range simdLevels {
		if C.GoString(C.emb_simd_name(l)) != name {
			continue
		}
		simdMu.Lock()
		defer simdMu.Unlock()
		if C.emb_simd_set(l) != 0 {
			return fmt.Errorf("set SIMD: this CPU cannot run %q (detected %q)", name, DetectedSIMD())
		}
		return nil
	}
	return fmt.Errorf("set SIMD: unknown level %q", name)
}

// SIMDLevels lists the levels this CPU can run, from scalar up to the detected one (last). A CPU
// with AVX-512 may also run the AVX-VNNI level, listed after AVX2.
func SIMDLevels() []string {
	detected := C.emb_simd_detect()
	var out []string
	for _, l := range simdLevels {
		if l != detected && C.emb_simd_can_run(l) != 0 {
			out = append(out, C.GoString(C.emb_simd_name(l)))
		}
	}
	return append(out, C.GoString(C.emb_simd_name(detected)))
}
