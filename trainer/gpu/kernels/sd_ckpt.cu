// Selective checkpointing of the fused attention (sd_ckpt_attn.go): y
// (N, L, C) float32 from the flash forward's kept 16-bit output, head-major
// and padded (N, H, L, dp) as flash.cu writes it; n = N * L * C.
extern "C" __global__ void sd_flash_o_widen(float* y, const unsigned short* o, long long n, int L, int C, int H, int dp, int bf16) {
    const int dh = C / H;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        const int c = (int)(i % C);
        const long long r = i / C;  // sequence * L + position
        const int l = (int)(r % L), h = c / dh;
        const unsigned short v = o[((r / L) * H + h) * (long long)L * dp + (long long)l * dp + c % dh];
        float f;
        if (bf16) {
            f = __int_as_float((int)(((unsigned int)v) << 16));
        } else {
            asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
        }
        y[i] = f;
    }
}
