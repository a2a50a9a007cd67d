package threadsched

import (
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/embedd-dev/embedd/bindings"
)

// policies maps every thread of the process to its scheduling policy and nice value.
func policies(t *testing.T) map[int][2]int {
	t.Helper()
	ids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[int][2]int, len(ids))
	for _, id := range ids {
		attr, err := unix.SchedGetAttr(id, 0)
		if err != nil {
			continue // exited meanwhile
		}
		out[id] = [2]int{int(attr.Policy), int(attr.Nice)}
	}
	return out
}

// startThreads makes the runtime start n more OS threads (each locked goroutine needs its own)
// and returns their ids; stop ends them.
func startThreads(n int) (ids []int, stop func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	release := make(chan struct{})
	started := make(chan struct{}, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			mu.Lock()
			ids = append(ids, unix.Gettid())
			mu.Unlock()
			started <- struct{}{}
			<-release
		}()
	}
	for range n {
		<-started
	}
	return ids, func() { close(release); wg.Wait() }
}

// The engine pool's threads keep the normal policy, every other thread (and every thread the
// runtime starts afterwards) runs SCHED_BATCH at its old nice value, and a second call changes
// nothing.
func TestBatchRuntimeThreads(t *testing.T) {
	self, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if self.Policy != unix.SCHED_NORMAL {
		t.Fatalf("test process runs under policy %d, not SCHED_NORMAL", self.Policy)
	}
	pool, err := bindings.NewPool(3)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	keep := pool.ThreadIDs()
	if len(keep) != 2 {
		t.Fatalf("3-thread pool has %d thread ids, want 2", len(keep))
	}
	before := policies(t)
	for _, id := range keep {
		if _, ok := before[id]; !ok {
			t.Fatalf("pool thread %d is not a thread of this process", id)
		}
	}

	n, err := BatchRuntimeThreads(keep)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(before) - len(keep); n < want {
		t.Errorf("changed %d threads, want at least %d", n, want)
	}
	later, stop := startThreads(4)
	defer stop()

	isKept := map[int]bool{}
	for _, id := range keep {
		isKept[id] = true
	}
	for id, pn := range policies(t) {
		want := unix.SCHED_BATCH
		if isKept[id] {
			want = unix.SCHED_NORMAL
		}
		if pn[0] != want {
			t.Errorf("thread %d: policy %d, want %d", id, pn[0], want)
		}
		if old, ok := before[id]; ok && old[1] != pn[1] {
			t.Errorf("thread %d: nice %d became %d", id, old[1], pn[1])
		}
	}
	for _, id := range later {
		if attr, err := unix.SchedGetAttr(id, 0); err != nil || attr.Policy != unix.SCHED_BATCH {
			t.Errorf("thread %d started afterwards: policy %v (err %v), want SCHED_BATCH", id, attr, err)
		}
	}
	if n, err := BatchRuntimeThreads(keep); n != 0 || err != nil {
		t.Errorf("second call: changed %d, err %v; want 0, nil", n, err)
	}
}
