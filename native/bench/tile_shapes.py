#!/usr/bin/env python3
"""Times the AVX-512 VNNI int8 tile at several shapes (rows x 16-output panels), speed only.

Generates a C harness with one tile function per shape (the loop of gemm_avx512vnni.c's vnni_tile:
VPDPBUSD per 4-byte k-group, exact int32 sums per 32-value block from rsum, folded into float
accumulators as fma(float(isum), ws * sa, acc)), compiles it with the kernel's ISA flags, and prints
G int8 ops/s on one thread for each shape, over a matrix with the weights in L1/L2. Every shape
computes the same outputs in the same float order, so each is checked bit for bit against the first.
This is how the kernel's 6 x 2 shape was chosen (docs/performance.md, "The VNNI tile").

  tile_shapes.py [--k 384] [--n 1536] [--rows 120] [--reps 3] [SHAPE ...]
SHAPE is ROWSxPANELS, with a trailing r to keep the float accumulators in registers instead of an
L1 tile (default: 6x4 6x2 6x2r 4x3 4x3r 5x2 3x4). Needs a C compiler and a CPU with AVX-512 VNNI.
"""
import argparse
import math
import os
import re
import subprocess
import sys
import tempfile

FLAGS = ["-O3", "-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni"]

HEADER = r'''#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define QB 32
#define PANEL 16
static inline __m512i dpbusd(__m512i acc, __m512i a, __m512i w) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "vm"(w));
    return acc;
}
static inline __m512i bcast4(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return _mm512_set1_epi32(v); }
typedef void (*tile_fn)(const int8_t *, const int32_t *, const float *, int64_t, const uint8_t *, int64_t,
                        const float *, float *, int64_t);
'''

MAIN = r'''
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static uint64_t rng = 88172645463325252ull;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 32); }
int main(int argc, char **argv) {
    const int64_t K = atoll(argv[1]), N = atoll(argv[2]), M = atoll(argv[3]);
    const int reps = atoi(argv[4]);
    const int64_t nb = K / QB, np = N / PANEL;
    int8_t *W = aligned_alloc(64, np * PANEL * K);
    int32_t *rs = aligned_alloc(64, np * nb * PANEL * 4);
    float *ws = aligned_alloc(64, np * nb * PANEL * 4), *sa = malloc(M * nb * 4);
    uint8_t *A = aligned_alloc(64, M * K);
    float *Y = aligned_alloc(64, M * N * 4), *Y0 = aligned_alloc(64, M * N * 4);
    if (!W || !rs || !ws || !sa || !A || !Y || !Y0) return 1;
    for (int64_t i = 0; i < np * PANEL * K; i++) W[i] = (int8_t)(next() % 33) - 16;
    for (int64_t i = 0; i < np * nb * PANEL; i++) { rs[i] = -(int32_t)(next() % 1000); ws[i] = 0.001f * (1 + next() % 100); }
    for (int64_t i = 0; i < M * K; i++) A[i] = (uint8_t)next();
    for (int64_t i = 0; i < M * nb; i++) sa[i] = 0.01f * (1 + next() % 100);
    int bad = 0;
    for (int rep = 0; rep < reps; rep++)
        for (int s = 0; s < NSHAPES; s++) {
            const int mr = shapes[s].mr, npp = shapes[s].np;
            const int64_t Mu = M / mr * mr, Pu = np / npp * npp;
            double best = 1e9;
            for (int t = 0; t < 7; t++) {
                double t0 = now();
                for (int64_t p = 0; p < Pu; p += npp)
                    for (int64_t m = 0; m < Mu; m += mr)
                        shapes[s].fn(W + p * PANEL * K, rs + p * nb * PANEL, ws + p * nb * PANEL, K, A + m * K, K,
                                     sa + m * nb, Y + m * N + p * PANEL, N);
                double dt = now() - t0;
                if (dt < best) best = dt;
            }
            if (rep == 0 && s == 0) memcpy(Y0, Y, M * N * 4);
            /* The region every shape covers: rows and panels divisible by all shapes' sizes. */
            for (int64_t m = 0; m < COMMON_ROWS && m < M; m++)
                for (int64_t n = 0; n < COMMON_PANELS * PANEL && n < N; n++)
                    if (memcmp(&Y[m * N + n], &Y0[m * N + n], 4) != 0) bad = 1;
            printf("%-5s rep %d: %7.1f G int8 ops/s\n", shapes[s].name, rep, 2.0 * Mu * Pu * PANEL * K / best / 1e9);
        }
    if (bad) { fprintf(stderr, "tile_shapes: a shape's outputs differ from the first's\n"); return 1; }
    return 0;
}
'''


