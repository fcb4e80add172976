/* jpeg.c — JPEG decoding with libjpeg-turbo: DCT-domain downscaling and early stop on progressive files. */
#include "decode/decode.h"
#include "common/error.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct jpeg_failure {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int corrupt;   /* a warning that means the data is damaged, not merely untidy */
    int truncated;
} jpeg_failure;

static void on_error(j_common_ptr cinfo)
{
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, f->message);
    longjmp(f->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    if (level >= 0)
        return; /* trace messages */
    int code = cinfo->err->msg_code;
    /* Stray bytes between markers are common in real files and harmless; running out of data or
     * undecodable entropy data means the pixels would be partly invented. */
    if (code == JWRN_JPEG_EOF)
        f->truncated = 1;
    else if (code == JWRN_HUFF_BAD_CODE || code == JWRN_BOGUS_PROGRESSION || code == JWRN_NOT_SEQUENTIAL)
        f->corrupt = 1;
    if ((f->truncated || f->corrupt) && !f->message[0])
        cinfo->err->format_message(cinfo, f->message);
}

/* zigzag[r * 8 + c]: position of natural-order coefficient (r, c) in cinfo->coef_bits. */
static void build_zigzag(int zigzag[64])
{
    int r = 0, c = 0;
    for (int i = 0; i < 64; i++) {
        zigzag[r * 8 + c] = i;
        if ((r + c) % 2 == 0) { /* moving up and to the right */
            if (c == 7) r++;
            else if (r == 0) c++;
            else { r--; c++; }
        } else {                /* moving down and to the left */
            if (r == 7) c++;
            else if (c == 0) r++;
            else { r++; c--; }
        }
    }
}

/* With output scaled to 1/denom, the IDCT reads only the top-left (8/denom)^2 coefficients. Once
 * every scan that refines them has arrived, decoding further scans cannot change the output.
 * At 1/8 only the DC term is read, and a DC value still missing its lowest bit (the first scan of
 * a successive-approximation file) is off by at most one quantisation step, about two grey levels
 * after the 8x8 average: far below what PDQ resolves, so that scan is taken as enough. */
static int needed_coefficients_final(j_decompress_ptr cinfo, int denom, int components)
{
    if (!cinfo->coef_bits)
        return 0;
    int n = 8 / denom, zigzag[64];
    int tolerated = denom == 8 ? 1 : 0;
    build_zigzag(zigzag);
    for (int ci = 0; ci < components; ci++)
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++) {
                int bits = cinfo->coef_bits[ci][zigzag[r * 8 + c]];
                if (bits < 0 || bits > tolerated)
                    return 0;
            }
    return 1;
}

/* Adobe CMYK JPEGs store inverted ink values: 255 means no ink. RGB = inverted C/M/Y times
 * inverted K, rounded, as ImageMagick converts them (the PDQ reference's decoder). */
