// Package frames owns per-video frame extraction: the recipe's ffmpeg
// invocation (built with ffmpeg-go, run under the caller's context), the
// JPEG frames of each video under <dir>/<video-id>/%06d.jpg, damage
// detection (a video that yields fewer frames than its duration promises),
// and the stage's index.jsonl listing every video's frames.
package frames
