/*  qkv_ring.c - the growable FIFO (qkv_ring.h). Capacity is a power of
    two so a slot is (head + i) & (cap - 1). Growing doubles the array with
    realloc; when the elements wrapped around its end, the wrapped part
    moves to the new upper half.
*/
#include "qkv_ring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void qkv_ring_init(qkv_ring_t *self, size_t elem_size) {
    memset(self, 0, sizeof(*self));
    self->elem_size = elem_size;
}

void qkv_ring_free(qkv_ring_t *self) {
    free(self->data);
    qkv_ring_init(self, self->elem_size);
}

int qkv_ring_reserve(qkv_ring_t *self, size_t extra) {
    if (extra > SIZE_MAX / 2 - self->count)
        return -1;
    size_t need = self->count + extra;
    if (need <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 16;
    while (cap < need)
        cap *= 2;
    if (cap > SIZE_MAX / self->elem_size)
        return -1;
    char *data = realloc(self->data, cap * self->elem_size);
    if (!data)
        return -1;
    size_t old = self->cap, es = self->elem_size;
    if (self->head + self->count > old) {
        /* the elements wrap: move the part at the start past the old end */
        size_t wrapped = self->head + self->count - old;
        memcpy(data + old * es, data, wrapped * es);
    }
    self->data = data;
    self->cap = cap;
    return 0;
}

void *qkv_ring_push(qkv_ring_t *self) {
    if (self->count == self->cap && qkv_ring_reserve(self, 1) != 0)
        return NULL;
    return qkv_ring_at(self, self->count++);
}

void *qkv_ring_first(const qkv_ring_t *self) {
    return self->count ? qkv_ring_at(self, 0) : NULL;
}

void *qkv_ring_last(const qkv_ring_t *self) {
    return self->count ? qkv_ring_at(self, self->count - 1) : NULL;
}

void qkv_ring_pop(qkv_ring_t *self, size_t n) {
    if (n > self->count)
        n = self->count;
    self->count -= n;
    self->head = self->count ? (self->head + n) & (self->cap - 1) : 0;
}

void qkv_ring_truncate(qkv_ring_t *self, size_t count) {
    if (count < self->count)
        self->count = count;
    if (!self->count)
        self->head = 0;
}

void qkv_ring_shrink(qkv_ring_t *self) {
    if (self->cap <= 16 || self->count * 4 > self->cap)
        return;
    size_t es = self->elem_size, half = self->cap / 2;
    /* move the elements to slots 0 .. count - 1 first */
    if (self->head + self->count > self->cap) {
        /* wrapped: [head, cap) then [0, rest); rotate through a buffer */
        char *tmp = malloc(self->count * es);
        if (!tmp)
            return;
        size_t first = self->cap - self->head;
        memcpy(tmp, self->data + self->head * es, first * es);
        memcpy(tmp + first * es, self->data, (self->count - first) * es);
        memcpy(self->data, tmp, self->count * es);
        free(tmp);
    } else if (self->head) {
        memmove(self->data, self->data + self->head * es, self->count * es);
    }
    self->head = 0;
    char *data = realloc(self->data, half * es);
    if (data)
        self->data = data;
    self->cap = data ? half : self->cap;
}
