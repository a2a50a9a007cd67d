package quant

import (
	"encoding/binary"
	"math"
)

// Block encoders. Each reads one block of float32 (already checked finite) and writes its bytes;
// it reports false when a scale does not fit the format's half-precision fields (the values are
// too large for the type). Products feeding a sum are wrapped in a conversion (float32(x*y) + z),
// which the Go spec says forbids fusing them into an FMA: arm64 would otherwise fuse, round
// differently, and could pick different scales, so the same input encodes to the same bytes on
// every platform.

// halfFinite reports whether an F16 bit pattern is finite (F32ToF16 of a finite float is inf only
// when it overflows).
func halfFinite(h uint16) bool { return h&0x7c00 != 0x7c00 }

func putF16(b []byte, off int, v float32) bool {
	h := F32ToF16(v)
	binary.LittleEndian.PutUint16(b[off:], h)
	return halfFinite(h)
}

// roundClamp rounds v to the nearest integer, ties to even (ggml's nearest_int), clamped to
// [lo, hi] before converting so that huge quotients cannot overflow int (NaN gives lo).
func roundClamp(v float64, lo, hi int) int {
	r := math.RoundToEven(v)
	switch {
	case r >= float64(hi):
		return hi
	case r >= float64(lo):
		return int(r)
	}
	return lo
}

// signedAbsMax returns the largest |x| and the signed value it came from (first one on ties).
func signedAbsMax(x []float32) (amax, maxv float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, maxv = a, v
		}
	}
	return amax, maxv
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = float32(math.MaxFloat32), -float32(math.MaxFloat32)
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

