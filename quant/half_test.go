package quant

import (
	"math"
	"testing"
)

// halfValue decodes binary16 from its definition, in float64, independently of F16ToF32.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * mant * math.Ldexp(1, -24)
	}
	return sign * (1 + mant/1024) * math.Ldexp(1, exp-15)
}

func TestF16DecodeExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToF32(h)
		want := halfValue(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("F16ToF32(%#04x) = %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("F16ToF32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func TestF16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		back := F32ToF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(F16ToF32(back))) {
				t.Fatalf("NaN %#04x converted back to non-NaN %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, back)
		}
		if F16ToF32(back) != f {
			t.Fatalf("F16ToF32(F32ToF16(F16ToF32(%#04x))) != F16ToF32(h)", h)
		}
	}
}

// TestF16RoundingExhaustive checks, for every pair of adjacent finite halves, that their exact
// midpoint rounds to the one with an even mantissa and that the float32 just beside the midpoint
// rounds to the nearer one. Midpoints need 12 significant bits, so float32 holds them exactly.
func TestF16RoundingExhaustive(t *testing.T) {
	for i := 0; i < 0x7bff; i++ { // positive finite h with a finite successor
		for _, sign := range []uint16{0, 0x8000} {
			lo, hi := uint16(i)|sign, uint16(i+1)|sign
			mid := float32((halfValue(lo) + halfValue(hi)) / 2)
			if float64(mid) != (halfValue(lo)+halfValue(hi))/2 {
				t.Fatalf("midpoint of %#04x not exact in float32", lo)
			}
			even := lo
			if lo&1 == 1 {
				even = hi
			}
			if got := F32ToF16(mid); got != even {
				t.Fatalf("F32ToF16(mid %#04x,%#04x = %g) = %#04x, want %#04x (ties to even)", lo, hi, mid, got, even)
			}
			below := math.Nextafter32(mid, 0)
			above := math.Nextafter32(mid, float32(math.Inf(1)))
			if sign != 0 {
				above = math.Nextafter32(mid, float32(math.Inf(-1)))
			}
			if mid != 0 {
				if got := F32ToF16(below); got != lo {
					t.Fatalf("F32ToF16(%g just toward zero of midpoint) = %#04x, want %#04x", below, got, lo)
				}
			}
			if got := F32ToF16(above); got != hi {
				t.Fatalf("F32ToF16(%g just past midpoint) = %#04x, want %#04x", above, got, hi)
			}
		}
	}
}

func TestF16SpecialCases(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"max half", 65504, 0x7bff},
		{"just below overflow midpoint", math.Nextafter32(65520, 0), 0x7bff},
		{"overflow midpoint rounds to inf", 65520, 0x7c00},
		{"large", 1e10, 0x7c00},
		{"negative large", -1e10, 0xfc00},
		{"inf", float32(math.Inf(1)), 0x7c00},
		{"negative inf", float32(math.Inf(-1)), 0xfc00},
		{"smallest subnormal", float32(math.Ldexp(1, -24)), 0x0001},
		{"half of smallest subnormal ties to zero", float32(math.Ldexp(1, -25)), 0x0000},
		{"just above half of smallest subnormal", math.Nextafter32(float32(math.Ldexp(1, -25)), 1), 0x0001},
		{"1.5 smallest subnormal ties to even 2", float32(math.Ldexp(3, -25)), 0x0002},
		{"largest subnormal", float32(math.Ldexp(1023, -24)), 0x03ff},
		{"subnormal rounds up to smallest normal", float32(math.Ldexp(2047, -25)), 0x0400},
		{"float32 subnormal", math.Float32frombits(1), 0x0000},
		{"negative tiny", -1e-30, 0x8000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := F32ToF16(tc.in); got != tc.want {
				t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tc.in, got, tc.want)
			}
		})
	}
	for _, bits := range []uint32{0x7fc00000, 0x7f800001, 0xffc00000, 0x7f802000} {
		if h := F32ToF16(math.Float32frombits(bits)); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("F32ToF16(NaN %#08x) = %#04x, not a NaN", bits, h)
		}
	}
}

func TestBF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) bits = %#08x", h, math.Float32bits(f))
		}
		back := F32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToF32(back))) {
				t.Fatalf("NaN %#04x converted back to non-NaN %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x", h, back)
		}
		// Rounding: the float32 halfway to the next bf16 ties to even; one ulp either side goes
		// to the nearer neighbour. Skip the top of the finite range and inf.
		if h&0x7fff >= 0x7f7f {
			continue
		}
		mid := uint32(h)<<16 | 0x8000
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		if got := F32ToBF16(math.Float32frombits(mid)); got != even {
			t.Fatalf("F32ToBF16(midpoint above %#04x) = %#04x, want %#04x", h, got, even)
		}
		if got := F32ToBF16(math.Float32frombits(mid - 1)); got != h {
			t.Fatalf("F32ToBF16(just below midpoint above %#04x) = %#04x", h, got)
		}
		if got := F32ToBF16(math.Float32frombits(mid + 1)); got != h+1 {
			t.Fatalf("F32ToBF16(just above midpoint above %#04x) = %#04x", h, got)
		}
	}
}

func TestBF16SpecialCases(t *testing.T) {
	tests := []struct {
		name string
		in   uint32
		want uint16
	}{
		{"max finite stays", 0x7f7f0000, 0x7f7f},
		{"rounds up to inf", 0x7f7f8000, 0x7f80},
		{"inf", 0x7f800000, 0x7f80},
		{"negative inf", 0xff800000, 0xff80},
		{"NaN with low payload only stays NaN", 0x7f800001, 0x7fc0},
		{"quiet NaN", 0x7fc00000, 0x7fc0},
		{"negative NaN", 0xffc00001, 0xffc0},
		{"one", 0x3f800000, 0x3f80},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := F32ToBF16(math.Float32frombits(tc.in)); got != tc.want {
				t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", tc.in, got, tc.want)
			}
		})
	}
}
