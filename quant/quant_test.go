package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
)

// Exactly representable half-precision scales used by the hand-built blocks.
const (
	h0_5    = 0x3800 // 0.5
	h0_25   = 0x3400 // 0.25
	h0_125  = 0x3000 // 0.125
	h1_5    = 0x3e00 // 1.5
	hM0_75  = 0xba00 // -0.75
	hM2     = 0xc000 // -2
	h0_0625 = 0x2c00 // 0.0625
)

// levels returns n deterministic pseudo-random integers in [0, span) that include 0 and span-1.
func levels(n, span int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 7))
	q := make([]int, n)
	for i := range q {
		q[i] = r.IntN(span)
	}
	q[3], q[n-2] = 0, span-1
	return q
}

func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }

// knownCase is one hand-built block: its bytes and the values ggml's formula gives for it,
// computed in float64 here from the format description, not from the package.
type knownCase struct {
	name  string
	typ   gguf.Type
	block []byte
	want  []float64
	spot  map[int]float64 // a few values worked out by hand from the literal bytes
}

// nibbleBlock packs 32 levels the way the 32-wide formats do: byte j holds element j in its low
// nibble and element j+16 in its high nibble.
func nibbleBlock(q []int) []byte {
	b := make([]byte, 16)
	for i, v := range q {
		if i < 16 {
			b[i] |= byte(v & 0xf)
		} else {
			b[i-16] |= byte(v&0xf) << 4
		}
	}
	return b
}

// highBits32 collects bit 4 of each of 32 levels into a little-endian uint32, element i at bit i.
func highBits32(q []int) []byte {
	var h uint32
	for i, v := range q {
		h |= uint32(v>>4&1) << i
	}
	return binary.LittleEndian.AppendUint32(nil, h)
}

// kScales packs eight 6-bit scales and mins as ggml documents it: bytes 0-3 hold scales 0-3 in
// their low 6 bits, bytes 4-7 mins 0-3; bytes 8-11 hold scale 4-7 (low nibble) and min 4-7 (high
// nibble) low parts; the top two bits of bytes 0-3 carry scales 4-7 bits 4-5, of bytes 4-7 mins 4-7.
func kScales(sc, m [8]int) []byte {
	b := make([]byte, 12)
	for i := 0; i < 4; i++ {
		b[i] = byte(sc[i]) | byte(sc[i+4]>>4)<<6
		b[i+4] = byte(m[i]) | byte(m[i+4]>>4)<<6
		b[i+8] = byte(sc[i+4]&0xf) | byte(m[i+4]&0xf)<<4
	}
	return b
}

