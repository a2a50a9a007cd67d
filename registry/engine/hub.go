package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/embedd-dev/embedd/config"
	"github.com/embedd-dev/embedd/hub"
)

// modelFile returns the local GGUF file of a model: its path, or for a hub source the cached
// download, fetched now if needed (HF_ENDPOINT, HF_TOKEN and EMBEDD_CACHE are read at this point,
// so a load error can be fixed without a restart).
func modelFile(spec config.Model) (string, error) {
	if !spec.FromHub() {
		return spec.Path, nil
	}
	c, err := hub.NewClient(os.LookupEnv)
	if err != nil {
		return "", err
	}
	// The server logs progress at debug level only, at most every few seconds.
	var last time.Time
	c.Progress = func(p hub.Progress) {
		if now := time.Now(); now.Sub(last) >= 5*time.Second || (p.Total >= 0 && p.Done == p.Total) {
			last = now
			slog.Debug("downloading model", "model", spec.ID, "hub", p.Repo, "file", p.File, "bytes", p.Done, "total", p.Total)
		}
	}
	path, err := c.Download(context.Background(), hub.Request{
		Repo: spec.Hub, File: spec.File, Revision: spec.Revision, SHA256: spec.SHA256,
	})
	if err != nil {
		return "", fmt.Errorf("fetching from the hub: %w", err)
	}
	slog.Info("model file ready", "model", spec.ID, "hub", spec.Hub, "file", spec.File, "path", path)
	return path, nil
}
