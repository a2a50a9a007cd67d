package jsonfloat

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
)

// check compares Append with json.Marshal for the float32 with these bits.
func check(t *testing.T, bits uint32) {
	t.Helper()
	x := math.Float32frombits(bits)
	want, err := json.Marshal(x)
	got, ok := Append([]byte("prefix"), x)
	if err != nil {
		if ok || string(got) != "prefix" {
			t.Fatalf("%#08x (%v): json.Marshal refuses it, Append gave %q, %v", bits, x, got, ok)
		}
		return
	}
	if !ok || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("%#08x (%v): got %q, %v; json.Marshal %q", bits, x, got[len("prefix"):], ok, want)
	}
}

func TestAppendCases(t *testing.T) {
	cases := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.1, -0.1, 0.3, 2.5, 100, 1e6, 123456.79, 16777216, 16777217,
		1e-6, -1e-6, math.Nextafter32(1e-6, 0), math.Nextafter32(1e-6, 1), 9.9999994e-7,
		1 << 30, math.Nextafter32(1<<30, 0), math.Nextafter32(1<<30, 2<<30), 1e9, 1e20, 1e21, 1e-7, 1e-10,
		math.MaxFloat32, math.SmallestNonzeroFloat32, 1.1754944e-38, 0.035234567, -0.0012345678,
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	}
	for _, c := range cases {
		check(t, math.Float32bits(c))
	}
}

// Every exponent's first and last few significands (powers of two and the values just below
// them, where the rounding interval is lopsided), both signs.
func TestAppendBinadeEdges(t *testing.T) {
	for exp := uint32(0); exp < 0xff; exp++ {
		for _, frac := range []uint32{0, 1, 2, 3, 1 << 22, 1<<23 - 3, 1<<23 - 2, 1<<23 - 1} {
			bits := exp<<23 | frac
			check(t, bits)
			check(t, bits|1<<31)
		}
	}
}

// A sweep across all 2^32 bit patterns at a prime stride (about 1.05 million values), and a
// million values drawn as an embedding's components are.
func TestAppendSweep(t *testing.T) {
	const stride = 4099
	for bits := uint64(7); bits < 1<<32; bits += stride {
		check(t, uint32(bits))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		check(t, math.Float32bits(float32(r.NormFloat64()*0.05)))
	}
}

// TestAppendAgainstStrconv compares Append with encoding/json's own formatting (appendSlow, the
// same steps as encoding/json's float encoder, which the tests above hold to json.Marshal) on
// every 251st float32 bit pattern, about 17 million values, or on all 2^32 with
// EMBEDD_JSONFLOAT_EXHAUSTIVE=1 (a few minutes on two cores; run when the formatter changes).
func TestAppendAgainstStrconv(t *testing.T) {
	stride := uint64(251)
	if os.Getenv("EMBEDD_JSONFLOAT_EXHAUSTIVE") == "1" {
		stride = 1
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []uint32
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got, want []byte
			for bits := uint64(w) * stride; bits < 1<<32; bits += uint64(workers) * stride {
				x := math.Float32frombits(uint32(bits))
				var ok bool
				got, ok = Append(got[:0], x)
				if !ok {
					if !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) {
						mu.Lock()
						failures = append(failures, uint32(bits))
						mu.Unlock()
					}
					continue
				}
				want = appendSlow(want[:0], float32(math.Abs(float64(x))), x)
				if !bytes.Equal(got, want) {
					mu.Lock()
					failures = append(failures, uint32(bits))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i, bits := range failures {
		if i == 10 {
			break
		}
		check(t, bits)
	}
	if len(failures) > 0 {
		t.Fatalf("%d values differ (stride %d)", len(failures), stride)
	}
}

func BenchmarkAppend(b *testing.B) {
	v := make([]float32, 384)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = float32(r.NormFloat64() * 0.05)
	}
	buf := make([]byte, 0, 8192)
	b.Run("jsonfloat", func(b *testing.B) {
		for b.Loop() {
			buf = buf[:0]
			for _, x := range v {
				buf, _ = Append(buf, x)
			}
		}
	})
	b.Run("strconv", func(b *testing.B) {
		for b.Loop() {
			buf = buf[:0]
			for _, x := range v {
				buf = appendSlow(buf, float32(math.Abs(float64(x))), x)
			}
		}
	})
}
