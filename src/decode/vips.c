/* vips.c — decoding of every non-JPEG format through libvips, with shrink-on-load and colour handling. */
#include "decode/decode.h"
#include "common/error.h"
#include "decode/metadata.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <vips/vips.h>

/* First line of libvips' error buffer (then cleared), for one-line messages. */
static void take_vips_error(char *buf, size_t n, const char *format)
{
    char *all = vips_error_buffer_copy();
    const char *msg = all ? all : "";
    size_t len = strcspn(msg, "\n");
    if (len >= n)
        len = n - 1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    g_free(all);
    if (!buf[0])
        snprintf(buf, n, "damaged or unsupported %s data", format && *format ? format : "image");
}

static provscan_status vips_failure(provscan_error *err, provscan_status st, const char *name, const char *format)
{
    char why[300];
    take_vips_error(why, sizeof why, format);
    /* libvips' own words ("jp2kload_buffer: operation is blocked") do not say why or what to do */
    if (strstr(why, "operation is blocked"))
        return ps_fail(err, PROVSCAN_E_UNSUPPORTED,
                       "%s: %s images are refused: libvips marks their loader as not hardened against hostile "
                       "files (PROVSCAN_ALLOW_UNTRUSTED_LOADERS=1 allows it)",
                       name, format && *format ? format : "such");
    return ps_fail(err, st, "%s: %s", name, why);
}

/* Replaces *img with the result of an operation (or reports failure). */
#define STEP(call, out)                         \
    do {                                        \
        if ((call) != 0)                        \
            goto fail;                          \
        g_object_unref(*img);                   \
        *img = (out);                           \
    } while (0)

static int to_8bit_srgb_or_grey(VipsImage **img)
{
    VipsImage *t;
    VipsInterpretation interp = vips_image_guess_interpretation(*img);
    int bands = vips_image_get_bands(*img) - (vips_image_hasalpha(*img) ? 1 : 0);
    if (bands == 1 && interp != VIPS_INTERPRETATION_B_W) {
        STEP(vips_colourspace(*img, &t, VIPS_INTERPRETATION_B_W, NULL), t); /* e.g. GREY16 scaled to 8 bits */
    } else if (bands != 1 && interp != VIPS_INTERPRETATION_sRGB) {
        STEP(vips_colourspace(*img, &t, VIPS_INTERPRETATION_sRGB, NULL), t); /* CMYK, LAB, RGB16, ... */
    }
    if (vips_image_get_format(*img) != VIPS_FORMAT_UCHAR)
        STEP(vips_cast(*img, &t, VIPS_FORMAT_UCHAR, NULL), t);
    return 0;
fail:
    return -1;
}

static int handle_alpha(VipsImage **img, provscan_alpha mode, int *had_alpha)
{
    VipsImage *t;
    int bands = vips_image_get_bands(*img);
    *had_alpha = vips_image_hasalpha(*img);
    if (*had_alpha) {
        if (mode == PROVSCAN_ALPHA_WHITE) {
            double white[4] = {255, 255, 255, 255};
            VipsArrayDouble *bg = vips_array_double_new(white, bands - 1);
            int r = vips_flatten(*img, &t, "background", bg, NULL);
            vips_area_unref(VIPS_AREA(bg));
            if (r != 0)
                return -1;
            g_object_unref(*img);
            *img = t;
        } else {
            STEP(vips_extract_band(*img, &t, 0, "n", bands - 1, NULL), t);
        }
        bands = vips_image_get_bands(*img);
    }
    if (bands == 2 || bands > 3) /* leftover extra bands: keep the colour ones */
        STEP(vips_extract_band(*img, &t, 0, "n", bands >= 3 ? 3 : 1, NULL), t);
    return 0;
fail:
    return -1;
}

static void format_name(const char *loader, char *out, size_t n)
{
    size_t len = strcspn(loader, "_");
    if (len > 4 && strncmp(loader + len - 4, "load", 4) == 0)
        len -= 4;
    if (strncmp(loader, "VipsForeignLoad", 15) == 0) { /* class names: VipsForeignLoadPngBuffer */
        loader += 15;
        len = 0;
        while (loader[len] && !(len > 0 && loader[len] >= 'A' && loader[len] <= 'Z'))
            len++;
    }
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)g_ascii_tolower(loader[i]);
    out[len] = '\0';
}

