// Package plan estimates the memory a network needs before anything runs:
// weights by precision, activations (all kept, as the Gorgonia CPU graph
// does, or freed after their last use, with or without activation
// checkpointing), the attention workspace, gradients and optimizer state,
// on the device and in host memory. Everything is computed from the net
// description (trainer/model), which knows every tensor's size; the
// estimate of the CPU graph equals its measured allocation (a test), and
// the device figures use the same counts.
package plan

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Job is one network run to plan.
type Job struct {
	Net *model.Net
	// B clips of T frames of H x W (the net's input size).
	B, T, H, W int
	// Train plans a training step (forward, backward of the trainable
	// parameters, optimizer); else inference.
	Train bool
	// Trainable selects the parameters gradients are taken for (nil: the
	// temporal ones).
	Trainable func(model.ParamSpec) bool
	// WeightBytes is the size of a frozen weight element (2 for float16);
	// ActBytes of an activation element; trainable weights, their
	// gradients and optimizer moments are float32.
	WeightBytes, ActBytes int
	// KeepAll keeps every value allocated to the end (the Gorgonia CPU
	// graph); else each is freed after its last use (a planned executor).
	KeepAll bool
	// Checkpoint keeps only block boundaries for the backward pass and
	// recomputes one block at a time (planned executor, training only).
	Checkpoint bool
	// OptimizerOnDevice puts AdamW's moments on the device (else in host
	// memory, the recipe's trick: the device holds no optimizer bytes).
	OptimizerOnDevice bool
	// AttentionBudget, when > 0, caps the attention scores held at once
	// (bytes): an executor that computes attention in chunks of queries
	// (trainer/gpu's SD executor: 1 GiB of float32 scores).
	AttentionBudget int64
	// FeedForwardChunk, when > 0 (inference, planned executor), runs each
	// feed-forward chain (model.FeedForwardChains) whose 2F and F
	// intermediates exceed it over chunks of rows holding at most that many
	// bytes of them (trainer/gpu's SD executor: gpu.SDFeedForwardChunkBytes).
	FeedForwardChunk int64
	// FusedAttention: the non-temporal sequence attention layers run fused
	// (trainer/gpu's half precisions): no score matrix, 16-bit copies of
	// the operands while one runs; each saves its 16-bit output and
	// float32 row logsumexp for its backward.
	FusedAttention bool
	// CheckpointBytes, when > 0 (checkpointing), is the element size the
	// first pass packs the block boundaries into after their last forward
	// read (2: trainer/gpu's bfloat16 copies in the half precisions).
	CheckpointBytes int
	// SavedBytes, when not nil (training without checkpointing), is the
	// element size value v is packed into after its last forward read when
	// a backward pass reads it (0: kept whole, at ActBytes); the backward
	// unpacks it before its first reader (trainer/gpu's half precisions:
	// gpu.SDSavedPacking).
	SavedBytes func(v int) int
	// SavedDirect, when not nil: the backward readers of packed value v
	// take the packed copy themselves (no unpack; it lives until the last).
	SavedDirect func(v int) bool
	// FusedNormSiLU, when not nil (training without checkpointing), says
	// which layers are a GroupNorm run fused with the SiLU after it: the
	// norm's output is never stored (gpu.SDFusedNormSiLU).
	FusedNormSiLU func(i int) bool
	// KeepAttention, when > 0 (checkpointing, FusedAttention), keeps the
	// saved results of the fused layers with at least that many queries x
	// keys from the first pass to their backward (selective
	// checkpointing: gpu.DefaultCheckpointKeepAttention).
	KeepAttention int
	// Workspace is the scratch a GPU executor's libraries hold besides the
	// tensors (cuBLAS's workspace, cuDNN's algorithm-search scratch:
	// cuda.LibraryWorkspaceBytes); 0 for the CPU.
	Workspace int64
}

