package testmodel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// RepoRoot walks up from the working directory (a test's package directory) to the directory
// holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// SharedDir is ../shared beside the repository root (published reference data and the benchmark
// corpus). It fails with a clear message when the directory is missing.
func SharedDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(root), "shared")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("shared test data directory %s is missing: check out ../shared beside the repository", dir)
	}
	return dir, nil
}

// RealModelPath is the bundled all-MiniLM-L6-v2 GGUF file.
func RealModelPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "models", "all-MiniLM-L6-v2-Q4_K_M.gguf")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("bundled model: %w", err)
	}
	return p, nil
}
