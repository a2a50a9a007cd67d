// Package gguf reads and writes GGUF model files (versions 2 and 3, little-endian).
//
// The reader validates everything it reads from a file before using it: every count, length,
// dimension, offset and size is checked against the bytes that remain and for overflow, so a
// corrupt or hostile file yields an error naming the file and the problem, never a panic or a
// huge allocation. Tensor data is memory-mapped by Open and aliased, not copied.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
)

const (
	// Magic is the first four bytes of every GGUF file.
	Magic = "GGUF"
	// DefaultAlignment is the data alignment used when general.alignment is absent.
	DefaultAlignment = 32
	// AlignmentKey is the metadata key that overrides the data alignment.
	AlignmentKey = "general.alignment"
	// MaxDims is the largest number of dimensions a tensor may have.
	MaxDims = 4
	// MaxAlignment is the largest general.alignment accepted. The format allows any power of two,
	// but nothing real aligns beyond a 64 KiB page, and a huge alignment would make a tiny file
	// stand for (and the writer produce) gigabytes of padding.
	MaxAlignment = 1 << 20
	// MaxArrayDepth bounds how deeply arrays may nest, so hostile files cannot exhaust the stack.
	MaxArrayDepth = 32
	// MaxArrayValues bounds the array elements in one file's metadata (real vocabularies hold a
	// few hundred thousand), because each decoded element costs ~24x its smallest encoding.
	MaxArrayValues = 1 << 22

	headerSize = 4 + 4 + 8 + 8 // magic, version, tensor count, kv count
	// minTensorInfoSize is the smallest encoded tensor info: name length, n_dims, type, offset.
	minTensorInfoSize = 8 + 4 + 4 + 8
	// minKVSize is the smallest encoded key/value: key length, value type, a one-byte value.
	minKVSize = 8 + 4 + 1
)

// ErrClosed is returned by TensorData after Close.
var ErrClosed = errors.New("gguf: file is closed")

// TensorInfo describes one tensor: its name, shape (innermost dimension first, as ggml orders
// them), element type, data offset from the start of the data section, and size in bytes.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   Type
	Offset uint64 // from start of data section
	Size   int64  // bytes
}

// Elems is the number of elements in the tensor (the product of its dimensions; 1 for no dims).
// The reader has checked that it fits int64.
func (t TensorInfo) Elems() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// File is a parsed GGUF file. Metadata is copied out of the file; tensor data aliases the
// file's memory (a read-only mapping for Open), valid until Close. A File may be read from many
// goroutines at once, but Close must not race with them.
type File struct {
	Path       string
	Version    uint32
	Alignment  uint64
	KVs        []KV         // in file order
	Tensors    []TensorInfo // in file order
	DataOffset int64        // absolute offset of the data section

	data    []byte       // the whole file image
	release func() error // unmaps (nil for Parse)
	closed  bool
	keys    map[string]int
	tensors map[string]int
}

// Open maps the file at path read-only and parses it. Close releases the mapping.
func Open(path string) (*File, error) { return open(path, mapFile) }

// ReadFile reads the whole file at path into memory and parses it; Close releases the memory. It
// is for callers that touch every byte, as the engine's loader does (it copies and repacks all
// tensors): on Linux the file is read into anonymous memory advised to use transparent huge pages,
// which costs a dozen page faults where touching a mapping of the file costs one per 4 KB page.
// On the 2-vCPU test VM loading the bundled model from a mapping took 26.6 ms (the C share), from
// memory read this way 20.2 ms, read included. Without huge pages, or for files over 1 GiB (which
// would briefly be in memory twice), it maps the file, as Open does.
func ReadFile(path string) (*File, error) { return open(path, readFile) }

func open(path string, load func(string) ([]byte, func() error, error)) (*File, error) {
	data, release, err := load(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data, path)
	if err != nil {
		if release != nil {
			_ = release()
		}
		return nil, err
	}
	f.release = release
	return f, nil
}

