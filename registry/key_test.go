package registry

import (
	"testing"

	"github.com/embedd-dev/embedd/config"
)

func TestInstanceKey(t *testing.T) {
	no := false
	base := config.Model{ID: "m", Hub: "owner/repo", File: "a.gguf", Revision: "main", Type: "embeddings"}
	for _, tc := range []struct {
		name    string
		edit    func(m *config.Model)
		reloads bool
	}{
		{"path", func(m *config.Model) { m.Path = "other.gguf" }, true},
		{"hub repo", func(m *config.Model) { m.Hub = "owner/other" }, true},
		{"hub file", func(m *config.Model) { m.File = "b.gguf" }, true},
		{"revision", func(m *config.Model) { m.Revision = "v2" }, true},
		{"sha256", func(m *config.Model) { m.SHA256 = "ab" }, true},
		{"type", func(m *config.Model) { m.Type = "rerank" }, true},
		{"max tokens", func(m *config.Model) { m.MaxTokens = 128 }, true},
		{"normalize", func(m *config.Model) { m.Normalize = &no }, true},
		{"aliases", func(m *config.Model) { m.Aliases = []string{"x"} }, false},
		{"query prefix", func(m *config.Model) { m.QueryPrefix = "query: " }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := base
			tc.edit(&changed)
			if got := instanceKey(changed) != instanceKey(base); got != tc.reloads {
				t.Fatalf("changing %s: new instance = %v, want %v", tc.name, got, tc.reloads)
			}
		})
	}
}
