package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/embedd-dev/embedd/batcher"
	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/httpapi"
	"github.com/embedd-dev/embedd/idlegc"
	"github.com/embedd-dev/embedd/metrics"
	"github.com/embedd-dev/embedd/registry"
	"github.com/embedd-dev/embedd/registry/engine"
	"github.com/embedd-dev/embedd/threadsched"
)

func init() {
	register("serve", "serve models over HTTP (OpenAI-compatible embeddings API)", runServe)
}

// serveFlags are the command-line overrides; they win over models.toml and the environment.
type serveFlags struct {
	config, host, logLevel string
	port, threads          int
	set                    map[string]bool
}

func parseServeFlags(args []string) (*serveFlags, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f := &serveFlags{set: map[string]bool{}}
	fs.StringVar(&f.config, "config", "", "models.toml to serve (default $EMBEDD_CONFIG, else ./models.toml)")
	fs.StringVar(&f.host, "host", "", "listen address (default 0.0.0.0; overrides server.host and EMBEDD_HOST)")
	fs.IntVar(&f.port, "port", 0, "listen port (default 7860; overrides server.port and EMBEDD_PORT)")
	fs.IntVar(&f.threads, "threads", 0, "compute threads, at most one per core (overrides server.threads and EMBEDD_THREADS)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides server.log_level and EMBEDD_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return nil, usagef("serve: %v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("serve: unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.config == "" {
		f.config = os.Getenv("EMBEDD_CONFIG")
	}
	if f.config == "" {
		f.config = "models.toml"
	}
	return f, nil
}

// load reads the config file with environment and flag overrides.
func (f *serveFlags) load() (*config.Config, error) {
	cfg, err := config.Load(f.config, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	overrides := []struct {
		flag, key, val string
	}{
		{"host", "server.host", f.host},
		{"port", "server.port", strconv.Itoa(f.port)},
		{"threads", "server.threads", strconv.Itoa(f.threads)},
		{"log-level", "server.log_level", f.logLevel},
	}
	for _, o := range overrides {
		if !f.set[o.flag] {
			continue
		}
		if err := cfg.Set(o.key, o.val); err != nil {
			return nil, fmt.Errorf("flag --%s: %w", o.flag, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// serveGCPercent is the server's GOGC when the environment sets none. The Go heap of a server is
// small (a few MB: tokenizer tables, requests in flight; the weights live in C memory), so Go's default
// of 100 collects every few hundred short queries, and each cycle's background marking takes CPU from
// the engine's threads on a small machine: the requests that overlap it make the latency tail. 400
// collects about four times less often for a heap that peaks a few MB higher; when the traffic has
// gaps, the cycles run in them (idleGCDelay). GOGC (and GOMEMLIMIT) in the environment still
// take precedence.
const serveGCPercent = 400

// idleGCDelay is how long the engine's queue must stay empty, with no request arriving, before
// the heap is collected (package idlegc).
const idleGCDelay = 200 * time.Millisecond

// setGCDefault applies serveGCPercent unless GOGC is set (non-empty) in the environment.
func setGCDefault(lookupEnv func(string) (string, bool)) {
	if v, ok := lookupEnv("GOGC"); ok && v != "" { // the runtime treats an empty GOGC as unset too
		return
	}
	debug.SetGCPercent(serveGCPercent)
}

// batchRuntimeThreads gives every thread but the engine pool's (keep) SCHED_BATCH, so that the Go
// runtime's wake-ups do not preempt the compute threads (package threadsched says why). A failure
// costs only latency: it is logged, not returned.
func batchRuntimeThreads(keep []int) {
	n, err := threadsched.BatchRuntimeThreads(keep)
	if err != nil {
		slog.Warn("runtime threads keep the normal scheduling policy", "err", err)
		return
	}
	slog.Debug("runtime threads set to SCHED_BATCH", "threads", n, "engine threads", len(keep))
}

func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func runServe(args []string) error {
	flags, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	cfg, err := flags.load()
	if err != nil {
		return err
	}
	var level slog.LevelVar
	level.Set(logLevel(cfg.Server.LogLevel))
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &level})))

	setGCDefault(os.LookupEnv)

	threads := cfg.EffectiveThreads()
	pool, err := bindings.NewPool(threads)
	if err != nil {
		return fmt.Errorf("thread pool: %w", err)
	}
	defer pool.Close()
	batchRuntimeThreads(pool.ThreadIDs())
	gc := idlegc.New(idleGCDelay)
	defer gc.Close()
	met := metrics.New(version, bindings.ActiveSIMD())
	met.CountIdleGC(gc.Collections)
	sched, err := batcher.New(batcher.Config{
		MaxBatchTokens: cfg.Batching.MaxBatchTokens,
		MaxBatchInputs: cfg.Batching.MaxBatchInputs,
		MaxWait:        cfg.Batching.MaxWait.Duration,
		QueueLength:    cfg.Batching.QueueLength,
		OnIdle: func() {
			pool.Park() // spinning workers would take a core from the HTTP response
			gc.Idle()
		},
	}, met)
	if err != nil {
		return err
	}
	reg := registry.New(cfg, engine.Loader(pool), sched, met)

	var reloadMu sync.Mutex
	reload := func(ctx context.Context) error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, err := flags.load()
		if err != nil {
			met.ObserveReload(false)
			return err
		}
		prev := reg.Config()
		if next.Addr() != prev.Addr() || next.EffectiveThreads() != prev.EffectiveThreads() || next.Batching != prev.Batching {
			slog.Warn("reload: listen address, threads and [batching] changes take effect only after a restart")
		}
		if err := reg.Reload(ctx, next); err != nil {
			return err
		}
		level.Set(logLevel(next.Server.LogLevel))
		return nil
	}
	api := httpapi.New(reg, met, reload)

	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr(), err)
	}
	srv := &http.Server{
		Handler:           wakeOnPost(api.Handler(), func() { pool.Wake(); gc.Busy() }),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	slog.Info("embedd serving", "addr", "http://"+ln.Addr().String(), "config", cfg.File, "threads", threads,
		"simd", bindings.ActiveSIMD(), "models", len(cfg.Models), "version", version)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Preloading runs while the server already answers liveness; readiness waits for it.
	preloadErr := make(chan error, 1)
	go func() { preloadErr <- reg.Preload(context.Background()) }()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var exitErr error
loop:
	for {
		select {
		case err := <-preloadErr:
			if err != nil {
				exitErr = fmt.Errorf("preloading models: %w", err)
				break loop
			}
			slog.Info("ready", "models", reg.Names())
		case err := <-serveErr:
			exitErr = fmt.Errorf("http server: %w", err)
			break loop
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := reload(context.Background()); err != nil {
					slog.Error("reload on SIGHUP rejected; the previous configuration keeps serving", "err", err)
				} else {
					slog.Info("reloaded on SIGHUP")
				}
				continue
			}
			slog.Info("shutting down: finishing in-flight requests", "signal", sig.String())
			break loop
		}
	}

	// Stop accepting, let every accepted request finish, then release the engine.
	api.SetDraining()
	ctx, cancel := context.WithTimeout(context.Background(), reg.Config().Server.ShutdownTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Error("shutdown did not finish in time", "err", err)
		if exitErr == nil {
			exitErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	sched.Stop()
	reg.Close()
	slog.Info("stopped")
	return exitErr
}

// wakeOnPost wakes the engine's sleeping workers as a POST (a compute request) arrives, so they
// are spinning by the time its batch runs instead of waking up during it (the batcher parks them
// whenever its queue empties).
func wakeOnPost(h http.Handler, wake func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			wake()
		}
		h.ServeHTTP(w, r)
	})
}
