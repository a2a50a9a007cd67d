package bindings

import (
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/internal/testmodel"
)

const (
	testEmbd  = 32
	testVocab = 60
	testCtx   = 16
)

// testTensors writes a small synthetic model and returns its hyper-parameters and tensor table.
func testTensors(t *testing.T) (HParams, []Tensor) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := testmodel.Write(p, testmodel.Config{Embd: testEmbd, Heads: 4, FF: 48, Layers: 1, Context: testCtx,
		Vocab: testVocab, WeightType: gguf.TypeF16, Pooling: 1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []Tensor
	for _, ti := range f.Tensors {
		d, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		dims := make([]int64, len(ti.Dims))
		for i, x := range ti.Dims {
			dims[i] = int64(x)
		}
		// Copies: the file is closed when this returns.
		ts = append(ts, Tensor{Name: ti.Name, Type: uint32(ti.Type), Dims: dims, Data: slices.Clone(d)})
	}
	hp := HParams{Vocab: testVocab, Context: testCtx, Embd: testEmbd, Heads: 4, Layers: 1, FF: 48, TokenTypes: 2,
		NormEps: 1e-12, Pooling: PoolMean, Head: HeadEmbed}
	return hp, ts
}

func TestLoadModelRejects(t *testing.T) {
	hp, ts := testTensors(t)
	replace := func(name string, f func(*Tensor)) []Tensor {
		out := slices.Clone(ts)
		for i := range out {
			if out[i].Name == name {
				f(&out[i])
			}
		}
		return out
	}
	tests := []struct {
		name    string
		hp      HParams
		tensors []Tensor
		wantErr string
	}{
		{"no tensors", hp, nil, "no tensors"},
		{"vocab over int32", func() HParams { h := hp; h.Vocab = math.MaxInt32 + 1; return h }(), ts, "vocab size"},
		{"NaN epsilon", func() HParams { h := hp; h.NormEps = float32(math.NaN()); return h }(), ts, "epsilon"},
		{"five dims", hp, replace("token_embd_norm.weight", func(t *Tensor) { t.Dims = []int64{testEmbd, 1, 1, 1, 1} }), "dimensions"},
		{"zero dims", hp, replace("token_embd_norm.weight", func(t *Tensor) { t.Dims = nil }), "dimensions"},
		{"negative dim", hp, replace("token_embd_norm.weight", func(t *Tensor) { t.Dims = []int64{-testEmbd} }), "negative"},
		{"short data", hp, replace("blk.0.ffn_up.weight", func(t *Tensor) { t.Data = t.Data[:len(t.Data)-2] }), "blk.0.ffn_up.weight"},
		{"wrong shape", hp, replace("blk.0.attn_q.weight", func(t *Tensor) { t.Dims = []int64{testEmbd / 2, testEmbd * 2} }), "blk.0.attn_q.weight"},
		{"unsupported type", hp, replace("blk.0.attn_q.weight", func(t *Tensor) { t.Type = 10 }), "blk.0.attn_q.weight"},
		{"type beyond int32", hp, replace("blk.0.attn_q.weight", func(t *Tensor) { t.Type = 1 << 31 }), "unknown type"},
		{"heads do not divide", func() HParams { h := hp; h.Heads = 5; return h }(), ts, ""},
		{"NUL in name", hp, replace("blk.0.attn_q.weight", func(t *Tensor) { t.Name = "blk.0.attn_q.weight\x00x" }), "NUL"},
		{"huge embedding", func() HParams { h := hp; h.Embd = 1 << 30; return h }(), ts, ""},
		{"huge context", func() HParams { h := hp; h.Context = math.MaxInt32; return h }(), ts, ""},
		{"zero heads", func() HParams { h := hp; h.Heads = 0; return h }(), ts, ""},
		{"negative layers", func() HParams { h := hp; h.Layers = -1; return h }(), ts, ""},
		{"unknown pooling", func() HParams { h := hp; h.Pooling = 99; return h }(), ts, ""},
		{"unknown head", func() HParams { h := hp; h.Head = 99; return h }(), ts, ""},
		{"unknown weight mode", func() HParams { h := hp; h.WeightMode = 99; return h }(), ts, ""},
		{"more token types than rows", func() HParams { h := hp; h.TokenTypes = 3; return h }(), ts, "token_types"},
		{"vocab larger than table", func() HParams { h := hp; h.Vocab = testVocab + 1; return h }(), ts, "token_embd"},
		{"missing layer", func() HParams { h := hp; h.Layers = 2; return h }(), ts, "blk.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadModel(tc.hp, tc.tensors)
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestEncodeAndBatchChecks(t *testing.T) {
	hp, ts := testTensors(t)
	m, err := LoadModel(hp, ts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.OutputDim() != testEmbd || m.Bytes() <= 0 {
		t.Fatalf("output dim %d, bytes %d", m.OutputDim(), m.Bytes())
	}
	p, err := NewPool(1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Threads() != 1 {
		t.Errorf("pool threads %d", p.Threads())
	}
	c, err := NewContext(m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	good := Batch{Tokens: []int32{2, 7, 3, 2, 3}, TokenTypes: []int32{0, 1, 1, 0, 0}, SeqLens: []int32{3, 2}, Normalize: true}
	n, err := OutputLen(m, good)
	if err != nil || n != 2*testEmbd {
		t.Fatalf("OutputLen %d, %v", n, err)
	}
	out := make([]float32, n)
	if err := c.Encode(p, good, out); err != nil {
		t.Fatal(err)
	}
	// Encoding allocates nothing in Go: each call's garbage would bring the next collection
	// cycle, which stalls whatever request it overlaps, nearer.
	if allocs := testing.AllocsPerRun(20, func() { _ = c.Encode(p, good, out) }); allocs != 0 {
		t.Errorf("Encode made %v allocations", allocs)
	}
	for s := 0; s < 2; s++ {
		var norm float64
		for _, v := range out[s*testEmbd : (s+1)*testEmbd] {
			norm += float64(v) * float64(v)
		}
		if math.Abs(norm-1) > 1e-4 {
			t.Errorf("sequence %d: squared norm %g after Normalize", s, norm)
		}
	}

	bad := []struct {
		name string
		b    Batch
	}{
		{"empty", Batch{}},
		{"lengths exceed tokens", Batch{Tokens: []int32{2, 3}, SeqLens: []int32{3}}},
		{"tokens exceed lengths", Batch{Tokens: []int32{2, 3, 4}, SeqLens: []int32{2}}},
		{"zero length", Batch{Tokens: []int32{2, 3}, SeqLens: []int32{2, 0}}},
		{"negative length", Batch{Tokens: []int32{2, 3}, SeqLens: []int32{3, -1}}},
		{"types length", Batch{Tokens: []int32{2, 3}, SeqLens: []int32{2}, TokenTypes: []int32{0}}},
		{"id out of range", Batch{Tokens: []int32{2, testVocab}, SeqLens: []int32{2}}},
		{"negative id", Batch{Tokens: []int32{2, -5}, SeqLens: []int32{2}}},
		{"type out of range", Batch{Tokens: []int32{2, 3}, SeqLens: []int32{2}, TokenTypes: []int32{0, 2}}},
		{"longer than context", Batch{Tokens: make([]int32, testCtx+1), SeqLens: []int32{testCtx + 1}}},
	}
	for _, tc := range bad {
		if _, err := OutputLen(m, tc.b); err == nil {
			t.Errorf("%s: OutputLen accepted", tc.name)
		}
		buf := make([]float32, 4*testEmbd)
		if err := c.Encode(p, tc.b, buf); err == nil {
			t.Errorf("%s: Encode accepted", tc.name)
		}
	}
	if err := c.Encode(p, good, make([]float32, n-1)); err == nil {
		t.Error("Encode into a short buffer accepted")
	}
	if err := c.Encode(p, good, nil); err == nil {
		t.Error("Encode into nil accepted")
	}

	// Closed objects give errors, not crashes.
	p2, _ := NewPool(2)
	p2.Park() // parked workers wake for the next encode
	if err := c.Encode(p2, good, out); err != nil {
		t.Errorf("Encode after Park: %v", err)
	}
	p2.Park()
	p2.Wake() // sleeping workers spin again, then run the next encode
	if err := c.Encode(p2, good, out); err != nil {
		t.Errorf("Encode after Wake: %v", err)
	}
	p2.Close()
	p2.Park() // hints: no effect on a closed pool
	p2.Wake()
	if err := c.Encode(p2, good, out); err == nil {
		t.Error("Encode on a closed pool accepted")
	}
	c.Close()
	if err := c.Encode(p, good, out); err == nil {
		t.Error("Encode on a closed context accepted")
	}
	m.Close()
	if _, err := NewContext(m); err == nil {
		t.Error("NewContext on a closed model accepted")
	}
	if m.OutputDim() != 0 {
		t.Error("OutputDim of a closed model")
	}
}

func TestSIMDLevels(t *testing.T) {
	levels := SIMDLevels()
	if len(levels) == 0 || levels[0] != "scalar" || levels[len(levels)-1] != DetectedSIMD() {
		t.Fatalf("levels %v, detected %s", levels, DetectedSIMD())
	}
	before := ActiveSIMD()
	defer SetSIMD(before)
	for _, l := range levels {
		if err := SetSIMD(l); err != nil || ActiveSIMD() != l {
			t.Errorf("SetSIMD(%s): %v, active %s", l, err, ActiveSIMD())
		}
	}
	for _, l := range []string{"", "avx9000", "SCALAR"} {
		if err := SetSIMD(l); err == nil {
			t.Errorf("SetSIMD(%q) accepted", l)
		}
	}
	all := []string{"scalar", "avx2", "avxvnni", "avx512", "avx512vnni", "neon"}
	for _, l := range all {
		if !slices.Contains(levels, l) {
			if err := SetSIMD(l); err == nil {
				t.Errorf("SetSIMD(%s) accepted though not in %v", l, levels)
			}
		}
	}
}

func TestPoolingNames(t *testing.T) {
	for p, want := range map[Pooling]string{PoolNone: "none", PoolMean: "mean", PoolCLS: "cls", PoolLast: "last", PoolRank: "rank", 9: "pooling(9)"} {
		if p.String() != want {
			t.Errorf("%d: %q, want %q", p, p.String(), want)
		}
	}
}

// ThreadIDs names the pool's own threads: none for one thread or a closed pool, threads-1 on Linux.
func TestPoolThreadIDs(t *testing.T) {
	for _, tc := range []struct {
		threads, want int
	}{{1, 0}, {3, 2}} {
		p, err := NewPool(tc.threads)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if runtime.GOOS != "linux" {
			want = 0
		}
		ids := p.ThreadIDs()
		if len(ids) != want {
			t.Errorf("%d threads: ids %v, want %d of them", tc.threads, ids, want)
		}
		for _, id := range ids {
			if id <= 0 {
				t.Errorf("%d threads: id %d", tc.threads, id)
			}
		}
		p.Close()
		if ids := p.ThreadIDs(); ids != nil {
			t.Errorf("closed pool: ids %v", ids)
		}
	}
}
