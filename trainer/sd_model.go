package trainer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/tokenizer"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The SD family: Stable Diffusion 1.x inpainting weights the user brings,
// inflated to the recipe's pseudo-3D video UNet, trained on the latents
// stage's shards with SD's own objective (epsilon prediction on the
// scheduler's schedule), sampled with DDIM and classifier-free guidance.

// SD family checkpoint metadata.
const (
	// FamilySD is the format/family tag of SD checkpoints and summaries.
	FamilySD = "sd"
	// MetaGroupNorm and MetaCaptionDropout record the training settings a
	// resume must share; MetaScheduler the scheduler config's JSON.
	MetaGroupNorm      = "group_norm"
	MetaCaptionDropout = "caption_dropout"
	MetaScheduler      = "scheduler"
	MetaLatentSize     = "latent_size"
)

// SchedulerFile is where a diffusers model folder keeps its scheduler.
const SchedulerFile = "scheduler/scheduler_config.json"

// sdModel is an SD model opened for training or sampling: the inflated
// UNet, the scheduler, and (when asked) the VAE, the text encoder and the
// tokenizer.
type sdModel struct {
	Path      string
	UNet      *model.UNet
	Scheduler diffusion.SchedulerConfig
	// SchedulerFound says the scheduler came from the model folder (else
	// SD-1.5's values).
	SchedulerFound bool
	Sched          *diffusion.Schedule
	// Hash identifies the model files (SHA-256 over each file's SHA-256).
	Hash string
	// Inflated says the UNet was a 2D one, inflated here (its temporal
	// layers are fresh); else the file held a pseudo-3D video UNet.
	Inflated bool
	VAE      *model.VAE
	Text     *model.CLIPText
	Tok      *tokenizer.Tokenizer
}

// sdLoad says what openSD loads besides the UNet.
type sdLoad struct {
	// GroupNorm is the pseudo-3D UNet's norm mode (per_frame when "").
	GroupNorm string
	// Tokenizer names a tokenizer folder ("": the model folder's).
	Tokenizer string
	// Text loads the tokenizer and text encoder; VAE the VAE.
	Text, VAE bool
}

// openSD opens the SD model at path: a diffusers folder (unet/, vae/,
// text_encoder/, tokenizer/, scheduler/) or an original-layout single
// file (then the tokenizer is a folder of its own). The UNet must be the
// inpainting one (9 input channels: the recipe's conditioning); a 2D UNet
// is inflated (temporal layers at identity), a pseudo-3D one loads as is.
func openSD(path string, o sdLoad) (*sdModel, error) {
	m, err := weights.Open(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if !m.Inpainting {
		return nil, fmt.Errorf("%s: the UNet takes %s input channels; the SD recipe trains the inpainting UNet "+
			"(9: noisy latent, mask, masked-image latent), e.g. stable-diffusion-inpainting", path, unetInChannels(m))
	}
	gn := o.GroupNorm
	if gn == "" && !m.Pseudo3D {
		gn = model.GroupNormPerFrame
	}
	u, err := model.LoadUNet(path, weights.Options{}, model.UNetOptions{Pseudo3D: true, GroupNorm: gn})
	if err != nil {
		return nil, err
	}
	sm := &sdModel{Path: path, UNet: u, Inflated: !m.Pseudo3D}
	if sm.Hash, err = filesHash(m.Files); err != nil {
		return nil, err
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		sm.Scheduler, sm.SchedulerFound, err = diffusion.ReadSchedulerConfig(filepath.Join(path, SchedulerFile))
		if err != nil {
			return nil, err
		}
	} else {
		sm.Scheduler = diffusion.SD15Scheduler()
	}
	if sm.Sched, err = sm.Scheduler.Schedule(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if o.VAE {
		if sm.VAE, err = model.OpenVAE(m); err != nil {
			return nil, err
		}
	}
	if o.Text {
		if sm.Text, err = model.OpenCLIPText(m); err != nil {
			return nil, err
		}
		tp := path
		if o.Tokenizer != "" {
			tp = o.Tokenizer
		}
		dir, err := tokenizer.Find(tp)
		if err != nil {
			return nil, fmt.Errorf("%w (set the tokenizer param to a tokenizer folder)", err)
		}
		if sm.Tok, err = tokenizer.Load(dir); err != nil {
			return nil, err
		}
		if d := sm.Text.Config.HiddenSize; d != u.Config.CrossAttentionDim {
			return nil, fmt.Errorf("%s: the text encoder's width %d is not the UNet's cross_attention_dim %d", path, d, u.Config.CrossAttentionDim)
		}
	}
	return sm, nil
}

func unetInChannels(m *weights.Model) string {
	c, err := model.ParseUNetConfig(m.Configs[weights.UNet])
	if err != nil {
		return "an unknown number of"
	}
	return fmt.Sprint(c.InChannels)
}

// filesHash is the SHA-256 over the sorted files' SHA-256s.
func filesHash(files []string) (string, error) {
	fs := append([]string(nil), files...)
	sort.Strings(fs)
	h := sha256.New()
	for _, f := range fs {
		s, err := checkpoint.FileHash(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", s, filepath.Base(f))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// embed returns the text encoder's last_hidden_state (77, D) of each text.
func (sm *sdModel) embed(texts ...string) ([]float32, error) {
	ids := make([][]int, len(texts))
	for i, t := range texts {
		ids[i], _ = sm.Tok.EncodeLength(t, sm.Text.Config.MaxPositions)
	}
	return sm.Text.Encode(ids)
}

// configHash identifies the video UNet's architecture and options.
func (sm *sdModel) configHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%+v\n%+v\n", sm.UNet.Config, sm.UNet.Options)
	return hex.EncodeToString(h.Sum(nil))
}
