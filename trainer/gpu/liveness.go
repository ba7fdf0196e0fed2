package gpu

import "github.com/timelapse-ml/pipeline/trainer/model"

// freeLists is the liveness both executors' plans share: for each layer,
// the values that die after its forward pass in a training step (read by
// no later layer and kept for no backward), after its backward pass (the
// earliest layer whose backward reads it), and after its forward pass in
// an evaluation (no backward at all). backward[i] says whether layer i
// runs a backward pass; saves[i][j] whether that pass reads its input j.
// Persistent values are never freed.
func freeLists(net *model.Net, backward []bool, saves [][]bool, persistent []bool) (fwd, bwd, eval [][]int) {
	nl, nv := len(net.Layers), len(net.Values)
	lastFwd, lastBwd := make([]int, nv), make([]int, nv)
	for v := range lastFwd {
		lastFwd[v], lastBwd[v] = -1, nl
	}
	for i, l := range net.Layers {
		for j, v := range l.In {
			lastFwd[v] = i
			if backward[i] && saves[i][j] && i < lastBwd[v] {
				lastBwd[v] = i
			}
		}
	}
	fwd, bwd, eval = make([][]int, nl), make([][]int, nl), make([][]int, nl)
	for v := range net.Values {
		if persistent[v] {
			continue
		}
		if lastFwd[v] >= 0 {
			eval[lastFwd[v]] = append(eval[lastFwd[v]], v)
		}
		switch {
		case lastBwd[v] < nl:
			bwd[lastBwd[v]] = append(bwd[lastBwd[v]], v)
		case lastFwd[v] >= 0:
			fwd[lastFwd[v]] = append(fwd[lastFwd[v]], v)
		}
	}
	return fwd, bwd, eval
}