// Estimate is a Job's memory, in bytes.
type Estimate struct {
	// Params and TrainableParams are element counts.
	Params, TrainableParams int64
	// Device side.
	FrozenWeights, TrainableWeights int64
	Activations                     int64 // forward values (kept, or the peak live set)
	// ActivationsCheckpointed is the forward figure with activation
	// checkpointing (training, planned executor), for comparison.
	ActivationsCheckpointed int64
	ActivationGrads         int64 // gradients of values in the backward pass
	ParamGrads              int64 // gradients of the trainable parameters
	Attention               int64 // attention score workspace
	Optimizer               int64 // AdamW moments on the device
	Workspace               int64 // library scratch (Job.Workspace)
	Total                   int64
	// Host side: AdamW's moments (when not on the device) and the pinned
	// gradient buffers the device copies into.
	HostOptimizer, HostGradients int64
}

// Estimate plans j.
func Plan(j Job) (Estimate, error) {
	n := j.Net
	if n == nil || j.B < 1 || j.T < 1 || j.H < 1 || j.W < 1 || j.WeightBytes < 1 || j.ActBytes < 1 {
		return Estimate{}, fmt.Errorf("plan: bad job (batch %d, frames %d, %dx%d, weight bytes %d, activation bytes %d)",
			j.B, j.T, j.H, j.W, j.WeightBytes, j.ActBytes)
	}
	if err := n.CheckSize(j.H, j.W); err != nil {
		return Estimate{}, err
	}
	trainable := j.Trainable
	if trainable == nil {
		trainable = func(p model.ParamSpec) bool { return p.Temporal }
	}
	var e Estimate
	isTrain := map[string]bool{}
	for _, p := range n.Params {
		s := int64(p.Size())
		e.Params += s
		if j.Train && trainable(p) {
			isTrain[p.Name] = true
			e.TrainableParams += s
			e.TrainableWeights += 4 * s
		} else {
			e.FrozenWeights += int64(j.WeightBytes) * s
		}
	}
	size := func(v int) int64 { return int64(n.Size(v, j.B, j.T, j.H, j.W)) * int64(j.ActBytes) }
	var all int64
	for v := range n.Values {
		all += size(v)
	}
	if !j.Train {
		e.Activations = livePeak(n, size, chunkedFF(n, j))
		if j.KeepAll {
			e.Activations = all
		}
		e.Attention = maxAttention(n, j)
		if j.AttentionBudget > 0 {
			e.Attention = min(e.Attention, j.AttentionBudget)
		}
		if j.KeepAll {
			e.Attention = 0 // the CPU ops compute scores a row at a time
		}
		e.Workspace = j.Workspace
		e.Total = e.FrozenWeights + e.Activations + e.Attention + e.Workspace
		return e, nil
	}
	// values downstream of a trainable parameter carry a gradient
	down := make([]bool, len(n.Values))
	var downBytes int64
	for _, l := range n.Layers {
		d := false
		for _, p := range l.Params {
			d = d || isTrain[p]
		}
		for _, v := range l.In {
			d = d || down[v]
		}
		if d && !down[l.Out] {
			down[l.Out] = true
			downBytes += size(l.Out)
		}
	}
	e.ParamGrads = 4 * e.TrainableParams
	target := size(n.Output)
	scores := func(i int) int64 {
		a := attentionScores(n, i, j)
		if j.AttentionBudget > 0 {
			a = min(a, j.AttentionBudget)
		}
		return a
	}
	sc := schedule(j, scores)
	sc.ckpt = true
	e.ActivationsCheckpointed, _, _ = stepPeak(n, size, isTrain, sc)
	if j.KeepAll {
		e.Activations = all + target
		e.ActivationGrads = downBytes
	} else {
		// the executor's schedule walked value by value: the forward's
		// peak, what the backward adds on top of it, and the attention
		// scores alive at the step's peak
		sc.ckpt = j.Checkpoint
		stepSize := size
		if j.FusedNormSiLU != nil && !j.Checkpoint {
			// the fused norms' outputs are never stored
			unstored := make([]bool, len(n.Values))
			for i, l := range n.Layers {
				unstored[l.Out] = unstored[l.Out] || j.FusedNormSiLU(i)
			}
			stepSize = func(v int) int64 {
				if unstored[v] {
					return 0
				}
				return size(v)
			}
			if saved := sc.saved; saved != nil {
				sc.saved = func(v int) int64 {
					if unstored[v] {
						return 0
					}
					return saved(v)
				}
			}
		}
		fwd, step, att := stepPeak(n, stepSize, isTrain, sc)
		e.Activations, e.Attention = fwd, att
		e.ActivationGrads = step - att - fwd
		if e.ActivationGrads < 0 {
			e.Activations, e.ActivationGrads = step-att, 0
		}
	}
	if j.OptimizerOnDevice {
		e.Optimizer = 8 * e.TrainableParams
	} else {
		e.HostOptimizer = 8 * e.TrainableParams
		e.HostGradients = 4 * e.TrainableParams
	}
	e.Workspace = j.Workspace
	e.Total = e.FrozenWeights + e.TrainableWeights + e.Activations + e.ActivationGrads + e.ParamGrads + e.Attention + e.Optimizer + e.Workspace
	return e, nil
}

