/* floor_decode.c — the JPEG decode floor for the hashing-speed benchmark: decode-only throughput with libjpeg-turbo and libvips. */
/*
 * usage: floor_decode DIR --mode full|full-grey|dct|vips-shrink|vips-thumb [--threads N] [--repeat R] [--json OUT]
 *
 * Decodes every .jpg/.jpeg in DIR (sorted by name) and reports images/s; nothing else is computed, so a
 * hasher that needs these pixels cannot beat the matching figure.
 *   full        libjpeg-turbo, full size, RGB output
 *   full-grey   libjpeg-turbo, full size, JCS_GRAYSCALE output
 *   dct         libjpeg-turbo with DCT scaling: scale_num 1 / scale_denom = the largest of 1, 2, 4, 8 that keeps
 *               the shorter side >= 256, JCS_GRAYSCALE output
 *   vips-shrink libvips jpegload with shrink = the same factor as dct, pixels materialised in memory
 *   vips-thumb  libvips vips_thumbnail to fit 256 x 256 (shrink-on-load plus a final resize)
 * Threads: OpenMP over files (libvips' own pool is set to 1 thread per image). Files are read through the
 * page cache; run once untimed first to warm it. Prints "images N seconds S images_per_s X".
 * Being a floor, it keeps freed memory instead of returning it to the kernel (mallopt M_MMAP_THRESHOLD and
 * M_TRIM_THRESHOLD at 256 MiB): otherwise every image's buffers are mmapped and unmapped again, and on a small VM
 * the page faults cost as much as the decoding itself (measured: 2x on progressive JPEGs).
 */
#define _GNU_SOURCE /* strdup, strcasecmp */
#include <dirent.h>
#include <malloc.h>
#include <omp.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jpeglib.h>
#include <vips/vips.h>

