/* testutil.h — helpers shared by the C unit tests: data paths, temp files, image synthesis. */
#ifndef PROVSCAN_TESTUTIL_H
#define PROVSCAN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "provscan.h"

/* Path of a file under tests/data (static buffer per call site is not needed: caller frees). */
char *tu_data_path(const char *rel);
/* A fresh temporary directory (removed by tu_cleanup at exit). */
const char *tu_tmpdir(void);
/* Path in the temporary directory (caller frees). */
char *tu_tmp_path(const char *name);
/* Writes size bytes to path; aborts the test on failure. */
void tu_write_file(const char *path, const void *data, size_t size);
/* Reads a whole file (caller frees). */
uint8_t *tu_read_file(const char *path, size_t *size);
/* Deterministic pseudo-random numbers (splitmix64). */
uint64_t tu_rand(uint64_t *state);

#endif
