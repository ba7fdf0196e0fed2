// Package optim owns the optimizer: AdamW with decoupled weight decay,
// gradient clipping by global norm and a learning-rate schedule (linear
// warm-up, then constant or cosine). Its moments live in host memory as
// float32 and are updated in place, in parallel over all cores, in fixed-size
// chunks so results are bit-identical whatever the core count. The state
// (moments and step) saves to and loads from a safetensors file so a resumed
// run continues exactly.
package optim
