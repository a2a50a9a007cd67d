package quant

import "math"

// F16ToF32 converts an IEEE 754 binary16 value to float32 exactly (subnormals, ±0, ±inf and NaN
// payloads included).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf or NaN: widen the payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias 15 -> 127
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: mant * 2^-24, normalize into a float32 normal.
	e := uint32(113) // float32 biased exponent of 2^-14
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// F32ToF16 converts float32 to IEEE 754 binary16, rounding to nearest with ties to even.
// Values beyond the half range become ±inf, tiny values become subnormals or ±0, and NaN stays a
// (quiet) NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13) // quiet bit set, top payload bits kept
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // half biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Result is subnormal (or zero): value = mant24 * 2^(exp-150), half unit is 2^-24,
		// so the half mantissa is mant24 >> (14-e) rounded.
		if e < -10 {
			return sign // below half the smallest subnormal (float32 subnormals land here too)
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		return sign | uint16(roundShiftEven(m, shift))
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry out of the mantissa correctly bumps the exponent, up to inf
	}
	return sign | uint16(h)
}

// roundShiftEven returns v >> s rounded to nearest, ties to even (1 <= s < 32).
func roundShiftEven(v, s uint32) uint32 {
	q := v >> s
	rem := v & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}

// BF16ToF32 converts a bfloat16 value (the top half of a float32) to float32 exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts float32 to bfloat16, rounding to nearest with ties to even; NaN stays NaN
// (made quiet so truncating the payload cannot turn it into inf).
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
