package model

// layerFLOPs returns the forward FLOPs of one layer (2 per multiply-add;
// element-wise layers are not counted) for N = B*T frames of H x W.
func (n *Net) layerFLOPs(l Layer, B, T, H, W int) int64 {
	N := int64(B * T)
	out := n.Values[l.Out]
	switch l.Kind {
	case Conv2D, TemporalConv:
		in := n.Values[l.In[0]]
		ps := paramShape(n, l.Params[0])
		taps := int64(1)
		for _, d := range ps[2:] {
			taps *= int64(d)
		}
		hw := int64((H / out.Scale) * (W / out.Scale))
		return 2 * N * int64(out.Channels) * hw * int64(in.Channels) * taps
	case Linear:
		rows := int64(n.Size(l.In[0], B, T, H, W) / n.Values[l.In[0]].Channels)
		return 2 * rows * int64(n.Values[l.In[0]].Channels) * int64(out.Channels)
	case SeqAttention:
		q, k := n.Shape(l.In[0], B, T, H, W), n.Shape(l.In[1], B, T, H, W)
		return 4 * int64(q[0]) * int64(q[1]) * int64(k[1]) * int64(q[2])
	case Attention:
		hw := int64((H / out.Scale) * (W / out.Scale))
		c := int64(out.Channels)
		if l.Temporal {
			// B*HW sequences of T tokens
			return 4 * int64(B) * hw * int64(T) * int64(T) * c
		}
		return 4 * N * hw * hw * c
	}
	return 0
}

func paramShape(n *Net, name string) []int {
	for _, p := range n.Params {
		if p.Name == name {
			return p.Shape
		}
	}
	return nil
}

// FLOPs is the forward cost of the net for a (B, T, H, W) batch.
func (n *Net) FLOPs(B, T, H, W int) int64 {
	var f int64
	for _, l := range n.Layers {
		f += n.layerFLOPs(l, B, T, H, W)
	}
	return f
}

// BackwardFLOPs estimates the backward cost when gradients are taken for
// the parameters trainable selects: data gradients of every layer whose
// input depends on a trainable parameter, and weight gradients of every
// layer with a trainable weight (each about the forward cost; attention's
// backward recomputes the scores, about twice its forward cost plus one).
func (n *Net) BackwardFLOPs(B, T, H, W int, trainable func(*Param) bool) int64 {
	req := make([]bool, len(n.Values))
	spec := map[string]ParamSpec{}
	for _, p := range n.Params {
		spec[p.Name] = p
	}
	var f int64
	for _, l := range n.Layers {
		lf := n.layerFLOPs(l, B, T, H, W)
		dataGrad := false
		for _, v := range l.In {
			dataGrad = dataGrad || req[v]
		}
		weightGrad := false
		for _, name := range l.Params {
			weightGrad = weightGrad || trainable(&Param{ParamSpec: spec[name]})
		}
		if l.Kind == Attention && dataGrad {
			f += 3 * lf
		} else {
			if dataGrad {
				f += lf
			}
			if weightGrad {
				f += lf
			}
		}
		req[l.Out] = dataGrad || weightGrad
	}
	return f
}
