package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Writer builds a GGUF version 3 file: metadata in insertion order, then tensor infos, then
// tensor data, each tensor starting at a multiple of the alignment and padded with zeros.
type Writer struct {
	kvs     []KV
	keys    map[string]int
	tensors []writerTensor
	names   map[string]int
}

type writerTensor struct {
	info TensorInfo
	data []byte
}

// NewWriter returns an empty writer.
func NewWriter() *Writer {
	return &Writer{keys: map[string]int{}, names: map[string]int{}}
}

// FromFile returns a writer holding f's metadata and tensors in f's order. Tensor data aliases
// f, so f must stay open until the writer has written. A file laid out as the writer lays files
// out (as ggml and gguf-py do) re-serialises byte for byte.
func FromFile(f *File) (*Writer, error) {
	w := NewWriter()
	for _, kv := range f.KVs {
		w.Set(kv.Key, kv.Value)
	}
	for _, t := range f.Tensors {
		data, err := f.TensorData(t.Name)
		if err != nil {
			return nil, err
		}
		if err := w.AddTensor(t.Name, t.Type, t.Dims, data); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return w, nil
}

// Set sets a metadata key, replacing an existing key in place. The value is validated by WriteTo.
func (w *Writer) Set(key string, v Value) {
	if i, ok := w.keys[key]; ok {
		w.kvs[i].Value = v
		return
	}
	w.keys[key] = len(w.kvs)
	w.kvs = append(w.kvs, KV{Key: key, Value: v})
}

// SetAlignment sets general.alignment (as a uint32, as ggml reads it). It must be a power of two
// between 1 and MaxAlignment.
func (w *Writer) SetAlignment(a uint64) error {
	if !validAlignment(a) {
		return fmt.Errorf("gguf: alignment %d is not a power of two between 1 and %d", a, MaxAlignment)
	}
	w.Set(AlignmentKey, Uint32(uint32(a)))
	return nil
}

// AddTensor adds a tensor with dims innermost first. len(data) must equal the size implied by
// t and dims. data is retained, not copied, until WriteTo.
func (w *Writer) AddTensor(name string, t Type, dims []uint64, data []byte) error {
	if _, dup := w.names[name]; dup {
		return fmt.Errorf("gguf: tensor %q added twice", name)
	}
	if !t.Known() {
		return fmt.Errorf("gguf: tensor %q: unknown tensor type %d", name, uint32(t))
	}
	size, err := tensorSize(t, dims)
	if err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	if int64(len(data)) != size {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, %s %v needs %d", name, len(data), t, dims, size)
	}
	w.names[name] = len(w.tensors)
	info := TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: t, Size: size}
	w.tensors = append(w.tensors, writerTensor{info: info, data: data})
	return nil
}

// alignment returns the alignment WriteTo will use: general.alignment if set, else the default.
func (w *Writer) alignment() (uint64, error) {
	i, ok := w.keys[AlignmentKey]
	if !ok {
		return DefaultAlignment, nil
	}
	v := w.kvs[i].Value
	a, ok := v.AsUint()
	if !ok || !validAlignment(a) {
		return 0, fmt.Errorf("gguf: %s = %v is not a power of two between 1 and %d", AlignmentKey, v, MaxAlignment)
	}
	return a, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// countingWriter counts bytes and remembers the first error so writes can be chained.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	c.write(b[:])
}

func (c *countingWriter) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	c.write(b[:])
}

func (c *countingWriter) str(s string) {
	c.u64(uint64(len(s)))
	if c.err == nil {
		n, err := c.w.WriteString(s)
		c.n += int64(n)
		c.err = err
	}
}

func (c *countingWriter) zeros(n uint64) {
	var pad [64]byte
	for n > 0 && c.err == nil {
		k := min(n, uint64(len(pad)))
		c.write(pad[:k])
		n -= k
	}
}

