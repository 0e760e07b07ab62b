/*  qkv_io.h - file I/O helpers the node's disk parts share.
 */
#ifndef QKV_IO_H
#define QKV_IO_H

#include <stdbool.h>
#include <stddef.h>

/* Writes all len bytes of data to fd, again after EINTR and short
   writes. Returns 0, or -1 with errno (ENOSPC when the disk took none). */
int qkv_write_all(int fd, const void *data, size_t len);

/* Reads the regular file path, at most max bytes, into a malloc'd buffer
   with a NUL after its *len bytes. With secret, refuses a file that group
   or others may read or write (the message says chmod 600), and a buffer
   given up is wiped first. Returns NULL with a message that names the
   file, never its content, in err. */
char *qkv_read_file(const char *path, size_t max, bool secret, size_t *len,
                    char *err, size_t err_size);

/* Wipes len bytes of data, then frees it; NULL-safe. */
void qkv_free_secret(char *data, size_t len);

#endif