func knownCases() []knownCase {
	var cases []knownCase

	{ // Q4_0: d = -0.75, value = d*(q-8)
		q := levels(32, 16, 1)
		b := append([]byte{0, 0}, nibbleBlock(q)...)
		put16(b, 0, hM0_75)
		b[2] = 0x1f // element 0 level 15, element 16 level 1
		q[0], q[16] = 15, 1
		want := make([]float64, 32)
		for i := range want {
			want[i] = -0.75 * float64(q[i]-8)
		}
		cases = append(cases, knownCase{"Q4_0", gguf.TypeQ4_0, b, want,
			map[int]float64{0: -0.75 * 7, 16: -0.75 * -7}})
	}
	{ // Q4_1: d = 0.5, m = -2, value = d*q + m
		q := levels(32, 16, 2)
		b := append([]byte{0, 0, 0, 0}, nibbleBlock(q)...)
		put16(b, 0, h0_5)
		put16(b, 2, hM2)
		b[4+5] = 0xa3
		q[5], q[21] = 3, 10
		want := make([]float64, 32)
		for i := range want {
			want[i] = 0.5*float64(q[i]) - 2
		}
		cases = append(cases, knownCase{"Q4_1", gguf.TypeQ4_1, b, want,
			map[int]float64{5: -0.5, 21: 3}})
	}
	{ // Q5_0: d = 0.25, value = d*(q-16)
		q := levels(32, 32, 3)
		q[0], q[16], q[31] = 0x1f, 0x10, 0x0f
		b := append([]byte{0, 0}, highBits32(q)...)
		b = append(b, nibbleBlock(q)...)
		put16(b, 0, h0_25)
		want := make([]float64, 32)
		for i := range want {
			want[i] = 0.25 * float64(q[i]-16)
		}
		cases = append(cases, knownCase{"Q5_0", gguf.TypeQ5_0, b, want,
			map[int]float64{0: 0.25 * 15, 16: 0, 31: 0.25 * -1}})
	}
	{ // Q5_1: d = 0.125, m = 1.5, value = d*q + m
		q := levels(32, 32, 4)
		q[1], q[17] = 0x11, 0x0e
		b := append([]byte{0, 0, 0, 0}, highBits32(q)...)
		b = append(b, nibbleBlock(q)...)
		put16(b, 0, h0_125)
		put16(b, 2, h1_5)
		want := make([]float64, 32)
		for i := range want {
			want[i] = 0.125*float64(q[i]) + 1.5
		}
		cases = append(cases, knownCase{"Q5_1", gguf.TypeQ5_1, b, want,
			map[int]float64{1: 0.125*17 + 1.5, 17: 0.125*14 + 1.5}})
	}
	{ // Q8_0: d = 0.0625, int8 values
		b := make([]byte, 34)
		put16(b, 0, h0_0625)
		want := make([]float64, 32)
		for i := range want {
			v := int8(i*37 - 128)
			b[2+i] = byte(v)
			want[i] = 0.0625 * float64(v)
		}
		cases = append(cases, knownCase{"Q8_0", gguf.TypeQ8_0, b, want,
			map[int]float64{0: -8, 4: 0.0625 * 20}})
	}
	{ // Q4_K: value = d*sc[s]*q - dmin*m[s], s = sub-block of 32; each 64 elements share 32
		// bytes, low nibbles first.
		sc := [8]int{1, 17, 33, 63, 5, 40, 22, 63}
		mn := [8]int{0, 9, 50, 31, 63, 2, 44, 16}
		q := levels(256, 16, 5)
		b := make([]byte, 4, 144)
		put16(b, 0, h0_5)
		put16(b, 2, h0_25)
		b = append(b, kScales(sc, mn)...)
		qs := make([]byte, 128)
		for i, v := range q {
			g, l := i/64, i%64
			if l < 32 {
				qs[32*g+l] |= byte(v)
			} else {
				qs[32*g+l-32] |= byte(v) << 4
			}
		}
		b = append(b, qs...)
		want := make([]float64, 256)
		for i := range want {
			s := i / 32
			want[i] = 0.5*float64(sc[s])*float64(q[i]) - 0.25*float64(mn[s])
		}
		// Spot: element 128 is sub-block 4 (scale 5, min 63 = 0b111111: low nibble 15 in byte 12's
		// high nibble, bits 4-5 in the top of byte 8), level 7 from the low nibble of qs[64].
		b[16+64] = b[16+64]&0xf0 | 0x7
		q[128] = 7
		want[128] = 0.5*float64(sc[4])*7 - 0.25*float64(mn[4])
		cases = append(cases, knownCase{"Q4_K", gguf.TypeQ4_K, b, want,
			map[int]float64{128: 0.5*5*7 - 0.25*63}})
	}
	{ // Q5_K: Q4_K plus qh: the fifth bit of element 64g+l is bit 2g of qh[l], of 64g+32+l bit 2g+1.
		sc := [8]int{63, 2, 18, 7, 48, 33, 0, 61}
		mn := [8]int{5, 60, 1, 17, 32, 0, 63, 47}
		q := levels(256, 32, 6)
		b := make([]byte, 4, 176)
		put16(b, 0, h0_125)
		put16(b, 2, h0_5)
		b = append(b, kScales(sc, mn)...)
		qh := make([]byte, 32)
		qs := make([]byte, 128)
		for i, v := range q {
			g, l := i/64, i%64
			if l < 32 {
				qs[32*g+l] |= byte(v & 0xf)
				qh[l] |= byte(v>>4) << (2 * g)
			} else {
				qs[32*g+l-32] |= byte(v&0xf) << 4
				qh[l-32] |= byte(v>>4) << (2*g + 1)
			}
		}
		b = append(b, qh...)
		b = append(b, qs...)
		want := make([]float64, 256)
		for i := range want {
			s := i / 32
			want[i] = 0.125*float64(sc[s])*float64(q[i]) - 0.5*float64(mn[s])
		}
		cases = append(cases, knownCase{"Q5_K", gguf.TypeQ5_K, b, want, nil})
	}
	{ // Q6_K: value = d*scale[i/16]*(q-32) with 6-bit q: low 4 bits in ql, high 2 in qh.
		q := levels(256, 64, 7)
		scales := make([]int, 16)
		for j := range scales {
			scales[j] = j*17 - 128 // -128 .. 127
		}
		ql := make([]byte, 128)
		qh := make([]byte, 64)
		for i, v := range q {
			half, r := i/128, i%128 // each half of 128 uses 64 ql bytes and 32 qh bytes
			quarter, l := r/32, r%32
			lo, hi := byte(v&0xf), byte(v>>4)
			switch quarter {
			case 0:
				ql[64*half+l] |= lo
			case 1:
				ql[64*half+32+l] |= lo
			case 2:
				ql[64*half+l] |= lo << 4
			case 3:
				ql[64*half+32+l] |= lo << 4
			}
			qh[32*half+l] |= hi << (2 * quarter)
		}
		b := append(ql, qh...)
		for _, s := range scales {
			b = append(b, byte(int8(s)))
		}
		b = binary.LittleEndian.AppendUint16(b, h0_0625)
		want := make([]float64, 256)
		for i := range want {
			want[i] = 0.0625 * float64(scales[i/16]) * float64(q[i]-32)
		}
		cases = append(cases, knownCase{"Q6_K", gguf.TypeQ6_K, b, want, nil})
	}
	{ // Q8_K: f32 d, int8 q, bsums ignored by dequantization.
		b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.375))
		want := make([]float64, 256)
		for i := range want {
			v := int8(i*11 + 5)
			b = append(b, byte(v))
			want[i] = 0.375 * float64(v)
		}
		b = append(b, make([]byte, 32)...)
		cases = append(cases, knownCase{"Q8_K", gguf.TypeQ8_K, b, want, nil})
	}
	{ // Plain types.
		vals := []float64{0, -1.5, 3.25, 65504, -0.0009765625, 1e-7}
		f32 := []byte{}
		f16 := []byte{}
		bf16 := []byte{}
		for _, v := range vals {
			f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(v)))
		}
		f16 = append(f16, 0x00, 0x00, 0x00, 0xbe, 0x80, 0x42, 0xff, 0x7b, 0x00, 0x94, 0x02, 0x00)
		bf16 = append(bf16, 0x00, 0x00, 0xc0, 0xbf, 0x50, 0x40, 0x80, 0x3f)
		cases = append(cases,
			knownCase{"F32", gguf.TypeF32, f32, vals, nil},
			knownCase{"F16", gguf.TypeF16, f16, []float64{0, -1.5, 3.25, 65504, -0.0009765625, 2 * math.Ldexp(1, -24)}, nil},
			knownCase{"BF16", gguf.TypeBF16, bf16, []float64{0, -1.5, 3.25, 1}, nil})
	}
	return cases
}

