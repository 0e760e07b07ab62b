/*  qkv_ring.h - a FIFO of plain-data elements that grows with realloc.

    The one ring of qkv: pending writes, held messages, the log's entry
    pointers, session records. Elements are copied with memcpy, so they
    must be plain data (no self-pointers; no zmq_msg_t). Element i counts
    from the oldest (0) to the newest (count - 1); pushing at the back and
    popping at the front are O(1), and so is reaching any element. Pointers
    returned stay valid until the next push or reserve. A ring that is
    never popped keeps its elements in order from data[0]: it is then a
    growable array (truncate to 0 to empty it).

    Zero-initialised memory is not a ring: call qkv_ring_init first.
*/
#ifndef QKV_RING_H
#define QKV_RING_H

#include <stddef.h>

typedef struct {
    char *data;       /* cap slots of elem_size bytes */
    size_t elem_size; /* bytes per element */
    size_t head;      /* slot of element 0 */
    size_t count;     /* elements held */
    size_t cap;       /* slots; 0 or a power of two */
} qkv_ring_t;

/* Makes an empty ring of elem_size-byte elements; allocates nothing. */
void qkv_ring_init(qkv_ring_t *self, size_t elem_size);
/* Frees the memory; the ring is empty (and usable) afterwards. */
void qkv_ring_free(qkv_ring_t *self);

/* Makes room for extra more elements. Returns 0, or -1 when out of
   memory (the ring is unchanged). */
int qkv_ring_reserve(qkv_ring_t *self, size_t extra);

/* Appends an element and returns its slot (uninitialised), or NULL when
   out of memory. */
void *qkv_ring_push(qkv_ring_t *self);

/* Element i (0 = oldest); i must be below count. */
static inline void *qkv_ring_at(const qkv_ring_t *self, size_t i) {
    return self->data + ((self->head + i) & (self->cap - 1)) * self->elem_size;
}

/* Oldest and newest element, or NULL when empty. */
void *qkv_ring_first(const qkv_ring_t *self);
void *qkv_ring_last(const qkv_ring_t *self);

/* Drops the oldest n elements (at most count). */
void qkv_ring_pop(qkv_ring_t *self, size_t n);
/* Keeps only the oldest count elements (no-op when fewer are held). */
void qkv_ring_truncate(qkv_ring_t *self, size_t count);

/* Gives memory back when at most a quarter of the capacity is used:
   halves it (at least 16 slots stay). Never fails: when realloc cannot
   shrink, the ring keeps its memory. */
void qkv_ring_shrink(qkv_ring_t *self);

#endif
