/*  qkv_io.c - file I/O helpers (qkv_io.h).
 */
#include "qkv_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int qkv_write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void qkv_free_secret(char *data, size_t len) {
    if (!data)
        return;
    explicit_bzero(data, len);
    free(data);
}

char *qkv_read_file(const char *path, size_t max, bool secret, size_t *len,
                    char *err, size_t err_size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *data = NULL;
    if (fstat(fd, &st) != 0)
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(err, err_size, "%s: not a regular file", path);
    else if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        snprintf(err, err_size,
                 "%s: group or others may read or write it (mode %04o); it "
                 "holds secrets: chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
    else if ((unsigned long long)st.st_size > max)
        snprintf(err, err_size, "%s: larger than %zu bytes", path, max);
    else if (!(data = malloc((size_t)st.st_size + 1)))
        snprintf(err, err_size, "%s: out of memory", path);
    size_t cap = data ? (size_t)st.st_size : 0, got = 0;
    while (data && got < cap) {
        ssize_t n = read(fd, data + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_size, "%s: %s", path, strerror(errno));
            qkv_free_secret(data, cap + 1);
            data = NULL;
        } else if (n == 0) {
            break; /* shorter than it was: take what is there */
        } else {
            got += (size_t)n;
        }
    }
    close(fd);
    if (data) {
        data[got] = '\0';
        *len = got;
    }
    return data;
}