func TestDequantizeKnownBlocks(t *testing.T) {
	for _, tc := range knownCases() {
		t.Run(tc.name, func(t *testing.T) {
			if int64(len(tc.block)) != tc.typ.BlockBytes()*int64(len(tc.want))/tc.typ.BlockElems() {
				t.Fatalf("test block has %d bytes", len(tc.block))
			}
			got, err := Dequantize(tc.typ, tc.block, int64(len(tc.want)))
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				if float64(got[i]) != float64(float32(w)) {
					t.Fatalf("element %d = %v, want %v", i, got[i], w)
				}
			}
			for i, w := range tc.spot {
				if float64(got[i]) != w {
					t.Errorf("hand-worked element %d = %v, want %v", i, got[i], w)
				}
			}
			// Two copies of the block decode as two blocks.
			two := append(append([]byte{}, tc.block...), tc.block...)
			dst := make([]float32, 2*len(tc.want))
			if err := DequantizeInto(tc.typ, two, dst); err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if dst[i] != got[i] || dst[len(tc.want)+i] != got[i] {
					t.Fatalf("two-block decode differs at %d", i)
				}
			}
		})
	}
}

// TestQ4KScaleBytesLiteral decodes a block whose scale bytes are written out literally, with the
// expected values worked out by hand from the bit layout.
func TestQ4KScaleBytesLiteral(t *testing.T) {
	b := make([]byte, 144)
	put16(b, 0, 0x3c00) // d = 1
	put16(b, 2, 0x3c00) // dmin = 1
	// scales: byte 0 = 0b11_000011 -> sub-block 0 scale 3, and bits 4-5 of sub-block 4's scale = 3.
	// byte 4 = 0b01_000101 -> sub-block 0 min 5, bits 4-5 of sub-block 4's min = 1.
	// byte 8 = 0x92 -> sub-block 4 scale low nibble 2, min low nibble 9.
	// So sub-block 0: scale 3, min 5; sub-block 4: scale 0x32 = 50, min 0x19 = 25.
	copy(b[4:], []byte{0xc3, 0, 0, 0, 0x45, 0, 0, 0, 0x92, 0, 0, 0})
	b[16+0] = 0x4a  // element 0 level 10, element 32 (sub-block 1: scale 0, min 0) level 4
	b[16+64] = 0x06 // element 128 (sub-block 4) level 6
	got, err := Dequantize(gguf.TypeQ4_K, b, 256)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		i    int
		want float32
	}{{0, 3*10 - 5}, {1, -5}, {32, 0}, {128, 50*6 - 25}, {129, -25}, {160, 0}} {
		if got[c.i] != c.want {
			t.Errorf("element %d = %v, want %v", c.i, got[c.i], c.want)
		}
	}
}

