package plan

import "github.com/timelapse-ml/pipeline/trainer/model"

// stepPeak walks a planned executor's training step (trainer/gpu's SD
// executor) value by value and returns the most bytes of values and value
// gradients alive at once: in the forward pass (fwd, with the target) and
// over the whole step (step >= fwd). A value lives until the last layer
// that reads it in the forward pass, or, when a backward pass reads it
// (model.BackwardReads), until that backward; a value's gradient from the
// first backward that reaches it to its own layer's backward, with the
// freshly computed input gradients alive beside it. With checkpointing
// the forward pass keeps only the values handed from one block to another
// (model.Net.CheckpointSegments) and the backward pass recomputes one
// block at a time: its values live only while its backward runs. An
// attention layer's scores (attn(i) bytes per chunk) are alive while it
// runs, with their gradient in its backward; step counts them where the
// peak falls (stepAttn of it). Library workspaces are counted apart.
//
// The executor's memory savings are walked too: a GEGLU's backward turns
// its input (last read there) into its gradient in place; a fused
// attention layer (sc.fused) holds no scores but 16-bit copies of its
// operands while it runs (sc.scratch) and saves its output and row
// logsumexp from its forward (with checkpointing: the recompute, or the
// first pass for sc.keep layers) to its backward; with sc.packed the
// first pass packs each block boundary into a smaller copy after its last
// forward read, and a block's recompute unpacks the inputs it reads for
// the time of its backward.
func stepPeak(n *model.Net, size func(int) int64, trainable map[string]bool, sc stepSchedule) (fwd, step, stepAttn int64) {
	ckpt, attn := sc.ckpt, sc.scores
	nl, nv := len(n.Layers), len(n.Values)
	reqGrad, backward := make([]bool, nv), make([]bool, nl)
	saves := make([][]bool, nl)
	for i, l := range n.Layers {
		w := false
		for _, p := range l.Params {
			w = w || trainable[p]
		}
		any := w
		for _, v := range l.In {
			any = any || reqGrad[v]
		}
		reqGrad[l.Out], backward[i] = any, any
		saves[i] = make([]bool, len(l.In))
		if any {
			saves[i] = model.BackwardReads(l, w)
		}
	}
	persistent := make([]bool, nv)
	for _, v := range []int{n.Input, n.Timesteps, n.Context, n.Output} {
		if v >= 0 {
			persistent[v] = true
		}
	}
	lastFwd, lastBwd := make([]int, nv), make([]int, nv)
	for v := range lastFwd {
		lastFwd[v], lastBwd[v] = -1, nl
	}
	for i, l := range n.Layers {
		for j, v := range l.In {
			lastFwd[v] = i
			if backward[i] && saves[i][j] && i < lastBwd[v] {
				lastBwd[v] = i
			}
		}
	}
	segOf, prodSeg, boundary := make([]int, nl), make([]int, nv), make([]bool, nv)
	segs := [][2]int{{0, nl}}
	if ckpt {
		segs = n.CheckpointSegments()
	}
	for si, sg := range segs {
		for i := sg[0]; i < sg[1]; i++ {
			segOf[i] = si
		}
	}
	for v := range prodSeg {
		prodSeg[v] = -1
	}
	for i, l := range n.Layers {
		prodSeg[l.Out] = segOf[i]
		for _, v := range l.In {
			if prodSeg[v] != segOf[i] {
				boundary[v] = true
			}
		}
	}

	// the boundary values each block reads from earlier ones
	segIn := make([][]int, len(segs))
	for si, sg := range segs {
		seen := map[int]bool{}
		for i := sg[0]; i < sg[1]; i++ {
			for _, v := range n.Layers[i].In {
				if prodSeg[v] >= 0 && prodSeg[v] != si && !persistent[v] && !seen[v] {
					seen[v] = true
					segIn[si] = append(segIn[si], v)
				}
			}
		}
	}

	var live, peak, peakAttn int64
	alive, galive := make([]bool, nv), make([]bool, nv)
	packed := make([]bool, nv) // a boundary's packed copy is alive
	saved := make([]bool, nl)  // a fused attention's saved results are alive
	pack := ckpt && sc.packed != nil
	// without checkpointing: the saved values packed after their last
	// forward read (sc.saved), unpacked before their first backward reader
	savedPack := !ckpt && sc.saved != nil
	firstBwd := make([]int, nv)
	for v := range firstBwd {
		firstBwd[v] = -1
	}
	for i, l := range n.Layers {
		for j, v := range l.In {
			if backward[i] && saves[i][j] {
				firstBwd[v] = i
			}
		}
	}
	add := func(v int) {
		if !alive[v] {
			alive[v] = true
			live += size(v)
		}
	}
	drop := func(v int) {
		if alive[v] && !persistent[v] {
			alive[v] = false
			live -= size(v)
		}
	}
	note := func(extra, scores int64) {
		if live+extra+scores > peak {
			peak, peakAttn = live+extra+scores, scores
		}
	}
	for v := range n.Values {
		if persistent[v] && v != n.Output {
			add(v)
		}
	}
	live += size(n.Output) // the target
	curSeg := -2           // -2: the first forward pass; >= 0: a segment's recompute and backward
	mayFree := func(v int) bool {
		if persistent[v] {
			return false
		}
		if ckpt && curSeg >= 0 {
			return prodSeg[v] == curSeg
		}
		if ckpt {
			return !boundary[v]
		}
		return true
	}
	fused := func(i int) int64 {
		if sc.fused == nil {
			return 0
		}
		return sc.fused(i)
	}
	forward := func(i int, keepSaved bool) {
		l := n.Layers[i]
		add(l.Out)
		if f := fused(i); f > 0 {
			// a kept layer's recompute widens its saved output instead
			if backward[i] && (keepSaved || (sc.keep != nil && sc.keep(i))) && !saved[i] {
				saved[i] = true
				live += f
			}
			note(0, sc.scratch(i, false))
		} else {
			note(0, attn(i))
		}
		for _, v := range l.In {
			if lastFwd[v] != i || !mayFree(v) {
				continue
			}
			if keepSaved && lastBwd[v] < nl {
				continue
			}
			drop(v)
		}
		if !keepSaved && lastFwd[l.Out] < 0 && mayFree(l.Out) {
			drop(l.Out)
		}
		if savedPack {
			for _, v := range l.In {
				if lastFwd[v] == i && lastBwd[v] < nl && alive[v] && !persistent[v] && !packed[v] {
					if b := sc.saved(v); b > 0 {
						// the 16-bit copy is written beside the value, which goes then
						live += b
						note(0, 0)
						alive[v], packed[v] = false, true
						live -= size(v)
					}
				}
			}
		}
		if !pack || keepSaved {
			return
		}
		// the first pass packs the boundaries read last here
		for _, v := range append(append([]int(nil), l.In...), l.Out) {
			if boundary[v] && !persistent[v] && alive[v] && (lastFwd[v] == i || (v == l.Out && lastFwd[v] < 0)) {
				alive[v], packed[v] = false, true
				live += sc.packed(v) - size(v)
			}
		}
	}
	backwardLayer := func(i int) {
		l := n.Layers[i]
		for _, v := range l.In {
			if savedPack && packed[v] && firstBwd[v] == i && !sc.direct(v) {
				// unpacked beside its 16-bit copy, which goes then
				alive[v], packed[v] = true, false
				live += size(v)
				note(0, 0)
				live -= sc.saved(v)
			}
		}
		var fresh int64 // input gradients computed before the output's is freed
		passed, handed := false, false
		if l.Kind == model.GEGLU && reqGrad[l.In[0]] && !galive[l.In[0]] && alive[l.In[0]] && lastBwd[l.In[0]] == i && mayFree(l.In[0]) {
			// in place: the input becomes its gradient
			v := l.In[0]
			alive[v], galive[v] = false, true
			note(0, 0)
			live -= size(l.Out)
			galive[l.Out] = false
			return
		}
		for j, v := range l.In {
			if !reqGrad[v] {
				continue
			}
			// an Add hands its output gradient on to one input
			pass := (l.Kind == model.Add || (l.Kind == model.AddChannel && j == 0)) && !passed
			passed = passed || pass
			switch {
			case !galive[v] && pass:
				galive[v], handed = true, true
			case !galive[v]:
				galive[v] = true
				live += size(v)
			case !pass:
				fresh += size(v) // computed apart, then accumulated
			}
		}
		if fused(i) > 0 {
			note(fresh, sc.scratch(i, true))
		} else {
			note(fresh, 2*attn(i))
		}
		if saved[i] {
			saved[i] = false
			live -= sc.fused(i)
		}
		if !handed {
			live -= size(l.Out)
		}
		galive[l.Out] = false
		for _, v := range l.In {
			if lastBwd[v] == i && mayFree(v) {
				drop(v)
			}
			if savedPack && packed[v] && lastBwd[v] == i && sc.direct(v) {
				// the copy its backward readers took directly
				packed[v] = false
				live -= sc.saved(v)
			}
		}
	}

	// forward pass (with checkpointing: boundary values kept, the rest
	// freed after its last read)
	for i := range n.Layers {
		forward(i, !ckpt)
	}
	fwd = peak - peakAttn
	// the loss: the output's gradient replaces the output
	live += size(n.Output)
	galive[n.Output] = true
	alive[n.Output] = false
	live -= size(n.Output)
	note(0, 0)
	if !ckpt {
		for i := nl - 1; i >= 0; i-- {
			if backward[i] {
				backwardLayer(i)
			}
		}
		return fwd, peak, peakAttn
	}
	for si := len(segs) - 1; si >= 0; si-- {
		sg := segs[si]
		any := false
		for i := sg[0]; i < sg[1]; i++ {
			any = any || backward[i]
		}
		if !any {
			continue
		}
		curSeg = si
		for i := sg[0]; i < sg[1]; i++ {
			if v := n.Layers[i].Out; !persistent[v] {
				drop(v)
				if packed[v] {
					packed[v] = false
					live -= sc.packed(v)
				}
			}
		}
		for _, v := range segIn[si] {
			if packed[v] && !alive[v] {
				alive[v] = true
				live += size(v)
			}
		}
		for i := sg[0]; i < sg[1]; i++ {
			forward(i, true)
		}
		for i := sg[1] - 1; i >= sg[0]; i-- {
			if backward[i] {
				backwardLayer(i)
			}
		}
		for i := sg[0]; i < sg[1]; i++ {
			drop(n.Layers[i].Out)
		}
		for _, v := range segIn[si] {
			if packed[v] && alive[v] {
				alive[v] = false
				live -= size(v)
			}
		}
	}
	return fwd, peak, peakAttn
}

// stepSchedule is what stepPeak walks: checkpointing or not, the
// attention scores of the unfused layers, the bytes a fused layer saves
// for its backward (0: not fused), the first-pass kept fused layers and
// the packed size of a boundary value (nil: boundaries stay whole).
type stepSchedule struct {
	ckpt   bool
	scores func(i int) int64
	fused  func(i int) int64
	// scratch is a fused layer's scratch in its forward or backward (its
	// operands packed into 16 bits)
	scratch func(i int, bwd bool) int64
	keep    func(i int) bool
	packed  func(v int) int64
	// saved is the packed size of a value saved for the backward pass
	// without checkpointing (0 or nil: kept whole); direct: its backward
	// readers take the packed copy (never unpacked)
	saved  func(v int) int64
	direct func(v int) bool
}
