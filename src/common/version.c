/* version.c — version strings of provscan and of the decoders it is linked with. */
#include "provscan.h"

#include <pthread.h>
#include <stdio.h>

#include <jpeglib.h>
#include <vips/vips.h>

static char decoder_version[64];
static pthread_once_t decoder_once = PTHREAD_ONCE_INIT;

static void fill_decoder_version(void)
{
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    int n = LIBJPEG_TURBO_VERSION_NUMBER;
    snprintf(decoder_version, sizeof decoder_version, "libvips %s, libjpeg-turbo %d.%d.%d", vips_version_string(),
             n / 1000000, n / 1000 % 1000, n % 1000);
#else
    snprintf(decoder_version, sizeof decoder_version, "libvips %s, libjpeg %d", vips_version_string(), JPEG_LIB_VERSION);
#endif
}

const char *provscan_version(void)
{
    return PROVSCAN_VERSION_STRING;
}

const char *provscan_decoder_version(void)
{
    pthread_once(&decoder_once, fill_decoder_version);
    return decoder_version;
}