var allTypes = []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ4_0, gguf.TypeQ4_1,
	gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ8_0, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeQ8_K}

func gaussian(n int, seed uint64, outliers bool) []float32 {
	r := rand.New(rand.NewPCG(seed, 11))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.05)
		if outliers && r.IntN(100) == 0 {
			x[i] *= 20
		}
	}
	return x
}

func relRMS(x, y []float32) float64 {
	var num, den float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		num += d * d
		den += float64(x[i]) * float64(x[i])
	}
	return math.Sqrt(num / den)
}

// TestRoundTripError bounds the relative RMS error of Quantize then Dequantize. For a uniform
// grid with step Δ the error is about Δ/√12; a block of 32 gaussians spans about ±2.1σ, so
// Q4_0 (Δ ≈ 2.1σ/8) gives about 0.075 and each extra bit halves it. Bounds sit ~15-30% above the
// measured values (noted beside each) so a layout or rounding bug cannot hide under them.
func TestRoundTripError(t *testing.T) {
	tests := []struct {
		typ             gguf.Type
		plain, outliers float64
	}{
		{gguf.TypeF32, 0, 0},           // measured 0, 0
		{gguf.TypeF16, 3e-4, 3e-4},     // 0.00021, 0.00022
		{gguf.TypeBF16, 2e-3, 2e-3},    // 0.00167, 0.00168
		{gguf.TypeQ4_0, 0.10, 0.18},    // 0.0851, 0.151
		{gguf.TypeQ4_1, 0.09, 0.125},   // 0.0774, 0.106
		{gguf.TypeQ5_0, 0.05, 0.10},    // 0.0421, 0.0856
		{gguf.TypeQ5_1, 0.045, 0.062},  // 0.0377, 0.0523
		{gguf.TypeQ8_0, 0.0063, 0.013}, // 0.00529, 0.0111
		{gguf.TypeQ4_K, 0.085, 0.115},  // 0.0706, 0.0974
		{gguf.TypeQ5_K, 0.043, 0.06},   // 0.0359, 0.0509
		{gguf.TypeQ6_K, 0.021, 0.038},  // 0.0173, 0.0321
		{gguf.TypeQ8_K, 0.0082, 0.033}, // 0.00692, 0.0276 (one scale per 256: outliers cost more)
	}
	for _, tc := range tests {
		for _, outliers := range []bool{false, true} {
			name := tc.typ.String()
			bound := tc.plain
			if outliers {
				name += "/outliers"
				bound = tc.outliers
			}
			t.Run(name, func(t *testing.T) {
				x := gaussian(256*64, 42, outliers)
				enc, err := Quantize(tc.typ, x)
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := tc.typ.RowBytes(int64(len(x))); int64(len(enc)) != want {
					t.Fatalf("encoded %d bytes, want %d", len(enc), want)
				}
				y, err := Dequantize(tc.typ, enc, int64(len(x)))
				if err != nil {
					t.Fatal(err)
				}
				e := relRMS(x, y)
				t.Logf("%s rel RMS %.5f (bound %.5f)", name, e, bound)
				if e > bound || math.IsNaN(e) {
					t.Errorf("relative RMS error %.5f > %.5f", e, bound)
				}
			})
		}
	}
}

