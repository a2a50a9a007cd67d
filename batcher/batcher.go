// Package batcher queues tokenized inputs per model and runs them through the engine in dynamic
// batches. One scheduler serves every model, and exactly one batch computes at a time on the
// engine's shared thread pool (never more compute threads than cores in total).
//
// When the engine is idle and MaxWait is 0, a lone request runs at once on the submitting goroutine
// itself: no hand-off to the scheduler goroutine and back, which cost two goroutine wake-ups per
// short query. While the engine is busy, arrivals accumulate and the scheduler's next batch takes
// as many as fit the token budget and the input limit (optionally waiting up to MaxWait for more).
// Requests larger than one batch are split across consecutive batches. Queues are bounded
// (ErrQueueFull) and a request whose context ends while queued is dropped without being computed.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/embedd-dev/embedd/metrics"
)

// Input is one tokenized sequence including [CLS]/[SEP], as the engine takes it.
type Input struct {
	IDs, TypeIDs []int32
}

// Runner computes one packed batch: one output vector per input, in order. The engine's
// *model.Model satisfies it through the registry's adapter.
type Runner interface {
	Run(inputs []Input, normalize bool) ([][]float32, error)
}

// Errors returned by Submit.
var (
	// ErrQueueFull means the model's queue is at its limit; the caller should answer 429.
	ErrQueueFull = errors.New("queue full")
	// ErrClosed means the queue or scheduler no longer accepts work (model removed or shutting down).
	ErrClosed = errors.New("queue closed")
)

// Config holds the scheduler's knobs.
type Config struct {
	MaxBatchTokens int           // token budget of one batch (sum of sequence lengths)
	MaxBatchInputs int           // sequences per batch
	MaxWait        time.Duration // how long a non-full batch may wait for more arrivals; 0 = none
	QueueLength    int           // requests that may wait per model
	// OnIdle, if set, is called (under the scheduler's lock: it must be quick and must not call
	// back) each time a batch ends with no request waiting. serve parks the thread pool with it.
	OnIdle func()
}

func (c Config) validate() error {
	if c.MaxBatchTokens < 1 || c.MaxBatchInputs < 1 || c.QueueLength < 1 || c.MaxWait < 0 {
		return fmt.Errorf("batcher: invalid config %+v", c)
	}
	return nil
}

// job is one request's inputs and its results.
type job struct {
	ctx      context.Context
	inputs   []Input
	results  [][]float32
	next     int // first input not yet handed to a batch
	finished int // inputs computed
	queued   time.Time
	started  bool
	err      error
	done     chan struct{}
	q        *Queue
}

// Queue is one model's FIFO of requests.
type Queue struct {
	s         *Scheduler
	name      string
	runner    Runner
	normalize bool
	jobs      []*job // guarded by s.mu
	closed    bool   // guarded by s.mu
}

// Scheduler owns the per-model queues and the goroutine that runs their batches.
type Scheduler struct {
	cfg     Config
	metrics *metrics.Metrics

	mu      sync.Mutex
	wake    chan struct{} // capacity 1: "something changed"
	queues  []*Queue      // round-robin order
	rr      int
	stopped bool
	// busy is true while a batch computes, run either by the scheduler goroutine or inline by a
	// submitter; it keeps exactly one batch on the engine at a time. idle is signalled when it clears.
	busy   bool
	idle   *sync.Cond
	inline batch // the batch of an inline run (only the holder of busy touches it)
	quit   chan struct{}
	exited chan struct{}
}

// New starts a scheduler. m may be nil.
func New(cfg Config, m *metrics.Metrics) (*Scheduler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:     cfg,
		metrics: m,
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	go s.loop()
	return s, nil
}

// Config returns the scheduler's settings.
func (s *Scheduler) Config() Config { return s.cfg }

// NewQueue adds a queue for one model; name labels its metrics. normalize is passed to the runner.
func (s *Scheduler) NewQueue(name string, runner Runner, normalize bool) *Queue {
	q := &Queue{s: s, name: name, runner: runner, normalize: normalize}
	s.mu.Lock()
	s.queues = append(s.queues, q)
	s.mu.Unlock()
	s.metrics.SetQueueLength(name, 0)
	return q
}

