/* load.c — the one image loader: reads a file, checks limits, sends JPEG to libjpeg-turbo and the rest to libvips. */
#include "decode/decode.h"
#include "decode/metadata.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>
#include <vips/vector.h>

/* Files larger than this are refused before reading: no legitimate still image needs more. */
#define PS_MAX_FILE_BYTES ((off_t)2 << 30)

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_failed;

/* libvips reports recoverable decoder trouble through GLib warnings on stderr; provscan reports
 * each file's outcome itself, in one line, so these are dropped. */
static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
    (void)domain; (void)level; (void)message; (void)data;
}

static void init_decoders(void)
{
    if (!getenv("PROVSCAN_DEBUG_DECODERS")) {
        g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, quiet_log, NULL);
    }
    if (VIPS_INIT("provscan") != 0) {
        init_failed = 1;
        return;
    }
    /* Files are decoded in parallel by the caller's threads: libvips' own thread pool per image
     * would only oversubscribe the cores, and its operation cache only grows with millions of files. */
    vips_concurrency_set(1);
    vips_cache_set_max(0);
#if !defined(__x86_64__) && !defined(__i386__)
    /* libvips' Orc-generated vector code gave an all-black vips_resize() result on aarch64 (Debian
     * 12, libvips 8.14, orc 0.4.33, under qemu-user; docs/simd.md, "aarch64"). Decoding needs
     * libvips for little more than the codecs, so elsewhere than on x86 its plain C paths are used. */
    vips_vector_set_enabled(FALSE);
#endif
    /* Loaders libvips marks untrusted (ImageMagick, MATLAB, FITS, ...) are not hardened against
     * hostile files; they stay off unless the user opts in. */
    const char *allow = getenv("PROVSCAN_ALLOW_UNTRUSTED_LOADERS");
    if (!(allow && strcmp(allow, "1") == 0))
        vips_block_untrusted_set(TRUE);
}

provscan_status provscan_init(provscan_error *err)
{
    pthread_once(&init_once, init_decoders);
    if (init_failed)
        return ps_fail(err, PROVSCAN_E_INTERNAL, "libvips failed to initialise");
    return PROVSCAN_OK;
}

provscan_image *ps_image_new(int width, int height, int channels)
{
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3))
        return NULL;
    provscan_image *img = malloc(sizeof *img);
    if (!img)
        return NULL;
    img->width = img->full_width = width;
    img->height = img->full_height = height;
    img->channels = channels;
    img->pixels = malloc((size_t)width * height * channels);
    if (!img->pixels) {
        free(img);
        return NULL;
    }
    return img;
}

void provscan_image_free(provscan_image *img)
{
    if (img) {
        free(img->pixels);
        free(img);
    }
}

int provscan_image_width(const provscan_image *img) { return img->width; }
int provscan_image_height(const provscan_image *img) { return img->height; }
int provscan_image_channels(const provscan_image *img) { return img->channels; }
const uint8_t *provscan_image_pixels(const provscan_image *img) { return img->pixels; }

provscan_status provscan_image_from_pixels(const uint8_t *pixels, int width, int height, int channels,
                                           size_t stride, provscan_image **out)
{
    if (!pixels || !out || stride < (size_t)width * channels)
        return PROVSCAN_E_ARG;
    provscan_image *img = ps_image_new(width, height, channels);
    if (!img)
        return (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) ? PROVSCAN_E_ARG : PROVSCAN_E_NOMEM;
    size_t row = (size_t)width * channels;
    for (int y = 0; y < height; y++)
        memcpy(img->pixels + y * row, pixels + y * stride, row);
    *out = img;
    return PROVSCAN_OK;
}

void provscan_load_options_default(provscan_load_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_pixels = PROVSCAN_DEFAULT_MAX_PIXELS;
    opts->autorotate = 1;
    opts->alpha = PROVSCAN_ALPHA_WHITE;
}