// TestRoundTripExactOnGrid quantizes values that already lie on a format's grid (power-of-two
// scale so the reference quantizers' reciprocal is exact, and the extreme levels present so the
// quantizer recovers the scale) and expects them back bit for bit.
func TestRoundTripExactOnGrid(t *testing.T) {
	tests := []struct {
		typ       gguf.Type
		lo, span  int     // levels lo .. lo+span-1
		d, offset float64 // value = d*level + offset
		first     int     // level forced onto element 0 (the one of largest magnitude)
	}{
		{gguf.TypeQ4_0, -8, 16, 0.25, 0, -8},
		{gguf.TypeQ4_0, -8, 16, -0.5, 0, -8},
		{gguf.TypeQ4_1, 0, 16, 0.125, -1, 15},
		{gguf.TypeQ5_0, -16, 32, 0.0625, 0, -16},
		{gguf.TypeQ5_1, 0, 32, 0.25, 0.5, 31},
		{gguf.TypeQ8_0, -127, 255, 0.0078125, 0, 127},
		{gguf.TypeQ8_0, -127, 255, 2, 0, -127},
		{gguf.TypeQ8_K, -127, 255, 0.015625, 0, -127},
		{gguf.TypeQ8_K, -127, 255, 0.5, 0, 127},
	}
	for _, tc := range tests {
		t.Run(tc.typ.String(), func(t *testing.T) {
			be := int(tc.typ.BlockElems())
			n := 4 * be
			lv := levels(n, tc.span, 9)
			x := make([]float32, n)
			for i := range x {
				l := lv[i] + tc.lo
				if i%be == 0 {
					l = tc.first
				}
				if tc.typ == gguf.TypeQ4_1 || tc.typ == gguf.TypeQ5_1 {
					if i%be == 1 { // both ends of the range must be present
						l = tc.lo
					}
				}
				x[i] = float32(tc.d*float64(l) + tc.offset)
			}
			enc, err := Quantize(tc.typ, x)
			if err != nil {
				t.Fatal(err)
			}
			y, err := Dequantize(tc.typ, enc, int64(n))
			if err != nil {
				t.Fatal(err)
			}
			for i := range x {
				if x[i] != y[i] {
					t.Fatalf("element %d: %v came back as %v", i, x[i], y[i])
				}
			}
		})
	}
}

