package frames

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	"github.com/timelapse-ml/pipeline/internal/jsonl"
)

// IndexFile is the name of the index in a frames output folder.
const IndexFile = "index.jsonl"

// Video statuses in the index.
const (
	StatusOK      = "ok"
	StatusDamaged = "damaged"
)

// Video is one row of index.jsonl: the frames extracted from one source video.
// Its frames are FramePath(dir, ID, 1..Frames).
type Video struct {
	// ID is the ingest video id; the frames live in the folder <dir>/<ID>.
	ID string `json:"id"`
	// Source is the absolute path of the source video.
	Source string `json:"source"`
	// Frames is the number of JPEG files, numbered 1..Frames.
	Frames int `json:"frames"`
	// FPS is the output frame rate (the recipe's -r).
	FPS float64 `json:"fps"`
	// TrimHead is the seconds skipped at the start of the source.
	TrimHead float64 `json:"trim_head"`
	// DropFirst tells that the first output frame (at TrimHead) was deleted.
	DropFirst bool `json:"drop_first"`
	// Size is the width and height of every frame, in pixels.
	Size int `json:"size"`
	// Status is StatusOK or StatusDamaged.
	Status string `json:"status"`
	// Message explains a damaged status (ffmpeg's stderr, frame counts).
	Message string `json:"message,omitempty"`
	// FFmpeg is the first line of `ffmpeg -version` of the ffmpeg that made
	// the frames (which frames -r keeps can change between versions).
	FFmpeg string `json:"ffmpeg,omitempty"`
}

// PTS returns the time, in seconds in the source video, of frame i (1-based).
func (v Video) PTS(i int) float64 {
	k := i - 1
	if v.DropFirst {
		k++
	}
	if v.FPS <= 0 {
		return v.TrimHead
	}
	return v.TrimHead + float64(k)/v.FPS
}

// FramePath returns the path of frame i (1-based) of video id under dir.
func FramePath(dir, id string, i int) string {
	return filepath.Join(dir, id, FrameName(i))
}

// FrameName returns the file name of frame i (1-based): 000001.jpg.
func FrameName(i int) string { return fmt.Sprintf("%06d.jpg", i) }

// EncodeIndex returns the index.jsonl bytes for videos, sorted by ID.
func EncodeIndex(videos []Video) ([]byte, error) {
	vs := append([]Video(nil), videos...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("frames: encode index row %s: %w", v.ID, err)
		}
	}
	return buf.Bytes(), nil
}

// WriteIndex writes dir/index.jsonl through write (the stage's atomic
// r.WriteFile, relative to dir), or atomically by itself when write is nil.
func WriteIndex(dir string, videos []Video, write func(rel string, data []byte) error) error {
	data, err := EncodeIndex(videos)
	if err != nil {
		return err
	}
	if write != nil {
		return write(IndexFile, data)
	}
	return atomicfile.WriteFile(filepath.Join(dir, IndexFile), data)
}

// ReadIndex reads dir/index.jsonl.
func ReadIndex(dir string) ([]Video, error) {
	out, err := jsonl.Read[Video](filepath.Join(dir, IndexFile))
	if err != nil {
		return nil, fmt.Errorf("frames: read index: %w", err)
	}
	return out, nil
}
