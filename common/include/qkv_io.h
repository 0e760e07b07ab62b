/*  qkv_io.h - file I/O helpers the node's disk parts share.
 */
#ifndef QKV_IO_H
#define QKV_IO_H

#include <stddef.h>

/* Writes all len bytes of data to fd, again after EINTR and short
   writes. Returns 0, or -1 with errno (ENOSPC when the disk took none). */
int qkv_write_all(int fd, const void *data, size_t len);

#endif