static void cmyk_to_rgb(const uint8_t *cmyk, size_t n, uint8_t *rgb, int inverted)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = cmyk[4 * i], m = cmyk[4 * i + 1], y = cmyk[4 * i + 2], k = cmyk[4 * i + 3];
        if (!inverted) {
            c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k;
        }
        rgb[3 * i] = (uint8_t)((c * k + 127) / 255);
        rgb[3 * i + 1] = (uint8_t)((m * k + 127) / 255);
        rgb[3 * i + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* True if an end-of-image marker follows offset from: a file cut short has none. */
static int has_eoi_after(const uint8_t *data, size_t size, size_t from)
{
    for (size_t i = size; i-- > from + 1;)
        if (data[i] == 0xD9 && data[i - 1] == 0xFF)
            return 1;
    return 0;
}

provscan_status ps_decode_jpeg(const uint8_t *data, size_t size, const ps_decode_request *req,
                               provscan_image **out, provscan_image_info *info, provscan_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_failure fail;
    memset(&fail, 0, sizeof fail);
    cinfo.err = jpeg_std_error(&fail.pub);
    fail.pub.error_exit = on_error;
    fail.pub.emit_message = on_message;
    provscan_image *volatile img = NULL;
    uint8_t *volatile row_buf = NULL;

    if (setjmp(fail.jump)) {
        jpeg_destroy_decompress(&cinfo);
        provscan_image_free(img);
        free(row_buf);
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: corrupt JPEG: %s", req->name, fail.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    uint64_t pixels = (uint64_t)cinfo.image_width * cinfo.image_height;
    if (pixels > req->max_pixels) {
        jpeg_destroy_decompress(&cinfo);
        return ps_fail(err, PROVSCAN_E_TOO_LARGE, "%s: %ux%u pixels exceeds the limit of %llu pixels", req->name,
                       cinfo.image_width, cinfo.image_height, (unsigned long long)req->max_pixels);
    }

    int denom = 1;
    if (req->min_side > 0) {
        unsigned short_side = cinfo.image_width < cinfo.image_height ? cinfo.image_width : cinfo.image_height;
        while (denom < 8 && (short_side + 2 * denom - 1) / (2 * denom) >= (unsigned)req->min_side)
            denom *= 2;
    }
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned)denom;

    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int grey_source = cinfo.num_components == 1;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else if (grey_source || req->want_grey)
        cinfo.out_color_space = JCS_GRAYSCALE; /* for YCbCr this decodes the Y plane only */
    else
        cinfo.out_color_space = JCS_RGB;
    int out_channels = cinfo.out_color_space == JCS_GRAYSCALE ? 1 : 3;
    int needed_components = cinfo.out_color_space == JCS_GRAYSCALE ? 1 : cinfo.num_components;

    int early = cinfo.progressive_mode && denom > 1;
    if (early) {
        cinfo.buffered_image = TRUE;
        cinfo.do_block_smoothing = FALSE; /* smoothing would guess missing coefficients */
    }
    size_t scan_start = size - cinfo.src->bytes_in_buffer;
    jpeg_start_decompress(&cinfo);

    img = ps_image_new((int)cinfo.output_width, (int)cinfo.output_height, out_channels);
    if (!img) {
        jpeg_destroy_decompress(&cinfo);
        return ps_fail(err, PROVSCAN_E_NOMEM, "%s: out of memory for %ux%u pixels", req->name, cinfo.output_width,
                       cinfo.output_height);
    }
    if (cmyk) {
        row_buf = malloc((size_t)cinfo.output_width * 4);
        if (!row_buf) {
            snprintf(fail.message, sizeof fail.message, "out of memory");
            longjmp(fail.jump, 1);
        }
    }

    if (early) {
        /* coef_bits already counts a scan once its header is read, so the coefficients are known
         * to be complete only when the *next* scan begins; output then reflects the scans before. */
        int complete = needed_coefficients_final(&cinfo, denom, needed_components);
        int target = 0;
        for (;;) {
            int ret = jpeg_consume_input(&cinfo);
            if (ret == JPEG_REACHED_SOS) {
                if (complete) {
                    target = cinfo.input_scan_number - 1;
                    break;
                }
                complete = needed_coefficients_final(&cinfo, denom, needed_components);
            } else if (ret == JPEG_REACHED_EOI || ret == JPEG_SUSPENDED) {
                target = cinfo.input_scan_number;
                break;
            }
        }
        jpeg_start_output(&cinfo, target);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        uint8_t *dst = img->pixels + y * (size_t)img->width * out_channels;
        JSAMPROW rows[1] = {cmyk ? row_buf : dst};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1)
            break;
        if (cmyk)
            cmyk_to_rgb(row_buf, cinfo.output_width, dst, cinfo.saw_Adobe_marker);
    }
    if (early) {
        jpeg_finish_output(&cinfo);
        if (!has_eoi_after(data, size, scan_start))
            fail.truncated = 1;
        jpeg_abort_decompress(&cinfo);
    } else if (!fail.truncated && !fail.corrupt) {
        jpeg_finish_decompress(&cinfo);
    }
    int w = (int)cinfo.image_width, h = (int)cinfo.image_height;
    img->full_width = w;
    img->full_height = h;
    jpeg_destroy_decompress(&cinfo);
    free(row_buf);
    row_buf = NULL;

    if (fail.truncated || fail.corrupt) {
        provscan_image_free(img);
        if (fail.truncated)
            return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: truncated JPEG (the image data ends early)", req->name);
        return ps_fail(err, PROVSCAN_E_CORRUPT, "%s: corrupt JPEG data: %s", req->name, fail.message);
    }
    if (info) {
        info->source_width = w;
        info->source_height = h;
        info->had_alpha = 0;
        snprintf(info->format, sizeof info->format, "jpeg");
    }
    *out = img;
    return PROVSCAN_OK;
}
