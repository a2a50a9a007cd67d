// Package jsonfloat formats float32 values as encoding/json does (the shortest decimal that reads
// back as the same float32), byte for byte, in about 60% of strconv's time for the values
// embeddings hold.
//
// An answer of 32 vectors of 384 numbers is 12,288 of them, and strconv.AppendFloat spent 50-70 ns
// on each: 0.6-0.9 ms of CPU per request, taken from the engine on a small machine. Values from
// 1e-6 to 2^30 (every normalised embedding's, bar exact zeros) take an exact integer path here; the
// rest go to strconv. All 2^32 float32 values were compared with encoding/json's output
// (TestAppendAgainstStrconv with EMBEDD_JSONFLOAT_EXHAUSTIVE=1; every 251st by default).
//
// The exact path is Ryū's digit loop (Ulf Adams, "Ryū: fast float-to-string conversion", PLDI
// 2018) run on exact integers instead of Ryū's precomputed multipliers: in that range a float32's
// rounding interval, scaled by a power of ten to more than 40 units wide, fits in 64 bits with its
// fractional parts known exactly, so the tie and bound cases need no tables.
package jsonfloat

import (
	"math"
	"slices"
	"strconv"
)

// Append appends x as encoding/json encodes a float32: the shortest decimal that parses back to
// x, in positional form, or in exponent form below 1e-6 and from 1e21 with a one-digit negative
// exponent unpadded (1e-7, not 1e-07). It returns false, with b unchanged, for NaN and ±Inf,
// which JSON cannot hold.
func Append(b []byte, x float32) ([]byte, bool) {
	bits := math.Float32bits(x)
	exp := int(bits>>23) & 0xff
	if exp == 0xff {
		return b, false
	}
	abs := math.Float32frombits(bits &^ (1 << 31))
	// exp < 0x9d: abs < 2^30, so that everything below fits in 64 bits. Powers of two (a zero
	// fraction) go to strconv: at their lopsided intervals its Dragonbox breaks a tie between
	// two shortest candidates upwards, not to even.
	if frac := bits & (1<<23 - 1); frac != 0 && abs >= 1e-6 && exp < 0x9d {
		if bits>>31 != 0 {
			b = append(b, '-')
		}
		return appendShortest(b, frac, exp), true
	}
	return appendSlow(b, abs, x), true
}

// appendSlow is encoding/json's own float32 formatting, for zeros and the values outside the
// exact path's range.
func appendSlow(b []byte, abs, x float32) []byte {
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, float64(x), format, -1, 32)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// pow5 holds 5^0 .. 5^15, the largest scale appendShortest uses (at 1e-6).
var pow5 = [...]uint64{1, 5, 25, 125, 625, 3125, 15625, 78125, 390625, 1953125, 9765625, 48828125,
	244140625, 1220703125, 6103515625, 30517578125}

// appendShortest appends the shortest decimal of the positive normal float32 with the given
// fraction (not 0) and biased exponent (1e-6 <= value < 2^30) in positional form.
func appendShortest(b []byte, frac uint32, exp int) []byte {
	m := uint64(frac) | 1<<23
	// The value is mv * 2^e2, its rounding interval [mm, mp] * 2^e2: halfway to the neighbours
	// (frac != 0: the same gap on both sides).
	e2 := exp - 150 - 2
	mv, mp, mm := 4*m, 4*m+2, 4*m-2
	// A value with an even significand reads back from its interval's bounds (round half to even).
	acceptBounds := m&1 == 0

	// Scale by 10^f so that the interval, 4 * 2^e2 wide, spans more than 40 units:
	// f = floor(-e2 * log10 2) + 2 (the multiply-shift is exact for these exponents). Then
	// value * 10^f = mv * 5^f * 2^(e2+f), whose integer and fractional parts are exact.
	f := 0
	if e2 < 0 {
		f = (-e2*78913)>>18 + 2
	}
	shift := e2 + f
	vr, vrRem := scale(mv, f, shift)
	vp, vpRem := scale(mp, f, shift)
	vm, vmRem := scale(mm, f, shift)

	// Ryū's general loop: vr, vp and vm are the floors of the value and of its bounds; the
	// flags say whether everything dropped from vr and vm so far was zero.
	vrExact := vrRem == 0
	vmExact := acceptBounds && vmRem == 0
	if !acceptBounds && vpRem == 0 {
		vp-- // the upper bound itself does not read back as this value
	}
	removed := 0
	lastRemoved := uint64(0)
	for vp/10 > vm/10 {
		vmExact = vmExact && vm%10 == 0
		vrExact = vrExact && lastRemoved == 0
		lastRemoved = vr % 10
		vr, vp, vm = vr/10, vp/10, vm/10
		removed++
	}
	if vmExact {
		for vm%10 == 0 {
			vrExact = vrExact && lastRemoved == 0
			lastRemoved = vr % 10
			vr, vp, vm = vr/10, vp/10, vm/10
			removed++
		}
	}
	if vrExact && lastRemoved == 5 && vr%2 == 0 {
		lastRemoved = 4 // an exact tie rounds to even
	}
	out := vr
	if (vr == vm && (!acceptBounds || !vmExact)) || lastRemoved >= 5 {
		out++
	}
	for out%10 == 0 {
		out /= 10
		removed++
	}
	return appendPositional(b, out, removed-f)
}

// scale returns the integer and (as a non-zero flag) fractional part of x * 5^f * 2^shift.
func scale(x uint64, f, shift int) (uint64, uint64) {
	p := x * pow5[f]
	if shift >= 0 {
		return p << shift, 0
	}
	return p >> -shift, p & (1<<-shift - 1)
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// pow10 holds 10^0 .. 10^19.
var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	1e16, 1e17, 1e18, 1e19}

// appendPositional appends digits * 10^exp10 as strconv's 'f' format with the shortest precision
// writes it: the integer part ("0" if none), then the fraction if any, no trailing zeros (digits
// has none). The digits are written in place, two at a time: strconv.AppendUint and the copies
// after it took half the time of a whole Append.
func appendPositional(b []byte, digits uint64, exp10 int) []byte {
	nd := 1
	for nd < len(pow10) && digits >= pow10[nd] {
		nd++
	}
	point := nd + exp10 // digits before the decimal point; <= 0: "0." and -point zeros
	n := len(b)
	switch {
	case point <= 0:
		size := 2 - point + nd
		b = slices.Grow(b, size)[:n+size]
		out := b[n:]
		out[0], out[1] = '0', '.'
		for j := 2; j < size-nd; j++ {
			out[j] = '0'
		}
		putDigits(out[size-nd:], digits)
	case point >= nd:
		b = slices.Grow(b, point)[:n+point]
		out := b[n:]
		putDigits(out[:nd], digits)
		for j := nd; j < point; j++ {
			out[j] = '0'
		}
	default:
		b = slices.Grow(b, nd+1)[:n+nd+1]
		out := b[n:]
		frac := pow10[nd-point]
		putDigits(out[:point], digits/frac)
		out[point] = '.'
		putDigits(out[point+1:], digits%frac)
	}
	return b
}

// putDigits writes v's last len(dst) decimal digits into dst, zero-padded on the left.
func putDigits(dst []byte, v uint64) {
	i := len(dst)
	for i >= 2 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		dst[i], dst[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if i == 1 {
		dst[0] = byte('0' + v%10)
	}
}
