package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Config sizes the UNet. Channel counts of level i are BaseChannels *
// ChannelMults[i]; a level halves the resolution of the one before it.
type Config struct {
	// InChannels is the number of input channels per frame: the noisy frame,
	// the conditioning frame and a mask channel (2*OutChannels + 1 with the
	// diffusion package's conditioning).
	InChannels int `yaml:"in_channels" json:"in_channels"`
	// OutChannels is the number of predicted (noise) channels, 3 for RGB.
	OutChannels int `yaml:"out_channels" json:"out_channels"`
	// BaseChannels is the width of the first level. A multiple of Groups.
	BaseChannels int `yaml:"base_channels" json:"base_channels"`
	// ChannelMults lists the width multiplier of each level.
	ChannelMults []int `yaml:"channel_mults" json:"channel_mults"`
	// BlocksPerLevel is the number of ResBlocks per level on the way down
	// (the way up has one more, as in DDPM).
	BlocksPerLevel int `yaml:"blocks_per_level" json:"blocks_per_level"`
	// AttentionLevels lists the levels (indexes into ChannelMults) with
	// spatial (and, in the video model, temporal) attention.
	AttentionLevels []int `yaml:"attention_levels" json:"attention_levels"`
	// MidAttention adds attention between the two middle ResBlocks.
	MidAttention bool `yaml:"mid_attention" json:"mid_attention"`
	// Groups is the GroupNorm group count.
	Groups int `yaml:"groups" json:"groups"`
	// Heads is the attention head count; channels per head = C / Heads.
	Heads int `yaml:"heads" json:"heads"`
	// TimeEmbedDim is the width of the timestep MLP.
	TimeEmbedDim int `yaml:"time_embed_dim" json:"time_embed_dim"`
}

// Tiny is the model of the embedded default pipeline: small enough to train
// a few hundred steps on two CPU cores in minutes at 32x32, 16 frames,
// batch 2.
func Tiny() Config {
	return Config{
		InChannels:      7,
		OutChannels:     3,
		BaseChannels:    16,
		ChannelMults:    []int{1, 2, 2},
		BlocksPerLevel:  1,
		AttentionLevels: []int{2},
		MidAttention:    true,
		Groups:          8,
		Heads:           2,
		TimeEmbedDim:    64,
	}
}

// Timelapse is the model of configs/timelapse.yaml (64x64, 25 frames):
// about 18M parameters, of which about 3.6M temporal.
func Timelapse() Config {
	return Config{
		InChannels:      7,
		OutChannels:     3,
		BaseChannels:    64,
		ChannelMults:    []int{1, 2, 3, 4},
		BlocksPerLevel:  1,
		AttentionLevels: []int{2},
		MidAttention:    true,
		Groups:          32,
		Heads:           4,
		TimeEmbedDim:    256,
	}
}

// Preset returns a named preset ("tiny", "timelapse").
func Preset(name string) (Config, error) {
	switch name {
	case "tiny":
		return Tiny(), nil
	case "timelapse":
		return Timelapse(), nil
	}
	return Config{}, fmt.Errorf("model: unknown preset %q (want tiny or timelapse)", name)
}

// Levels is the number of resolution levels.
func (c Config) Levels() int { return len(c.ChannelMults) }

// Downscale is the factor between the input size and the lowest level;
// H and W must be multiples of it.
func (c Config) Downscale() int { return 1 << max(0, c.Levels()-1) }

func (c Config) attnAt(level int) bool { return slices.Contains(c.AttentionLevels, level) }

// Validate reports every inconsistency of the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("model: "+format, a...)) }
	if c.InChannels <= 0 {
		bad("in_channels must be > 0, got %d", c.InChannels)
	}
	if c.OutChannels <= 0 {
		bad("out_channels must be > 0, got %d", c.OutChannels)
	}
	if c.Groups <= 0 {
		bad("groups must be > 0, got %d", c.Groups)
	}
	if c.BaseChannels <= 0 || (c.Groups > 0 && c.BaseChannels%c.Groups != 0) {
		bad("base_channels must be a positive multiple of groups (%d), got %d", c.Groups, c.BaseChannels)
	}
	if len(c.ChannelMults) == 0 {
		bad("channel_mults must list at least one level")
	}
	for i, m := range c.ChannelMults {
		if m <= 0 {
			bad("channel_mults[%d] must be > 0, got %d", i, m)
		}
	}
	if c.BlocksPerLevel <= 0 {
		bad("blocks_per_level must be > 0, got %d", c.BlocksPerLevel)
	}
	if c.Heads <= 0 {
		bad("heads must be > 0, got %d", c.Heads)
	}
	for _, l := range c.AttentionLevels {
		if l < 0 || l >= len(c.ChannelMults) {
			bad("attention level %d is not a level (0..%d)", l, len(c.ChannelMults)-1)
		} else if c.Heads > 0 && c.BaseChannels*c.ChannelMults[l]%c.Heads != 0 {
			bad("attention level %d has %d channels, not a multiple of heads (%d)", l, c.BaseChannels*c.ChannelMults[l], c.Heads)
		}
	}
	if c.MidAttention && c.Heads > 0 && len(c.ChannelMults) > 0 && c.BaseChannels*c.ChannelMults[len(c.ChannelMults)-1]%c.Heads != 0 {
		bad("middle attention channels are not a multiple of heads (%d)", c.Heads)
	}
	if c.TimeEmbedDim <= 0 || c.TimeEmbedDim%2 != 0 {
		bad("time_embed_dim must be a positive even number, got %d", c.TimeEmbedDim)
	}
	return errors.Join(errs...)
}

// CheckSize reports a frame size the UNet cannot process.
func (c Config) CheckSize(h, w int) error {
	d := c.Downscale()
	if h <= 0 || w <= 0 || h%d != 0 || w%d != 0 {
		return fmt.Errorf("model: frame size %dx%d must be a positive multiple of %d (2^(levels-1))", w, h, d)
	}
	return nil
}

// Hash is a stable hash of the configuration (hex SHA-256 of its canonical
// JSON), recorded in checkpoint metadata.
func (c Config) Hash() string {
	b, err := json.Marshal(c)
	if err != nil {
		// unreachable for a struct of ints and int slices
		b = []byte(fmt.Sprintf("%#v", c))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
