package synth

import (
	"context"
	"errors"
	"path/filepath"
)

// FaultKind names what a fault file is.
type FaultKind string

// The fault files. All but FaultOddName must be quarantined by ingest.
const (
	FaultEmpty         FaultKind = "empty"          // zero bytes
	FaultTruncated     FaultKind = "truncated"      // a video cut short; its index (moov, at the end) is lost
	FaultTruncatedFast FaultKind = "truncated_fast" // faststart video cut short: index intact, data missing
	FaultTooShort      FaultKind = "too_short"      // a valid clip shorter than both trims (1.5 s)
	FaultAudioOnly     FaultKind = "audio_only"     // no video stream
	FaultNotVideo      FaultKind = "not_video"      // a text file with a video extension
	FaultOddName       FaultKind = "odd_name"       // a GOOD video with spaces and non-ASCII in its name
)

// Fault is one fault file: its file name, what it is, and whether ingest
// should accept it (only the oddly named good video).
type Fault struct {
	Name   string
	Kind   FaultKind
	What   string
	Accept bool
}

// Faults lists the fault files WriteFaults writes for spec, in a fixed order.
// Names start with "fault-" and name the kind, except the oddly named good
// video, whose name is "good clip – été 日本.mp4" (or .webm).
func Faults(spec Spec) []Fault {
	ext := spec.Ext()
	return []Fault{
		{Name: "fault-empty" + ext, Kind: FaultEmpty, What: "zero-byte file"},
		{Name: "fault-truncated" + ext, Kind: FaultTruncated, What: "video truncated to 40%; index at the end is lost"},
		{Name: "fault-truncated-faststart.mp4", Kind: FaultTruncatedFast, What: "faststart H.264 video truncated to 40%: index intact, frames missing"},
		{Name: "fault-too-short" + ext, Kind: FaultTooShort, What: "valid 1.5 s clip, shorter than both trims"},
		{Name: "fault-audio-only.m4a.mp4", Kind: FaultAudioOnly, What: "AAC audio, no video stream"},
		{Name: "fault-not-video" + ext, Kind: FaultNotVideo, What: "a text file with a video extension"},
		{Name: "good clip – été 日本" + ext, Kind: FaultOddName, What: "a good video whose name has spaces and non-ASCII characters", Accept: true},
	}
}

// WriteFault writes one fault file to path (atomically).
func WriteFault(ctx context.Context, f Fault, spec Spec, path string) error {
	return errors.New("synth: WriteFault not implemented yet")
}

// WriteFaults writes every fault file of Faults(spec) into dir and returns
// file name -> what it is.
func WriteFaults(ctx context.Context, dir string, spec Spec) (map[string]string, error) {
	out := make(map[string]string)
	for _, f := range Faults(spec) {
		if err := WriteFault(ctx, f, spec, filepath.Join(dir, f.Name)); err != nil {
			return out, err
		}
		out[f.Name] = f.What
	}
	return out, nil
}
