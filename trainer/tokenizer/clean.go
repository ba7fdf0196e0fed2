package tokenizer

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalize is the normalizer of transformers 5's CLIPTokenizer (the
// tokenizers-library pipeline): NFC, every run of Unicode white space
// (the White_Space property, as the tokenizers library's regex \s) to one
// ASCII space, then lower-casing character by character with the full
// lower-case mapping (U+0130 becomes "i" and a combining dot; a capital
// sigma always becomes σ: there is no final-sigma rule per character).
func normalize(text string) string {
	text = norm.NFC.String(text)
	var b strings.Builder
	b.Grow(len(text))
	space := false
	for _, r := range text {
		if unicode.Is(unicode.White_Space, r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		if r == '\u0130' {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
