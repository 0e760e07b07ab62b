/*  qkv_buf.h - a growable byte buffer, the one every part formats into.

    Zero-initialise a qkv_buf_t, then append; free with qkv_buf_free. An
    allocation failure sticks in `failed` (later appends are no-ops), so a
    caller may build a whole message and check once at the end.
*/
#ifndef QKV_BUF_H
#define QKV_BUF_H

#include <stddef.h>

typedef struct {
    char *data;  /* owned; NULL until the first append */
    size_t size; /* bytes in use, not counting the terminating NUL */
    size_t cap;  /* bytes allocated */
    int failed;  /* set once an allocation failed; appends are then no-ops */
} qkv_buf_t;

/* Makes room for extra more bytes; returns 0, or -1 (and sets failed). */
int qkv_buf_reserve(qkv_buf_t *self, size_t extra);
/* Appends bytes; returns 0 or -1 when out of memory. data is always
   NUL-terminated once anything was appended. */
int qkv_buf_append(qkv_buf_t *self, const void *data, size_t size);
/* Appends formatted text; returns 0 or -1. */
int qkv_buf_printf(qkv_buf_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory, and forgets a failure. */
void qkv_buf_reset(qkv_buf_t *self);
/* Frees the memory and zeroes the buffer. */
void qkv_buf_free(qkv_buf_t *self);

#endif