// livePeak is the largest sum of live values when each value is freed
// after the last layer that reads it (inputs live from the start, the
// output to the end).
func livePeak(n *model.Net, size func(int) int64, chunked map[int]ffRun) int64 {
	last := make([]int, len(n.Values))
	for i := range last {
		last[i] = -1
	}
	for i, l := range n.Layers {
		for _, v := range l.In {
			last[v] = i
		}
	}
	last[n.Output] = len(n.Layers)
	var live, peak int64
	for v := range n.Values {
		if v == n.Input || v == n.Timesteps || v == n.Context {
			live += size(v)
		}
	}
	peak = live
	for i := 0; i < len(n.Layers); i++ {
		l := n.Layers[i]
		if c, ok := chunked[i]; ok {
			// the chain's output and one chunk's intermediates at once
			out := n.Layers[c.Out].Out
			live += size(out) + c.scratch
			peak = max(peak, live)
			live -= c.scratch
			skip := map[int]bool{n.Layers[c.Proj].Out: true, n.Layers[c.GEGLU].Out: true}
			for _, li := range []int{c.Proj, c.GEGLU, c.Out} {
				for _, v := range n.Layers[li].In {
					if last[v] == li && !skip[v] {
						live -= size(v)
					}
				}
			}
			i = c.Out
			continue
		}
		live += size(l.Out)
		peak = max(peak, live)
		for _, v := range l.In {
			if last[v] == i {
				live -= size(v)
			}
		}
	}
	return peak
}

// maxAttention is the largest attention score matrix of one layer (see
// attentionScores).
func maxAttention(n *model.Net, j Job) int64 {
	var best int64
	for i := range n.Layers {
		best = max(best, attentionScores(n, i, j))
	}
	return best
}

// attentionScores is layer i's attention score matrix in bytes (0 for
// other layers): sequences x queries x keys for the SD executor's
// sequence attention, which takes one head at a time; batch x heads x
// positions x positions for the pixel model's.
func attentionScores(n *model.Net, i int, j Job) int64 {
	l := n.Layers[i]
	if l.Kind != model.SeqAttention && l.Kind != model.Attention {
		return 0
	}
	q := n.Shape(l.In[0], j.B, j.T, j.H, j.W)
	k := q
	if len(l.In) > 1 {
		k = n.Shape(l.In[1], j.B, j.T, j.H, j.W)
	}
	var s int64
	if len(q) == 3 && len(k) == 3 {
		s = int64(q[0]) * int64(q[1]) * int64(k[1])
	} else if len(q) == 4 { // pixel model attention over H*W or frames
		p := int64(q[2]) * int64(q[3])
		if l.Temporal {
			s = int64(j.B) * p * int64(max(1, l.Heads)) * int64(j.T) * int64(j.T)
		} else {
			s = int64(q[0]) * int64(max(1, l.Heads)) * p * p
		}
	}
	return s * int64(j.ActBytes)
}