// TestQuantizeMatchesGGMLRounding pins the reference quantizers' documented rounding: Q8_0 rounds
// half away from zero (roundf), Q8_K rounds half to even (nearest_int) and stores the sums.
func TestQuantizeMatchesGGMLRounding(t *testing.T) {
	x := make([]float32, 32)
	x[0] = 127 // d = 1
	x[1], x[2], x[3], x[4] = 2.5, -2.5, 3.5, 0.49
	enc, err := Quantize(gguf.TypeQ8_0, x)
	if err != nil {
		t.Fatal(err)
	}
	if d := F16ToF32(binary.LittleEndian.Uint16(enc)); d != 1 {
		t.Fatalf("Q8_0 d = %v, want 1", d)
	}
	if got := []int8{int8(enc[2]), int8(enc[3]), int8(enc[4]), int8(enc[5]), int8(enc[6])}; got[0] != 127 || got[1] != 3 || got[2] != -3 || got[3] != 4 || got[4] != 0 {
		t.Errorf("Q8_0 levels %v, want [127 3 -3 4 0]", got)
	}

	xk := make([]float32, 256)
	xk[0] = -127 // iscale = -127/max = 1
	xk[1], xk[2], xk[3], xk[17] = 2.5, -2.5, 3.5, 100
	enc, err = Quantize(gguf.TypeQ8_K, xk)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Float32frombits(binary.LittleEndian.Uint32(enc)); d != 1 {
		t.Fatalf("Q8_K d = %v, want 1", d)
	}
	if got := []int8{int8(enc[4]), int8(enc[5]), int8(enc[6]), int8(enc[7])}; got[0] != -127 || got[1] != 2 || got[2] != -2 || got[3] != 4 {
		t.Errorf("Q8_K levels %v, want [-127 2 -2 4]", got)
	}
	if s0, s1 := int16(binary.LittleEndian.Uint16(enc[260:])), int16(binary.LittleEndian.Uint16(enc[262:])); s0 != -127+2-2+4 || s1 != 100 {
		t.Errorf("Q8_K bsums %d %d, want %d 100", s0, s1, -127+2-2+4)
	}
}

// TestQ8KBlockSums checks every bsum of random data against the stored levels.
func TestQ8KBlockSums(t *testing.T) {
	x := gaussian(512, 3, true)
	enc, err := Quantize(gguf.TypeQ8_K, x)
	if err != nil {
		t.Fatal(err)
	}
	for blk := 0; blk < 2; blk++ {
		b := enc[292*blk:]
		for g := 0; g < 16; g++ {
			sum := 0
			for j := 0; j < 16; j++ {
				sum += int(int8(b[4+16*g+j]))
			}
			if got := int(int16(binary.LittleEndian.Uint16(b[260+2*g:]))); got != sum {
				t.Fatalf("block %d bsum %d = %d, want %d", blk, g, got, sum)
			}
		}
	}
}