// Parse parses an in-memory GGUF image; name is used in error messages and as Path. Tensor data
// slices returned by TensorData alias data.
func Parse(data []byte, name string) (*File, error) {
	f, err := parse(data, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// Close releases the file's mapping. Tensor data slices must not be used afterwards.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if f.release != nil {
		rel := f.release
		f.release = nil
		if err := rel(); err != nil {
			return fmt.Errorf("%s: unmap: %w", f.Path, err)
		}
	}
	return nil
}

// Bytes returns the whole file image (aliasing the mapping; nil after Close).
func (f *File) Bytes() []byte { return f.data }

// Lookup returns the value of a metadata key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// String returns a string-valued key.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return "", false
	}
	return v.AsString()
}

// Uint returns a key holding any integer type with a non-negative value.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsUint()
}

// Int returns a key holding any integer type whose value fits int64.
func (f *File) Int(key string) (int64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsInt()
}

// Float returns a key holding a float32, float64 or integer, as float64.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.AsFloat()
}

// Bool returns a bool-valued key.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return false, false
	}
	return v.AsBool()
}

// Array returns an array-valued key.
func (f *File) Array(key string) (Array, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return Array{}, false
	}
	return v.AsArray()
}

// Strings returns a key holding an array of strings.
func (f *File) Strings(key string) ([]string, bool) {
	a, ok := f.Array(key)
	if !ok || a.Elem != ValueString {
		return nil, false
	}
	out := make([]string, len(a.Values))
	for i, v := range a.Values {
		s, ok := v.AsString()
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// Ints returns a key holding an array of integers (of any integer type) whose values all fit int64.
func (f *File) Ints(key string) ([]int64, bool) {
	a, ok := f.Array(key)
	if !ok || !a.Elem.isInteger() {
		return nil, false
	}
	out := make([]int64, len(a.Values))
	for i, v := range a.Values {
		n, ok := v.AsInt()
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// Floats returns a key holding an array of floats (float32 or float64; integers are converted).
func (f *File) Floats(key string) ([]float64, bool) {
	a, ok := f.Array(key)
	if !ok || !(a.Elem == ValueFloat32 || a.Elem == ValueFloat64 || a.Elem.isInteger()) {
		return nil, false
	}
	out := make([]float64, len(a.Values))
	for i, v := range a.Values {
		x, ok := v.AsFloat()
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorData returns the named tensor's bytes. The slice aliases the file image (read-only
// memory for Open) and is valid until Close.
func (f *File) TensorData(name string) ([]byte, error) {
	if f.closed {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.Path, name, ErrClosed)
	}
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	// Parse proved DataOffset+Offset+Size <= len(data) without overflow.
	start := f.DataOffset + int64(t.Offset)
	return f.data[start : start+t.Size : start+t.Size], nil
}

// decoder reads little-endian GGUF fields from buf, checking every read against its length.
type decoder struct {
	buf    []byte
	off    int
	values int // array elements decoded so far, against MaxArrayValues
}

func (d *decoder) remaining() int { return len(d.buf) - d.off }

// need fails unless n more bytes remain.
func (d *decoder) need(n uint64, what string) error {
	if n > uint64(d.remaining()) {
		return fmt.Errorf("%s at offset %d needs %d bytes, runs past end of file (size %d)", what, d.off, n, len(d.buf))
	}
	return nil
}

func (d *decoder) u8(what string) (uint8, error) {
	if err := d.need(1, what); err != nil {
		return 0, err
	}
	v := d.buf[d.off]
	d.off++
	return v, nil
}

func (d *decoder) u16(what string) (uint16, error) {
	if err := d.need(2, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint16(d.buf[d.off:])
	d.off += 2
	return v, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v, nil
}

// str reads a length-prefixed string and copies it out of buf (so it outlives the mapping).
func (d *decoder) str(what string) (string, error) {
	start := d.off
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", fmt.Errorf("%s length %d at offset %d runs past end of file (size %d)", what, n, start, len(d.buf))
	}
	s := string(d.buf[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

// count reads an element count and checks that count elements of at least minSize bytes each
// can fit in what remains, before anyone allocates for them.
func (d *decoder) count(what string, minSize int) (int, error) {
	start := d.off
	n, err := d.u64(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(d.remaining()/minSize) {
		return 0, fmt.Errorf("%s %d at offset %d is impossible: %d remaining bytes hold at most %d", what, n, start, d.remaining(), d.remaining()/minSize)
	}
	return int(n), nil
}

// value reads one value of type t; depth counts enclosing arrays.
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	switch t {
	case ValueUint8:
		v, err := d.u8("uint8 value")
		return Value{t, v}, err
	case ValueInt8:
		v, err := d.u8("int8 value")
		return Value{t, int8(v)}, err
	case ValueBool:
		start := d.off
		v, err := d.u8("bool value")
		if err == nil && v > 1 {
			err = fmt.Errorf("bool value at offset %d is %d, not 0 or 1", start, v)
		}
		return Value{t, v == 1}, err
	case ValueUint16:
		v, err := d.u16("uint16 value")
		return Value{t, v}, err
	case ValueInt16:
		v, err := d.u16("int16 value")
		return Value{t, int16(v)}, err
	case ValueUint32:
		v, err := d.u32("uint32 value")
		return Value{t, v}, err
	case ValueInt32:
		v, err := d.u32("int32 value")
		return Value{t, int32(v)}, err
	case ValueFloat32:
		v, err := d.u32("float32 value")
		return Value{t, math.Float32frombits(v)}, err
	case ValueUint64:
		v, err := d.u64("uint64 value")
		return Value{t, v}, err
	case ValueInt64:
		v, err := d.u64("int64 value")
		return Value{t, int64(v)}, err
	case ValueFloat64:
		v, err := d.u64("float64 value")
		return Value{t, math.Float64frombits(v)}, err
	case ValueString:
		s, err := d.str("string")
		return Value{t, s}, err
	case ValueArray:
		a, err := d.array(depth + 1)
		return Value{t, a}, err
	}
	return Value{}, fmt.Errorf("unknown value type %d at offset %d", uint32(t), d.off-4)
}

func (d *decoder) array(depth int) (Array, error) {
	if depth > MaxArrayDepth {
		return Array{}, fmt.Errorf("arrays nested more than %d deep at offset %d", MaxArrayDepth, d.off)
	}
	start := d.off
	et, err := d.u32("array element type")
	if err != nil {
		return Array{}, err
	}
	elem := ValueType(et)
	if !elem.Valid() {
		return Array{}, fmt.Errorf("array at offset %d has unknown element type %d", start, et)
	}
	n, err := d.count("array length", elem.minSize())
	if err != nil {
		return Array{}, err
	}
	if n > MaxArrayValues-d.values {
		return Array{}, fmt.Errorf("array at offset %d takes the metadata past %d array elements", start, MaxArrayValues)
	}
	d.values += n
	var vals []Value // nil when empty, as ArrayOf makes it
	if n > 0 {
		vals = make([]Value, n)
	}
	if elem == ValueString {
		return Array{Elem: elem, Values: vals}, d.strings(vals)
	}
	for i := range vals {
		v, err := d.value(elem, depth)
		if err != nil {
			return Array{}, fmt.Errorf("array element %d: %w", i, err)
		}
		vals[i] = v
	}
	return Array{Elem: elem, Values: vals}, nil
}

// strings reads len(vals) strings into vals. Vocabularies hold tens of thousands of short
// strings, so they are copied out into one shared allocation rather than one each.
func (d *decoder) strings(vals []Value) error {
	start := d.off
	total := 0
	for i := range vals {
		n, err := d.u64("string length")
		if err == nil && n > uint64(d.remaining()) {
			err = fmt.Errorf("string length %d at offset %d runs past end of file (size %d)", n, d.off-8, len(d.buf))
		}
		if err != nil {
			return fmt.Errorf("array element %d: %w", i, err)
		}
		d.off += int(n)
		total += int(n) // at most len(d.buf): every string lies inside it
	}
	var sb strings.Builder
	sb.Grow(total)
	for off := start; off < d.off; {
		n := int(binary.LittleEndian.Uint64(d.buf[off:]))
		sb.Write(d.buf[off+8 : off+8+n])
		off += 8 + n
	}
	all := sb.String()
	pos := 0
	for i, off := 0, start; i < len(vals); i++ {
		n := int(binary.LittleEndian.Uint64(d.buf[off:]))
		vals[i] = Value{ValueString, all[pos : pos+n]}
		pos += n
		off += 8 + n
	}
	return nil
}

// validAlignment reports whether a is a power of two no larger than MaxAlignment.
func validAlignment(a uint64) bool { return a != 0 && a&(a-1) == 0 && a <= MaxAlignment }

// checkVersion validates the magic and version, recognising byte-swapped (big-endian) files.
func checkVersion(data []byte) (uint32, error) {
	if len(data) < 8 {
		return 0, fmt.Errorf("file is %d bytes, too short for a GGUF header", len(data))
	}
	magic := string(data[:4])
	version := binary.LittleEndian.Uint32(data[4:])
	swapped := bits.ReverseBytes32(version)
	switch {
	case magic == "FUGG" || (magic == Magic && version&0xffff == 0 && swapped != 0 && swapped <= 0xffff):
		return 0, errors.New("big-endian GGUF not supported")
	case magic != Magic:
		return 0, fmt.Errorf("bad magic %q, not a GGUF file", magic)
	case version != 2 && version != 3:
		return 0, fmt.Errorf("unsupported GGUF version %d", version)
	}
	if len(data) < headerSize {
		return 0, fmt.Errorf("file is %d bytes, too short for a GGUF header", len(data))
	}
	return version, nil
}

func parse(data []byte, name string) (*File, error) {
	version, err := checkVersion(data)
	if err != nil {
		return nil, err
	}
	d := &decoder{buf: data, off: 8}
	f := &File{Path: name, Version: version, data: data}

	tensorCount, err := d.count("tensor count", minTensorInfoSize)
	if err != nil {
		return nil, err
	}
	kvCount, err := d.count("metadata key count", minKVSize)
	if err != nil {
		return nil, err
	}
	// Both counts share the remaining bytes.
	if uint64(tensorCount)*minTensorInfoSize+uint64(kvCount)*minKVSize > uint64(d.remaining()) {
		return nil, fmt.Errorf("%d tensors and %d metadata keys cannot fit in %d bytes", tensorCount, kvCount, len(data))
	}

	f.KVs = make([]KV, 0, kvCount)
	f.keys = make(map[string]int, kvCount)
	for i := 0; i < kvCount; i++ {
		key, err := d.str(fmt.Sprintf("metadata key #%d", i))
		if err != nil {
			return nil, err
		}
		if _, dup := f.keys[key]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		t, err := d.u32(fmt.Sprintf("metadata key %q value type", key))
		if err != nil {
			return nil, err
		}
		if !ValueType(t).Valid() {
			return nil, fmt.Errorf("metadata key %q: unknown value type %d", key, t)
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", key, err)
		}
		f.keys[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: key, Value: v})
	}

	f.Alignment = DefaultAlignment
	if v, ok := f.Lookup(AlignmentKey); ok {
		a, ok := v.AsUint()
		if !ok {
			return nil, fmt.Errorf("%s is %s %v, not a non-negative integer", AlignmentKey, v.Type, v)
		}
		if !validAlignment(a) {
			return nil, fmt.Errorf("%s %d is not a power of two between 1 and %d", AlignmentKey, a, MaxAlignment)
		}
		f.Alignment = a
	}

	if tensorCount > d.remaining()/minTensorInfoSize {
		return nil, fmt.Errorf("tensor count %d is impossible: %d bytes remain after the metadata", tensorCount, d.remaining())
	}
	f.Tensors = make([]TensorInfo, 0, tensorCount)
	f.tensors = make(map[string]int, tensorCount)
	for i := 0; i < tensorCount; i++ {
		t, err := d.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.tensors[t.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		f.tensors[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	// The data section starts at the next multiple of the alignment; the alignment is at most
	// MaxAlignment and d.off at most len(data), so this cannot overflow.
	dataOffset := (uint64(d.off) + f.Alignment - 1) &^ (f.Alignment - 1)
	f.DataOffset = int64(dataOffset)
	if dataOffset > uint64(len(data)) && tensorCount > 0 {
		// A file without tensors may end before the padding that would precede its data.
		return nil, fmt.Errorf("data section at offset %d starts past end of file (size %d)", dataOffset, len(data))
	}
	if err := f.checkTensorRanges(); err != nil {
		return nil, err
	}
	return f, nil
}

func (d *decoder) tensorInfo(i int) (TensorInfo, error) {
	name, err := d.str(fmt.Sprintf("tensor #%d name", i))
	if err != nil {
		return TensorInfo{}, err
	}
	fail := func(err error) (TensorInfo, error) {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	nd, err := d.u32("dimension count")
	if err != nil {
		return fail(err)
	}
	if nd > MaxDims {
		return fail(fmt.Errorf("%d dimensions, more than %d", nd, MaxDims))
	}
	t := TensorInfo{Name: name, Dims: make([]uint64, nd)}
	for j := range t.Dims {
		if t.Dims[j], err = d.u64("dimension"); err != nil {
			return fail(err)
		}
	}
	typ, err := d.u32("type")
	if err != nil {
		return fail(err)
	}
	t.Type = Type(typ)
	if t.Offset, err = d.u64("data offset"); err != nil {
		return fail(err)
	}
	if !t.Type.Known() {
		return fail(fmt.Errorf("unknown tensor type %d", typ))
	}
	if t.Size, err = tensorSize(t.Type, t.Dims); err != nil {
		return fail(err)
	}
	return t, nil
}

// tensorSize computes the byte size of a tensor, checking every dimension and product for overflow.
func tensorSize(t Type, dims []uint64) (int64, error) {
	if len(dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions, more than %d", len(dims), MaxDims)
	}
	for _, d := range dims {
		if d > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v: dimension %d does not fit int64", dims, d)
		}
	}
	row := uint64(1)
	if len(dims) > 0 {
		row = dims[0]
	}
	rows := uint64(1)
	empty := row == 0
	for _, d := range dims[min(1, len(dims)):] {
		if d == 0 {
			empty = true
		}
	}
	if !empty {
		// Element count must fit int64 (ggml's ne are int64); check the product incrementally.
		total := row
		for _, d := range dims[min(1, len(dims)):] {
			hi, lo := bits.Mul64(total, d)
			if hi != 0 || lo > math.MaxInt64 {
				return 0, fmt.Errorf("shape %v: element count overflows int64", dims)
			}
			total = lo
			rows *= d
		}
	} else {
		rows = 0
	}
	rowBytes, err := t.RowBytes(int64(row))
	if err != nil {
		return 0, fmt.Errorf("shape %v: rows of %d: %w", dims, row, err)
	}
	hi, size := bits.Mul64(uint64(rowBytes), rows)
	if hi != 0 || size > math.MaxInt64 {
		return 0, fmt.Errorf("shape %v of %s: byte size overflows int64", dims, t)
	}
	return int64(size), nil
}

// checkTensorRanges proves every tensor's data lies inside the data section, starts aligned and
// overlaps no other tensor.
func (f *File) checkTensorRanges() error {
	type span struct {
		start, end uint64
		idx        int
	}
	spans := make([]span, 0, len(f.Tensors))
	for i, t := range f.Tensors {
		if t.Offset%f.Alignment != 0 {
			return fmt.Errorf("tensor %q: data offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		absStart, carry := bits.Add64(uint64(f.DataOffset), t.Offset, 0)
		absEnd, carry2 := bits.Add64(absStart, uint64(t.Size), 0)
		if carry != 0 || carry2 != 0 || absEnd > math.MaxInt64 {
			return fmt.Errorf("tensor %q: data offset %d + size %d overflows", t.Name, t.Offset, t.Size)
		}
		if absEnd > uint64(len(f.data)) {
			return fmt.Errorf("tensor %q: data [%d, %d) runs past end of file (size %d)", t.Name, absStart, absEnd, len(f.data))
		}
		if t.Size > 0 {
			spans = append(spans, span{absStart, absEnd, i})
		}
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
	for k := 1; k < len(spans); k++ {
		prev, cur := spans[k-1], spans[k]
		if cur.start < prev.end {
			return fmt.Errorf("tensor %q: data [%d, %d) overlaps tensor %q [%d, %d)",
				f.Tensors[cur.idx].Name, cur.start, cur.end, f.Tensors[prev.idx].Name, prev.start, prev.end)
		}
	}
	return nil
}
