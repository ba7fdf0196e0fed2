package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Saved values in 16 bits without checkpointing (the half precisions): a
// training step that keeps every value its backward pass reads (the
// inputs of the norms, activations, GEGLUs, attention layers and of the
// trainable layers' weight gradients) packs each one of at least
// SDOptions.SavedPackMin elements into a 16-bit copy after its last
// forward read and frees its float32 buffer; the backward pass widens it
// back before the first layer whose backward reads it (its float32 copy
// then lives until its last backward reader, as before). Autocast keeps
// such values in 16 bits too (its ops' outputs are 16-bit tensors).
//
// The type: bfloat16 (float32's range, 8 significant bits), except in
// the fp16 mode for values whose every backward reader rounds them to
// float16 anyway (the fused attention's q, k, v; the inputs of the
// trainable linears and temporal convolutions on 16-bit operands,
// sd_t16.go): there float16 is what the backward used before, so the
// packing changes nothing. The temporal attention's q, k and v stay
// float32 (its attention runs in float32: the trainable layers' path).

// DefaultSDSavedPackMin is SDOptions.SavedPackMin's default: the saved
// values of at least 16M elements (64 MiB in float32). At SD-1.5's full
// size (B=1, T=25, 64x64) that packs 21.8 of the 33.7 GiB of float32 values
// the backward reads and the plan's peak falls from 40.7 to 30.8 GiB; 1M
// would pack 30.4 GiB for 26.5 (a pack and unpack move 12 bytes per
// element: about 5 ms per 7 GiB packed on an H200).
const DefaultSDSavedPackMin = 1 << 24

// savedPlan is the packing schedule of a training step without
// checkpointing.
type savedPlan struct {
	typ      []cuda.DataType // per value: its 16-bit type, TypeF32 when kept whole
	packAt   [][]int         // per layer: values to pack after its forward
	unpackAt [][]int         // per layer: values to widen before its backward
}

// sdSavedTypes picks the values a training step of plan p in precision
// prec packs (TypeF32: kept whole); fused says which attention layers run
// fused.
func sdSavedTypes(p *sdPlan, prec Precision, min int, fused func(model.Layer) bool) []cuda.DataType {
	net := p.net
	out := make([]cuda.DataType, len(net.Values))
	if !prec.Half() || min < 0 {
		return out
	}
	read, whole, lossless := make([]bool, len(out)), make([]bool, len(out)), make([]bool, len(out))
	for v := range lossless {
		lossless[v] = true
	}
	for i, l := range net.Layers {
		if !p.backward[i] {
			continue
		}
		for j, v := range l.In {
			if !p.saves[i][j] {
				continue
			}
			read[v] = true
			switch {
			case l.Kind == model.SeqAttention && l.Temporal && !fused(l):
				whole[v] = true
			case l.Kind == model.SeqAttention && fused(l):
			case (l.Kind == model.Linear || l.Kind == model.TemporalConv) && t16Kind(l.Kind, prec):
			default:
				lossless[v] = false
			}
		}
	}
	for v := range out {
		if !read[v] || whole[v] || p.persistent[v] || numel(p.shapes[v]) < max(1, min) {
			continue
		}
		out[v] = cuda.TypeBF16
		if prec == FP16 && lossless[v] {
			out[v] = cuda.TypeF16
		}
	}
	return out
}

// t16Kind reports whether a trainable layer of this kind runs on 16-bit
// operands in prec (SDNet.t16, for a layer whose weight is trainable).
func t16Kind(k model.LayerKind, prec Precision) bool {
	if !temporal16 || !prec.Half() {
		return false
	}
	if k == model.Linear {
		return t16Linear[prec]
	}
	return t16Conv
}

func newSavedPlan(p *sdPlan, typ []cuda.DataType) *savedPlan {
	nl := len(p.net.Layers)
	sp := &savedPlan{typ: typ, packAt: make([][]int, nl), unpackAt: make([][]int, nl)}
	lastFwd, firstBwd := make([]int, len(typ)), make([]int, len(typ))
	for v := range lastFwd {
		lastFwd[v], firstBwd[v] = -1, -1
	}
	for i, l := range p.net.Layers {
		for j, v := range l.In {
			lastFwd[v] = i
			if p.backward[i] && p.saves[i][j] {
				firstBwd[v] = i
			}
		}
	}
	any := false
	for v, t := range typ {
		if t == cuda.TypeF32 || lastFwd[v] < 0 || firstBwd[v] < 0 {
			continue
		}
		sp.packAt[lastFwd[v]] = append(sp.packAt[lastFwd[v]], v)
		sp.unpackAt[firstBwd[v]] = append(sp.unpackAt[firstBwd[v]], v)
		any = true
	}
	if !any {
		return nil
	}
	return sp
}

// planSaved plans the packing of a training step without checkpointing
// (again when flashOff changed).
func (s *SDNet) planSaved() {
	if s.svPlanned && s.svFlash == s.flashOff {
		return
	}
	s.svPlanned, s.svFlash = true, s.flashOff
	s.sv = newSavedPlan(s.p, sdSavedTypes(s.p, s.prec, s.savedMin, s.useFlash))
}

// packSaved packs the saved values layer i's training forward read last.
func (s *SDNet) packSaved(i int) error {
	if s.sv == nil || s.eval || s.ckSeg != ckptOff {
		return nil
	}
	for _, v := range s.sv.packAt[i] {
		t := s.vals[v]
		if t == nil || s.packed[v] != nil {
			continue
		}
		h, err := s.toHalfOf(t, s.sv.typ[v])
		if err != nil {
			return fmt.Errorf("gpu: pack saved value %d: %w", v, err)
		}
		s.packed[v] = h
		t.Free()
		s.vals[v] = nil
	}
	return nil
}

// unpackSaved widens the packed values layer i's backward reads first.
func (s *SDNet) unpackSaved(i int) error {
	if s.sv == nil {
		return nil
	}
	for _, v := range s.sv.unpackAt[i] {
		h := s.packed[v]
		if h == nil || s.vals[v] != nil {
			continue
		}
		t, err := s.dev.NewTensor(s.p.shapes[v]...)
		if err != nil {
			return err
		}
		if err := s.dev.FromHalf(t, h, s.sv.typ[v]); err != nil {
			t.Free()
			return fmt.Errorf("gpu: unpack saved value %d: %w", v, err)
		}
		s.vals[v] = t
		h.Free()
		delete(s.packed, v)
	}
	return nil
}

// SDSavedPacking is the element size (2, or 0: kept whole) of each value
// of net a training step without checkpointing in precision prec packs
// after its last forward read with the options' defaults (trainer/plan's
// Job.SavedBytes); nil when it packs none.
func SDSavedPacking(net *model.Net, B, T, H, W int, trainable func(model.ParamSpec) bool, prec Precision, checkpointing bool) (func(v int) int, error) {
	if checkpointing || !prec.Half() {
		return nil, nil
	}
	p, err := newSDPlan(net, B, T, H, W, trainable)
	if err != nil {
		return nil, err
	}
	typ := sdSavedTypes(p, prec, DefaultSDSavedPackMin, (&SDNet{p: p, prec: prec}).useFlash)
	return func(v int) int {
		if typ[v] == cuda.TypeF32 {
			return 0
		}
		return 2
	}, nil
}
