package idlegc

import (
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorthCollecting(t *testing.T) {
	cases := []struct {
		name            string
		live, goal, now uint64
		want            bool
	}{
		{"fresh after a cycle", 1 << 20, 16 << 20, 1 << 20, false},
		{"under a quarter of the way", 1 << 20, 17 << 20, 4<<20 - 1, false},
		{"a quarter of the way", 1 << 20, 17 << 20, 5 << 20, true},
		{"at the goal", 1 << 20, 16 << 20, 16 << 20, true},
		{"collector off: no goal", 1 << 20, math.MaxUint64, 1 << 30, false},
		{"goal not above live", 8 << 20, 8 << 20, 12 << 20, false},
		{"heap shrank below live", 8 << 20, 32 << 20, 4 << 20, false},
	}
	for _, tc := range cases {
		if got := worthCollecting(tc.live, tc.goal, tc.now); got != tc.want {
			t.Errorf("%s: worthCollecting(%d, %d, %d) = %v, want %v", tc.name, tc.live, tc.goal, tc.now, got, tc.want)
		}
	}
}

// fake returns a collector whose collections are counted and whose heap reads as given.
func fake(delay time.Duration, grown bool) (*Collector, *atomic.Int64) {
	var n atomic.Int64
	c := New(delay)
	c.collect = func() { n.Add(1) }
	c.heap = func() (uint64, uint64, uint64) {
		if grown {
			return 1 << 20, 16 << 20, 12 << 20
		}
		return 1 << 20, 16 << 20, 2 << 20
	}
	return c, &n
}

// waitFor polls cond for up to 5 s (timers on a loaded machine can be late; none should be early).
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func TestCollectsOnceIdle(t *testing.T) {
	const delay = 20 * time.Millisecond
	t.Run("idle long enough", func(t *testing.T) {
		c, n := fake(delay, true)
		defer c.Close()
		c.Busy()
		start := time.Now()
		c.Idle()
		if !waitFor(func() bool { return n.Load() == 1 }) {
			t.Fatal("no collection after going idle")
		}
		if waited := time.Since(start); waited < delay {
			t.Errorf("collected %v after going idle, before the delay of %v", waited, delay)
		}
		if c.Collections() != 1 {
			t.Errorf("Collections() = %d, want 1", c.Collections())
		}
		time.Sleep(5 * delay)
		if n.Load() != 1 {
			t.Errorf("%d collections for one idle spell", n.Load())
		}
	})
	t.Run("busy again before the delay", func(t *testing.T) {
		c, n := fake(delay, true)
		defer c.Close()
		for range 20 { // requests every 2 ms: never idle for 20 ms
			c.Idle()
			time.Sleep(delay / 10)
			c.Busy()
		}
		time.Sleep(5 * delay)
		if n.Load() != 0 {
			t.Errorf("%d collections while requests kept arriving", n.Load())
		}
		c.Idle()
		if !waitFor(func() bool { return n.Load() == 1 }) {
			t.Error("no collection once the requests stopped")
		}
	})
	t.Run("little garbage", func(t *testing.T) {
		c, n := fake(delay, false)
		defer c.Close()
		c.Idle()
		time.Sleep(5 * delay)
		if n.Load() != 0 {
			t.Errorf("%d collections with the heap a tenth of the way to its goal", n.Load())
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, n := fake(delay, true)
		c.Idle()
		c.Close()
		c.Idle()
		c.Busy()
		time.Sleep(5 * delay)
		if n.Load() != 0 {
			t.Errorf("%d collections after Close", n.Load())
		}
	})
}

var sink [][]byte

// With the real runtime: garbage past a quarter of the way to the goal is collected once idle.
func TestCollectsTheRealHeap(t *testing.T) {
	runtime.GC()
	live, goal, _ := readHeap()
	for i := uint64(0); i < (goal-live)/2; i += 64 << 10 {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil
	if _, _, now := readHeap(); !worthCollecting(live, goal, now) {
		t.Fatalf("a cycle ran while the garbage was made (live %d, goal %d, now %d)", live, goal, now)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c := New(10 * time.Millisecond)
	defer c.Close()
	c.Idle()
	if !waitFor(func() bool { return c.Collections() == 1 }) {
		t.Fatal("no idle collection")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumGC <= before.NumGC {
		t.Errorf("NumGC %d -> %d: no cycle ran", before.NumGC, after.NumGC)
	}
}
