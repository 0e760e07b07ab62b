/*  fuzz.c - helpers the libFuzzer targets share (fuzz.h).
 */
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[64];

void fuzz_fail(const char *file, int line, const char *what) {
    dprintf(2, "\nfuzz: %s:%d: check failed: %s\n", file, line, what);
    abort();
}

static void s_remove_dir(void) {
    if (!s_dir[0])
        return;
    fuzz_dir_clear();
    rmdir(s_dir);
    s_dir[0] = '\0';
}

const char *fuzz_dir(void) {
    if (!s_dir[0]) {
        snprintf(s_dir, sizeof(s_dir), "/tmp/qkv-fuzz-XXXXXX");
        if (!mkdtemp(s_dir)) {
            dprintf(2, "fuzz: cannot make a directory under /tmp\n");
            abort();
        }
        atexit(s_remove_dir);
    }
    return s_dir;
}

void fuzz_dir_clear(void) {
    DIR *d = opendir(fuzz_dir());
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

void fuzz_write_file(const char *name, const void *data, size_t size) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fuzz_dir(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const char *p = data;
    size_t left = size;
    while (fd >= 0 && left > 0) {
        ssize_t n = write(fd, p, left);
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    if (fd < 0 || left > 0 || close(fd) != 0) {
        dprintf(2, "fuzz: cannot write %s\n", path);
        abort();
    }
}

void fuzz_quiet(void) {
    FILE *null = fopen("/dev/null", "w");
    if (null)
        stderr = null;
}

bool fuzz_same(const void *a, const void *b, size_t len) {
    return len == 0 || memcmp(a, b, len) == 0;
}
