// Package reference is a float64 BERT forward pass written straight from the definitions, used only
// by tests to check the C engine. Weights are dequantized with package quant (so the reference sees
// exactly the values stored in the file); every activation is float64. It is deliberately simple
// and slow: plain loops, no blocking, no SIMD.
package reference

import (
	"errors"
	"fmt"
	"math"

	"github.com/embedd-dev/embedd/gguf"
	"github.com/embedd-dev/embedd/quant"
)

// HParams are the hyper-parameters read from the file's metadata.
type HParams struct {
	Vocab, Context, Embd, Heads, Layers, FF, TokenTypes int
	NormEps                                             float64
}

// matrix is n rows of k values, row-major (a linear layer's weight: y = W x + b).
type matrix struct {
	n, k int
	v    []float64
}

func (m *matrix) row(i int) []float64 { return m.v[i*m.k : (i+1)*m.k] }

// Model holds the dequantized weights.
type Model struct {
	HP HParams
	t  map[string]*matrix

	// token_embd stays in its file encoding (copied) and rows are decoded on demand: the real
	// model's table is 30522 x 384, most of which a test never touches.
	embType  gguf.Type
	embRow   int64 // bytes per row
	embBytes []byte
}

func metaInt(f *gguf.File, key string) (int, error) {
	v, ok := f.Uint(key)
	if !ok {
		return 0, fmt.Errorf("reference: %s: missing %s", f.Path, key)
	}
	if v == 0 || v > 1<<24 {
		return 0, fmt.Errorf("reference: %s: %s = %d out of range", f.Path, key, v)
	}
	return int(v), nil
}

// Load reads hyper-parameters and dequantizes every tensor of f. The returned model does not
// reference f's memory.
func Load(f *gguf.File) (*Model, error) {
	m := &Model{t: map[string]*matrix{}}
	var err error
	for _, p := range []struct {
		key string
		dst *int
	}{
		{"bert.context_length", &m.HP.Context}, {"bert.embedding_length", &m.HP.Embd},
		{"bert.feed_forward_length", &m.HP.FF}, {"bert.attention.head_count", &m.HP.Heads},
		{"bert.block_count", &m.HP.Layers},
	} {
		if *p.dst, err = metaInt(f, p.key); err != nil {
			return nil, err
		}
	}
	eps, ok := f.Float("bert.attention.layer_norm_epsilon")
	if !ok {
		return nil, fmt.Errorf("reference: %s: missing layer_norm_epsilon", f.Path)
	}
	// The engine computes in float32 with the stored float32 epsilon; use the same value.
	m.HP.NormEps = float64(float32(eps))
	for _, ti := range f.Tensors {
		data, err := f.TensorData(ti.Name)
		if err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
		if len(ti.Dims) < 1 || len(ti.Dims) > 2 {
			return nil, fmt.Errorf("reference: tensor %s has %d dims", ti.Name, len(ti.Dims))
		}
		k := int(ti.Dims[0])
		n := 1
		if len(ti.Dims) == 2 {
			n = int(ti.Dims[1])
		}
		if ti.Name == "token_embd.weight" {
			rb, err := ti.Type.RowBytes(int64(k))
			if err != nil {
				return nil, fmt.Errorf("reference: token_embd: %w", err)
			}
			m.embType, m.embRow, m.embBytes = ti.Type, rb, append([]byte(nil), data...)
			m.HP.Vocab = n
			continue
		}
		f32, err := quant.Dequantize(ti.Type, data, int64(n)*int64(k))
		if err != nil {
			return nil, fmt.Errorf("reference: tensor %s: %w", ti.Name, err)
		}
		mat := &matrix{n: n, k: k, v: make([]float64, len(f32))}
		for i, x := range f32 {
			mat.v[i] = float64(x)
		}
		m.t[ti.Name] = mat
	}
	if m.embBytes == nil {
		return nil, fmt.Errorf("reference: %s: no token_embd.weight", f.Path)
	}
	if tt, ok := m.t["token_types.weight"]; ok {
		m.HP.TokenTypes = tt.n
	}
	if m.HP.Embd%m.HP.Heads != 0 {
		return nil, fmt.Errorf("reference: embedding length %d not divisible by %d heads", m.HP.Embd, m.HP.Heads)
	}
	return m, nil
}

func (m *Model) get(name string) (*matrix, error) {
	t, ok := m.t[name]
	if !ok {
		return nil, fmt.Errorf("reference: missing tensor %s", name)
	}
	return t, nil
}

