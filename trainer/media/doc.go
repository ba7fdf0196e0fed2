// Package media turns generated frames into files a person looks at: an
// animated GIF (one global median-cut palette, so colours do not flicker), an
// H.264 MP4 encoded by ffmpeg from raw frames on its standard input, and a
// PNG contact sheet. It also converts the model's float32 (T,3,H,W) tensors
// in [-1,1] to images. Every file is written atomically.
package media
