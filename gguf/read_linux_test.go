package gguf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// mappingOf returns the /proc/self/maps line of the mapping holding p.
func mappingOf(t *testing.T, p []byte) string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x", &lo, &hi); err == nil && lo <= addr && addr < hi {
			return sc.Text()
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}

// ReadFile copies files into anonymous memory starting on a huge-page boundary (what makes it
// cheaper to touch than a mapping), except where THP is off or the file is over maxReadBytes: those
// it maps, as Open does (/proc/self/maps names the file of a mapping).
func TestReadFileMemoryKind(t *testing.T) {
	thp, mode := thpAvailable()
	path := filepath.Join(t.TempDir(), "m.gguf")
	w := NewWriter()
	w.Set("k", Str(strings.Repeat("x", 4000)))
	mustAdd(t, w, "t", TypeF32, []uint64{2}, []byte{0, 0, 128, 63, 0, 0, 0, 64})
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		limit  int64
		mapped bool
	}{{"small file: read", 1 << 30, false}, {"over the limit: mapped", 1024, true}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(old int64) { maxReadBytes = old }(maxReadBytes)
			maxReadBytes = tc.limit
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := tc.mapped || !thp
			if line := mappingOf(t, f.Bytes()); strings.HasSuffix(line, path) != want {
				t.Errorf("image in %q; want the file mapped: %v (THP mode %q)", line, want, mode)
			}
			if addr := uintptr(unsafe.Pointer(unsafe.SliceData(f.Bytes()))); !want && addr%hugePage != 0 {
				t.Errorf("image at %#x, not on a 2 MB boundary", addr)
			}
		})
	}
}
