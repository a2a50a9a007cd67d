package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/embedd-dev/embedd/bindings"
	"github.com/embedd-dev/embedd/model"
)

func init() {
	register("embed", "embed texts with a GGUF model and print a JSON array of vectors", runEmbed)
}

// runEmbed implements `embedd embed --model PATH [--threads N] [--normalize] [--max-tokens N] TEXT...`;
// without TEXT arguments it reads one text per line from stdin.
func runEmbed(args []string) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("model", "", "path of the GGUF model (required)")
	threads := fs.Int("threads", 0, "compute threads (0 = one per core)")
	normalize := fs.Bool("normalize", false, "L2-normalise the vectors")
	maxTokens := fs.Int("max-tokens", 0, "truncate inputs to this many tokens (0 = the model's context)")
	stats := fs.Bool("stats", false, "print texts, tokens, time and tokens/s of the embedding step to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlagHelp(os.Stderr, fs, "usage: embedd embed --model PATH [--threads N] [--normalize] [--max-tokens N] [TEXT...]")
			return nil
		}
		return usagef("%v", err)
	}
	if *path == "" {
		return usagef("--model is required")
	}
	if *threads < 0 {
		return usagef("--threads must be >= 0")
	}
	if *maxTokens < 0 {
		return usagef("--max-tokens must be >= 0")
	}
	texts := fs.Args()
	if len(texts) == 0 {
		var err error
		if texts, err = readLines(os.Stdin); err != nil {
			return err
		}
		if len(texts) == 0 {
			return errors.New("no texts on the command line or stdin")
		}
	}
	m, err := model.Load(*path, model.Options{Kind: model.KindEmbeddings, Threads: *threads, MaxTokens: *maxTokens})
	if err != nil {
		return err
	}
	defer m.Close()
	start := time.Now()
	vecs, err := m.Embed(texts, *normalize)
	if err != nil {
		return err
	}
	if *stats {
		elapsed := time.Since(start)
		tokens := 0
		for _, t := range texts {
			tokens += len(m.Tokenizer().Encode(t).IDs)
		}
		fmt.Fprintf(os.Stderr, "embedd embed: %d texts, %d tokens in %.3f s: %.0f tokens/s (%s, %d threads)\n",
			len(texts), tokens, elapsed.Seconds(), float64(tokens)/elapsed.Seconds(), bindings.ActiveSIMD(), m.Threads())
	}
	w := bufio.NewWriter(os.Stdout)
	if err := json.NewEncoder(w).Encode(vecs); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// readLines returns the lines of r (without line endings), one text each.
func readLines(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return lines, nil
}
