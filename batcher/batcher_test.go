package batcher

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRunner tests the scheduler's own logic: each output is [first token id, len], and it records
// batch sizes. A gate, when set, holds every batch until released.
type fakeRunner struct {
	mu      sync.Mutex
	batches [][]int32 // first ids of each batch
	gate    chan struct{}
	started chan struct{}
	active  int
	maxAct  int
}

func (f *fakeRunner) Run(inputs []Input, normalize bool) ([][]float32, error) {
	f.mu.Lock()
	f.active++
	f.maxAct = max(f.maxAct, f.active)
	ids := make([]int32, len(inputs))
	for i, in := range inputs {
		ids[i] = in.IDs[0]
	}
	f.batches = append(f.batches, ids)
	f.mu.Unlock()
	if f.started != nil {
		select {
		case f.started <- struct{}{}:
		default:
		}
	}
	if f.gate != nil {
		<-f.gate
	}
	out := make([][]float32, len(inputs))
	for i, in := range inputs {
		out[i] = []float32{float32(in.IDs[0]), float32(len(in.IDs))}
	}
	f.mu.Lock()
	f.active--
	f.mu.Unlock()
	return out, nil
}

func (f *fakeRunner) seen() [][]int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]int32(nil), f.batches...)
}

func seq(id int32, n int) Input {
	ids := make([]int32, n)
	ids[0] = id
	return Input{IDs: ids}
}

func newSched(t *testing.T, cfg Config) *Scheduler {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{{}, {MaxBatchTokens: 1, MaxBatchInputs: 1}, {MaxBatchTokens: 1, MaxBatchInputs: 1, QueueLength: 1, MaxWait: -1}} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestResultsInOrderAndSplit(t *testing.T) {
	cases := []struct {
		name                string
		maxInputs, maxToken int
		inputs              []Input
		wantBatches         int
	}{
		{"one batch", 8, 1000, []Input{seq(1, 3), seq(2, 4), seq(3, 5)}, 1},
		{"split by inputs", 2, 1000, []Input{seq(1, 3), seq(2, 4), seq(3, 5)}, 2},
		{"split by tokens", 8, 7, []Input{seq(1, 3), seq(2, 4), seq(3, 5)}, 2},
		{"oversized input runs alone", 8, 2, []Input{seq(1, 3), seq(2, 4)}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{}
			s := newSched(t, Config{MaxBatchTokens: tc.maxToken, MaxBatchInputs: tc.maxInputs, QueueLength: 4})
			q := s.NewQueue("m", r, true)
			out, err := q.Submit(context.Background(), tc.inputs)
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range tc.inputs {
				if out[i][0] != float32(in.IDs[0]) || out[i][1] != float32(len(in.IDs)) {
					t.Errorf("result %d = %v for input %d/%d", i, out[i], in.IDs[0], len(in.IDs))
				}
			}
			if got := len(r.seen()); got != tc.wantBatches {
				t.Errorf("%d batches, want %d: %v", got, tc.wantBatches, r.seen())
			}
		})
	}
}

// While the engine is busy, arrivals accumulate and the next batch takes them together.
func TestArrivalsBatchWhileBusy(t *testing.T) {
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: 64, QueueLength: 64})
	q := s.NewQueue("m", r, true)
	var wg sync.WaitGroup
	results := make([][][]float32, 11)
	submit := func(i int) {
		defer wg.Done()
		out, err := q.Submit(context.Background(), []Input{seq(int32(i), 2)})
		if err != nil {
			t.Error(err)
		}
		results[i] = out
	}
	wg.Add(1)
	go submit(0)
	<-r.started // the first request runs alone at once
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go submit(i)
	}
	waitFor(t, func() bool { return q.Len() == 11 })
	close(r.gate)
	wg.Wait()
	b := r.seen()
	if len(b) != 2 || len(b[0]) != 1 || len(b[1]) != 10 {
		t.Errorf("batches = %v, want [0] then the 10 arrivals together", b)
	}
	for i, out := range results {
		if len(out) != 1 || out[0][0] != float32(i) {
			t.Errorf("request %d got %v", i, out)
		}
	}
}

