package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/timelapse-ml/pipeline/internal/jsonl"
)

// ManifestFile is the name of the manifest in an ingest output folder.
const ManifestFile = "manifest.jsonl"

// Video statuses.
const (
	StatusOK          = "ok"
	StatusQuarantined = "quarantined"
)

// Quarantine reasons (Video.Reason).
const (
	ReasonEmptyFile     = "empty_file"      // the file has zero bytes
	ReasonProbeFailed   = "probe_failed"    // ffprobe could not read it
	ReasonNoVideoStream = "no_video_stream" // no video stream (audio only, ...)
	ReasonTooShort      = "too_short"       // shorter than the trims plus one output frame
	ReasonDuplicate     = "duplicate"       // same content as another video (the first by path is kept)
	ReasonUnsupported   = "unsupported"     // ffmpeg has no decoder for its codec
	ReasonTruncated     = "truncated"       // the index promises frames the file no longer holds
)

// Video is one row of manifest.jsonl.
type Video struct {
	// ID is stable and filesystem-safe: the first 16 hex digits of SHA256
	// (see MakeID). Duplicates share an ID; only the first is ok.
	ID string `json:"id"`
	// Path is the absolute path of the source file.
	Path string `json:"path"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the hex SHA-256 of the file's content.
	SHA256 string `json:"sha256"`
	// Duration is the container duration in seconds (ffprobe format.duration,
	// or the video stream's when the format has none).
	Duration float64 `json:"duration"`
	// Width and Height are the coded size of the video stream (before rotation).
	Width  int `json:"width"`
	Height int `json:"height"`
	// Rotation is the display rotation in degrees in [0, 360), as ffprobe
	// prints the display matrix (see ProbeStream.Rotation). ffmpeg applies it
	// when decoding (autorotate), so frames come out upright.
	Rotation int `json:"rotation"`
	// FPS is the stream's average frame rate (avg_frame_rate, else r_frame_rate).
	FPS float64 `json:"fps"`
	// Codec and PixFmt are the video stream's codec and pixel format names.
	Codec  string `json:"codec"`
	PixFmt string `json:"pix_fmt"`
	// ColorRange is the video stream's colour range as ffprobe names it
	// ("tv", "pc", or "" when unknown).
	ColorRange string `json:"color_range,omitempty"`
	// Streams is the number of streams in the container.
	Streams int `json:"streams"`
	// Status is StatusOK or StatusQuarantined.
	Status string `json:"status"`
	// Reason is one of the Reason constants when quarantined.
	Reason string `json:"reason,omitempty"`
	// Message is the tool's message (ffprobe/ffmpeg stderr) or an explanation.
	Message string `json:"message,omitempty"`
}

// OK reports whether the video is usable.
func (v Video) OK() bool { return v.Status == StatusOK }

// DisplaySize returns the width and height after display rotation.
func (v Video) DisplaySize() (w, h int) {
	if v.Rotation == 90 || v.Rotation == 270 {
		return v.Height, v.Width
	}
	return v.Width, v.Height
}

// MakeID returns the video id of content with the given hex SHA-256: its
// first 16 hex digits. The id depends on the content only, so a renamed or
// moved file keeps its id (and its cached frames), and it is safe in file
// names on every system.
func MakeID(sha256hex string) string {
	if len(sha256hex) > 16 {
		return sha256hex[:16]
	}
	return sha256hex
}

// EncodeManifest returns the manifest.jsonl bytes for videos, sorted by path.
func EncodeManifest(videos []Video) ([]byte, error) {
	vs := append([]Video(nil), videos...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Path < vs[j].Path })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("ingest: encode manifest row %s: %w", v.Path, err)
		}
	}
	return buf.Bytes(), nil
}

// ReadManifest reads a manifest.jsonl file.
func ReadManifest(path string) ([]Video, error) {
	out, err := jsonl.Read[Video](path)
	if err != nil {
		return nil, fmt.Errorf("ingest: read manifest: %w", err)
	}
	return out, nil
}
