package shards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
)

// Latent shards: what the latents stage writes from a pack, and what the
// SD trainer reads. Each shard is an Arrow IPC file with one row per frame:
// video_id, frame (1-based), latent_mean and latent_logvar (fixed-size
// lists of C*h*w values, row-major (C, h, w): the VAE encoder's diagonal
// Gaussian before any scaling factor), and on the first row of each video
// its caption and text_embedding (a fixed-size list of 77*D values, CLIP's
// last_hidden_state; null on the video's other rows). Values are float16
// or float32 (LatentIndex.Dtype); the shapes, the dtype and the VAE's
// scaling factor are in the schema metadata and in index.json, which also
// holds every shard's size and SHA-256 and the pack's train/val split.

// LatentFormat names the latent shard layout (index.json and schema metadata).
const LatentFormat = "timelapse-latents/1"

// Latent column names, in schema order.
const (
	ColLatentMean   = "latent_mean"
	ColLatentLogVar = "latent_logvar"
	ColCaption      = "caption"
	ColTextEmbed    = "text_embedding"
)

// Latent schema metadata keys (JSON values).
const (
	MetaLatentShape = "timelapse.latent_shape" // [C, h, w]
	MetaTextShape   = "timelapse.text_shape"   // [77, D]
	MetaLatentDtype = "timelapse.dtype"        // "float16" or "float32"
	MetaLatentModel = "timelapse.latents"      // the latents params, scaling factor, tools
)

// Latent dtypes.
const (
	DtypeFloat16 = "float16"
	DtypeFloat32 = "float32"
)

// LatentIndex is a latents folder's index.json.
type LatentIndex struct {
	Format string `json:"format"`
	// Dtype is DtypeFloat16 or DtypeFloat32.
	Dtype string `json:"dtype"`
	// LatentShape is (C, h, w) of one frame's mean and log-variance;
	// TextShape (tokens, D) of a video's text embedding.
	LatentShape []int `json:"latent_shape"`
	TextShape   []int `json:"text_shape"`
	// ScalingFactor is the VAE's: a training latent is a sample of
	// N(mean, exp(logvar)) times it.
	ScalingFactor float64            `json:"scaling_factor"`
	Shards        []LatentShardInfo  `json:"shards"`
	Videos        []LatentVideoEntry `json:"videos"`
	Split         Split              `json:"split"`
}

// LatentShardInfo describes one latent shard file.
type LatentShardInfo struct {
	ShardInfo
	// Fingerprint is the hash of what the shard was encoded from (its
	// videos' frame bytes and captions, the model files, the params).
	Fingerprint string `json:"fingerprint"`
}

// LatentVideoEntry describes one encoded video.
type LatentVideoEntry struct {
	ID     string `json:"id"`
	Frames int    `json:"frames"`
	Shard  int    `json:"shard"`
	Split  string `json:"split"`
	// Caption is the text the embedding encodes; CaptionFrom says where it
	// came from ("prompt" or the caption file's path); Truncated that it
	// had more tokens than fit.
	Caption     string `json:"caption"`
	CaptionFrom string `json:"caption_from"`
	Truncated   bool   `json:"truncated,omitempty"`
}

// LatentVideo is one video's latents and text embedding, as written.
type LatentVideo struct {
	ID      string
	Caption string
	// Text holds TextShape's elements; Mean and LogVar one LatentShape
	// slice per frame, frames 1..len(Mean).
	Text         []float32
	Mean, LogVar [][]float32
}

func latentElemType(dtype string) (arrow.DataType, error) {
	switch dtype {
	case DtypeFloat16:
		return arrow.FixedWidthTypes.Float16, nil
	case DtypeFloat32:
		return arrow.PrimitiveTypes.Float32, nil
	}
	return nil, fmt.Errorf("shards: latent dtype %q (want %s or %s)", dtype, DtypeFloat16, DtypeFloat32)
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// latentFields is the latent shard schema for a dtype and shapes.
func latentFields(dtype string, latentShape, textShape []int) ([]arrow.Field, error) {
	et, err := latentElemType(dtype)
	if err != nil {
		return nil, err
	}
	if len(latentShape) != 3 || prod(latentShape) <= 0 || len(textShape) != 2 || prod(textShape) <= 0 {
		return nil, fmt.Errorf("shards: latent shape %v and text shape %v: want (C, h, w) and (tokens, D)", latentShape, textShape)
	}
	lat := arrow.FixedSizeListOfNonNullable(int32(prod(latentShape)), et)
	return []arrow.Field{
		{Name: ColVideoID, Type: arrow.BinaryTypes.String},
		{Name: ColFrame, Type: arrow.PrimitiveTypes.Int32},
		{Name: ColLatentMean, Type: lat},
		{Name: ColLatentLogVar, Type: lat},
		{Name: ColCaption, Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: ColTextEmbed, Type: arrow.FixedSizeListOfNonNullable(int32(prod(textShape)), et), Nullable: true},
	}, nil
}

func encodeLatentIndex(ix *LatentIndex) ([]byte, error) {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("shards: encode latent index: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteLatentIndex writes index.json to out.
func WriteLatentIndex(out Output, ix *LatentIndex) error {
	b, err := encodeLatentIndex(ix)
	if err != nil {
		return err
	}
	if err := out.WriteFile(IndexFile, b); err != nil {
		return fmt.Errorf("shards: write latent index: %w", err)
	}
	return nil
}

// ReadLatentIndex reads and checks dir/index.json of a latents folder.
func ReadLatentIndex(dir string) (*LatentIndex, error) {
	path := filepath.Join(dir, IndexFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shards: read latent index: %w", err)
	}
	var ix LatentIndex
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", path, err)
	}
	if err := ix.check(); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", path, err)
	}
	return &ix, nil
}

func (ix *LatentIndex) check() error {
	if ix.Format != LatentFormat {
		return fmt.Errorf("format %q, want %q", ix.Format, LatentFormat)
	}
	if _, err := latentFields(ix.Dtype, ix.LatentShape, ix.TextShape); err != nil {
		return err
	}
	for i, s := range ix.Shards {
		if err := s.check(i); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, v := range ix.Videos {
		if err := checkVideoEntry(seen, v.ID, v.Shard, v.Split, len(ix.Shards)); err != nil {
			return err
		}
	}
	return nil
}
