/* metadata.h — bounded byte-level scan of an encoded file for orientation and declared provenance. */
#ifndef PROVSCAN_METADATA_H
#define PROVSCAN_METADATA_H

#include <stddef.h>
#include <stdint.h>

enum {
    PS_GEN_PARAMETERS = 1 << 0, /* Automatic1111-style "parameters" text */
    PS_GEN_PROMPT = 1 << 1,     /* ComfyUI "prompt" chunk */
    PS_GEN_WORKFLOW = 1 << 2,   /* ComfyUI "workflow" chunk */
};

typedef struct ps_metadata {
    uint32_t width, height;     /* from the header, where the container states them simply; 0 if not */
    int orientation;            /* EXIF orientation 1..8; 0 when absent */
    int c2pa_manifest;          /* a C2PA manifest store (JUMBF) is embedded */
    int xmp_packet;             /* an XMP packet is embedded */
    char source_type[48];       /* IPTC DigitalSourceType term found, e.g. "trainedAlgorithmicMedia" */
    char source_type_in[8];     /* where it was found: "c2pa" or "xmp" */
    int generator_chunks;       /* PS_GEN_* bits */
} ps_metadata;

/* Scans data (a whole encoded file) without decoding pixels. Never reads out of bounds, whatever
 * the bytes; unknown containers leave md zeroed. */
void ps_metadata_scan(const uint8_t *data, size_t size, ps_metadata *md);

#endif
