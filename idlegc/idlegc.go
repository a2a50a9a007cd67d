// Package idlegc runs the Go garbage collector while the server is idle, so that the cycle that
// would otherwise start in the middle of a later request runs when nothing is waiting.
//
// A collection cycle in the server takes about a millisecond of CPU, little in itself, but its
// background mark worker is a runtime thread that competes with the engine's compute threads: on a
// 2-vCPU machine the request it overlaps stalls for 2-6 ms (seen in `embedd bench --trace` joined
// with GODEBUG=gctrace=1), about one request in 2,000 for short queries. Traffic to an embedding
// server usually comes with gaps; collecting in a gap, once the heap has used a good part of its
// way to the next goal, moves those cycles out of requests. Under continuous load there is no gap
// and the runtime collects as it always does.
package idlegc

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// MinGrowth is the share of the way from the live heap to the runtime's next heap goal that must be
// used before an idle collection runs: a cycle run earlier than that would mostly repeat one for
// little garbage, and one run later would come too rarely to matter.
const MinGrowth = 0.25

// Collector collects the heap once the server has been idle for the delay given to New. Busy and
// Idle are called on every request and cost a lock and a timer reset; the collection runs on the
// timer's goroutine.
type Collector struct {
	delay time.Duration

	mu     sync.Mutex
	timer  *time.Timer
	epoch  uint64 // incremented by Busy: a timer armed before it must not collect
	closed bool

	// collect runs a cycle (runtime.GC); heap reports the live heap after the last cycle, the
	// current goal and the bytes in live and dead objects now. Tests replace them.
	collect     func()
	heap        func() (live, goal, now uint64)
	collections uint64 // idle collections run
}

// New returns a collector that collects delay after Idle when no Busy came in between. delay must
// be positive.
func New(delay time.Duration) *Collector {
	c := &Collector{delay: delay, collect: runtime.GC, heap: readHeap}
	c.timer = time.AfterFunc(time.Hour, c.fire)
	c.timer.Stop()
	return c
}

// Busy says that work has arrived: a pending idle collection is called off.
func (c *Collector) Busy() {
	c.mu.Lock()
	c.epoch++
	c.timer.Stop()
	c.mu.Unlock()
}

// Idle says that no work is waiting: a collection is considered after the delay.
func (c *Collector) Idle() {
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(c.delay)
	}
	c.mu.Unlock()
}

// Close stops the collector; Busy and Idle may still be called and do nothing.
func (c *Collector) Close() {
	c.mu.Lock()
	c.closed = true
	c.timer.Stop()
	c.mu.Unlock()
}

// Collections returns how many idle collections have run.
func (c *Collector) Collections() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.collections
}

func (c *Collector) fire() {
	c.mu.Lock()
	epoch, closed := c.epoch, c.closed
	c.mu.Unlock()
	if closed || !worthCollecting(c.heap()) {
		return
	}
	c.mu.Lock()
	stale := c.epoch != epoch
	c.mu.Unlock()
	if stale { // work arrived while the heap was read
		return
	}
	c.collect()
	c.mu.Lock()
	c.collections++
	c.mu.Unlock()
}

// worthCollecting reports whether the heap has used at least MinGrowth of its way to the goal.
// With the collector off (GOGC=off and no memory limit) the goal is effectively infinite and no
// idle collection runs either.
func worthCollecting(live, goal, now uint64) bool {
	if goal <= live || now <= live {
		return false
	}
	return float64(now-live) >= MinGrowth*float64(goal-live)
}

var heapSamples = []string{"/gc/heap/live:bytes", "/gc/heap/goal:bytes", "/memory/classes/heap/objects:bytes"}

func readHeap() (live, goal, now uint64) {
	s := make([]metrics.Sample, len(heapSamples))
	for i, name := range heapSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
}
