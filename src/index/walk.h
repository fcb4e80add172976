/* walk.h — recursive listing of the files under the paths given to `index add` and `batch`. */
#ifndef PROVSCAN_WALK_H
#define PROVSCAN_WALK_H

#include <stdint.h>
#include <sys/stat.h>

#include "provscan.h"

typedef struct ps_walk_entry {
    char *path;        /* absolute, normalised */
    uint64_t size;
    int64_t mtime_ns;
} ps_walk_entry;

typedef struct ps_walk_list {
    ps_walk_entry *v;
    size_t n, cap;
    uint64_t non_image; /* regular files skipped as not images */
} ps_walk_list;

/* Lists the image files under paths (files are taken as given; directories are walked recursively
 * in name order). Symbolic links met inside directories are followed only when follow_symlinks is
 * set (directory loops are detected); links named on the command line are always followed. Files
 * that are not images by extension or by their first bytes are counted in non_image. Paths that
 * cannot be listed are reported through on_error and skipped. */
provscan_status ps_walk(const char *const *paths, size_t npaths, int follow_symlinks, ps_walk_list *out,
                        provscan_file_error_fn on_error, void *user, provscan_error *err);
void ps_walk_free(ps_walk_list *list);

/* True if the name's extension, or else the first bytes of the file, say it is an image. */
int ps_is_image_file(const char *path);

#endif
