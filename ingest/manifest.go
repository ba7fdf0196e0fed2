package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
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
)

// Video is one row of manifest.jsonl.
type Video struct {
	// ID is stable and filesystem-safe: the sanitised file stem (at most 40
	// characters of [a-z0-9_-]) + "-" + the first 16 hex digits of SHA256.
	// Renaming a file changes the stem part; the Hash identifies content.
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
	// Rotation is the display rotation in degrees (display matrix side data or
	// the rotate tag), normalised to 0, 90, 180 or 270 (counter-clockwise).
	Rotation int `json:"rotation"`
	// FPS is the stream's average frame rate (avg_frame_rate, else r_frame_rate).
	FPS float64 `json:"fps"`
	// Codec and PixFmt are the video stream's codec and pixel format names.
	Codec  string `json:"codec"`
	PixFmt string `json:"pix_fmt"`
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

var unsafeID = regexp.MustCompile(`[^a-z0-9_-]+`)

// MakeID returns the video id of a file named name with the given hex SHA-256.
func MakeID(name, sha256hex string) string {
	stem := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	stem = unsafeID.ReplaceAllString(strings.ToLower(stem), "_")
	stem = strings.Trim(stem, "_-.")
	if len(stem) > 40 {
		stem = stem[:40]
	}
	h := sha256hex
	if len(h) > 16 {
		h = h[:16]
	}
	if stem == "" {
		return h
	}
	return stem + "-" + h
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
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ingest: read manifest: %w", err)
	}
	defer f.Close()
	var out []Video
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var v Video
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("ingest: %s:%d: %w", path, line, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ingest: read %s: %w", path, err)
	}
	return out, nil
}
