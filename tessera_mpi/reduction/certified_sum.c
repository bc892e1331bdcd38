/* The certified fast path of the exact sum on the CPU (see cpu_kernel.py for the algorithm, its
 * error bounds and what is refused). Compiled by cpu_kernel.py with -ffp-contract=off and without
 * fast-math: contracting or reassociating TwoSum's steps would change what it computes. With
 * -fno-trapping-math, which changes no value (this code never unmasks floating-point traps; it
 * is LLVM's default, under which numba compiled this kernel before) and lets the compiler turn
 * the conversions under a condition into selects, so that every loop here vectorizes. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#define TESSERA_SUM_ABI 1
#define TILE 512  /* columns accumulated together: their state stays in L1 while the rows stream by */
#define UNROLL 8  /* rows added per pass over a tile's state */

int tessera_sum_abi(void) { return TESSERA_SUM_ABI; }

static inline uint64_t bits64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double float64_of(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint32_t bits32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float float32_of(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* float16 bits: the magnitude bits moved into a float32 (2^-112 times the value, subnormals
 * included), scaled back exactly; all-ones exponents are inf/NaN. */
static inline double load_float16(uint16_t h) {
    uint32_t rest = h & 0x7FFFu;
    double value = rest >= 0x7C00u ? (double)float32_of(0x7F800000u | ((rest & 0x3FFu) << 13))
                                   : (double)float32_of(rest << 13) * 0x1p112;
    return (h & 0x8000u) ? -value : value;
}
static inline double load_bfloat16(uint16_t h) { return (double)float32_of((uint32_t)h << 16); }
static inline double load_float32(float x) { return (double)x; }
static inline double load_float64(double x) { return x; }

/* One column's state: s (the running sum), c (the sum of its errors), c2 (the sum of c's errors,
 * two levels only), b (the sum of the magnitudes of the last level's errors), a (sum |x|). */
#define STEP_TWO(x)                                             \
    do {                                                        \
        double x_ = (x), total_ = s + x_, virt_ = total_ - s;   \
        double q_ = (s - (total_ - virt_)) + (x_ - virt_);      \
        s = total_;                                             \
        total_ = c + q_; virt_ = total_ - c;                    \
        double r_ = (c - (total_ - virt_)) + (q_ - virt_);      \
        c = total_; c2 += r_; b += fabs(r_); a += fabs(x_);     \
    } while (0)
#define STEP_ONE(x)                                             \
    do {                                                        \
        double x_ = (x), total_ = s + x_, virt_ = total_ - s;   \
        double q_ = (s - (total_ - virt_)) + (x_ - virt_);      \
        s = total_; c += q_; b += fabs(q_); a += fabs(x_);      \
    } while (0)

/* The target format's rounding of v: float64 itself, float32 by a cast, and the narrow formats
 * (float16, bfloat16; precision < 24) by scaling v's last kept bit to 1, rounding to an integer
 * with 1.5 * 2^52 (ties to even) and scaling back, all exact but the one rounding. */
static inline double round_float64(double v, int precision, int quantum) {
    (void)precision; (void)quantum;
    return v;
}
static inline double round_float32(double v, int precision, int quantum) {
    (void)precision; (void)quantum;
    return (double)(float)v;
}
static inline double round_narrow(double v, int precision, int quantum) {
    int64_t scale = (int64_t)((bits64(v) >> 52) & 0x7FFu) - 1023 - (precision - 1);
    scale = scale < quantum ? quantum : scale;
    double down = float64_of((uint64_t)(1023 - scale) << 52);
    double up = float64_of((uint64_t)(1023 + scale) << 52);
    return (((v * down) + 6755399441055744.0) - 6755399441055744.0) * up;
}

/* Write the certified sums of one tile into out (and 0 into failed), or 1; return the failures.
 * Branch-free (selects, not jumps), so that the compiler vectorizes it: at P = 8 it costs as
 * much as the accumulation. */
#define FINISH(NAME, OUT, ROUND)                                                                      \
    static inline long finish_##NAME(const double* S, const double* C, const double* C2, const double* B, \
                                     const double* A, int width, OUT* out, uint8_t* failed, int precision, \
                                     int quantum, double min_normal, double guard, double factor) {   \
        long failures = 0;                                                                            \
        for (int j = 0; j < width; ++j) {                                                             \
            double hi = S[j], lo = C[j];                                                              \
            double v = hi + lo, virt = v - hi;                                                        \
            double t = (hi - (v - virt)) + (lo - virt);                                               \
            double rounded = ROUND(v, precision, quantum);                                            \
            uint64_t magnitude = bits64(rounded) & 0x7FFFFFFFFFFFFFFFull;                             \
            int64_t ge = (int64_t)(magnitude >> 52) - 1023 - (precision - 1);                         \
            ge = ge < quantum ? quantum : ge;                                                         \
            ge = ge < -1022 ? -1022 : ge;                                                             \
            double gap = float64_of((uint64_t)(1023 + ge) << 52);                                     \
            /* Just above a power of two the gap below is half the gap above. */                      \
            gap = (((magnitude & 0xFFFFFFFFFFFFFull) == 0) & (fabs(rounded) > min_normal)) ? gap * 0.5 : gap; \
            double error = fabs(v - rounded) + fabs(t) + fabs(C2[j]) + factor * B[j];                 \
            int certified = (B[j] == 0.0) | ((gap >= 0x1p-900) & (2.0 * error < gap * (1.0 - 0x1p-40))); \
            int zero = A[j] == 0.0;                                                                   \
            int ok = zero | ((A[j] < guard) & certified);                                             \
            out[j] = (OUT)(zero ? hi : rounded);                                                      \
            failed[j] = (uint8_t)!ok;                                                                 \
            failures += !ok;                                                                          \
        }                                                                                             \
        return failures;                                                                              \
    }
FINISH(float64, double, round_float64)
FINISH(float32, float, round_float32)
FINISH(narrow, float, round_narrow)

/* tessera_certified_sum_<name>(values, rows, n, out, failed, precision, quantum, min_normal, guard,
 * factor): values is a C-contiguous (rows, n) array; out is float64 for float64 input, else
 * float32; failed is one byte per column. Returns the number of uncertified columns. */
#define KERNEL(NAME, TYPE, LOAD, STEP, OUT, ROUNDING)                                                    \
    long tessera_certified_sum_##NAME(const TYPE* values, long rows, long n, void* out, uint8_t* failed, \
                                      int precision, int quantum, double min_normal, double guard,    \
                                      double factor) {                                                \
        double S[TILE], C[TILE], C2[TILE], B[TILE], A[TILE];                                          \
        long failures = 0;                                                                            \
        for (long start = 0; start < n; start += TILE) {                                              \
            int width = (int)(n - start < TILE ? n - start : TILE);                                   \
            for (int j = 0; j < width; ++j) {                                                         \
                /* -0 is the identity of IEEE addition (+0 would turn a sum of -0s into +0). */     \
                S[j] = -0.0; C[j] = 0.0; C2[j] = 0.0; B[j] = 0.0; A[j] = 0.0;                         \
            }                                                                                         \
            long i = 0;                                                                               \
            for (; i + UNROLL <= rows; i += UNROLL) {                                                 \
                const TYPE* r = values + i * n + start;                                               \
                for (int j = 0; j < width; ++j) {                                                     \
                    double s = S[j], c = C[j], c2 = C2[j], b = B[j], a = A[j];                        \
                    (void)c2;                                                                         \
                    STEP(LOAD(r[j])); STEP(LOAD(r[n + j])); STEP(LOAD(r[2 * n + j]));                 \
                    STEP(LOAD(r[3 * n + j])); STEP(LOAD(r[4 * n + j])); STEP(LOAD(r[5 * n + j]));     \
                    STEP(LOAD(r[6 * n + j])); STEP(LOAD(r[7 * n + j]));                               \
                    S[j] = s; C[j] = c; C2[j] = c2; B[j] = b; A[j] = a;                               \
                }                                                                                     \
            }                                                                                         \
            for (; i < rows; ++i) {                                                                   \
                const TYPE* r = values + i * n + start;                                               \
                for (int j = 0; j < width; ++j) {                                                     \
                    double s = S[j], c = C[j], c2 = C2[j], b = B[j], a = A[j];                        \
                    (void)c2;                                                                         \
                    STEP(LOAD(r[j]));                                                                 \
                    S[j] = s; C[j] = c; C2[j] = c2; B[j] = b; A[j] = a;                               \
                }                                                                                     \
            }                                                                                         \
            failures += finish_##ROUNDING(S, C, C2, B, A, width, (OUT*)out + start, failed + start,      \
                                          precision, quantum, min_normal, guard, factor);             \
        }                                                                                             \
        return failures;                                                                              \
    }

/* float64 has 53 bits: two levels. float32 and the 16-bit formats have at most 24 bits, and their
 * float64 partial sums are nearly always exact (every q is 0, b stays 0: the exact case), so the
 * second level would only cost time. */
KERNEL(float64, double, load_float64, STEP_TWO, double, float64)
KERNEL(float32, float, load_float32, STEP_ONE, float, float32)
KERNEL(float16, uint16_t, load_float16, STEP_ONE, float, narrow)
KERNEL(bfloat16, uint16_t, load_bfloat16, STEP_ONE, float, narrow)

/* Write the float16 bits of float32 values (each a float16 value, an infinity or a NaN). */
void tessera_float16_bits(const float* values, long n, uint16_t* out) {
    for (long j = 0; j < n; ++j) {
        float x = values[j];
        uint16_t sign = (uint16_t)((bits32(x) >> 16) & 0x8000u);
        uint16_t magnitude = (uint16_t)(bits32(fabsf(x) * 0x1p-112f) >> 13);
        if (isinf(x)) magnitude = 0x7C00u;
        out[j] = x != x ? (uint16_t)0x7E00u : (uint16_t)(sign | magnitude);
    }
}
