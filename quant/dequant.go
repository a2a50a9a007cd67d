package quant

import (
	"encoding/binary"
	"math"
)

// Block decoders. Each takes exactly one block of bytes and writes its BlockElems values.
// Products are wrapped in float32() before a subtraction so that no platform fuses them into an
// FMA: the results are then the same on amd64 and arm64, and match ggml's scalar C.

func f16At(b []byte, off int) float32 { return F16ToF32(binary.LittleEndian.Uint16(b[off:])) }

// Q4_0: d (f16), 16 bytes of nibbles. Element j is the low nibble of qs[j], element j+16 the high
// nibble; value = d * (q - 8).
func dequantQ4_0(b []byte, y []float32) {
	d := f16At(b, 0)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = d * float32(int32(qs[j]&0x0f)-8)
		y[j+16] = d * float32(int32(qs[j]>>4)-8)
	}
}

// Q4_1: d, m (f16), 16 bytes of nibbles in Q4_0's order; value = d*q + m.
func dequantQ4_1(b []byte, y []float32) {
	d, m := f16At(b, 0), f16At(b, 2)
	qs := b[4:20]
	for j := 0; j < 16; j++ {
		y[j] = float32(d*float32(qs[j]&0x0f)) + m
		y[j+16] = float32(d*float32(qs[j]>>4)) + m
	}
}

// Q5_0: d (f16), qh (32 high bits, little-endian; bit j belongs to element j), 16 bytes of low
// nibbles in Q4_0's order; value = d * (q - 16).
func dequantQ5_0(b []byte, y []float32) {
	d := f16At(b, 0)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := 0; j < 16; j++ {
		lo := uint32(qs[j]&0x0f) | (qh>>j&1)<<4
		hi := uint32(qs[j]>>4) | (qh>>(j+16)&1)<<4
		y[j] = d * float32(int32(lo)-16)
		y[j+16] = d * float32(int32(hi)-16)
	}
}

// Q5_1: d, m (f16), qh, qs as in Q5_0; value = d*q + m.
func dequantQ5_1(b []byte, y []float32) {
	d, m := f16At(b, 0), f16At(b, 2)
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := 0; j < 16; j++ {
		lo := uint32(qs[j]&0x0f) | (qh>>j&1)<<4
		hi := uint32(qs[j]>>4) | (qh>>(j+16)&1)<<4
		y[j] = float32(d*float32(lo)) + m
		y[j+16] = float32(d*float32(hi)) + m
	}
}

// Q8_0: d (f16), 32 int8; value = d*q.
func dequantQ8_0(b []byte, y []float32) {
	d := f16At(b, 0)
	for j := 0; j < 32; j++ {
		y[j] = d * float32(int8(b[2+j]))
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of a
// Q4_K/Q5_K block. Sub-blocks 0-3 keep theirs in the low 6 bits of bytes j and j+4; sub-blocks 4-7
// keep their low 4 bits in the nibbles of byte j+4 and their top 2 bits in the spare top bits of
// bytes j-4 (scale) and j (min).
func scaleMinK4(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0x0f | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// Q4_K: d, dmin (f16), 12 bytes of packed 6-bit scales/mins, 128 bytes of nibbles. Each 64
// elements use 32 bytes: the low nibbles are sub-block 2i, the high nibbles sub-block 2i+1.
// value = d*scale*q - dmin*min.
func dequantQ4_K(b []byte, y []float32) {
	d, dmin := f16At(b, 0), f16At(b, 2)
	scales := b[4:16]
	qs := b[16:144]
	for g := 0; g < 4; g++ {
		sc1, m1 := scaleMinK4(2*g, scales)
		sc2, m2 := scaleMinK4(2*g+1, scales)
		d1, min1 := d*float32(sc1), dmin*float32(m1)
		d2, min2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*g : 32*g+32]
		out := y[64*g : 64*g+64]
		for l := 0; l < 32; l++ {
			out[l] = float32(d1*float32(q[l]&0x0f)) - min1
			out[l+32] = float32(d2*float32(q[l]>>4)) - min2
		}
	}
}

// Q5_K: Q4_K plus qh (32 bytes): element l of 64-group g takes its fifth bit from bit 2g of qh[l]
// (low-nibble half) or bit 2g+1 (high-nibble half).
func dequantQ5_K(b []byte, y []float32) {
	d, dmin := f16At(b, 0), f16At(b, 2)
	scales := b[4:16]
	qh := b[16:48]
	qs := b[48:176]
	for g := 0; g < 4; g++ {
		sc1, m1 := scaleMinK4(2*g, scales)
		sc2, m2 := scaleMinK4(2*g+1, scales)
		d1, min1 := d*float32(sc1), dmin*float32(m1)
		d2, min2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*g : 32*g+32]
		out := y[64*g : 64*g+64]
		for l := 0; l < 32; l++ {
			lo := q[l]&0x0f | (qh[l]>>(2*g)&1)<<4
			hi := q[l]>>4 | (qh[l]>>(2*g+1)&1)<<4
			out[l] = float32(d1*float32(lo)) - min1
			out[l+32] = float32(d2*float32(hi)) - min2
		}
	}
}

// Q6_K: ql (128 bytes of low nibbles), qh (64 bytes of 2-bit high parts), 16 int8 scales (one per
// 16 elements), d (f16). Each half of 128 elements uses 64 ql bytes and 32 qh bytes: for l < 32,
// elements l, l+32, l+64, l+96 take low nibbles from ql[l], ql[l+32], ql[l]>>4, ql[l+32]>>4 and
// high bits from bits 0-1, 2-3, 4-5, 6-7 of qh[l]. value = d * scale * (q - 32).
func dequantQ6_K(b []byte, y []float32) {
	d := f16At(b, 208)
	for h := 0; h < 2; h++ {
		ql := b[64*h : 64*h+64]
		qh := b[128+32*h : 128+32*h+32]
		sc := b[192+8*h : 192+8*h+8]
		out := y[128*h : 128*h+128]
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int32(ql[l]&0x0f|(qh[l]&3)<<4) - 32
			q2 := int32(ql[l+32]&0x0f|(qh[l]>>2&3)<<4) - 32
			q3 := int32(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int32(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			out[l] = d * float32(int8(sc[is])) * float32(q1)
			out[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			out[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			out[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}

// Q8_K: d (f32), 256 int8, 16 int16 block sums (used only by dot products); value = d*q.
func dequantQ8_K(b []byte, y []float32) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for j := 0; j < 256; j++ {
		y[j] = d * float32(int8(b[4+j]))
	}
}
