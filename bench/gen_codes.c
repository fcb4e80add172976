/* gen_codes.c — synthetic 256-bit PDQ-like codes with planted near neighbours, for the Hamming-search speed benchmark. */
/*
 * usage: gen_codes --n N --q Q [--seed S] --codes OUT.codes --queries OUT.queries [--truth OUT.txt]
 *                  [--planted 0.5] [--dup 0.05]
 *
 * OUT.codes:   N x 32 bytes, raw. Every code has exactly 128 of its 256 bits set (PDQ thresholds its 256 DCT
 *              coefficients at the median, so real codes are balanced too). A fraction --dup of the codes are
 *              near-duplicates (distance 4..40) of an earlier code, as real corpora hold near-copies.
 * OUT.queries: Q x 8 x 32 bytes, raw: 8 "dihedral variants" per query. Variants are independent balanced
 *              codes, except that with probability --planted the query has a planted neighbour: a random
 *              corpus code with d random bits flipped (d uniform in 0..31, half 1->0 and half 0->1), placed in
 *              variant 0 (three times in four) or in a random other variant (a flipped or rotated copy).
 * OUT.txt:     the planted pairs, "query id distance" per line (searches at radius 31 must find all).
 * Deterministic for a given seed (splitmix64).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t st;

static uint64_t rnd64(void)
{
    uint64_t z = (st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned rndu(unsigned n) { return (unsigned)(((rnd64() >> 32) * (uint64_t)n) >> 32); }
static double rndf(void) { return (double)(rnd64() >> 11) / 9007199254740992.0; }

static void balanced(uint8_t *c)
{
    uint8_t perm[256];
    for (int i = 0; i < 256; i++)
        perm[i] = (uint8_t)i;
    memset(c, 0, 32);
    for (int i = 0; i < 128; i++) {
        int j = i + (int)rndu((unsigned)(256 - i));
        uint8_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        c[perm[i] >> 3] |= (uint8_t)(1u << (perm[i] & 7));
    }
}

static int getbit(const uint8_t *c, int b) { return (c[b >> 3] >> (b & 7)) & 1; }
static void flipbit(uint8_t *c, int b) { c[b >> 3] ^= (uint8_t)(1u << (b & 7)); }

/* Copies src to dst with exactly d bits flipped, as many 1->0 as 0->1 (d odd: one more 0->1). */
static void neighbour(const uint8_t *src, uint8_t *dst, int d)
{
    memcpy(dst, src, 32);
    int down = d / 2, up = d - down;
    uint8_t used[256] = {0};
    while (down > 0 || up > 0) {
        int b = (int)rndu(256);
        if (used[b])
            continue;
        int v = getbit(src, b);
        if (v && down > 0) {
            flipbit(dst, b);
            down--;
            used[b] = 1;
        } else if (!v && up > 0) {
            flipbit(dst, b);
            up--;
            used[b] = 1;
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: gen_codes --n N --q Q [--seed S] --codes OUT.codes --queries OUT.queries "
                    "[--truth OUT.txt] [--planted 0.5] [--dup 0.05]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long n = -1, q = -1;
    unsigned long long seed = 1;
    double planted = 0.5, dup = 0.05;
    const char *codes_path = NULL, *queries_path = NULL, *truth_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--n"))
            n = atol(v);
        else if (!strcmp(a, "--q"))
            q = atol(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--codes"))
            codes_path = v;
        else if (!strcmp(a, "--queries"))
            queries_path = v;
        else if (!strcmp(a, "--truth"))
            truth_path = v;
        else if (!strcmp(a, "--planted"))
            planted = atof(v);
        else if (!strcmp(a, "--dup"))
            dup = atof(v);
        else
            usage();
    }
    if (n < 1 || q < 0 || !codes_path || !queries_path)
        usage();
    st = seed * 0xD1B54A32D192ED03ull + 12345;
    uint8_t *codes = malloc((size_t)n * 32);
    if (!codes) {
        fprintf(stderr, "gen_codes: out of memory\n");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        if (i > 0 && rndf() < dup)
            neighbour(codes + (size_t)rndu((unsigned)i) * 32, codes + (size_t)i * 32, 4 + (int)rndu(37));
        else
            balanced(codes + (size_t)i * 32);
    }
    FILE *fc = fopen(codes_path, "wb"), *fq = fopen(queries_path, "wb");
    FILE *ft = truth_path ? fopen(truth_path, "w") : NULL;
    if (!fc || !fq || (truth_path && !ft)) {
        perror("gen_codes");
        return 1;
    }
    if (fwrite(codes, 32, (size_t)n, fc) != (size_t)n) {
        perror("gen_codes: write");
        return 1;
    }
    long nplanted = 0;
    for (long j = 0; j < q; j++) {
        uint8_t v[8][32];
        for (int k = 0; k < 8; k++)
            balanced(v[k]);
        if (rndf() < planted) {
            long id = (long)rndu((unsigned)n);
            int d = (int)rndu(32);
            int slot = rndf() < 0.75 ? 0 : 1 + (int)rndu(7);
            neighbour(codes + (size_t)id * 32, v[slot], d);
            if (ft)
                fprintf(ft, "%ld %ld %d\n", j, id, d);
            nplanted++;
        }
        if (fwrite(v, 32, 8, fq) != 8) {
            perror("gen_codes: write");
            return 1;
        }
    }
    if (fclose(fc) || fclose(fq) || (ft && fclose(ft))) {
        perror("gen_codes: close");
        return 1;
    }
    fprintf(stderr, "gen_codes: %ld codes, %ld queries (%ld planted), seed %llu\n", n, q, nplanted, seed);
    free(codes);
    return 0;
}
