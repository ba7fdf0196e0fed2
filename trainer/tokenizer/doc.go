// Package tokenizer owns the CLIP tokenizer of Stable Diffusion: byte-level
// BPE over a model folder's tokenizer/vocab.json and merges.txt, applied as
// transformers 5's CLIPTokenizer (the tokenizers-library pipeline) applies
// it: the special tokens <|startoftext|> and <|endoftext|> split from the
// raw text, then NFC, white space collapsed, lower-casing, CLIP's
// pre-tokenizer pattern and the byte-level split, BPE with "</w>" word
// ends, and padding or truncation to the text encoder's 77 positions (the
// end token is always kept).
package tokenizer
