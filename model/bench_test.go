package model

import (
	"fmt"
	"testing"
)

// BenchmarkRealModelEmbed embeds 32 sentences of mixed length per iteration with the bundled model
// and reports tokens/s (set the level with EMBEDD_SIMD, the threads with -cpu is not used: 2 here).
func BenchmarkRealModelEmbed(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			m := loadRealB(b, Options{Threads: threads})
			texts := make([]string, 32)
			tokens := 0
			for i := range texts {
				texts[i] = fmt.Sprintf("Sentence %d of the benchmark batch, repeated to vary the length.", i)
				for r := 0; r < i%5; r++ {
					texts[i] += " More words make a longer sequence for the encoder to attend over."
				}
				tokens += len(m.Tokenizer().Encode(texts[i]).IDs)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := m.Embed(texts, true); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