// TestQuantizeSpecialBlocks covers all-zero, constant and single-spike blocks for every type.
func TestQuantizeSpecialBlocks(t *testing.T) {
	inputs := map[string]func(i int) float32{
		"zeros":          func(int) float32 { return 0 },
		"constant":       func(int) float32 { return -0.375 },
		"positive const": func(int) float32 { return 0.5 },
		"spike": func(i int) float32 {
			if i == 77 {
				return 3
			}
			return 0
		},
		"tiny": func(i int) float32 { return float32(i%5) * 1e-9 },
	}
	for _, typ := range allTypes {
		for name, f := range inputs {
			t.Run(typ.String()+"/"+name, func(t *testing.T) {
				x := make([]float32, 256)
				for i := range x {
					x[i] = f(i)
				}
				enc, err := Quantize(typ, x)
				if err != nil {
					t.Fatal(err)
				}
				y, err := Dequantize(typ, enc, 256)
				if err != nil {
					t.Fatal(err)
				}
				for i := range x {
					if math.IsNaN(float64(y[i])) || math.Abs(float64(y[i]-x[i])) > 0.02*math.Max(1, math.Abs(float64(x[i]))) {
						t.Fatalf("element %d: %v came back as %v", i, x[i], y[i])
					}
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		run     func() error
		wantSub string
	}{
		{"unsupported Q2_K dequantize", func() error { _, err := Dequantize(gguf.TypeQ2_K, make([]byte, 84), 256); return err }, "unsupported"},
		{"unknown type", func() error { _, err := Dequantize(gguf.Type(99), nil, 0); return err }, "unsupported"},
		{"I8 quantize", func() error { _, err := Quantize(gguf.TypeI8, make([]float32, 4)); return err }, "unsupported"},
		{"partial block", func() error { _, err := Dequantize(gguf.TypeQ4_0, make([]byte, 18), 31); return err }, "whole number"},
		{"negative n", func() error { _, err := Dequantize(gguf.TypeF32, nil, -4); return err }, "negative"},
		{"short data", func() error { _, err := Dequantize(gguf.TypeQ4_K, make([]byte, 143), 256); return err }, "need 144 bytes, got 143"},
		{"long data", func() error { _, err := Dequantize(gguf.TypeQ8_0, make([]byte, 35), 32); return err }, "need 34 bytes, got 35"},
		{"huge n", func() error { _, err := Dequantize(gguf.TypeF32, make([]byte, 4), 1<<62); return err }, "overflow"},
		{"huge n, size fits", func() error { _, err := Dequantize(gguf.TypeQ6_K, make([]byte, 210), 1<<62); return err }, "got 210"},
		{"into wrong length", func() error { return DequantizeInto(gguf.TypeQ6_K, make([]byte, 210), make([]float32, 512)) }, "need 420 bytes"},
		{"into partial block", func() error { return DequantizeInto(gguf.TypeQ5_K, make([]byte, 176), make([]float32, 255)) }, "whole number"},
		{"quantize partial block", func() error { _, err := Quantize(gguf.TypeQ8_K, make([]float32, 100)); return err }, "whole number"},
		{"quantize NaN", func() error {
			x := make([]float32, 32)
			x[5] = float32(math.NaN())
			_, err := Quantize(gguf.TypeQ8_0, x)
			return err
		}, "non-finite"},
		{"quantize inf", func() error {
			x := make([]float32, 256)
			x[200] = float32(math.Inf(-1))
			_, err := Quantize(gguf.TypeQ4_K, x)
			return err
		}, "element 200"},
		{"Q4_0 scale overflow", func() error {
			x := make([]float32, 64)
			x[40] = 1e7
			_, err := Quantize(gguf.TypeQ4_0, x)
			return err
		}, "block 1"},
		{"Q4_1 min overflow", func() error {
			x := make([]float32, 32)
			for i := range x {
				x[i] = -1e5
			}
			_, err := Quantize(gguf.TypeQ4_1, x)
			return err
		}, "too large"},
		{"Q6_K scale overflow", func() error {
			x := make([]float32, 256)
			x[0] = 3e38
			_, err := Quantize(gguf.TypeQ6_K, x)
			return err
		}, "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("error %q does not mention %q", err, tc.wantSub)
			}
		})
	}
}

func TestSupported(t *testing.T) {
	for _, typ := range allTypes {
		if !Supported(typ) {
			t.Errorf("Supported(%v) = false", typ)
		}
	}
	for _, typ := range []gguf.Type{gguf.TypeQ8_1, gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeI32, gguf.TypeF64, gguf.Type(1000)} {
		if Supported(typ) {
			t.Errorf("Supported(%v) = true", typ)
		}
	}
}

func TestEmptyInput(t *testing.T) {
	for _, typ := range allTypes {
		y, err := Dequantize(typ, nil, 0)
		if err != nil || len(y) != 0 {
			t.Errorf("%v: Dequantize(nil, 0) = %v, %v", typ, y, err)
		}
		b, err := Quantize(typ, nil)
		if err != nil || len(b) != 0 {
			t.Errorf("%v: Quantize(nil) = %v, %v", typ, b, err)
		}
	}
}
