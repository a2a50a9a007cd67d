package gguf

import "testing"

// BenchmarkOpenMiniLM measures opening the bundled model and reading its 30,522-token vocabulary.
func BenchmarkOpenMiniLM(b *testing.B) {
	for b.Loop() {
		f, err := Open(miniLMPath)
		if err != nil {
			b.Fatal(err)
		}
		tokens, ok := f.Strings("tokenizer.ggml.tokens")
		if !ok || len(tokens) != 30522 {
			b.Fatalf("%d tokens", len(tokens))
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