// ffRun is a feed-forward chain run over chunks of rows: scratch is one
// chunk's intermediates.
type ffRun struct {
	model.FeedForwardChain
	scratch int64
}

// chunkedFF lists, by first layer, the feed-forward chains j's executor
// runs in chunks (none without j.FeedForwardChunk or for training).
func chunkedFF(n *model.Net, j Job) map[int]ffRun {
	if j.FeedForwardChunk <= 0 || j.Train || j.KeepAll {
		return nil
	}
	out := map[int]ffRun{}
	for _, c := range n.FeedForwardChains() {
		p, g := n.Layers[c.Proj], n.Layers[c.GEGLU]
		f2, f := int64(n.Values[p.Out].Channels), int64(n.Values[g.Out].Channels)
		rows := int64(n.Size(p.Out, j.B, j.T, j.H, j.W)) / f2
		per := (f2 + f) * int64(j.ActBytes)
		if rows*per <= j.FeedForwardChunk {
			continue
		}
		chunk := max(1, j.FeedForwardChunk/per)
		out[c.Proj] = ffRun{c, chunk * per}
	}
	return out
}

// schedule is the executor's memory schedule of j's training step (less
// checkpointing, which the caller sets).
func schedule(j Job, scores func(int) int64) stepSchedule {
	n := j.Net
	sc := stepSchedule{scores: scores}
	if j.FusedAttention {
		fused := make([]int64, len(n.Layers))
		pack := make([][2]int64, len(n.Layers))
		keep := make([]bool, len(n.Layers))
		for i, l := range n.Layers {
			if l.Kind != model.SeqAttention || l.Temporal || l.Heads <= 0 {
				continue
			}
			q := n.Shape(l.In[0], j.B, j.T, j.H, j.W)
			if len(q) != 3 {
				continue
			}
			k := q
			if len(l.In) > 1 {
				k = n.Shape(l.In[1], j.B, j.T, j.H, j.W)
			}
			// 16-bit operands in head-major rows of the head dim rounded up to 16
			dp := int64((q[2]/l.Heads + 15) / 16 * 16)
			rows, keys := int64(q[0])*int64(q[1])*int64(l.Heads), int64(k[0])*int64(k[1])*int64(l.Heads)
			fused[i] = 2*rows*dp + 4*rows // output, row logsumexp
			pack[i] = [2]int64{2 * dp * (rows + 2*keys), 2*dp*(2*rows+2*keys) + 4*rows}
			keep[i] = j.KeepAttention > 0 && int64(q[1])*int64(k[1]) >= int64(j.KeepAttention)
		}
		sc.fused = func(i int) int64 { return fused[i] }
		sc.keep = func(i int) bool { return keep[i] }
		sc.scratch = func(i int, bwd bool) int64 {
			if bwd {
				return pack[i][1]
			}
			return pack[i][0]
		}
	}
	if j.SavedBytes != nil {
		sc.saved = func(v int) int64 {
			b := int64(j.SavedBytes(v))
			if b <= 0 {
				return 0
			}
			e := int64(n.Size(v, j.B, j.T, j.H, j.W))
			return 4 * ((e*b + 3) / 4)
		}
		sc.direct = func(v int) bool { return j.SavedDirect != nil && j.SavedDirect(v) }
	}
	if j.CheckpointBytes > 0 {
		sc.packed = func(v int) int64 {
			e := int64(n.Size(v, j.B, j.T, j.H, j.W))
			return 4 * ((e*int64(j.CheckpointBytes) + 3) / 4)
		}
	}
	return sc
}
