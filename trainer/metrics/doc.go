// Package metrics records training metrics: one JSON object per logged step
// in metrics.jsonl (step, loss, validation loss, learning rate, gradient norm,
// step time, samples per second), rewritten atomically so the file on disk is
// always complete, and a loss-curve PNG drawn with gonum.org/v1/plot.
package metrics