func TestQueueFull(t *testing.T) {
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: 1, QueueLength: 2})
	q := s.NewQueue("m", r, true)
	errs := make(chan error, 2)
	go func() { _, err := q.Submit(context.Background(), []Input{seq(1, 2)}); errs <- err }()
	<-r.started
	go func() { _, err := q.Submit(context.Background(), []Input{seq(2, 2)}); errs <- err }()
	waitFor(t, func() bool { return q.Len() == 2 })
	if _, err := q.Submit(context.Background(), []Input{seq(3, 2)}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third request: %v, want ErrQueueFull", err)
	}
	close(r.gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A request whose context ends while queued is dropped: its inputs never reach the engine.
func TestCanceledWorkIsNotComputed(t *testing.T) {
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: 8, QueueLength: 8})
	q := s.NewQueue("m", r, true)
	done := make(chan error, 1)
	go func() { _, err := q.Submit(context.Background(), []Input{seq(1, 2)}); done <- err }()
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	canceled := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, []Input{seq(99, 2)}); canceled <- err }()
	waitFor(t, func() bool { return q.Len() == 2 })
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled request: %v", err)
	}
	if q.Len() != 1 {
		t.Errorf("queue length %d after cancel, want 1", q.Len())
	}
	close(r.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A later request still works and the canceled input was never run.
	if _, err := q.Submit(context.Background(), []Input{seq(2, 2)}); err != nil {
		t.Fatal(err)
	}
	for _, b := range r.seen() {
		for _, id := range b {
			if id == 99 {
				t.Errorf("canceled input computed: %v", r.seen())
			}
		}
	}
}

// One batch at a time across all models, and models take turns.
func TestOneBatchAtATimeAcrossModels(t *testing.T) {
	r1, r2 := &fakeRunner{}, &fakeRunner{}
	shared := &sharedCounter{}
	s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: 2, QueueLength: 64})
	q1 := s.NewQueue("a", countingRunner{r1, shared}, true)
	q2 := s.NewQueue("b", countingRunner{r2, shared}, true)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := q1
			if i%2 == 1 {
				q = q2
			}
			out, err := q.Submit(context.Background(), []Input{seq(int32(i), 3), seq(int32(100+i), 2)})
			if err != nil || out[0][0] != float32(i) || out[1][0] != float32(100+i) {
				t.Errorf("request %d: %v %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	if shared.max != 1 {
		t.Errorf("%d batches ran at once, want 1", shared.max)
	}
}

type sharedCounter struct {
	mu          sync.Mutex
	active, max int
}

type countingRunner struct {
	r *fakeRunner
	c *sharedCounter
}

func (c countingRunner) Run(inputs []Input, normalize bool) ([][]float32, error) {
	c.c.mu.Lock()
	c.c.active++
	c.c.max = max(c.c.max, c.c.active)
	c.c.mu.Unlock()
	time.Sleep(100 * time.Microsecond)
	defer func() { c.c.mu.Lock(); c.c.active--; c.c.mu.Unlock() }()
	return c.r.Run(inputs, normalize)
}

func TestMaxWaitGathersArrivals(t *testing.T) {
	r := &fakeRunner{}
	s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: 64, QueueLength: 64, MaxWait: 200 * time.Millisecond})
	q := s.NewQueue("m", r, true)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.Submit(context.Background(), []Input{seq(int32(i), 2)}); err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if b := r.seen(); len(b) != 1 || len(b[0]) != 4 {
		t.Errorf("batches %v, want the 4 arrivals in one", b)
	}
}

