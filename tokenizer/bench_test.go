package tokenizer

import (
	"strings"
	"testing"
)

// BenchmarkEncode tokenizes the benchmark corpus (English license text) one sentence per call, as
// the server does per request; MB/s is of input text.
func BenchmarkEncode(b *testing.B) {
	w := loadMiniLM(b).WithMaxTokens(512)
	texts := corpusTexts(b)
	total := 0
	for _, s := range texts {
		total += len(s)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range texts {
			w.Encode(s)
		}
	}
}

// BenchmarkEncodePair encodes query/document pairs for reranking.
func BenchmarkEncodePair(b *testing.B) {
	w := loadMiniLM(b).WithMaxTokens(512)
	texts := corpusTexts(b)
	total := 0
	for i := 1; i < len(texts); i++ {
		total += len(texts[i-1]) + len(texts[i])
	}
	b.SetBytes(int64(total))
	for b.Loop() {
		for i := 1; i < len(texts); i++ {
			w.EncodePair(texts[i-1], texts[i])
		}
	}
}

// BenchmarkEncodeMultilingual covers the non-ASCII path: accents, Cyrillic, Greek and CJK.
func BenchmarkEncodeMultilingual(b *testing.B) {
	w := loadMiniLM(b)
	text := strings.Repeat("Café naïve Ångström Съешь же ещё этих мягких булок Η γρήγορη καφέ αλεπού 我爱北京天安门 ", 20)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		w.Encode(text)
	}
}
