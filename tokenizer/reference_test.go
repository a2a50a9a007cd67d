package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The live differential tests run Hugging Face's tokenizers (scripts/tokref) on inputs made here and
// compare every id, type id and offset. They skip when the reference is not installed, except in
// CI (CI=true), where they fail.

// TestReferenceAllCodePoints tokenizes every code point of planes 0 and 1 (and a sample of the
// rest; TestUnicodeTables checks every code point's treatment one by one) twice: inside a word, which shows whether it is dropped, splits words or stands alone, and
// as a word by itself, which shows what normalization makes of it.
func TestReferenceAllCodePoints(t *testing.T) {
	requireTokref(t)
	w := loadMiniLM(t)
	var inputs []refInput
	var b strings.Builder
	n := 0
	flush := func() {
		if b.Len() > 0 {
			inputs = append(inputs, refInput{Text: b.String()})
			b.Reset()
		}
	}
	for r := rune(0); r <= 0x10FFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		plane := r >> 16
		if plane >= 2 && r%97 != 0 {
			continue
		}
		b.WriteByte('a')
		b.WriteRune(r)
		b.WriteString("b ")
		b.WriteRune(r)
		b.WriteByte(' ')
		if n++; n%256 == 0 {
			flush()
		}
	}
	flush()
	for _, o := range []refOptions{{true, "auto", true, 0}, {false, "auto", true, 0}} {
		compareWithReference(t, w, o, inputs)
	}
}

// TestReferenceRandom compares random mixtures of the characters that matter, as single texts and
// as pairs, with and without truncation.
func TestReferenceRandom(t *testing.T) {
	requireTokref(t)
	w := loadMiniLM(t)
	pieces := []string{
		"the", "The", "QUICK", "brown", "fox", "jumps", "unbelievable", "tokenization", "embedd",
		"é", "e\u0301", "Ä", "ß", "İ", "ı", "Σ", "ς", "ﬁ", "Å", "ñ", "ø", "Ł",
		"我", "爱", "北京", "\U00020000", "豈", "カ", "ひ", "한", "ก", "ع", "ह", "ि", "्",
		" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b",
		".", ",", "!", "?", "'", "\"", "-", "—", "…", "«", "»", "“", "”", "(", ")", "[", "]", "{", "}",
		"$", "+", "<", "=", ">", "^", "`", "|", "~", "@", "#", "%", "&", "*", "/", "\\", "_", ":", ";",
		"\u0000", "\u0001", "\u007f", "\u200b", "\u200d", "\u00ad", "\ufeff", "\ufffd", "\ue000",
		"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[CLS", "[unused1]",
		"😀", "👍🏽", "❤️", "0", "42", "3.14", "x²", "½", "①",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randomText := func(maxPieces int) string {
		var b strings.Builder
		for range rng.IntN(maxPieces + 1) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	var inputs []refInput
	for range 1500 {
		inputs = append(inputs, refInput{Text: randomText(40)})
	}
	for range 500 {
		inputs = append(inputs, refInput{Pair: &[2]string{randomText(30), randomText(60)}})
	}
	for _, o := range []refOptions{
		{true, "auto", true, 0}, {true, "auto", true, 24}, {false, "auto", true, 0},
		{true, "false", false, 0}, {false, "true", true, 16},
	} {
		compareWithReference(t, w, o, inputs)
	}
}

func compareWithReference(t *testing.T, w *WordPiece, o refOptions, inputs []refInput) {
	t.Helper()
	cw, err := build(vocabStrings(w), w.specials, o.options())
	if err != nil {
		t.Fatal(err)
	}
	want := runTokref(t, w, o, inputs)
	fails := 0
	for i, in := range inputs {
		if diff := compareEncoding(encodeInput(cw, in), want[i]); diff != "" {
			t.Errorf("options %+v, input %d %s: %s", o, i, in, diff)
			if fails++; fails > 10 {
				t.Fatal("too many differences")
			}
		}
	}
}
