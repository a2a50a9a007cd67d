package tokenizer

import (
	"fmt"
	"strings"
)

// Decode turns ids back into text the way Hugging Face's tokenizers decode a WordPiece vocabulary
// (what text-embeddings-inference's /decode answers): every token after the first is preceded by
// a space unless it continues a word ("##ing" joins its word without the prefix), and each token
// then has cleanupSpaces applied on its own. skipSpecial drops [CLS], [SEP], [PAD], [MASK] and
// [UNK], the tokens a BERT tokenizer marks special. An id outside the vocabulary is an error.
func (w *WordPiece) Decode(ids []int32, skipSpecial bool) (string, error) {
	var b strings.Builder
	first := true
	for _, id := range ids {
		tok, ok := w.Token(id)
		if !ok {
			return "", fmt.Errorf("decode: token id %d is outside the vocabulary [0, %d)", id, w.tokens.len())
		}
		if skipSpecial && w.isSpecial(id) {
			continue
		}
		if !first {
			if rest, ok := strings.CutPrefix(tok, continuationPrefix); ok {
				tok = rest
			} else {
				tok = " " + tok
			}
		}
		first = false
		b.WriteString(cleanupSpaces(tok))
	}
	return b.String(), nil
}

func (w *WordPiece) isSpecial(id int32) bool {
	sp := w.specials
	return id == sp.CLS || id == sp.SEP || id == sp.PAD || id == sp.MASK || id == sp.UNK
}

// spaceCleanup undoes the spaces BERT's pre-tokenization put before punctuation and clitics, as
// tokenizers' WordPiece decoder (cleanup = true) does, including its " do not" → " don't": each
// pair replaces all occurrences, in this order.
var spaceCleanup = [][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}

// cleanupSpaces applies spaceCleanup to one decoded token (with its leading space).
func cleanupSpaces(tok string) string {
	for _, r := range spaceCleanup {
		tok = strings.ReplaceAll(tok, r[0], r[1])
	}
	return tok
}
