package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/embedd-dev/embedd/hub"
)

func init() {
	register("pull", "download a GGUF file from the Hugging Face Hub into the cache and print its path", runPull)
}

const pullUsage = "usage: embedd pull REPO FILE [--revision R] [--sha256 H]\n" +
	"  e.g. embedd pull owner/model-GGUF model-q8_0.gguf\n" +
	"environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (gated or private repositories),\n" +
	"  EMBEDD_CACHE (default $XDG_CACHE_HOME/embedd or ~/.cache/embedd)"

// runPull implements `embedd pull`; Ctrl-C stops the download and keeps the partial file, which
// the next pull resumes.
func runPull(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return pull(ctx, args, os.LookupEnv, os.Stdout, os.Stderr, isTerminal(os.Stderr))
}

// pull parses the arguments (flags may come before or after REPO and FILE), downloads the file and
// prints its local path to stdout. Progress goes to stderr: a self-updating line on a terminal,
// otherwise a line every few seconds.
func pull(ctx context.Context, args []string, lookup hub.LookupEnv, stdout, stderr io.Writer, terminal bool) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	revision := fs.String("revision", "main", "branch, tag or commit of the repository")
	sum := fs.String("sha256", "", "expected SHA-256 of the file (hex); checked after download and on cache hits")
	quiet := fs.Bool("quiet", false, "no progress output")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printFlagHelp(stderr, fs, pullUsage)
				return nil
			}
			return usagef("%v\n%s", err, pullUsage)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if len(positional) != 2 {
		return usagef("want REPO and FILE, got %d arguments\n%s", len(positional), pullUsage)
	}
	req := hub.Request{Repo: positional[0], File: positional[1], Revision: *revision, SHA256: *sum}
	if err := hub.ValidateRepo(req.Repo); err != nil {
		return usagef("%v", err)
	}
	if err := hub.ValidateFile(req.File); err != nil {
		return usagef("%v", err)
	}
	if err := hub.ValidateRevision(req.Revision); err != nil {
		return usagef("%v", err)
	}
	if req.SHA256 != "" {
		if _, err := hub.NormalizeSHA256(req.SHA256); err != nil {
			return usagef("--sha256: %v", err)
		}
	}

	c, err := hub.NewClient(lookup)
	if err != nil {
		return err
	}
	var p progressPrinter
	if !*quiet {
		p = progressPrinter{w: stderr, terminal: terminal}
		c.Progress = p.update
	}
	path, err := c.Download(ctx, req)
	p.finish()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// progressPrinter throttles download progress to stderr.
type progressPrinter struct {
	w        io.Writer
	terminal bool
	last     time.Time
	started  bool
}

func (p *progressPrinter) update(pr hub.Progress) {
	if p.w == nil {
		return
	}
	now := time.Now()
	complete := pr.Total >= 0 && pr.Done == pr.Total
	interval := 5 * time.Second
	if p.terminal {
		interval = 200 * time.Millisecond
	}
	if p.started && !complete && now.Sub(p.last) < interval {
		return
	}
	p.last, p.started = now, true
	line := fmt.Sprintf("%s/%s: %s", pr.Repo, pr.File, mib(pr.Done))
	if pr.Total > 0 {
		line += fmt.Sprintf(" / %s (%d%%)", mib(pr.Total), pr.Done*100/pr.Total)
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// finish ends a terminal's progress line.
func (p *progressPrinter) finish() {
	if p.w != nil && p.terminal && p.started {
		fmt.Fprintln(p.w)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