enum mode { M_FULL, M_FULL_GREY, M_DCT, M_VIPS_SHRINK, M_VIPS_THUMB };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int is_jpeg(const char *n)
{
    size_t l = strlen(n);
    return (l > 4 && !strcasecmp(n + l - 4, ".jpg")) || (l > 5 && !strcasecmp(n + l - 5, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

struct err_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
};

static void on_error(j_common_ptr c)
{
    struct err_mgr *e = (struct err_mgr *)c->err;
    longjmp(e->jb, 1);
}

static void no_message(j_common_ptr c) { (void)c; }

/* Largest denominator in {8,4,2,1} keeping the shorter side >= 256 after scaling (ceil). */
static int pick_denom(unsigned w, unsigned h)
{
    unsigned s = w < h ? w : h;
    for (int d = 8; d > 1; d /= 2)
        if ((s + (unsigned)d - 1) / (unsigned)d >= 256)
            return d;
    return 1;
}

/* Returns the number of output pixels (as a checksum of work), or -1 on error. */
static long decode_turbo(const char *path, enum mode m, unsigned char **buf, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct jpeg_decompress_struct cinfo;
    struct err_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = on_error;
    jerr.pub.output_message = no_message;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (m == M_DCT) {
        cinfo.scale_num = 1;
        cinfo.scale_denom = (unsigned)pick_denom(cinfo.image_width, cinfo.image_height);
        cinfo.dct_method = JDCT_ISLOW;
    }
    cinfo.out_color_space = (m == M_FULL) ? JCS_RGB : JCS_GRAYSCALE;
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK)
        cinfo.out_color_space = JCS_CMYK; /* libjpeg cannot convert these; decode them as they are */
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    size_t need = stride * cinfo.output_height;
    if (need > *cap) {
        free(*buf);
        *buf = malloc(need);
        *cap = *buf ? need : 0;
        if (!*buf)
            longjmp(jerr.jb, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[16];
        JDIMENSION k, nr = cinfo.output_height - cinfo.output_scanline;
        if (nr > 16)
            nr = 16;
        for (k = 0; k < nr; k++)
            rows[k] = *buf + stride * (cinfo.output_scanline + k);
        jpeg_read_scanlines(&cinfo, rows, nr);
    }
    long px = (long)cinfo.output_width * (long)cinfo.output_height;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    return px;
}

static long decode_vips(const char *path, enum mode m)
{
    VipsImage *im = NULL;
    long px = -1;
    if (m == M_VIPS_THUMB) {
        if (vips_thumbnail(path, &im, 256, "height", 256, NULL))
            goto out;
    } else {
        VipsImage *hdr = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
        if (!hdr)
            goto out;
        int d = pick_denom((unsigned)hdr->Xsize, (unsigned)hdr->Ysize);
        g_object_unref(hdr);
        if (vips_jpegload(path, &im, "shrink", d, "access", VIPS_ACCESS_SEQUENTIAL, NULL))
            goto out;
    }
    size_t size;
    void *mem = vips_image_write_to_memory(im, &size);
    if (mem) {
        px = (long)im->Xsize * im->Ysize;
        g_free(mem);
    }
out:
    if (im)
        g_object_unref(im);
    if (px < 0)
        vips_error_clear();
    return px;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *json = NULL, *ms = NULL;
    int threads = omp_get_max_threads(), repeat = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            ms = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            dir = NULL, i = argc;
    }
    enum mode m;
    if (!ms)
        m = (enum mode)-1;
    else if (!strcmp(ms, "full"))
        m = M_FULL;
    else if (!strcmp(ms, "full-grey"))
        m = M_FULL_GREY;
    else if (!strcmp(ms, "dct"))
        m = M_DCT;
    else if (!strcmp(ms, "vips-shrink"))
        m = M_VIPS_SHRINK;
    else if (!strcmp(ms, "vips-thumb"))
        m = M_VIPS_THUMB;
    else
        m = (enum mode)-1;
    if (!dir || (int)m < 0 || threads < 1 || repeat < 1) {
        fprintf(stderr, "usage: floor_decode DIR --mode full|full-grey|dct|vips-shrink|vips-thumb [--threads N] "
                        "[--repeat R] [--json OUT]\n");
        return 2;
    }
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (VIPS_INIT(argv[0])) {
        fprintf(stderr, "floor_decode: vips init failed\n");
        return 1;
    }
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_jpeg(e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            files = realloc(files, cap * sizeof *files);
        }
        size_t l = strlen(dir) + strlen(e->d_name) + 2;
        files[n] = malloc(l);
        snprintf(files[n], l, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "floor_decode: no JPEG files in %s\n", dir);
        return 1;
    }
    qsort(files, n, sizeof *files, cmp_str);
    omp_set_num_threads(threads);
    long failures = 0;
    long long pixels = 0;
    double t0 = now_s();
    for (int r = 0; r < repeat; r++) {
#pragma omp parallel reduction(+ : failures, pixels)
        {
            unsigned char *buf = NULL;
            size_t bcap = 0;
#pragma omp for schedule(dynamic, 1)
            for (long i = 0; i < (long)n; i++) {
                long px = (m == M_VIPS_SHRINK || m == M_VIPS_THUMB) ? decode_vips(files[i], m)
                                                                     : decode_turbo(files[i], m, &buf, &bcap);
                if (px < 0)
                    failures++;
                else
                    pixels += px;
            }
            free(buf);
            vips_thread_shutdown();
        }
    }
    double t = now_s() - t0;
    double ips = (double)n * repeat / t;
    printf("mode %s threads %d images %zu repeat %d seconds %.4f images_per_s %.2f failures %ld out_megapixels %.1f\n",
           ms, threads, n, repeat, t, ips, failures / repeat, (double)pixels / repeat / 1e6);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            perror(json);
            return 1;
        }
        fprintf(f,
                "{\"mode\": \"%s\", \"threads\": %d, \"images\": %zu, \"repeat\": %d, \"seconds\": %.6f, "
                "\"images_per_s\": %.4f, \"failures\": %ld}\n",
                ms, threads, n, repeat, t, ips, failures / repeat);
        fclose(f);
    }
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    vips_shutdown();
    return failures ? 1 : 0;
}
