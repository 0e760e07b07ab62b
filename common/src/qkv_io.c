/*  qkv_io.c - file I/O helpers (qkv_io.h).
 */
#include "qkv_io.h"

#include <errno.h>
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