def tile(name, mr, npn, reg):
    """C source of one tile function of mr rows x npn panels."""
    f = [f"static void tile_{name}(const int8_t *W, const int32_t *rsum, const float *wsc, int64_t kp, "
         f"const uint8_t *a, int64_t lda, const float *sa, float *y, int64_t ldy) {{",
         "    const int64_t nb = kp / QB, ps = PANEL * kp, ss = nb * PANEL;",
         f"    float facc[{mr}][{npn}][16] __attribute__((aligned(64)));",
         f"    for (int r = 0; r < {mr}; r++) for (int c = 0; c < {npn}; c++) _mm512_store_ps(facc[r][c], _mm512_setzero_ps());"]
    if reg:
        f.append("    __m512 " + ", ".join(f"f{r}_{c} = _mm512_setzero_ps()" for r in range(mr) for c in range(npn)) + ";")
    f.append("    for (int64_t b = 0; b < nb; b++) {")
    for c in range(npn):
        f.append(f"        const __m512i s{c} = _mm512_load_si512((const void *)(rsum + {c} * ss + b * PANEL));")
    for r in range(mr):
        f.append("        __m512i " + ", ".join(f"c{r}_{c} = s{c}" for c in range(npn)) + ";")
    f += ["#pragma GCC unroll 8",
          "        for (int gg = 0; gg < QB / 4; gg++) {",
          "            const int8_t *wg = W + (b * (QB / 4) + gg) * 64;",
          "            const uint8_t *ag = a + (b * (QB / 4) + gg) * 4;"]
    for c in range(npn):
        f.append(f"            __m512i w{c} = _mm512_load_si512((const void *)(wg + {c} * ps));")
    for r in range(mr):
        f.append(f"            {{ __m512i av = bcast4(ag + {r} * lda);")
        for c in range(npn):
            f.append(f"              c{r}_{c} = dpbusd(c{r}_{c}, av, w{c});")
        f.append("            }")
    f.append("        }")
    for r in range(mr):
        f.append(f"        {{ __m512 sv = _mm512_set1_ps(sa[{r} * nb + b]);")
        for c in range(npn):
            s = f"_mm512_mul_ps(_mm512_load_ps(wsc + {c} * ss + b * PANEL), sv)"
            if reg:
                f.append(f"          f{r}_{c} = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c{r}_{c}), {s}, f{r}_{c});")
            else:
                f.append(f"          _mm512_store_ps(facc[{r}][{c}], _mm512_fmadd_ps(_mm512_cvtepi32_ps(c{r}_{c}), {s}, "
                         f"_mm512_load_ps(facc[{r}][{c}])));")
        f.append("        }")
    f.append("    }")
    if reg:
        f += [f"    _mm512_store_ps(facc[{r}][{c}], f{r}_{c});" for r in range(mr) for c in range(npn)]
    f.append(f"    for (int r = 0; r < {mr}; r++) for (int c = 0; c < {npn}; c++) "
             f"_mm512_storeu_ps(y + r * ldy + c * 16, _mm512_load_ps(facc[r][c]));")
    f.append("}")
    return "\n".join(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=384)
    ap.add_argument("--n", type=int, default=1536)
    ap.add_argument("--rows", type=int, default=120)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("shapes", nargs="*", default=["6x4", "6x2", "6x2r", "4x3", "4x3r", "5x2", "3x4"])
    args = ap.parse_args()
    if args.k % 32 or args.n % 16 or args.k <= 0 or args.n <= 0 or args.rows <= 0 or args.reps <= 0:
        sys.exit("tile_shapes: --k must be a positive multiple of 32, --n of 16; --rows and --reps positive")
    shapes = []
    for s in args.shapes:
        m = re.fullmatch(r"([1-9])x([1-9]|1[0-6])(r?)", s)
        if not m:
            sys.exit(f"tile_shapes: bad shape {s!r} (ROWSxPANELS[r], rows 1-9, panels 1-16)")
        mr, npn = int(m.group(1)), int(m.group(2))
        if npn > args.n // 16 or mr > args.rows:
            sys.exit(f"tile_shapes: shape {s} is larger than the {args.rows} x {args.n} problem")
        shapes.append((s, mr, npn, m.group(3) == "r"))
    # The region every shape covers: whole multiples of all their row and panel counts.
    row_lcm, panel_lcm = math.lcm(*(mr for _, mr, _, _ in shapes)), math.lcm(*(p for _, _, p, _ in shapes))
    common_rows, common_panels = args.rows // row_lcm * row_lcm, (args.n // 16) // panel_lcm * panel_lcm
    src = [HEADER] + [tile(n, mr, p, r) for n, mr, p, r in shapes]
    src.append("static const struct { const char *name; tile_fn fn; int mr, np; } shapes[] = {" +
               ", ".join(f'{{"{n}", tile_{n}, {mr}, {p}}}' for n, mr, p, _ in shapes) + "};")
    src.append(f"#define NSHAPES {len(shapes)}\n#define COMMON_ROWS {common_rows}\n#define COMMON_PANELS {common_panels}")
    src.append(MAIN)
    with tempfile.TemporaryDirectory() as d:
        c, exe = os.path.join(d, "tiles.c"), os.path.join(d, "tiles")
        with open(c, "w") as fh:
            fh.write("\n".join(src))
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, *FLAGS, c, "-o", exe], check=True)
        res = subprocess.run([exe, str(args.k), str(args.n), str(args.rows), str(args.reps)])
        sys.exit(res.returncode)


if __name__ == "__main__":
    main()
