package stages

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/plan"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// PlanOptions configure Plan.
type PlanOptions struct {
	// GPUMemory is the card's memory in bytes the plan is judged against.
	GPUMemory int64
	// WeightBytes, when > 0, overrides the size of the SD family's frozen
	// weight elements on the GPU for every stage (4: float32, 2: float16 or
	// bfloat16); 0 takes each stage's precision param (latents: compute).
	WeightBytes int
}

// sdBytes is the size of a frozen weight and of an activation element of
// an SD stage on the GPU: its precision param (bf16 and fp16 store the
// frozen weights in 16 bits; the executor keeps activations in float32),
// unless o overrides the weights.
func sdBytes(s *pipeline.Stage, param string, o PlanOptions) (weight, act int, prec string) {
	prec = string(trainer.PrecisionFP32)
	if s.Params.Has(param) {
		prec = s.Params.String(param)
	}
	weight, act = 4, 4
	if prec == string(trainer.PrecisionBF16) || prec == string(trainer.PrecisionFP16) {
		weight = 2
	}
	if o.WeightBytes > 0 {
		weight = o.WeightBytes
	}
	return weight, act, prec
}

// sdAttentionBudget is the attention score memory trainer/gpu's SD
// executor holds at once (its SDOptions.AttentionScores default, 1<<28
// float32 values).
const sdAttentionBudget = 4 << 28

// sdWorkspace is the library scratch of the GPU executor (cuBLAS's
// workspace and cuDNN's algorithm-search scratch, held during the first
// step of each convolution shape).
var sdWorkspace = cuda.LibraryWorkspaceBytes()