/* EXIF orientation as a map from output to source pixel (docs/loading.md). */
provscan_status ps_image_orient(provscan_image *img, int o)
{
    if (o <= 1 || o > 8)
        return PROVSCAN_OK;
    int w = img->width, h = img->height, ch = img->channels;
    int swap = o >= 5;
    int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *dst = malloc((size_t)w * h * ch);
    if (!dst)
        return PROVSCAN_E_NOMEM;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x; sy = y; break;
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;
            case 4: sx = x; sy = h - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = h - 1 - x; break;
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;
            default: sx = w - 1 - y; sy = x; break; /* 8 */
            }
            memcpy(dst + ((size_t)y * ow + x) * ch, img->pixels + ((size_t)sy * w + sx) * ch, (size_t)ch);
        }
    }
    free(img->pixels);
    img->pixels = dst;
    img->width = ow;
    img->height = oh;
    if (swap) {
        int t = img->full_width;
        img->full_width = img->full_height;
        img->full_height = t;
    }
    return PROVSCAN_OK;
}

provscan_status ps_read_file(const char *path, uint8_t **data, size_t *size, provscan_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ps_fail(err, PROVSCAN_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ps_fail(err, PROVSCAN_E_IO, "%s: is a directory, not an image file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ps_fail(err, PROVSCAN_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ps_fail(err, PROVSCAN_E_NOT_IMAGE, "%s: empty file", path);
    }
    if (st.st_size > PS_MAX_FILE_BYTES) {
        close(fd);
        return ps_fail(err, PROVSCAN_E_TOO_LARGE, "%s: file of %lld bytes exceeds the limit of %lld bytes", path,
                       (long long)st.st_size, (long long)PS_MAX_FILE_BYTES);
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(n);
    if (!buf) {
        close(fd);
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            return ps_fail(err, PROVSCAN_E_IO, "%s: read failed: %s", path, e ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return PROVSCAN_OK;
}

provscan_status provscan_image_load_memory(const void *data, size_t size, const char *name,
                                           const provscan_load_options *opts, provscan_image **out,
                                           provscan_image_info *info, provscan_error *err)
{
    ps_error_clear(err);
    if (!data || !out)
        return ps_fail(err, PROVSCAN_E_ARG, "%s: no data", name ? name : "(memory)");
    PS_TRY(provscan_init(err));
    provscan_load_options defaults;
    if (!opts) {
        provscan_load_options_default(&defaults);
        opts = &defaults;
    }
    ps_decode_request req = {
        .name = name ? name : "(memory)",
        .max_pixels = opts->max_pixels ? opts->max_pixels : PROVSCAN_DEFAULT_MAX_PIXELS,
        .min_side = opts->min_side,
        .autorotate = opts->autorotate,
        .alpha = opts->alpha,
        .want_grey = opts->want_grey,
    };
    provscan_image_info local_info;
    if (!info)
        info = &local_info;
    memset(info, 0, sizeof *info);
    info->orientation = 1;

    const uint8_t *bytes = data;
    if (size == 0)
        return ps_fail(err, PROVSCAN_E_NOT_IMAGE, "%s: empty file", req.name);
    if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
        ps_metadata md;
        ps_metadata_scan(bytes, size, &md);
        PS_TRY(ps_decode_jpeg(bytes, size, &req, out, info, err));
        info->orientation = md.orientation ? md.orientation : 1;
        if (req.autorotate && info->orientation > 1) {
            if (ps_image_orient(*out, info->orientation) != PROVSCAN_OK) {
                provscan_image_free(*out);
                *out = NULL;
                return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", req.name);
            }
            info->orientation_applied = 1;
            if (info->orientation >= 5) {
                int t = info->source_width;
                info->source_width = info->source_height;
                info->source_height = t;
            }
        }
        return PROVSCAN_OK;
    }
    return ps_decode_vips(bytes, size, &req, out, info, err);
}

provscan_status provscan_image_load(const char *path, const provscan_load_options *opts, provscan_image **out,
                                    provscan_image_info *info, provscan_error *err)
{
    ps_error_clear(err);
    if (!path || !out)
        return ps_fail(err, PROVSCAN_E_ARG, "no path given");
    uint8_t *data = NULL;
    size_t size = 0;
    PS_TRY(ps_read_file(path, &data, &size, err));
    provscan_status st = provscan_image_load_memory(data, size, path, opts, out, info, err);
    free(data);
    return st;
}
