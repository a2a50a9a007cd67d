package gguf

import "fmt"

// Type is a tensor element type, numbered as ggml numbers them in GGUF files.
type Type uint32

// The tensor types embedd reads. Others are reported by number and refused by the engine.
const (
	TypeF32  Type = 0
	TypeF16  Type = 1
	TypeQ4_0 Type = 2
	TypeQ4_1 Type = 3
	TypeQ5_0 Type = 6
	TypeQ5_1 Type = 7
	TypeQ8_0 Type = 8
	TypeQ8_1 Type = 9
	TypeQ2_K Type = 10
	TypeQ3_K Type = 11
	TypeQ4_K Type = 12
	TypeQ5_K Type = 13
	TypeQ6_K Type = 14
	TypeQ8_K Type = 15
	TypeI8   Type = 24
	TypeI16  Type = 25
	TypeI32  Type = 26
	TypeI64  Type = 27
	TypeF64  Type = 28
	TypeBF16 Type = 30
)

type typeInfo struct {
	name       string
	blockElems int64
	blockBytes int64
}

var typeInfos = map[Type]typeInfo{
	TypeF32:  {"F32", 1, 4},
	TypeF16:  {"F16", 1, 2},
	TypeQ4_0: {"Q4_0", 32, 18},
	TypeQ4_1: {"Q4_1", 32, 20},
	TypeQ5_0: {"Q5_0", 32, 22},
	TypeQ5_1: {"Q5_1", 32, 24},
	TypeQ8_0: {"Q8_0", 32, 34},
	TypeQ8_1: {"Q8_1", 32, 36},
	TypeQ2_K: {"Q2_K", 256, 84},
	TypeQ3_K: {"Q3_K", 256, 110},
	TypeQ4_K: {"Q4_K", 256, 144},
	TypeQ5_K: {"Q5_K", 256, 176},
	TypeQ6_K: {"Q6_K", 256, 210},
	TypeQ8_K: {"Q8_K", 256, 292},
	TypeI8:   {"I8", 1, 1},
	TypeI16:  {"I16", 1, 2},
	TypeI32:  {"I32", 1, 4},
	TypeI64:  {"I64", 1, 8},
	TypeF64:  {"F64", 1, 8},
	TypeBF16: {"BF16", 1, 2},
}

// Known reports whether the type's block layout is known (so its sizes can be computed).
func (t Type) Known() bool { _, ok := typeInfos[t]; return ok }

// String returns ggml's name for the type ("Q4_K", "F16", ...).
func (t Type) String() string {
	if ti, ok := typeInfos[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockElems is the number of elements in one block (1 for plain types), 0 if unknown.
func (t Type) BlockElems() int64 { return typeInfos[t].blockElems }

// BlockBytes is the size of one block in bytes, 0 if unknown.
func (t Type) BlockBytes() int64 { return typeInfos[t].blockBytes }

// Quantized reports whether the type stores blocks of quantized values.
func (t Type) Quantized() bool { return typeInfos[t].blockElems > 1 }

// RowBytes is the size in bytes of n consecutive elements. It fails for an unknown type, a
// negative n, an n that is not a whole number of blocks, or a size that overflows int64.
func (t Type) RowBytes(n int64) (int64, error) {
	ti, ok := typeInfos[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if n < 0 {
		return 0, fmt.Errorf("negative element count %d", n)
	}
	if n%ti.blockElems != 0 {
		return 0, fmt.Errorf("%d elements is not a whole number of %s blocks of %d", n, ti.name, ti.blockElems)
	}
	blocks := n / ti.blockElems
	if blocks > (1<<62)/ti.blockBytes {
		return 0, fmt.Errorf("%d elements of %s overflow", n, ti.name)
	}
	return blocks * ti.blockBytes, nil
}