// PlanPart is one line of a stage's estimate.
type PlanPart struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// StagePlan is one stage's memory estimate.
type StagePlan struct {
	Stage string `json:"stage"`
	Kind  string `json:"kind"`
	// GPU says whether the stage puts work on a GPU at all.
	GPU bool `json:"gpu"`
	// Device is the estimated peak GPU memory; Host the host memory.
	Device int64      `json:"device_bytes"`
	Host   int64      `json:"host_bytes"`
	Parts  []PlanPart `json:"parts,omitempty"`
	Fits   bool       `json:"fits"`
	// Knob is what to turn when it does not fit (or what it needs to).
	Knob  string   `json:"knob,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Plan estimates every stage of cfg, in run order: for the training and
// sampling stages the GPU memory (weights by precision, activations with
// and without checkpointing, attention workspace, gradients, optimizer
// state where it lives) and host memory, from the networks' descriptions
// (trainer/plan); the other stages use no GPU.
func Plan(cfg *pipeline.Config, o PlanOptions) ([]StagePlan, error) {
	var out []StagePlan
	for _, s := range cfg.Order() {
		sp := StagePlan{Stage: s.Name, Kind: s.Kind.Name, Fits: true}
		var err error
		switch s.Kind.Name {
		case "latents":
			err = planLatents(cfg, s, o, &sp)
		case "train_sd":
			err = planTrainSD(cfg, s, o, &sp)
		case "sample_sd":
			err = planSampleSD(cfg, s, o, &sp)
		case "pretrain", "train", "sample":
			err = planPixel(cfg, s, o, &sp)
		default:
			sp.Notes = append(sp.Notes, "CPU only (no GPU memory)")
		}
		if err != nil {
			return nil, fmt.Errorf("plan: stage %s: %w", s.Name, err)
		}
		if sp.GPU {
			sp.Fits = sp.Device <= o.GPUMemory
		}
		out = append(out, sp)
	}
	return out, nil
}

// sdNets are the three SD networks' configs: from the model files when
// they open, else SD-1.5's (noted).
type sdNets struct {
	unet model.UNetConfig
	vae  model.VAEConfig
	text model.CLIPTextConfig
	note string
}

func sd15VAE() model.VAEConfig {
	return model.VAEConfig{InChannels: 3, OutChannels: 3, BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2,
		LatentChannels: 4, NormGroups: 32, ScalingFactor: 0.18215, UseQuantConv: true, UsePostQuantConv: true}
}

func sd15Text() model.CLIPTextConfig {
	return model.CLIPTextConfig{VocabSize: 49408, HiddenSize: 768, IntermediateSize: 3072, Layers: 12, Heads: 12,
		MaxPositions: 77, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
}

func openSDNets(path string) sdNets {
	n := sdNets{unet: model.SD15UNet(9), vae: sd15VAE(), text: sd15Text()}
	m, err := weights.Open(path)
	if err != nil {
		n.note = fmt.Sprintf("model %s not readable (%v): SD-1.5 inpainting's shapes assumed", path, err)
		return n
	}
	defer m.Close()
	if c, err := model.ParseUNetConfig(m.Configs[weights.UNet]); err == nil {
		n.unet = c
	}
	if b, ok := m.Configs[weights.VAE]; ok {
		if c, err := model.ParseVAEConfig(b); err == nil {
			n.vae = c
		}
	}
	if b, ok := m.Configs[weights.TextEncoder]; ok {
		if c, err := model.ParseCLIPTextConfig(b); err == nil {
			n.text = c
		}
	}
	return n
}

// framesSize is the frame side of the frames stage s depends on (512 when
// there is none).
func framesSize(cfg *pipeline.Config, s *pipeline.Stage) int {
	for a := range cfg.Ancestors(s.Name) {
		if st := cfg.Stage(a); st != nil && st.Kind.Name == "frames" && st.Params.Has("size") {
			return st.Params.Int("size")
		}
	}
	return 512
}

// ancestorParam returns param name of the stage of kind that s depends on.
func ancestorStage(cfg *pipeline.Config, s *pipeline.Stage, kind string) *pipeline.Stage {
	for a := range cfg.Ancestors(s.Name) {
		if st := cfg.Stage(a); st != nil && st.Kind.Name == kind {
			return st
		}
	}
	return nil
}

func addParts(sp *StagePlan, e plan.Estimate, prefix string) {
	for _, p := range []PlanPart{
		{"frozen weights", e.FrozenWeights}, {"trainable weights (float32)", e.TrainableWeights},
		{"activations", e.Activations}, {"activation gradients", e.ActivationGrads},
		{"parameter gradients", e.ParamGrads}, {"attention scores", e.Attention}, {"optimizer moments", e.Optimizer},
		{"library workspaces (cuBLAS, cuDNN search)", e.Workspace},
	} {
		if p.Bytes > 0 {
			p.Name = prefix + p.Name
			sp.Parts = append(sp.Parts, p)
		}
	}
}

func planLatents(cfg *pipeline.Config, s *pipeline.Stage, o PlanOptions, sp *StagePlan) error {
	nets := openSDNets(s.Params.String("model"))
	size := framesSize(cfg, s)
	enc, err := model.DescribeVAEEncoder(nets.vae)
	if err != nil {
		return err
	}
	text, err := model.DescribeCLIPText(nets.text)
	if err != nil {
		return err
	}
	batch := s.Params.Int("batch")
	wb, ab, prec := sdBytes(s, "compute", o)
	ev, err := plan.Plan(plan.Job{Net: enc, B: batch, T: 1, H: size, W: size, WeightBytes: wb, ActBytes: ab, AttentionBudget: sdAttentionBudget, Workspace: sdWorkspace})
	if err != nil {
		return err
	}
	tv, err := plan.Plan(plan.Job{Net: text, B: 1, T: 1, H: 1, W: 1, WeightBytes: wb, ActBytes: ab, AttentionBudget: sdAttentionBudget, Workspace: sdWorkspace})
	if err != nil {
		return err
	}
	sp.GPU = true
	sp.Device = ev.Total + tv.FrozenWeights
	addParts(sp, ev, "VAE encoder ")
	sp.Parts = append(sp.Parts, PlanPart{"text encoder weights", tv.FrozenWeights})
	sp.Host = 4 * (ev.Params + tv.Params) // float32 copies as loaded
	if sp.Device > o.GPUMemory {
		sp.Knob = fmt.Sprintf("lower batch (frames per VAE call; now %d)", batch)
	}
	sp.Notes = append(sp.Notes, fmt.Sprintf("%d frames of %dx%d per VAE call, compute %s (device %s)", batch, size, size, prec, s.Params.String("device")))
	if nets.note != "" {
		sp.Notes = append(sp.Notes, nets.note)
	}
	return nil
}

func sdUNet(nets sdNets, groupNorm string) (*model.Net, error) {
	return model.DescribeUNet(nets.unet, model.UNetOptions{Pseudo3D: true, GroupNorm: groupNorm})
}

func planTrainSD(cfg *pipeline.Config, s *pipeline.Stage, o PlanOptions, sp *StagePlan) error {
	nets := openSDNets(s.Params.String("model"))
	net, err := sdUNet(nets, s.Params.String("group_norm"))
	if err != nil {
		return err
	}
	h := framesSize(cfg, s) / nets.vae.Downscale()
	B, T := s.Params.Int("batch"), s.Params.Int("frames_length")
	onDev := s.Params.String("optimizer_state") == "device"
	wb, ab, prec := sdBytes(s, "precision", o)
	// checkpointing as the stage asks, where the executor has it
	useCk := s.Params.Bool("checkpointing") && trainer.SDCheckpointingAvailable()
	gp, _ := gpu.ParsePrecision(prec)
	job := func(t int, ckpt bool) (plan.Estimate, error) {
		// the executor's schedule: fused attention, 16-bit boundaries, kept attention
		// (without checkpointing: the saved values packed into 16 bits)
		fused, cb, keep := gpu.SDStepSchedule(gp, ckpt)
		saved, direct, err := gpu.SDSavedPacking(net, B, t, h, h, func(q model.ParamSpec) bool { return q.Temporal }, gp, ckpt)
		if err != nil {
			return plan.Estimate{}, err
		}
		return plan.Plan(plan.Job{Net: net, B: B, T: t, H: h, W: h, Train: true, WeightBytes: wb,
			ActBytes: ab, Checkpoint: ckpt, OptimizerOnDevice: onDev, AttentionBudget: sdAttentionBudget, Workspace: sdWorkspace,
			FusedAttention: fused, CheckpointBytes: cb, KeepAttention: keep, SavedBytes: saved, SavedDirect: direct,
			FusedNormSiLU: gpu.SDFusedNormSiLU(net)})
	}
	plain, err := job(T, false)
	if err != nil {
		return err
	}
	ck, err := job(T, true)
	if err != nil {
		return err
	}
	full, other, otherName := plain, ck, "activations with checkpointing"
	if useCk {
		full, other, otherName = ck, plain, "activations without checkpointing"
	}
	sp.GPU = true
	sp.Device = full.Total
	addParts(sp, full, "")
	sp.Parts = append(sp.Parts, PlanPart{otherName, other.Activations})
	switch {
	case useCk:
		sp.Notes = append(sp.Notes, "precision "+prec+", gradient checkpointing (block boundaries kept, each block recomputed in the backward pass)")
	case s.Params.Bool("checkpointing"):
		sp.Notes = append(sp.Notes, "precision "+prec+"; checkpointing asked for, but this SD executor has none yet: planned without")
	default:
		sp.Notes = append(sp.Notes, "precision "+prec+", no checkpointing")
	}
	sp.Host = 4*full.Params + full.HostOptimizer + full.HostGradients
	if full.HostOptimizer > 0 {
		sp.Parts = append(sp.Parts, PlanPart{"host: AdamW moments", full.HostOptimizer}, PlanPart{"host: pinned gradients", full.HostGradients})
	}
	sp.Notes = append(sp.Notes, fmt.Sprintf("%d clip(s) x %d latents of %dx%d; %.1fM of %.1fM parameters trained", B, T, h, h,
		float64(full.TrainableParams)/1e6, float64(full.Params)/1e6), "attention scores in chunks of at most 1 GiB (trainer/gpu's SD executor); activations and their gradients as the executor's schedule keeps them (trainer/plan walks it value by value)")
	if nets.note != "" {
		sp.Notes = append(sp.Notes, nets.note)
	}
	if full.Total > o.GPUMemory {
		sp.Knob = knobFrames("frames_length", T, func(t int) int64 { e, _ := job(t, useCk); return e.Total }, o.GPUMemory, 2, "as is")
		if B > 1 {
			sp.Knob += "; or batch 1"
		}
		if onDev {
			sp.Knob += "; or optimizer_state host"
		}
		if !useCk {
			sp.Knob += fmt.Sprintf("; checkpointing would need %s", human(ck.Total))
		}
		if wb == 4 {
			sp.Knob += "; or precision bf16 (16-bit frozen weights)"
		}
	}
	return nil
}

// knobFrames names the largest frame count <= cur (down to min) whose
// estimate fits mem.
func knobFrames(param string, cur int, est func(int) int64, mem int64, lo int, how string) string {
	for t := cur - 1; t >= lo; t-- {
		if est(t) <= mem {
			return fmt.Sprintf("%s %d fits (%s, %s)", param, t, human(est(t)), how)
		}
	}
	return fmt.Sprintf("does not fit even at %s %d: a larger card, or smaller frames", param, lo)
}

func planSampleSD(cfg *pipeline.Config, s *pipeline.Stage, o PlanOptions, sp *StagePlan) error {
	tr := ancestorStage(cfg, s, "train_sd")
	if tr == nil {
		sp.Notes = append(sp.Notes, "no train_sd stage: nothing to plan")
		return nil
	}
	nets := openSDNets(tr.Params.String("model"))
	net, err := sdUNet(nets, tr.Params.String("group_norm"))
	if err != nil {
		return err
	}
	f := nets.vae.Downscale()
	h := framesSize(cfg, tr) / f
	halves := 2
	if s.Params.Float("guidance_scale") == 1 {
		halves = 1
	}
	frames, batch := s.Params.Int("frames"), s.Params.Int("decode_batch")
	dec, err := model.DescribeVAEDecoder(nets.vae)
	if err != nil {
		return err
	}
	text, err := model.DescribeCLIPText(nets.text)
	if err != nil {
		return err
	}
	wb, ab, prec := sdBytes(s, "precision", o)
	dv, err := plan.Plan(plan.Job{Net: dec, B: batch, T: 1, H: h * f, W: h * f, WeightBytes: wb, ActBytes: ab, AttentionBudget: sdAttentionBudget, Workspace: sdWorkspace})
	if err != nil {
		return err
	}
	tv, err := plan.Plan(plan.Job{Net: text, B: 1, T: 1, H: 1, W: 1, WeightBytes: wb, ActBytes: ab, AttentionBudget: sdAttentionBudget, Workspace: sdWorkspace})
	if err != nil {
		return err
	}
	unet := func(t int) (plan.Estimate, error) {
		return plan.Plan(plan.Job{Net: net, B: halves, T: t, H: h, W: h, WeightBytes: wb, ActBytes: ab, AttentionBudget: sdAttentionBudget,
			FeedForwardChunk: gpu.SDFeedForwardChunkBytes, Workspace: sdWorkspace})
	}
	uv, err := unet(frames)
	if err != nil {
		return err
	}
	// the UNet's executor is freed before the VAE decoder's is made; the
	// text encoder and the still's VAE encode run on the CPU
	peak := func(u plan.Estimate) int64 { return max(u.Total, dv.Total) }
	sp.GPU = true
	sp.Device = peak(uv)
	sp.Parts = append(sp.Parts, PlanPart{"UNet weights", uv.FrozenWeights},
		PlanPart{"UNet activations (peak)", uv.Activations}, PlanPart{"UNet attention scores", uv.Attention},
		PlanPart{"VAE decoder weights", dv.FrozenWeights},
		PlanPart{"VAE decoder activations (peak)", dv.Activations}, PlanPart{"VAE decoder attention scores", dv.Attention},
		PlanPart{"library workspaces (cuBLAS, cuDNN search)", uv.Workspace})
	sp.Host = 4*(uv.Params+dv.Params+tv.Params) + int64(frames*3*h*f*h*f)*4
	sp.Notes = append(sp.Notes, fmt.Sprintf("%d frames x %d (guidance halves) through the UNet at %dx%d, %d per VAE decode, precision %s", frames, halves, h, h, batch, prec),
		"the whole clip at once, each value freed after its last use, attention in chunks of at most 1 GiB, feed-forwards in chunks of rows (512 MiB of intermediates); then the VAE decoder (the peak is the larger of the two)")
	if nets.note != "" {
		sp.Notes = append(sp.Notes, nets.note)
	}
	if sp.Device > o.GPUMemory {
		sp.Knob = knobFrames("frames", frames, func(t int) int64 { e, _ := unet(t); return peak(e) }, o.GPUMemory, 2, "the whole clip at once")
		if halves == 2 {
			sp.Knob += "; or guidance_scale 1 (one UNet pass per step)"
		}
		if dv.Activations > uv.Activations {
			sp.Knob += "; or a lower decode_batch"
		}
	}
	return nil
}

func planPixel(cfg *pipeline.Config, s *pipeline.Stage, o PlanOptions, sp *StagePlan) error {
	preset := "tiny"
	pre := s
	if s.Kind.Name != "pretrain" {
		pre = ancestorStage(cfg, s, "pretrain")
	}
	if pre != nil && pre.Params.Has("model") {
		preset = pre.Params.String("model")
	}
	mc, err := model.Preset(preset)
	if err != nil {
		return err
	}
	p := s.Params
	var j plan.Job
	switch s.Kind.Name {
	case "pretrain":
		net, err := model.Describe(mc, false)
		if err != nil {
			return err
		}
		r := p.Int("resolution")
		j = plan.Job{Net: net, B: p.Int("batch"), T: 1, H: r, W: r, Train: true,
			Trainable: func(q model.ParamSpec) bool { return !q.Temporal }}
	case "train":
		net, err := model.Describe(mc, true)
		if err != nil {
			return err
		}
		r := p.Int("resolution")
		j = plan.Job{Net: net, B: p.Int("batch"), T: p.Int("frames_length"), H: r, W: r, Train: true}
	case "sample":
		net, err := model.Describe(mc, true)
		if err != nil {
			return err
		}
		r := p.Int("resolution")
		if r == 0 {
			if tr := ancestorStage(cfg, s, "train"); tr != nil {
				r = tr.Params.Int("resolution")
			}
		}
		j = plan.Job{Net: net, B: 1, T: p.Int("frames"), H: r, W: r}
	}
	if j.Train {
		j.OptimizerOnDevice = p.String("optimizer_state") == "device"
	}
	// the pixel GPU step keeps float32 weights and activations, all of
	// them (no liveness freeing)
	j.WeightBytes, j.ActBytes, j.KeepAll = 4, 4, true
	e, err := plan.Plan(j)
	if err != nil {
		return err
	}
	sp.GPU = true
	sp.Device = e.Total
	addParts(sp, e, "")
	sp.Host = 4*e.Params + e.HostOptimizer + e.HostGradients
	sp.Notes = append(sp.Notes, fmt.Sprintf("the %s pixel model, float32, %d x %d frames of %dx%d", preset, j.B, j.T, j.H, j.W))
	if e.Total > o.GPUMemory {
		sp.Knob = "batch"
	}
	return nil
}

// human formats bytes in GiB or MiB.
func human(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// Human formats bytes as Plan's report does.
func Human(b int64) string { return human(b) }