provscan_status ps_decode_vips(const uint8_t *data, size_t size, const ps_decode_request *req,
                               provscan_image **out, provscan_image_info *info, provscan_error *err)
{
    const char *loader = vips_foreign_find_load_buffer(data, size);
    if (!loader) {
        vips_error_clear();
        return ps_fail(err, PROVSCAN_E_NOT_IMAGE, "%s: not an image in a supported format", req->name);
    }
    char format[16];
    format_name(loader, format, sizeof format);
    /* Refuse oversized images from the container header before any decoder looks at them. */
    ps_metadata md;
    ps_metadata_scan(data, size, &md);
    if ((uint64_t)md.width * md.height > req->max_pixels)
        return ps_fail(err, PROVSCAN_E_TOO_LARGE, "%s: %ux%u pixels exceeds the limit of %llu pixels", req->name,
                       md.width, md.height, (unsigned long long)req->max_pixels);
    VipsImage *header = vips_image_new_from_buffer(data, size, "", "access", VIPS_ACCESS_SEQUENTIAL,
                                                   "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
    if (!header)
        return vips_failure(err, PROVSCAN_E_CORRUPT, req->name, format);
    int w = vips_image_get_width(header), h = vips_image_get_height(header);
    if ((uint64_t)w * (uint64_t)h > req->max_pixels) {
        g_object_unref(header);
        return ps_fail(err, PROVSCAN_E_TOO_LARGE, "%s: %dx%d pixels exceeds the limit of %llu pixels", req->name, w,
                       h, (unsigned long long)req->max_pixels);
    }
    int orientation = vips_image_get_orientation(header);
    int rotate = req->autorotate && orientation > 1;
    int short_side = w < h ? w : h;

    VipsImage *img_store = NULL, **img = &img_store;
    *img = header;
    if (rotate) {
        VipsImage *t;
        STEP(vips_autorot(*img, &t, NULL), t);
    }
    /* These formats decode at full size anyway (no DCT scaling), so shrinking only saves filter
     * time; a box shrink that keeps twice min_side stays closest to the full-resolution hash. */
    int factor = 1;
    if (req->min_side > 0)
        while (short_side / (factor * 2) >= 2 * req->min_side)
            factor *= 2;
    if (factor > 1) {
        VipsImage *t;
        STEP(vips_shrink(*img, &t, (double)factor, (double)factor, NULL), t);
    }
    int had_alpha = 0;
    if (to_8bit_srgb_or_grey(img) != 0 || handle_alpha(img, req->alpha, &had_alpha) != 0)
        goto fail;

    size_t bytes = 0;
    void *pixels = vips_image_write_to_memory(*img, &bytes);
    if (!pixels)
        goto fail;
    int ow = vips_image_get_width(*img), oh = vips_image_get_height(*img), bands = vips_image_get_bands(*img);
    g_object_unref(*img);
    if (bytes != (size_t)ow * oh * bands || (bands != 1 && bands != 3)) {
        g_free(pixels);
        return ps_fail(err, PROVSCAN_E_INTERNAL, "%s: unexpected decoder output layout", req->name);
    }
    provscan_image *res = ps_image_new(ow, oh, bands);
    if (!res) {
        g_free(pixels);
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory", req->name);
    }
    memcpy(res->pixels, pixels, bytes);
    g_free(pixels);
    int swap_full = rotate && orientation >= 5;
    res->full_width = swap_full ? h : w;
    res->full_height = swap_full ? w : h;
    if (info) {
        int swap = rotate && orientation >= 5;
        info->source_width = swap ? h : w;
        info->source_height = swap ? w : h;
        info->orientation = orientation >= 1 && orientation <= 8 ? orientation : 1;
        info->orientation_applied = rotate;
        info->had_alpha = had_alpha;
        snprintf(info->format, sizeof info->format, "%s", format);
    }
    *out = res;
    return PROVSCAN_OK;

fail:
    if (*img)
        g_object_unref(*img);
    return vips_failure(err, PROVSCAN_E_CORRUPT, req->name, format);
}
