package tokenizer

import (
	"fmt"
	"hash/maphash"
	"math"
)

// A vocabulary lives for as long as its model is served, and every garbage collection marks what
// is live. As a []string and two map[string]int32, a BERT vocabulary (30,522 pieces) was ~60,000
// pointers in 2.7 MB of scannable heap, most of what a server serving one model had live: its
// collection cycles took 2.5-2.8 ms of CPU (gctrace), against 1.0-1.2 ms with the vocabulary held
// as one string and two pointer-free tables, which the collector does not scan.

// stringList is an immutable list of strings stored back to back in one string.
type stringList struct {
	all  string
	ends []uint32 // string i is all[ends[i-1]:ends[i]] (from 0 for the first)
}

func newStringList(items []string) (stringList, error) {
	size := 0
	for _, s := range items {
		size += len(s)
	}
	if size > math.MaxUint32 {
		return stringList{}, fmt.Errorf("tokenizer: vocabulary of %d bytes is too large", size)
	}
	buf := make([]byte, 0, size)
	ends := make([]uint32, len(items))
	for i, s := range items {
		buf = append(buf, s...)
		ends[i] = uint32(len(buf))
	}
	return stringList{all: string(buf), ends: ends}, nil
}

func (l *stringList) len() int { return len(l.ends) }

// at returns string i (0 <= i < len()), a substring of all: it allocates nothing.
func (l *stringList) at(i int) string {
	start := uint32(0)
	if i > 0 {
		start = l.ends[i-1]
	}
	return l.all[start:l.ends[i]]
}

// pieceIndex finds the id of a vocabulary piece: open addressing with linear probing over a
// power-of-two table at most half full. The key of id is tokens.at(id) without its first skip
// bytes (the "##" of continuation pieces), so the table holds only ids and hash bits. Built once,
// then read by any number of goroutines.
type pieceIndex struct {
	seed   maphash.Seed
	slots  []pieceSlot
	tokens *stringList
	skip   int
	maxLen int // longest key, in bytes
}

// pieceSlot is one table entry, empty when id < 0. hash is the key's hash above the bits that
// index the table, so that probing past other keys seldom compares strings.
type pieceSlot struct {
	hash uint32
	id   int32
}

// newPieceIndex indexes the pieces ids (ids of tokens, each at least skip bytes long). A key that
// appears twice keeps the later id, as assigning both to a map would.
func newPieceIndex(tokens *stringList, skip int, ids []int32) *pieceIndex {
	size := 16
	for size < 2*len(ids) {
		size *= 2
	}
	x := &pieceIndex{seed: maphash.MakeSeed(), slots: make([]pieceSlot, size), tokens: tokens, skip: skip}
	for i := range x.slots {
		x.slots[i].id = -1
	}
	for _, id := range ids {
		key := x.key(id)
		x.maxLen = max(x.maxLen, len(key))
		h := maphash.String(x.seed, key)
		j := find(x, h, key)
		x.slots[j] = pieceSlot{hash: uint32(h >> 32), id: id}
	}
	return x
}

func (x *pieceIndex) key(id int32) string { return x.tokens.at(int(id))[x.skip:] }

// find returns the slot holding key (hashed to h), or the empty slot where it would go. It is
// generic so that a lookup by []byte compares without converting (and allocating) a string.
func find[K string | []byte](x *pieceIndex, h uint64, key K) uint64 {
	mask := uint64(len(x.slots) - 1)
	for j := h & mask; ; j = (j + 1) & mask {
		s := x.slots[j]
		if s.id < 0 || (s.hash == uint32(h>>32) && x.key(s.id) == string(key)) {
			return j
		}
	}
}

// lookup returns the id of the piece key.
func lookup[K string | []byte](x *pieceIndex, key K) (int32, bool) {
	var h uint64
	switch k := any(key).(type) {
	case string:
		h = maphash.String(x.seed, k)
	case []byte:
		h = maphash.Bytes(x.seed, k)
	}
	id := x.slots[find(x, h, key)].id
	return id, id >= 0
}
