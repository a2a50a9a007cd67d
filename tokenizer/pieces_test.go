package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
)

// The piece index answers as a map assigned in id order would: later duplicates win, misses are
// misses (prefixes, extensions and near-collisions of keys included), string and []byte lookups agree.
func TestPieceIndexMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomWord := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyzé中"
		var b strings.Builder
		for n := 1 + rng.IntN(12); n > 0; n-- {
			r := []rune(letters)
			b.WriteRune(r[rng.IntN(len(r))])
		}
		return b.String()
	}
	cases := []struct {
		name  string
		items []string
		skip  int
	}{
		{"empty", nil, 0},
		{"one", []string{"a"}, 0},
		{"duplicates keep the later id", []string{"x", "y", "x", "z", "y"}, 0},
		{"continuations without their prefix", []string{"##ing", "##s", "##ing", "##a"}, 2},
		{"random, 20000", func() []string {
			out := make([]string, 20000)
			for i := range out {
				out[i] = randomWord()
			}
			return out
		}(), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, err := newStringList(tc.items)
			if err != nil {
				t.Fatal(err)
			}
			if list.len() != len(tc.items) {
				t.Fatalf("len %d, want %d", list.len(), len(tc.items))
			}
			want := map[string]int32{}
			ids := make([]int32, len(tc.items))
			maxLen := 0
			for i, s := range tc.items {
				if got := list.at(i); got != s {
					t.Fatalf("at(%d) = %q, want %q", i, got, s)
				}
				ids[i] = int32(i)
				want[s[tc.skip:]] = int32(i)
				maxLen = max(maxLen, len(s)-tc.skip)
			}
			x := newPieceIndex(&list, tc.skip, ids)
			if x.maxLen != maxLen {
				t.Errorf("maxLen %d, want %d", x.maxLen, maxLen)
			}
			probes := []string{"", "q", "xx", "in", "ing!"}
			for k := range want {
				probes = append(probes, k, k+"a", k[:len(k)/2])
			}
			for i := 0; i < 2000; i++ {
				probes = append(probes, randomWord())
			}
			for _, p := range probes {
				id, ok := want[p]
				gotS, okS := lookup(x, p)
				gotB, okB := lookup(x, []byte(p))
				if okS != ok || okB != ok || (ok && (gotS != id || gotB != id)) {
					t.Fatalf("lookup %q = %d,%v (string) %d,%v (bytes), want %d,%v", p, gotS, okS, gotB, okB, id, ok)
				}
			}
		})
	}
}

// Lookups allocate nothing, however long the key.
func TestPieceLookupAllocatesNothing(t *testing.T) {
	long := strings.Repeat("piece", 40)
	list, err := newStringList([]string{"a", long})
	if err != nil {
		t.Fatal(err)
	}
	x := newPieceIndex(&list, 0, []int32{0, 1})
	key := []byte(long)
	if n := testing.AllocsPerRun(100, func() {
		if id, ok := lookup(x, key); !ok || id != 1 {
			panic(fmt.Sprint(id, ok))
		}
		lookup(x, long[1:])
	}); n != 0 {
		t.Errorf("%v allocations per lookup pair", n)
	}
}

// The vocabulary of a loaded model is almost all memory the garbage collector does not scan: every
// collection cycle marks the scannable heap, beside the engine's threads. (As a []string and two
// maps, the bundled model's vocabulary added ~2.7 MB to it.)
func TestVocabularyIsNotScanned(t *testing.T) {
	scannable := func() uint64 {
		// Twice: what one cycle finds dead may still be held through it (sync.Pool's victim cache,
		// objects with finalizers), and after other tests that counted megabytes.
		runtime.GC()
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	// A tokenizer of its own: loadMiniLM's is shared and may be in the heap before this test runs.
	build := func() *WordPiece {
		f, err := gguf.Open(modelPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w, err := FromGGUF(f, 0)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	before := scannable()
	w := build()
	after := scannable()
	runtime.KeepAlive(w)
	if w.VocabSize() < 30000 {
		t.Fatalf("vocabulary of %d", w.VocabSize())
	}
	if grew := int64(after) - int64(before); grew > 64<<10 {
		t.Errorf("the tokenizer added %d bytes to the scannable heap, want under 64 KiB", grew)
	}
}
