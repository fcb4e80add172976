/* decode.h — internal interface of the loader: the image struct and the two decoding back ends. */
#ifndef PROVSCAN_DECODE_H
#define PROVSCAN_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

struct provscan_image {
    int width, height, channels; /* channels 1 or 3; rows packed (stride = width * channels) */
    uint8_t *pixels;
    /* Size of the full-resolution picture these pixels were decoded from (upright). It differs
     * from width x height after shrink-on-load, and lets PDQ filter and sample as it would at
     * full resolution. */
    int full_width, full_height;
};

/* What a back end is asked to produce. */
typedef struct ps_decode_request {
    const char *name;      /* for messages */
    uint64_t max_pixels;
    int min_side;          /* 0: full resolution */
    int autorotate;
    provscan_alpha alpha;
    int want_grey;
} ps_decode_request;

provscan_image *ps_image_new(int width, int height, int channels);

/* libjpeg-turbo: DCT-domain scaling, early stop on progressive files, CMYK. Does not rotate. */
provscan_status ps_decode_jpeg(const uint8_t *data, size_t size, const ps_decode_request *req,
                               provscan_image **out, provscan_image_info *info, provscan_error *err);

/* libvips: every other format (PNG, WebP, TIFF, GIF, HEIF/AVIF, ...). Rotates when asked. */
provscan_status ps_decode_vips(const uint8_t *data, size_t size, const ps_decode_request *req,
                               provscan_image **out, provscan_image_info *info, provscan_error *err);

/* Reads a whole regular file into memory (caller frees), with the loader's checks and messages. */
provscan_status ps_read_file(const char *path, uint8_t **data, size_t *size, provscan_error *err);

/* Turns img in place to honour EXIF orientation o (2..8). */
provscan_status ps_image_orient(provscan_image *img, int orientation);

#endif
