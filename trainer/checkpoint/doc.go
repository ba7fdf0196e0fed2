// Package checkpoint reads and writes safetensors files: a little-endian
// uint64 header length, a JSON header (string metadata under "__metadata__"
// and, per tensor, its dtype, shape and byte range), then the raw tensor
// bytes. Files written here hold float32 ("F32") tensors in name order and are
// readable by PyTorch's safetensors; writes are atomic (temporary file renamed
// into place). It also hashes files and configs for checkpoint metadata.
package checkpoint