// checkValue verifies that v's Go value matches its type, recursively, before anything is written.
func checkValue(v Value, depth int) error {
	ok := false
	switch v.Type {
	case ValueUint8:
		_, ok = v.V.(uint8)
	case ValueInt8:
		_, ok = v.V.(int8)
	case ValueUint16:
		_, ok = v.V.(uint16)
	case ValueInt16:
		_, ok = v.V.(int16)
	case ValueUint32:
		_, ok = v.V.(uint32)
	case ValueInt32:
		_, ok = v.V.(int32)
	case ValueFloat32:
		_, ok = v.V.(float32)
	case ValueBool:
		_, ok = v.V.(bool)
	case ValueString:
		_, ok = v.V.(string)
	case ValueUint64:
		_, ok = v.V.(uint64)
	case ValueInt64:
		_, ok = v.V.(int64)
	case ValueFloat64:
		_, ok = v.V.(float64)
	case ValueArray:
		a, isArray := v.V.(Array)
		if !isArray {
			break
		}
		if depth+1 > MaxArrayDepth {
			return fmt.Errorf("arrays nested more than %d deep", MaxArrayDepth)
		}
		if !a.Elem.Valid() {
			return fmt.Errorf("array of unknown element type %d", uint32(a.Elem))
		}
		for i, e := range a.Values {
			if e.Type != a.Elem {
				return fmt.Errorf("array of %s: element %d is %s", a.Elem, i, e.Type)
			}
			if err := checkValue(e, depth+1); err != nil {
				return fmt.Errorf("array element %d: %w", i, err)
			}
		}
		return nil
	default:
		return fmt.Errorf("unknown value type %d", uint32(v.Type))
	}
	if !ok {
		return fmt.Errorf("value of type %s holds Go %T", v.Type, v.V)
	}
	return nil
}

// writeValue writes a value checked by checkValue (without its type tag).
func (c *countingWriter) value(v Value) {
	switch x := v.V.(type) {
	case uint8:
		c.write([]byte{x})
	case int8:
		c.write([]byte{byte(x)})
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		c.write([]byte{b})
	case uint16:
		var b [2]byte
		binary.LittleEndian.PutUint16(b[:], x)
		c.write(b[:])
	case int16:
		var b [2]byte
		binary.LittleEndian.PutUint16(b[:], uint16(x))
		c.write(b[:])
	case uint32:
		c.u32(x)
	case int32:
		c.u32(uint32(x))
	case float32:
		c.u32(math.Float32bits(x))
	case uint64:
		c.u64(x)
	case int64:
		c.u64(uint64(x))
	case float64:
		c.u64(math.Float64bits(x))
	case string:
		c.str(x)
	case Array:
		c.u32(uint32(x.Elem))
		c.u64(uint64(len(x.Values)))
		for _, e := range x.Values {
			c.value(e)
		}
	}
}

// WriteTo writes the file to out and returns the number of bytes written. Nothing is written if
// a metadata value is malformed or the alignment is invalid.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	for _, kv := range w.kvs {
		if err := checkValue(kv.Value, 0); err != nil {
			return 0, fmt.Errorf("gguf: metadata key %q: %w", kv.Key, err)
		}
	}
	// Lay tensors out back to back, each starting aligned.
	offsets := make([]uint64, len(w.tensors))
	var next uint64
	for i, t := range w.tensors {
		offsets[i] = next
		end := next + uint64(t.info.Size)
		if end < next || end > math.MaxInt64-align {
			return 0, errors.New("gguf: tensor data exceeds the largest file size")
		}
		next = alignUp(end, align)
	}

	c := &countingWriter{w: bufio.NewWriterSize(out, 1<<16)}
	c.write([]byte(Magic))
	c.u32(3)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		c.str(kv.Key)
		c.u32(uint32(kv.Value.Type))
		c.value(kv.Value)
	}
	for i, t := range w.tensors {
		c.str(t.info.Name)
		c.u32(uint32(len(t.info.Dims)))
		for _, d := range t.info.Dims {
			c.u64(d)
		}
		c.u32(uint32(t.info.Type))
		c.u64(offsets[i])
	}
	c.zeros(alignUp(uint64(c.n), align) - uint64(c.n))
	for _, t := range w.tensors {
		c.write(t.data)
		c.zeros(alignUp(uint64(len(t.data)), align) - uint64(len(t.data)))
	}
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if c.err != nil {
		return c.n, fmt.Errorf("gguf: write: %w", c.err)
	}
	return c.n, nil
}

// WriteFile writes the file to path, via a temporary file in the same directory renamed into
// place, so a failed write never leaves a truncated model behind.
func (w *Writer) WriteFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	werr := tmp.Chmod(0o644) // CreateTemp makes 0600; a model file is meant to be shared
	if werr == nil {
		_, werr = w.WriteTo(tmp)
	}
	cerr := tmp.Close()
	if werr == nil && cerr != nil {
		werr = fmt.Errorf("gguf: %w", cerr)
	}
	if werr == nil {
		if err := os.Rename(tmp.Name(), path); err != nil {
			werr = fmt.Errorf("gguf: %w", err)
		}
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("%s: %w", path, werr)
	}
	return nil
}