// Close stops accepting work on the queue, fails its waiting requests with ErrClosed and removes
// it from the scheduler. Work already in a running batch completes.
func (q *Queue) Close() {
	s := q.s
	s.mu.Lock()
	q.closed = true
	for _, j := range q.jobs {
		j.err = ErrClosed
		close(j.done)
	}
	q.jobs = nil
	for i, other := range s.queues {
		if other == q {
			s.queues = append(s.queues[:i], s.queues[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

// Len is the number of requests waiting in the queue.
func (q *Queue) Len() int {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	return len(q.jobs)
}

// Submit queues a request's inputs and waits for their vectors (in input order). It returns
// ErrQueueFull at once when the queue is at its limit, ErrClosed when the queue is closed, and
// ctx.Err() when the context ends first; a request dropped that way is not computed further.
func (q *Queue) Submit(ctx context.Context, inputs []Input) ([][]float32, error) {
	if len(inputs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	j := &job{
		ctx:     ctx,
		inputs:  inputs,
		results: make([][]float32, len(inputs)),
		queued:  time.Now(),
		done:    make(chan struct{}),
		q:       q,
	}
	s := q.s
	s.mu.Lock()
	switch {
	case q.closed || s.stopped:
		s.mu.Unlock()
		return nil, ErrClosed
	case len(q.jobs) >= s.cfg.QueueLength:
		s.mu.Unlock()
		return nil, ErrQueueFull
	}
	q.jobs = append(q.jobs, j)
	n := len(q.jobs)
	if s.cfg.MaxWait == 0 && !s.busy && s.onlyJobLocked(j) && s.formLocked(&s.inline) {
		// Idle engine, nothing else waiting: compute here rather than hand off to the scheduler.
		s.busy = true
		s.mu.Unlock()
		s.metrics.SetQueueLength(q.name, n)
		s.run(&s.inline)
		s.mu.Lock()
		s.releaseLocked()
		s.mu.Unlock()
	} else {
		s.mu.Unlock()
		s.metrics.SetQueueLength(q.name, n)
		s.signal()
	}

	select {
	case <-j.done:
		if j.err != nil {
			return nil, j.err
		}
		return j.results, nil
	case <-ctx.Done():
		s.mu.Lock()
		select {
		case <-j.done: // finished while we were taking the lock
			s.mu.Unlock()
			if j.err != nil {
				return nil, j.err
			}
			return j.results, nil
		default:
		}
		q.removeLocked(j)
		j.err = ctx.Err()
		close(j.done)
		n := len(q.jobs)
		s.mu.Unlock()
		s.metrics.SetQueueLength(q.name, n)
		return nil, ctx.Err()
	}
}

// onlyJobLocked reports whether j is the one request waiting in any queue.
func (s *Scheduler) onlyJobLocked(j *job) bool {
	for _, q := range s.queues {
		if len(q.jobs) > 1 || (len(q.jobs) == 1 && q.jobs[0] != j) {
			return false
		}
	}
	return true
}

// releaseLocked marks the engine idle after a batch and wakes the scheduler if work is waiting
// (an inline run may leave the rest of a large request, or arrivals that came meanwhile).
func (s *Scheduler) releaseLocked() {
	s.busy = false
	s.idle.Broadcast()
	for _, q := range s.queues {
		if len(q.jobs) > 0 {
			s.signal()
			return
		}
	}
	if s.cfg.OnIdle != nil {
		s.cfg.OnIdle()
	}
}

// removeLocked takes j out of the queue if it is still there (its remaining inputs are dropped).
func (q *Queue) removeLocked(j *job) {
	for i, other := range q.jobs {
		if other == j {
			q.jobs = append(q.jobs[:i], q.jobs[i+1:]...)
			return
		}
	}
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop fails all waiting requests with ErrClosed, lets the running batch finish and stops the
// scheduler goroutine. Callers drain their HTTP server first so that nothing is waiting.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		<-s.exited
		return
	}
	s.stopped = true
	queues := append([]*Queue(nil), s.queues...)
	s.mu.Unlock()
	for _, q := range queues {
		q.Close()
	}
	close(s.quit)
	<-s.exited
	// An inline batch may still be computing on a submitter's goroutine: let it finish.
	s.mu.Lock()
	for s.busy {
		s.idle.Wait()
	}
	s.mu.Unlock()
}

// batchPart is the slice of one job's inputs a batch computes.
type batchPart struct {
	j          *job
	start, end int
}

// batch is what one engine call computes, all from one queue.
type batch struct {
	q      *Queue
	parts  []batchPart
	inputs []Input
	tokens int
}

func (s *Scheduler) loop() {
	defer close(s.exited)
	var b batch
	for {
		s.mu.Lock()
		ok := !s.busy && s.formLocked(&b)
		if ok {
			s.busy = true
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.quit:
				return
			}
		}
		if s.cfg.MaxWait > 0 && !s.full(&b) {
			s.waitForMore(&b)
		}
		s.run(&b)
		s.mu.Lock()
		s.releaseLocked()
		s.mu.Unlock()
	}
}

func (s *Scheduler) full(b *batch) bool {
	return len(b.inputs) >= s.cfg.MaxBatchInputs || b.tokens >= s.cfg.MaxBatchTokens
}

// waitForMore lets a non-full batch take arrivals for up to MaxWait after its oldest request queued.
func (s *Scheduler) waitForMore(b *batch) {
	deadline := b.parts[0].j.queued.Add(s.cfg.MaxWait)
	for !s.full(b) {
		d := time.Until(deadline)
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-s.wake:
			t.Stop()
			s.mu.Lock()
			s.extendLocked(b)
			s.mu.Unlock()
		case <-t.C:
			return
		case <-s.quit:
			t.Stop()
			return
		}
	}
}

// formLocked starts a batch from the next non-empty queue in round-robin order.
func (s *Scheduler) formLocked(b *batch) bool {
	b.q, b.parts, b.inputs, b.tokens = nil, b.parts[:0], b.inputs[:0], 0
	for k := 0; k < len(s.queues); k++ {
		q := s.queues[(s.rr+k)%len(s.queues)]
		if len(q.jobs) == 0 {
			continue
		}
		s.rr = (s.rr + k + 1) % len(s.queues)
		b.q = q
		s.extendLocked(b)
		if len(b.parts) > 0 {
			return true
		}
	}
	return false
}

// extendLocked adds queued inputs of b's queue to b while they fit. A batch always takes at least
// one input, even one longer than the token budget, so that nothing waits forever.
func (s *Scheduler) extendLocked(b *batch) {
	q := b.q
	if q == nil || q.closed {
		return
	}
	now := time.Now()
	for _, j := range q.jobs {
		if len(b.parts) > 0 && b.parts[len(b.parts)-1].j == j {
			continue // already taking from this job (it is the last one we took)
		}
		if j.next >= len(j.inputs) {
			continue // all its inputs are in flight
		}
		start := j.next
		for j.next < len(j.inputs) {
			n := len(j.inputs[j.next].IDs)
			if len(b.inputs) >= s.cfg.MaxBatchInputs ||
				(len(b.inputs) > 0 && b.tokens+n > s.cfg.MaxBatchTokens) {
				break
			}
			b.inputs = append(b.inputs, j.inputs[j.next])
			b.tokens += n
			j.next++
		}
		if j.next > start {
			b.parts = append(b.parts, batchPart{j: j, start: start, end: j.next})
			if !j.started {
				j.started = true
				s.metrics.ObserveQueueWait(q.name, now.Sub(j.queued).Seconds())
			}
		}
		if s.full(b) || j.next < len(j.inputs) {
			return
		}
	}
}

// run computes a batch and delivers each job its slice of the results.
func (s *Scheduler) run(b *batch) {
	q := b.q
	t0 := time.Now()
	out, err := safeRun(q.runner, b.inputs, q.normalize)
	elapsed := time.Since(t0).Seconds()
	if err == nil && len(out) != len(b.inputs) {
		err = fmt.Errorf("engine returned %d vectors for %d inputs", len(out), len(b.inputs))
	}
	if err == nil {
		s.metrics.ObserveBatch(q.name, len(b.inputs), b.tokens, elapsed)
	}

	s.mu.Lock()
	off := 0
	for _, p := range b.parts {
		j := p.j
		n := p.end - p.start
		select {
		case <-j.done: // already answered (canceled or queue closed): drop the results
			off += n
			continue
		default:
		}
		if err != nil {
			j.err = err
			q.removeLocked(j)
			close(j.done)
			off += n
			continue
		}
		copy(j.results[p.start:p.end], out[off:off+n])
		off += n
		j.finished += n
		if j.finished == len(j.inputs) {
			q.removeLocked(j)
			close(j.done)
		}
	}
	qlen := len(q.jobs)
	s.mu.Unlock()
	s.metrics.SetQueueLength(q.name, qlen)
	// Drop references so the batch's buffers do not keep request memory alive.
	clear(b.inputs)
	clear(b.parts)
}

// safeRun turns a panic in the runner into an error: one bad batch must not take the server down.
func safeRun(r Runner, inputs []Input, normalize bool) (out [][]float32, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("engine panic: %v", p)
		}
	}()
	return r.Run(inputs, normalize)
}
