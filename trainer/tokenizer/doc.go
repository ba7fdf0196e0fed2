// Package tokenizer owns the CLIP tokenizer of Stable Diffusion: byte-level
// BPE over a model folder's tokenizer/vocab.json and merges.txt, applied as
// transformers' CLIPTokenizer applies it without ftfy: the BERT basic
// cleaning (control characters dropped, whitespace collapsed, CJK ideographs
// spaced, NFC, Python's lower-casing), CLIP's pre-tokenizer pattern, the
// <|startoftext|> and <|endoftext|> special tokens, and padding or truncation
// to the text encoder's 77 positions (the end token is always kept).
package tokenizer
