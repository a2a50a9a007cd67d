package gguf

import (
	"fmt"
	"math"
)

// ValueType is the type tag of a GGUF metadata value, numbered as in the GGUF specification.
type ValueType uint32

// The GGUF metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	ValueUint8: "uint8", ValueInt8: "int8", ValueUint16: "uint16", ValueInt16: "int16",
	ValueUint32: "uint32", ValueInt32: "int32", ValueFloat32: "float32", ValueBool: "bool",
	ValueString: "string", ValueArray: "array", ValueUint64: "uint64", ValueInt64: "int64",
	ValueFloat64: "float64",
}

// Valid reports whether t is one of the thirteen GGUF value types.
func (t ValueType) Valid() bool { return t <= ValueFloat64 }

// String returns the GGUF name of the type ("uint32", "string", ...).
func (t ValueType) String() string {
	if t.Valid() {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// fixedSize is the encoded size of a scalar of type t, or 0 for strings, arrays and invalid types.
func (t ValueType) fixedSize() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minSize is the fewest bytes one encoded value of type t can take: it bounds how many values a
// count read from a file can honestly claim before anything is allocated for them.
func (t ValueType) minSize() int {
	switch t {
	case ValueString:
		return 8 // length prefix
	case ValueArray:
		return 12 // element type + count
	}
	return t.fixedSize()
}

func (t ValueType) isInteger() bool {
	switch t {
	case ValueUint8, ValueInt8, ValueUint16, ValueInt16, ValueUint32, ValueInt32, ValueUint64, ValueInt64:
		return true
	}
	return false
}

// Value is one metadata value. V holds uint8, int8, uint16, int16, uint32, int32, float32, bool,
// string, uint64, int64, float64 or Array, matching Type.
type Value struct {
	Type ValueType
	V    any
}

// Array is the payload of an array value: every element has type Elem (which may itself be
// ValueArray, for arrays of arrays).
type Array struct {
	Elem   ValueType
	Values []Value
}

// KV is one metadata key and its value.
type KV struct {
	Key   string
	Value Value
}

// Uint8 makes a uint8 value.
func Uint8(v uint8) Value { return Value{ValueUint8, v} }

// Int8 makes an int8 value.
func Int8(v int8) Value { return Value{ValueInt8, v} }

// Uint16 makes a uint16 value.
func Uint16(v uint16) Value { return Value{ValueUint16, v} }

// Int16 makes an int16 value.
func Int16(v int16) Value { return Value{ValueInt16, v} }

// Uint32 makes a uint32 value.
func Uint32(v uint32) Value { return Value{ValueUint32, v} }

// Int32 makes an int32 value.
func Int32(v int32) Value { return Value{ValueInt32, v} }

// Float32 makes a float32 value.
func Float32(v float32) Value { return Value{ValueFloat32, v} }

// Bool makes a bool value.
func Bool(v bool) Value { return Value{ValueBool, v} }

// Str makes a string value.
func Str(s string) Value { return Value{ValueString, s} }

// Uint64 makes a uint64 value.
func Uint64(v uint64) Value { return Value{ValueUint64, v} }

// Int64 makes an int64 value.
func Int64(v int64) Value { return Value{ValueInt64, v} }

// Float64 makes a float64 value.
func Float64(v float64) Value { return Value{ValueFloat64, v} }

// ArrayOf makes an array value whose elements have type elem. The writer refuses it if any
// element's type differs from elem.
func ArrayOf(elem ValueType, vals ...Value) Value {
	return Value{ValueArray, Array{Elem: elem, Values: vals}}
}

// StrArray makes an array of strings.
func StrArray(ss []string) Value {
	var vals []Value // nil when empty, as the reader makes it
	if len(ss) > 0 {
		vals = make([]Value, len(ss))
	}
	for i, s := range ss {
		vals[i] = Str(s)
	}
	return ArrayOf(ValueString, vals...)
}

// AsUint returns the value as a uint64 if it is an integer of any type with a non-negative value.
func (v Value) AsUint() (uint64, bool) {
	switch x := v.V.(type) {
	case uint8:
		return uint64(x), v.Type == ValueUint8
	case uint16:
		return uint64(x), v.Type == ValueUint16
	case uint32:
		return uint64(x), v.Type == ValueUint32
	case uint64:
		return x, v.Type == ValueUint64
	case int8, int16, int32, int64:
		i, ok := v.AsInt()
		if !ok || i < 0 {
			return 0, false
		}
		return uint64(i), true
	}
	return 0, false
}

// AsInt returns the value as an int64 if it is an integer of any type whose value fits int64.
func (v Value) AsInt() (int64, bool) {
	switch x := v.V.(type) {
	case int8:
		return int64(x), v.Type == ValueInt8
	case int16:
		return int64(x), v.Type == ValueInt16
	case int32:
		return int64(x), v.Type == ValueInt32
	case int64:
		return x, v.Type == ValueInt64
	case uint8, uint16, uint32, uint64:
		u, ok := v.AsUint()
		if !ok || u > math.MaxInt64 {
			return 0, false
		}
		return int64(u), true
	}
	return 0, false
}

// AsFloat returns the value as a float64 if it is a float or an integer.
func (v Value) AsFloat() (float64, bool) {
	switch x := v.V.(type) {
	case float32:
		return float64(x), v.Type == ValueFloat32
	case float64:
		return x, v.Type == ValueFloat64
	}
	if v.Type.isInteger() {
		if i, ok := v.AsInt(); ok {
			return float64(i), true
		}
		if u, ok := v.AsUint(); ok {
			return float64(u), true
		}
	}
	return 0, false
}

// AsString returns the value as a string if it is one.
func (v Value) AsString() (string, bool) {
	s, ok := v.V.(string)
	return s, ok && v.Type == ValueString
}

// AsBool returns the value as a bool if it is one.
func (v Value) AsBool() (bool, bool) {
	b, ok := v.V.(bool)
	return b, ok && v.Type == ValueBool
}

// AsArray returns the value's array payload if it is an array.
func (v Value) AsArray() (Array, bool) {
	a, ok := v.V.(Array)
	return a, ok && v.Type == ValueArray
}

// String formats the value for messages and debugging; long arrays are abbreviated.
func (v Value) String() string {
	if a, ok := v.AsArray(); ok {
		const show = 8
		s := fmt.Sprintf("[%d x %s:", len(a.Values), a.Elem)
		for i, e := range a.Values {
			if i == show {
				s += " ..."
				break
			}
			s += " " + e.String()
		}
		return s + "]"
	}
	if s, ok := v.AsString(); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v.V)
}