func (m *Model) embRowF64(id int32) ([]float64, error) {
	if id < 0 || int(id) >= m.HP.Vocab {
		return nil, fmt.Errorf("reference: token id %d out of range [0,%d)", id, m.HP.Vocab)
	}
	off := int64(id) * m.embRow
	f32, err := quant.Dequantize(m.embType, m.embBytes[off:off+m.embRow], int64(m.HP.Embd))
	if err != nil {
		return nil, fmt.Errorf("reference: token_embd row %d: %w", id, err)
	}
	out := make([]float64, len(f32))
	for i, x := range f32 {
		out[i] = float64(x)
	}
	return out, nil
}

// linear returns x W^T + b for each row of x.
func linear(x [][]float64, w, b *matrix) [][]float64 {
	out := make([][]float64, len(x))
	for t, xr := range x {
		y := make([]float64, w.n)
		for i := 0; i < w.n; i++ {
			wr := w.row(i)
			s := 0.0
			for j, xv := range xr {
				s += wr[j] * xv
			}
			if b != nil {
				s += b.v[i]
			}
			y[i] = s
		}
		out[t] = y
	}
	return out
}

func layerNorm(x []float64, g, b *matrix, eps float64) {
	n := float64(len(x))
	mean := 0.0
	for _, v := range x {
		mean += v
	}
	mean /= n
	vr := 0.0
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	vr /= n
	inv := 1 / math.Sqrt(vr+eps)
	for i, v := range x {
		x[i] = (v-mean)*inv*g.v[i] + b.v[i]
	}
}

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// layer fetches name.weight and name.bias.
func (m *Model) layer(name string) (w, b *matrix, err error) {
	if w, err = m.get(name + ".weight"); err != nil {
		return nil, nil, err
	}
	if b, err = m.get(name + ".bias"); err != nil {
		return nil, nil, err
	}
	return w, b, nil
}

// Hidden runs the encoder over one sequence (ids including specials; types nil = zeros) and
// returns the final hidden state of every token.
func (m *Model) Hidden(ids, types []int32) ([][]float64, error) {
	hp := m.HP
	L := len(ids)
	if L == 0 || L > hp.Context {
		return nil, fmt.Errorf("reference: sequence length %d not in 1..%d", L, hp.Context)
	}
	if types != nil && len(types) != L {
		return nil, errors.New("reference: token types and ids differ in length")
	}
	pos, err := m.get("position_embd.weight")
	if err != nil {
		return nil, err
	}
	ng, nb, err := m.layer("token_embd_norm")
	if err != nil {
		return nil, err
	}
	x := make([][]float64, L)
	for t, id := range ids {
		row, err := m.embRowF64(id)
		if err != nil {
			return nil, err
		}
		for i := range row {
			row[i] += pos.row(t)[i]
		}
		tt := int32(0)
		if types != nil {
			tt = types[t]
		}
		if tte, ok := m.t["token_types.weight"]; ok {
			if tt < 0 || int(tt) >= tte.n {
				return nil, fmt.Errorf("reference: token type %d out of range", tt)
			}
			for i := range row {
				row[i] += tte.row(int(tt))[i]
			}
		} else if tt != 0 {
			return nil, fmt.Errorf("reference: token type %d but the model has no token types", tt)
		}
		layerNorm(row, ng, nb, hp.NormEps)
		x[t] = row
	}
	E, H := hp.Embd, hp.Heads
	D := E / H
	scale := 1 / math.Sqrt(float64(D))
	for l := 0; l < hp.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		var w [4]*matrix
		var b [4]*matrix
		for i, n := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
			if w[i], b[i], err = m.layer(p + n); err != nil {
				return nil, err
			}
		}
		q, k, v := linear(x, w[0], b[0]), linear(x, w[1], b[1]), linear(x, w[2], b[2])
		ctx := make([][]float64, L)
		for t := range ctx {
			ctx[t] = make([]float64, E)
		}
		scores := make([]float64, L)
		for h := 0; h < H; h++ {
			lo := h * D
			for i := 0; i < L; i++ {
				mx := math.Inf(-1)
				for j := 0; j < L; j++ {
					s := 0.0
					for d := 0; d < D; d++ {
						s += q[i][lo+d] * k[j][lo+d]
					}
					scores[j] = s * scale
					mx = math.Max(mx, scores[j])
				}
				sum := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					sum += scores[j]
				}
				for j := 0; j < L; j++ {
					a := scores[j] / sum
					for d := 0; d < D; d++ {
						ctx[i][lo+d] += a * v[j][lo+d]
					}
				}
			}
		}
		attn := linear(ctx, w[3], b[3])
		g1, b1, err := m.layer(p + "attn_output_norm")
		if err != nil {
			return nil, err
		}
		for t := range x {
			for i := range x[t] {
				x[t][i] += attn[t][i]
			}
			layerNorm(x[t], g1, b1, hp.NormEps)
		}
		wu, bu, err := m.layer(p + "ffn_up")
		if err != nil {
			return nil, err
		}
		wd, bd, err := m.layer(p + "ffn_down")
		if err != nil {
			return nil, err
		}
		up := linear(x, wu, bu)
		for _, r := range up {
			for i := range r {
				r[i] = gelu(r[i])
			}
		}
		down := linear(up, wd, bd)
		g2, b2, err := m.layer(p + "layer_output_norm")
		if err != nil {
			return nil, err
		}
		for t := range x {
			for i := range x[t] {
				x[t][i] += down[t][i]
			}
			layerNorm(x[t], g2, b2, hp.NormEps)
		}
	}
	return x, nil
}

