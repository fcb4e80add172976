/* walk.c — recursive directory listing with symlink policy, loop detection and image filtering. */
#include "index/walk.h"
#include "common/error.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const image_extensions[] = {
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "tif", "tiff", "heic", "heif", "avif",
    "jxl", "jp2", "j2k", "jpf", "svg", "bmp", "pbm", "pgm", "ppm", "pnm", "exr", "hdr", "qoi",
};

static int has_image_extension(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash))
        return 0;
    for (size_t i = 0; i < sizeof image_extensions / sizeof image_extensions[0]; i++)
        if (strcasecmp(dot + 1, image_extensions[i]) == 0)
            return 1;
    return 0;
}

/* Signatures of the formats provscan decodes, for files without a telling extension. */
static int has_image_signature(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1; /* let the loader report why it cannot be read */
    uint8_t b[16] = {0};
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n < 4)
        return 0;
    return (b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) || memcmp(b, "\x89PNG", 4) == 0 ||
           memcmp(b, "GIF8", 4) == 0 || (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) ||
           memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0 || (n >= 8 && memcmp(b + 4, "ftyp", 4) == 0) ||
           (b[0] == 0xFF && b[1] == 0x0A) || (n >= 12 && memcmp(b + 4, "jP  ", 4) == 0) ||
           (n >= 12 && memcmp(b, "\0\0\0\x0cJXL ", 8) == 0);
}

int ps_is_image_file(const char *path)
{
    return has_image_extension(path) || has_image_signature(path);
}

typedef struct walker {
    ps_walk_list *out;
    int follow;
    provscan_file_error_fn on_error;
    void *user;
    struct { dev_t dev; ino_t ino; } *stack; /* directories on the current path, for loop detection */
    size_t depth, stack_cap;
} walker;

static void report(walker *w, const char *path, provscan_status st, const char *why)
{
    if (w->on_error) {
        provscan_error e;
        ps_fail(&e, st, "%s: %s", path, why);
        w->on_error(path, &e, w->user);
    }
}

static int push_file(walker *w, char *path, const struct stat *st)
{
    if (!ps_is_image_file(path)) {
        w->out->non_image++;
        free(path);
        return 0;
    }
    if (w->out->n == w->out->cap) {
        size_t cap = w->out->cap ? w->out->cap * 2 : 1024;
        ps_walk_entry *v = realloc(w->out->v, cap * sizeof *v);
        if (!v) {
            free(path);
            return -1;
        }
        w->out->v = v;
        w->out->cap = cap;
    }
    w->out->v[w->out->n++] = (ps_walk_entry){
        .path = path,
        .size = (uint64_t)st->st_size,
        .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
    };
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_dir(walker *w, const char *dir, const struct stat *dst);

/* Handles one path whose stat (following links or not, as decided by the caller) is st. */
static int visit(walker *w, char *path, const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        return push_file(w, path, st);
    if (S_ISDIR(st->st_mode)) {
        int r = walk_dir(w, path, st);
        free(path);
        return r;
    }
    free(path); /* devices, sockets, fifos, links not followed */
    return 0;
}

static int walk_dir(walker *w, const char *dir, const struct stat *dst)
{
    for (size_t i = 0; i < w->depth; i++)
        if (w->stack[i].dev == dst->st_dev && w->stack[i].ino == dst->st_ino) {
            report(w, dir, PROVSCAN_E_IO, "directory loop through a symbolic link; skipped");
            return 0;
        }
    DIR *d = opendir(dir);
    if (!d) {
        report(w, dir, PROVSCAN_E_IO, strerror(errno));
        return 0;
    }
    if (w->depth == w->stack_cap) {
        size_t cap = w->stack_cap ? w->stack_cap * 2 : 32;
        void *s = realloc(w->stack, cap * sizeof *w->stack);
        if (!s) {
            closedir(d);
            return -1;
        }
        w->stack = s;
        w->stack_cap = cap;
    }
    w->stack[w->depth].dev = dst->st_dev;
    w->stack[w->depth].ino = dst->st_ino;
    w->depth++;

    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int result = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { result = -1; break; }
            names = nn;
        }
        if (!(names[n++] = strdup(e->d_name))) { result = -1; n--; break; }
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    size_t dlen = strlen(dir);
    for (size_t i = 0; i < n; i++) {
        if (result == 0) {
            size_t len = dlen + strlen(names[i]) + 2;
            char *path = malloc(len);
            if (!path) {
                result = -1;
            } else {
                snprintf(path, len, "%s%s%s", dir, dir[dlen - 1] == '/' ? "" : "/", names[i]);
                struct stat st;
                if (lstat(path, &st) != 0) {
                    report(w, path, PROVSCAN_E_IO, strerror(errno));
                    free(path);
                } else if (S_ISLNK(st.st_mode) && !w->follow) {
                    free(path); /* not followed unless asked */
                } else if (S_ISLNK(st.st_mode) && stat(path, &st) != 0) {
                    report(w, path, PROVSCAN_E_IO, "dangling symbolic link");
                    free(path);
                } else {
                    result = visit(w, path, &st);
                }
            }
        }
        free(names[i]);
    }
    free(names);
    w->depth--;
    return result;
}

provscan_status ps_walk(const char *const *paths, size_t npaths, int follow_symlinks, ps_walk_list *out,
                        provscan_file_error_fn on_error, void *user, provscan_error *err)
{
    memset(out, 0, sizeof *out);
    walker w = {.out = out, .follow = follow_symlinks, .on_error = on_error, .user = user};
    int r = 0;
    for (size_t i = 0; i < npaths && r == 0; i++) {
        char *abs = ps_path_absolute(paths[i]);
        if (!abs) {
            r = -1;
            break;
        }
        struct stat st;
        if (stat(abs, &st) != 0) {
            report(&w, paths[i], PROVSCAN_E_IO, strerror(errno));
            free(abs);
            continue;
        }
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
            report(&w, paths[i], PROVSCAN_E_IO, "not a regular file or directory");
            free(abs);
            continue;
        }
        r = visit(&w, abs, &st);
    }
    free(w.stack);
    if (r != 0) {
        ps_walk_free(out);
        return ps_fail(err, PROVSCAN_E_NOMEM, "out of memory while listing files");
    }
    return PROVSCAN_OK;
}

void ps_walk_free(ps_walk_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->v[i].path);
    free(list->v);
    memset(list, 0, sizeof *list);
}
