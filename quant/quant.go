// Package quant is embedd's independent pure-Go reference for GGUF's tensor block formats.
//
// It converts between float32 and the formats ggml defines (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K) bit for bit as ggml lays them out. The float64 reference
// forward pass dequantizes weights with it, the synthetic model writers quantize with it, and the
// C core's kernels are checked against it, so clarity and exactness matter more than speed here.
//
// The simple formats (Q4_0 … Q8_0) and Q8_K quantize exactly like ggml's reference quantizers, so
// the C core's activation quantizers can be compared byte for byte. Q4_K, Q5_K and Q6_K use this
// package's own least-squares scale/min search: the output is a valid, good-quality encoding, but
// not necessarily the same bytes as llama.cpp would write.
package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/embedd-dev/embedd/gguf"
)

// Supported reports whether Dequantize/Quantize handle t.
func Supported(t gguf.Type) bool {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16,
		gguf.TypeQ4_0, gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ8_0,
		gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeQ8_K:
		return true
	}
	return false
}

// checkedRowBytes validates (t, n) and returns the encoded size of n elements.
func checkedRowBytes(t gguf.Type, n int64) (int64, error) {
	if !Supported(t) {
		return 0, fmt.Errorf("quant: unsupported tensor type %v", t)
	}
	size, err := t.RowBytes(n)
	if err != nil {
		return 0, fmt.Errorf("quant: %v row of %d elements: %w", t, n, err)
	}
	return size, nil
}

// Dequantize decodes n elements of type t from data into float32. Errors: unknown type, n not a
// multiple of the block, len(data) != RowBytes(n).
func Dequantize(t gguf.Type, data []byte, n int64) ([]float32, error) {
	size, err := checkedRowBytes(t, n)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("quant: %d elements of %v need %d bytes, got %d", n, t, size, len(data))
	}
	// Every format spends at least 4 bits per element, so len(data) == size bounds n to twice the
	// input's length: the output is at most 8x an allocation that already exists.
	dst := make([]float32, n)
	if err := DequantizeInto(t, data, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// DequantizeInto decodes len(dst) elements of type t from data into dst. Errors: unknown type,
// len(dst) not a multiple of the block, len(data) != RowBytes(len(dst)).
func DequantizeInto(t gguf.Type, data []byte, dst []float32) error {
	n := int64(len(dst))
	size, err := checkedRowBytes(t, n)
	if err != nil {
		return err
	}
	if int64(len(data)) != size {
		return fmt.Errorf("quant: %d elements of %v need %d bytes, got %d", n, t, size, len(data))
	}
	bs := int(t.BlockBytes())
	be := int(t.BlockElems())
	var decode func(block []byte, out []float32)
	switch t {
	case gguf.TypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		return nil
	case gguf.TypeF16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
		return nil
	case gguf.TypeBF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		}
		return nil
	case gguf.TypeQ4_0:
		decode = dequantQ4_0
	case gguf.TypeQ4_1:
		decode = dequantQ4_1
	case gguf.TypeQ5_0:
		decode = dequantQ5_0
	case gguf.TypeQ5_1:
		decode = dequantQ5_1
	case gguf.TypeQ8_0:
		decode = dequantQ8_0
	case gguf.TypeQ4_K:
		decode = dequantQ4_K
	case gguf.TypeQ5_K:
		decode = dequantQ5_K
	case gguf.TypeQ6_K:
		decode = dequantQ6_K
	case gguf.TypeQ8_K:
		decode = dequantQ8_K
	default:
		return fmt.Errorf("quant: unsupported tensor type %v", t)
	}
	for b := 0; b < len(dst)/be; b++ {
		decode(data[b*bs:(b+1)*bs], dst[b*be:(b+1)*be])
	}
	return nil
}

// Quantize encodes src (len a multiple of the block) as type t: round-to-nearest ggml-like
// reference quantizers; for the K types a least-squares scale/min search. Quantized types refuse
// non-finite input (it has no encoding); F32/F16/BF16 convert anything.
func Quantize(t gguf.Type, src []float32) ([]byte, error) {
	n := int64(len(src))
	size, err := checkedRowBytes(t, n)
	if err != nil {
		return nil, err
	}
	out := make([]byte, size)
	switch t {
	case gguf.TypeF32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out, nil
	case gguf.TypeF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToF16(v))
		}
		return out, nil
	case gguf.TypeBF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(out[2*i:], F32ToBF16(v))
		}
		return out, nil
	}
	for i, v := range src {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("quant: cannot quantize non-finite value %v at element %d as %v", v, i, t)
		}
	}
	var encode func(x []float32, block []byte) bool
	switch t {
	case gguf.TypeQ4_0:
		encode = quantQ4_0
	case gguf.TypeQ4_1:
		encode = quantQ4_1
	case gguf.TypeQ5_0:
		encode = quantQ5_0
	case gguf.TypeQ5_1:
		encode = quantQ5_1
	case gguf.TypeQ8_0:
		encode = quantQ8_0
	case gguf.TypeQ4_K:
		encode = quantQ4_K
	case gguf.TypeQ5_K:
		encode = quantQ5_K
	case gguf.TypeQ6_K:
		encode = quantQ6_K
	case gguf.TypeQ8_K:
		encode = quantQ8_K
	default:
		return nil, fmt.Errorf("quant: unsupported tensor type %v", t)
	}
	bs := int(t.BlockBytes())
	be := int(t.BlockElems())
	for b := 0; b < len(src)/be; b++ {
		if !encode(src[b*be:(b+1)*be], out[b*bs:(b+1)*bs]) {
			return nil, fmt.Errorf("quant: values of block %d (elements %d..%d) are too large for %v: its scale overflows half precision",
				b, b*be, (b+1)*be-1, t)
		}
	}
	return out, nil
}