// Pooling kinds, numbered as bert.pooling_type.
const (
	PoolMean = 1
	PoolCLS  = 2
	PoolLast = 3
)

// Embed returns the pooled hidden state (mean, CLS = first token, or last token), L2-normalised if
// normalize.
func (m *Model) Embed(ids, types []int32, pooling int, normalize bool) ([]float64, error) {
	x, err := m.Hidden(ids, types)
	if err != nil {
		return nil, err
	}
	out := make([]float64, m.HP.Embd)
	switch pooling {
	case PoolMean:
		for _, r := range x {
			for i, v := range r {
				out[i] += v
			}
		}
		for i := range out {
			out[i] /= float64(len(x))
		}
	case PoolCLS:
		copy(out, x[0])
	case PoolLast:
		copy(out, x[len(x)-1])
	default:
		return nil, fmt.Errorf("reference: unsupported pooling %d", pooling)
	}
	if normalize {
		Normalize(out)
	}
	return out, nil
}

// Normalize scales v to unit L2 norm in place (a zero vector stays zero).
func Normalize(v []float64) {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	if s == 0 {
		return
	}
	s = 1 / math.Sqrt(s)
	for i := range v {
		v[i] *= s
	}
}

// Rank returns the classifier logits (no sigmoid): the CLS state through the pooler
// (tanh(cls.weight x + cls.bias), when present) and then cls.output (when present).
func (m *Model) Rank(ids, types []int32) ([]float64, error) {
	x, err := m.Hidden(ids, types)
	if err != nil {
		return nil, err
	}
	h := [][]float64{x[0]}
	if w, ok := m.t["cls.weight"]; ok {
		h = linear(h, w, m.t["cls.bias"])
		for i := range h[0] {
			h[0][i] = math.Tanh(h[0][i])
		}
	}
	if w, ok := m.t["cls.output.weight"]; ok {
		h = linear(h, w, m.t["cls.output.bias"])
	}
	return h[0], nil
}

// Splade returns, per vocabulary entry, the max over the sequence's tokens of log(1 + relu(logit))
// where logit = decoder(LayerNorm(gelu(mlm.dense x))) + mlm.bias; the decoder is mlm.decoder.weight
// or, when absent, token_embd.weight.
func (m *Model) Splade(ids, types []int32) ([]float64, error) {
	x, err := m.Hidden(ids, types)
	if err != nil {
		return nil, err
	}
	wd, bd, err := m.layer("mlm.dense")
	if err != nil {
		return nil, err
	}
	ng, nb, err := m.layer("mlm.norm")
	if err != nil {
		return nil, err
	}
	bias, err := m.get("mlm.bias")
	if err != nil {
		return nil, err
	}
	h := linear(x, wd, bd)
	for _, r := range h {
		for i := range r {
			r[i] = gelu(r[i])
		}
		layerNorm(r, ng, nb, m.HP.NormEps)
	}
	dec, tied := m.t["mlm.decoder.weight"], false
	if dec == nil {
		tied = true
	}
	out := make([]float64, m.HP.Vocab)
	for vi := 0; vi < m.HP.Vocab; vi++ {
		var row []float64
		if tied {
			if row, err = m.embRowF64(int32(vi)); err != nil {
				return nil, err
			}
		} else {
			row = dec.row(vi)
		}
		best := 0.0
		for _, r := range h {
			s := bias.v[vi]
			for i, v := range r {
				s += row[i] * v
			}
			if s > 0 {
				best = math.Max(best, math.Log1p(s))
			}
		}
		out[vi] = best
	}
	return out, nil
}

// Cosine is the cosine similarity of a and b (0 if either is zero).
func Cosine(a []float64, b []float32) float64 {
	if len(a) != len(b) {
		return math.NaN()
	}
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * float64(b[i])
		aa += a[i] * a[i]
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