func TestClosedQueueAndStop(t *testing.T) {
	s, err := New(Config{MaxBatchTokens: 10, MaxBatchInputs: 1, QueueLength: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := s.NewQueue("m", &fakeRunner{}, true)
	q.Close()
	if _, err := q.Submit(context.Background(), []Input{seq(1, 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("submit to closed queue: %v", err)
	}
	q2 := s.NewQueue("n", &fakeRunner{}, true)
	s.Stop()
	if _, err := q2.Submit(context.Background(), []Input{seq(1, 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after stop: %v", err)
	}
}

type failingRunner struct{ panicking bool }

func (f failingRunner) Run(inputs []Input, normalize bool) ([][]float32, error) {
	if f.panicking {
		panic("boom")
	}
	return nil, errors.New("engine failed")
}

func TestRunnerErrorsReachTheCaller(t *testing.T) {
	for _, panicking := range []bool{false, true} {
		s := newSched(t, Config{MaxBatchTokens: 10, MaxBatchInputs: 4, QueueLength: 4})
		q := s.NewQueue("m", failingRunner{panicking}, true)
		if _, err := q.Submit(context.Background(), []Input{seq(1, 1)}); err == nil {
			t.Errorf("panicking=%v: no error", panicking)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// stackRunner records whether each batch ran on the submitting goroutine (inline) or on the
// scheduler's goroutine, from the call stack.
type stackRunner struct {
	mu     sync.Mutex
	inline []bool
}

func (r *stackRunner) Run(inputs []Input, normalize bool) ([][]float32, error) {
	buf := make([]byte, 64<<10)
	stack := string(buf[:runtime.Stack(buf, false)])
	r.mu.Lock()
	r.inline = append(r.inline, strings.Contains(stack, "(*Queue).Submit"))
	r.mu.Unlock()
	out := make([][]float32, len(inputs))
	for i := range out {
		out[i] = []float32{1}
	}
	return out, nil
}

// A lone request on an idle engine runs on the caller's goroutine when MaxWait is 0; with MaxWait
// it goes through the scheduler (which waits for arrivals), and the rest of a request larger than
// one batch is continued by the scheduler.
func TestIdleEngineRunsLoneRequestInline(t *testing.T) {
	cases := []struct {
		name       string
		maxWait    time.Duration
		maxInputs  int
		inputs     int
		wantInline []bool
	}{
		{"idle, no wait", 0, 8, 3, []bool{true}},
		{"max wait set", time.Millisecond, 8, 3, []bool{false}},
		{"larger than a batch", 0, 2, 5, []bool{true, false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &stackRunner{}
			s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: tc.maxInputs, MaxWait: tc.maxWait, QueueLength: 4})
			q := s.NewQueue("m", r, true)
			inputs := make([]Input, tc.inputs)
			for i := range inputs {
				inputs[i] = seq(int32(i), 2)
			}
			out, err := q.Submit(context.Background(), inputs)
			if err != nil || len(out) != tc.inputs {
				t.Fatalf("Submit = %d vectors, %v; want %d", len(out), err, tc.inputs)
			}
			r.mu.Lock()
			got := append([]bool(nil), r.inline...)
			r.mu.Unlock()
			if !slices.Equal(got, tc.wantInline) {
				t.Errorf("batches ran inline = %v, want %v", got, tc.wantInline)
			}
		})
	}
}

func TestOnIdleCalledWhenTheQueueEmpties(t *testing.T) {
	var mu sync.Mutex
	idle := 0
	idleCount := func() int { mu.Lock(); defer mu.Unlock(); return idle }
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s := newSched(t, Config{MaxBatchTokens: 1000, MaxBatchInputs: 1, QueueLength: 4,
		OnIdle: func() { mu.Lock(); idle++; mu.Unlock() }})
	q := s.NewQueue("m", r, true)
	var wg sync.WaitGroup
	submit := func(id int32) {
		defer wg.Done()
		if _, err := q.Submit(context.Background(), []Input{seq(id, 2)}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go submit(1)
	<-r.started // the first batch computes; the second request waits behind it
	wg.Add(1)
	go submit(2)
	for q.Len() < 2 {
		runtime.Gosched()
	}
	if n := idleCount(); n != 0 {
		t.Fatalf("OnIdle called %d times while busy", n)
	}
	r.gate <- struct{}{} // first batch ends with a request waiting: not idle
	<-r.started
	if n := idleCount(); n != 0 {
		t.Fatalf("OnIdle called %d times with a request still waiting", n)
	}
	r.gate <- struct{}{} // second batch ends with nothing waiting: idle once
	wg.Wait()
	if n := idleCount(); n != 1 {
		t.Fatalf("OnIdle called %d times, want 1", n)
	}
}
