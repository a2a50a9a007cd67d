package tokenizer

import (
	"math/rand/v2"
	"testing"
)

// TestDecodeHandWritten pins the WordPiece decoder's rules on the bundled vocabulary, including
// its quirks: the cleanup works token by token, so "it ' s" keeps its spaces, and a "##" piece
// first in the output keeps its prefix.
func TestDecodeHandWritten(t *testing.T) {
	w := loadMiniLM(t)
	tests := []struct {
		text        string // encoded first (with [CLS] and [SEP])
		skip, plain string // decoded with and without skipping special tokens
	}{
		{"Hello, world!", "hello, world!", "[CLS] hello, world! [SEP]"},
		{"tokenization", "tokenization", "[CLS] tokenization [SEP]"},
		{"it's fine. Really?", "it ' s fine. really?", "[CLS] it ' s fine. really? [SEP]"},
		{"", "", "[CLS] [SEP]"},
	}
	for _, tc := range tests {
		ids := w.Encode(tc.text).IDs
		for _, c := range []struct {
			skip bool
			want string
		}{{true, tc.skip}, {false, tc.plain}} {
			got, err := w.Decode(ids, c.skip)
			if err != nil || got != c.want {
				t.Errorf("Decode(%q ids, skip %v) = %q, %v; want %q", tc.text, c.skip, got, err, c.want)
			}
		}
	}
	ing, ok := w.ID("##ing")
	if !ok {
		t.Fatal("no ##ing in the vocabulary")
	}
	if got, _ := w.Decode([]int32{ing, ing}, true); got != "##inging" {
		t.Errorf("a leading continuation decodes to %q, want %q", got, "##inging")
	}
	if _, err := w.Decode([]int32{101, int32(w.VocabSize())}, true); err == nil {
		t.Error("an id outside the vocabulary decoded without an error")
	}
}

// TestReferenceDecode compares Decode with Hugging Face's WordPiece decoder (scripts/tokref) on
// encodings of random texts and on random id sequences, special tokens and leading "##" pieces
// included, with and without skipping special tokens.
func TestReferenceDecode(t *testing.T) {
	requireTokref(t)
	w := loadMiniLM(t)
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"the", "Quick", "tokenization", "it's", "don't", "do not", "we're", "I'm",
		"you've", ".", ",", "!", "?", "'", "\"", "-", "(", ")", "é", "北京", "😀", "3.14", " ", "\n"}
	var seqs [][]int32
	for range 300 {
		var text string
		for range rng.IntN(20) {
			text += pieces[rng.IntN(len(pieces))]
			if rng.IntN(2) == 0 {
				text += " "
			}
		}
		seqs = append(seqs, w.Encode(text).IDs)
	}
	sp := w.Specials()
	for range 200 {
		seq := make([]int32, rng.IntN(16))
		for i := range seq {
			switch rng.IntN(8) {
			case 0:
				seq[i] = []int32{sp.CLS, sp.SEP, sp.PAD, sp.UNK, sp.MASK}[rng.IntN(5)]
			default:
				seq[i] = rng.Int32N(int32(w.VocabSize()))
			}
		}
		seqs = append(seqs, seq)
	}
	for _, skip := range []bool{true, false} {
		want := runTokrefDecode(t, w, skip, seqs)
		fails := 0
		for i, ids := range seqs {
			got, err := w.Decode(ids, skip)
			if err != nil || got != want[i] {
				t.Errorf("skip %v, ids %v: %q, %v; Hugging Face %q", skip, ids, got, err, want[i])
				if fails++; fails > 10 {
					t.Fatal("too many differences")
				}
			}
		}
	}
}
