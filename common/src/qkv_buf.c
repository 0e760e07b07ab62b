/*  qkv_buf.c - the growable buffer every part formats into (qkv_buf.h).
 */
#include "qkv_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qkv_buf_reserve(qkv_buf_t *self, size_t extra) {
    if (self->failed)
        return -1;
    if (extra > SIZE_MAX - 1 - self->size) {
        self->failed = 1;
        return -1;
    }
    if (self->size + extra + 1 <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < self->size + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            self->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *data = realloc(self->data, cap);
    if (!data) {
        self->failed = 1;
        return -1;
    }
    self->data = data;
    self->cap = cap;
    return 0;
}

int qkv_buf_append(qkv_buf_t *self, const void *data, size_t size) {
    if (qkv_buf_reserve(self, size) != 0)
        return -1;
    if (size)
        memcpy(self->data + self->size, data, size);
    self->size += size;
    self->data[self->size] = '\0';
    return 0;
}

int qkv_buf_printf(qkv_buf_t *self, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return qkv_buf_append(self, small, (size_t)n);
    if (qkv_buf_reserve(self, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(self->data + self->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->size += (size_t)n;
    return 0;
}

void qkv_buf_reset(qkv_buf_t *self) {
    self->size = 0;
    self->failed = 0;
    if (self->data)
        self->data[0] = '\0';
}

void qkv_buf_free(qkv_buf_t *self) {
    free(self->data);
    memset(self, 0, sizeof(*self));
}
