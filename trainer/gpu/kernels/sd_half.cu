// fp16 loss scaling (sd_half_scale.go): g *= inv; *flag = 1 if any g is inf or NaN.
extern "C" __global__ void sd_unscale_check(float* g, long long n, float inv, float* flag) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
        float v = g[i];
        union {
            float f;
            unsigned int u;
        } c;
        c.f = v;
        if ((c.u & 0x7f800000u) == 0x7f800000u) *flag = 1.0f;  // inf or NaN
        g[i] = v * inv;
    }
}
