// Package threadsched keeps the Go runtime's threads from preempting the engine's compute threads.
//
// While the engine computes, its threads occupy every core. Each time one of the runtime's threads
// wakes (sysmon polls every 20 µs for a millisecond after a cgo call begins, idle Ms spin up to
// look for work, the poller answers the network), Linux's default policy lets it preempt a
// compute thread at once, and the whole matrix product then waits at its next barrier for the
// thread that was pushed aside. Counted on a 2-vCPU server answering short queries one at a time:
// about five such preemptions per request. SCHED_BATCH is the normal policy at the same nice value
// minus exactly that: a batch thread that wakes runs on an idle core at once, but on a busy one
// only at the next tick or when the running thread blocks or yields. Its share of CPU time is
// unchanged, and an unprivileged process may switch a thread between the two policies either way.
package threadsched

// BatchRuntimeThreads gives SCHED_BATCH to every thread of the process except those in keep (the
// engine pool's threads, which keep the normal policy) and returns how many it changed. Threads
// the runtime starts later inherit the policy of the thread that starts them, so call it once,
// early. It does nothing where the process does not run under the normal policy (an operator's
// chrt is respected) and on systems other than Linux.
func BatchRuntimeThreads(keep []int) (int, error) { return batchRuntimeThreads(keep) }
