package threadsched

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxPasses bounds the re-reads of /proc/self/task: the runtime may start a thread (as a copy of
// one not yet changed) while a pass runs, and the next pass catches it.
const maxPasses = 5

func batchRuntimeThreads(keep []int) (int, error) {
	self, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0, fmt.Errorf("threadsched: policy of the calling thread: %w", err)
	}
	if self.Policy != unix.SCHED_NORMAL {
		return 0, nil
	}
	skip := make(map[int]bool, len(keep))
	for _, id := range keep {
		skip[id] = true
	}
	changed := 0
	for pass := 0; pass < maxPasses; pass++ {
		ids, err := threadIDs()
		if err != nil {
			return changed, err
		}
		n := 0
		for _, id := range ids {
			if skip[id] {
				continue
			}
			ok, err := setBatch(id)
			if err != nil {
				return changed, err
			}
			skip[id] = true
			if ok {
				n++
			}
		}
		changed += n
		if n == 0 {
			break
		}
	}
	return changed, nil
}

// setBatch moves thread id from SCHED_NORMAL to SCHED_BATCH, keeping its nice value; threads under
// any other policy are left alone. A thread that has exited meanwhile is not an error.
func setBatch(id int) (bool, error) {
	attr, err := unix.SchedGetAttr(id, 0)
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("threadsched: policy of thread %d: %w", id, err)
	}
	if attr.Policy != unix.SCHED_NORMAL {
		return false, nil
	}
	attr.Policy = unix.SCHED_BATCH
	attr.Flags &= unix.SCHED_FLAG_RESET_ON_FORK // an unprivileged thread may not clear it
	if err := unix.SchedSetAttr(id, attr, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, fmt.Errorf("threadsched: SCHED_BATCH for thread %d: %w", id, err)
	}
	return true, nil
}

// threadIDs lists the threads of this process.
func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("threadsched: listing threads: %w", err)
	}
	ids := make([]int, 0, len(ents))
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