func recip(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// quantQ4_0 follows ggml's reference: d = -max/8 where max is the value of largest magnitude,
// so that value lands exactly on q = 0 (level -8).
func quantQ4_0(x []float32, b []byte) bool {
	_, maxv := signedAbsMax(x)
	d := maxv / -8
	id := recip(d)
	ok := putF16(b, 0, d)
	for j := 0; j < 16; j++ {
		q0 := min(15, int(int8(float32(x[j]*id)+8.5)))
		q1 := min(15, int(int8(float32(x[j+16]*id)+8.5)))
		b[2+j] = uint8(q0) | uint8(q1)<<4
	}
	return ok
}

// quantQ4_1 follows ggml's reference: 16 levels spanning [min, max].
func quantQ4_1(x []float32, b []byte) bool {
	lo, hi := minMax(x)
	d := (hi - lo) / 15
	id := recip(d)
	ok := putF16(b, 0, d) && putF16(b, 2, lo)
	for j := 0; j < 16; j++ {
		q0 := min(15, int(int8(float32((x[j]-lo)*id)+0.5)))
		q1 := min(15, int(int8(float32((x[j+16]-lo)*id)+0.5)))
		b[4+j] = uint8(q0) | uint8(q1)<<4
	}
	return ok
}

// quantQ5_0 follows ggml's reference: d = -max/16, levels -16..15.
func quantQ5_0(x []float32, b []byte) bool {
	_, maxv := signedAbsMax(x)
	d := maxv / -16
	id := recip(d)
	ok := putF16(b, 0, d)
	var qh uint32
	for j := 0; j < 16; j++ {
		q0 := uint32(min(31, int(int8(float32(x[j]*id)+16.5))))
		q1 := uint32(min(31, int(int8(float32(x[j+16]*id)+16.5))))
		b[6+j] = uint8(q0&0x0f) | uint8(q1&0x0f)<<4
		qh |= (q0>>4)<<j | (q1>>4)<<(j+16)
	}
	binary.LittleEndian.PutUint32(b[2:], qh)
	return ok
}

// quantQ5_1 follows ggml's reference: 32 levels spanning [min, max].
func quantQ5_1(x []float32, b []byte) bool {
	lo, hi := minMax(x)
	d := (hi - lo) / 31
	id := recip(d)
	ok := putF16(b, 0, d) && putF16(b, 2, lo)
	var qh uint32
	for j := 0; j < 16; j++ {
		q0 := uint32(min(31, int(uint8(float32((x[j]-lo)*id)+0.5))))
		q1 := uint32(min(31, int(uint8(float32((x[j+16]-lo)*id)+0.5))))
		b[8+j] = uint8(q0&0x0f) | uint8(q1&0x0f)<<4
		qh |= (q0>>4)<<j | (q1>>4)<<(j+16)
	}
	binary.LittleEndian.PutUint32(b[4:], qh)
	return ok
}

// quantQ8_0 follows ggml's reference: d = amax/127, q = round half away from zero.
func quantQ8_0(x []float32, b []byte) bool {
	amax, _ := signedAbsMax(x)
	d := amax / 127
	id := recip(d)
	ok := putF16(b, 0, d)
	for j := 0; j < 32; j++ {
		b[2+j] = uint8(int8(math.Round(float64(float32(x[j] * id)))))
	}
	return ok
}

// quantQ8_K follows ggml's reference: scale -127/max, round half to even, and the 16 sums.
func quantQ8_K(x []float32, b []byte) bool {
	amax, maxv := signedAbsMax(x)
	for i := range b {
		b[i] = 0
	}
	if amax == 0 {
		return true
	}
	iscale := -127 / maxv
	if math.IsInf(float64(iscale), 0) {
		return true // every value is below float32's normal range: they encode as zero
	}
	for j := 0; j < 256; j++ {
		b[4+j] = uint8(int8(roundClamp(float64(float32(iscale*x[j])), -128, 127)))
	}
	for g := 0; g < 16; g++ {
		sum := 0
		for j := 0; j < 16; j++ {
			sum += int(int8(b[4+16*g+j]))
		}
		binary.LittleEndian.PutUint16(b[260+2*g:], uint16(int16(sum)))
	}
	binary.LittleEndian.PutUint32(b, math.Float32bits(1/iscale))
	return true
}

// fitAsym finds scale >= 0 and mn >= 0 so that x ≈ scale*q - mn with integer q in [0, nmax],
// minimizing the squared error. ggml's K formats require mn >= 0 (the block minimum, clamped to
// at most 0). It tries grids slightly narrower and wider than [min, max], refits scale and offset
// by least squares for each assignment, and keeps the best.
func fitAsym(x []float32, nmax int) (scale, mn float32) {
	lo, hi := minMax(x)
	lo = min(lo, 0)
	if hi <= lo {
		return 0, -lo
	}
	xmin, span := float64(lo), float64(hi)-float64(lo)
	errFor := func(a, off float64) float64 {
		e := 0.0
		for _, v := range x {
			q := roundClamp((float64(v)-off)/a, 0, nmax)
			r := float64(a*float64(q)) + off - float64(v)
			e += float64(r * r)
		}
		return e
	}
	bestA, bestOff := span/float64(nmax), xmin
	bestErr := errFor(bestA, bestOff)
	n := float64(len(x))
	for step := -10; step <= 10; step++ {
		iscale := (float64(nmax) + float64(0.1*float64(step))) / span
		var sL, sL2, sX, sLX float64
		for _, v := range x {
			q := float64(roundClamp(iscale*(float64(v)-xmin), 0, nmax))
			sL += q
			sL2 += float64(q * q)
			sX += float64(v)
			sLX += float64(q * float64(v))
		}
		det := float64(n*sL2) - float64(sL*sL)
		if det <= 0 {
			continue
		}
		a := (float64(n*sLX) - float64(sL*sX)) / det
		off := (float64(sL2*sX) - float64(sL*sLX)) / det
		if off > 0 { // the format cannot add a positive offset: refit the scale alone
			off = 0
			a = sLX / sL2
		}
		if a <= 0 {
			continue
		}
		if e := errFor(a, off); e < bestErr {
			bestA, bestOff, bestErr = a, off, e
		}
	}
	return float32(bestA), float32(-bestOff)
}

// fitSym finds a scale so that x ≈ scale*q with integer q in [-nmax, nmax-1], minimizing the
// squared error. The sign of scale is chosen so that the largest-magnitude value maps near -nmax,
// where the asymmetric range has its extra level.
func fitSym(x []float32, nmax int) float32 {
	amax, maxv := signedAbsMax(x)
	if amax == 0 {
		return 0
	}
	errFor := func(a float64) float64 {
		e := 0.0
		for _, v := range x {
			q := roundClamp(float64(v)/a, -nmax, nmax-1)
			r := float64(a*float64(q)) - float64(v)
			e += float64(r * r)
		}
		return e
	}
	bestA := -float64(maxv) / float64(nmax)
	bestErr := errFor(bestA)
	for step := -9; step <= 9; step++ {
		iscale := -(float64(nmax) + float64(0.1*float64(step))) / float64(maxv)
		var sL2, sLX float64
		for _, v := range x {
			q := float64(roundClamp(iscale*float64(v), -nmax, nmax-1))
			sL2 += float64(q * q)
			sLX += float64(q * float64(v))
		}
		if sL2 == 0 || sLX == 0 {
			continue
		}
		a := sLX / sL2
		if e := errFor(a); e < bestErr {
			bestA, bestErr = a, e
		}
	}
	return float32(bestA)
}

// packScalesK4 stores eight 6-bit scales and mins in the 12-byte layout scaleMinK4 reads.
func packScalesK4(ls, lm *[8]uint8, s []byte) {
	for j := 0; j < 8; j++ {
		if j < 4 {
			s[j] = ls[j]
			s[j+4] = lm[j]
		} else {
			s[j+4] = ls[j]&0x0f | (lm[j]&0x0f)<<4
			s[j-4] |= (ls[j] >> 4) << 6
			s[j] |= (lm[j] >> 4) << 6
		}
	}
}

// quantKAsym does the shared work of Q4_K and Q5_K: fit each 32-element sub-block, quantize the
// eight scales and mins to 6 bits against two f16 super-scales stored at b[0:4] and the packed
// scales at b[4:16], and return the levels (0..nmax) recomputed against the stored scales.
func quantKAsym(x []float32, b []byte, nmax int, L *[256]uint8) bool {
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		scales[j], mins[j] = fitAsym(x[32*j:32*j+32], nmax)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	ok := putF16(b, 0, maxScale/63) && putF16(b, 2, maxMin/63)
	d, dmin := f16At(b, 0), f16At(b, 2)
	var ls, lm [8]uint8
	for j := 0; j < 8; j++ {
		if d > 0 {
			ls[j] = uint8(roundClamp(float64(scales[j]/d), 0, 63))
		}
		if dmin > 0 {
			lm[j] = uint8(roundClamp(float64(mins[j]/dmin), 0, 63))
		}
	}
	for i := 4; i < 16; i++ {
		b[i] = 0
	}
	packScalesK4(&ls, &lm, b[4:16])
	for j := 0; j < 8; j++ {
		dd := d * float32(ls[j])
		dm := dmin * float32(lm[j])
		for i := 32 * j; i < 32*j+32; i++ {
			if dd == 0 {
				L[i] = 0
				continue
			}
			L[i] = uint8(roundClamp(float64((x[i]+dm)/dd), 0, nmax))
		}
	}
	return ok
}

func quantQ4_K(x []float32, b []byte) bool {
	var L [256]uint8
	ok := quantKAsym(x, b, 15, &L)
	qs := b[16:144]
	for g := 0; g < 4; g++ {
		for l := 0; l < 32; l++ {
			qs[32*g+l] = L[64*g+l] | L[64*g+32+l]<<4
		}
	}
	return ok
}

func quantQ5_K(x []float32, b []byte) bool {
	var L [256]uint8
	ok := quantKAsym(x, b, 31, &L)
	qh := b[16:48]
	qs := b[48:176]
	for i := range qh {
		qh[i] = 0
	}
	for g := 0; g < 4; g++ {
		for l := 0; l < 32; l++ {
			lo, hi := L[64*g+l], L[64*g+32+l]
			qs[32*g+l] = lo&0x0f | (hi&0x0f)<<4
			qh[l] |= (lo>>4)<<(2*g) | (hi>>4)<<(2*g+1)
		}
	}
	return ok
}

// quantQ6_K fits a symmetric scale per 16 elements, stores the scales as int8 against one f16
// super-scale (the largest-magnitude scale maps to -128), then packs the 6-bit levels.
func quantQ6_K(x []float32, b []byte) bool {
	var scales [16]float32
	var maxScale, amaxScale float32
	for j := 0; j < 16; j++ {
		scales[j] = fitSym(x[16*j:16*j+16], 32)
		if a := float32(math.Abs(float64(scales[j]))); a > amaxScale {
			amaxScale, maxScale = a, scales[j]
		}
	}
	ok := putF16(b, 208, maxScale/-128)
	d := f16At(b, 208)
	var L [256]uint8
	for j := 0; j < 16; j++ {
		sc := 0
		if d != 0 {
			sc = roundClamp(float64(scales[j]/d), -128, 127)
		}
		b[192+j] = uint8(int8(sc))
		dd := d * float32(sc)
		for i := 16 * j; i < 16*j+16; i++ {
			q := 0
			if dd != 0 {
				q = roundClamp(float64(x[i]/dd), -32, 31)
			}
			L[i] = uint8(q + 32)
		}
	}
	for h := 0; h < 2; h++ {
		ql := b[64*h : 64*h+64]
		qh := b[128+32*h : 128+32*h+32]
		base := 128 * h
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := L[base+l], L[base+l+32], L[base+l+64], L[base+l+96]
			ql[l] = q1&0x0f | (q3&0x0f)<<4
			ql[l+32] = q2&0x0f | (q4&0x0f)<<4
			qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
	return ok
}
