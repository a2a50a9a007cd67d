package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// threadPolicies counts the threads of process pid by scheduling policy (field 41 of
// /proc/PID/task/TID/stat, counted after the parenthesised command name).
func threadPolicies(t *testing.T, pid int) map[int]int {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 39 {
			t.Fatalf("short stat line %q", s)
		}
		policy, err := strconv.Atoi(fields[38]) // field 41 of the whole line
		if err != nil {
			t.Fatalf("policy field of %q: %v", s, err)
		}
		counts[policy]++
	}
	return counts
}

// A serving embedd runs its engine pool's threads under the normal policy and every other thread
// (the Go runtime's) under SCHED_BATCH, so the runtime's wake-ups do not preempt the engine.
func TestServeThreadPolicies(t *testing.T) {
	const schedNormal, schedBatch = 0, 3
	bin := buildBinary(t)
	cfgPath := writeServeTestConfig(t, t.TempDir(), `"minilm"`)
	port := serveFreePort(t)
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--threads", "2")
	cmd.Env = append(os.Environ(), "EMBEDD_LOG_LEVEL=warn")
	// The child inherits the policy of the thread that forks it, and this test process may already
	// run SCHED_BATCH (bench-engine's tests apply it in process): fork from a thread set back to the
	// normal policy, as a server started from a shell would be.
	runtime.LockOSThread()
	err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0)
	if err == nil {
		err = cmd.Start()
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serveWaitReady(t, base)
	if status, err := servePost(base, map[string]any{"model": "minilm", "input": "a query"}); err != nil || status != 200 {
		t.Fatalf("embedding request: status %d, err %v", status, err)
	}

	wantNormal := 1 // the pool's second thread; the first is the Go thread calling the engine
	if runtime.NumCPU() < 2 {
		wantNormal = 0 // the pool is capped at the cores: no thread of its own
	}
	got := threadPolicies(t, cmd.Process.Pid)
	if got[schedNormal] != wantNormal || got[schedBatch] < 2 || len(got) > 2 {
		t.Errorf("thread policies %v (policy: threads), want %d under SCHED_NORMAL (0) and the rest under SCHED_BATCH (3)",
			got, wantNormal)
	}
}
