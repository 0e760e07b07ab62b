/*  qkv_dedup.c - a ring of the last `window` tagged writes, in index order,
    and an open-addressing hash table (linear probing, backward-shift
    deletion) from (client_id, client_seq) to a ring slot. All memory is
    allocated at creation: adding never fails.
*/
#include "qkv_dedup.h"
#include "qkv_hash.h"

#include <stdlib.h>

struct qkv_dedup_t {
    qkv_dedup_rec_t *ring; /* records, oldest at head */
    size_t window;         /* ring slots */
    size_t head;           /* slot of the oldest record */
    size_t count;          /* records held */
    size_t unapplied;      /* ring offset from head of the first record
                              whose result is not known */
    uint32_t *table;       /* ring slot + 1 per table slot; 0 = empty */
    size_t mask;           /* table slots - 1 */
};

static size_t s_hash(uint64_t id, uint64_t seq) {
    uint64_t h = id * 0x9e3779b97f4a7c15ULL ^ seq * 0xc2b2ae3d27d4eb4fULL;
    return (size_t)(h ^ (h >> 29));
}

qkv_dedup_t *qkv_dedup_new(size_t window) {
    if (window == 0 || window > (1u << 30))
        return NULL;
    qkv_dedup_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    size_t slots = 1;
    while (slots < window * 2)
        slots *= 2;
    self->window = window;
    self->mask = slots - 1;
    self->ring = calloc(window, sizeof(*self->ring));
    self->table = calloc(slots, sizeof(*self->table));
    if (!self->ring || !self->table)
        qkv_dedup_destroy(&self);
    return self;
}

void qkv_dedup_destroy(qkv_dedup_t **self_p) {
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ring);
    free((*self_p)->table);
    free(*self_p);
    *self_p = NULL;
}

static size_t s_slot(const qkv_dedup_t *self, uint64_t id, uint64_t seq) {
    size_t slot = s_hash(id, seq) & self->mask;
    while (self->table[slot]) {
        const qkv_dedup_rec_t *r = &self->ring[self->table[slot] - 1];
        if (r->client_id == id && r->client_seq == seq)
            break;
        slot = (slot + 1) & self->mask;
    }
    return slot;
}

const qkv_dedup_rec_t *qkv_dedup_find(qkv_dedup_t *self, uint64_t client_id,
                                      uint64_t client_seq) {
    size_t slot = s_slot(self, client_id, client_seq);
    return self->table[slot] ? &self->ring[self->table[slot] - 1] : NULL;
}

static size_t s_home(const void *ctx, uint32_t value) {
    const qkv_dedup_rec_t *r = &((const qkv_dedup_t *)ctx)->ring[value - 1];
    return s_hash(r->client_id, r->client_seq);
}

static void s_unlink(qkv_dedup_t *self, size_t hole) {
    qkv_probe_unlink(self->table, self->mask, hole, s_home, self);
}

void qkv_dedup_add(qkv_dedup_t *self, uint64_t client_id, uint64_t client_seq,
                   uint64_t index) {
    if (self->count == self->window) { /* forget the oldest */
        qkv_dedup_rec_t *old = &self->ring[self->head];
        s_unlink(self, s_slot(self, old->client_id, old->client_seq));
        self->head = (self->head + 1) % self->window;
        self->count--;
        if (self->unapplied)
            self->unapplied--;
    }
    size_t at = (self->head + self->count++) % self->window;
    self->ring[at] = (qkv_dedup_rec_t){client_id, client_seq, index, 0, false};
    self->table[s_slot(self, client_id, client_seq)] = (uint32_t)at + 1;
}

void qkv_dedup_applied(qkv_dedup_t *self, uint64_t first, size_t count,
                       const uint64_t *results) {
    while (self->unapplied < self->count) {
        qkv_dedup_rec_t *r =
            &self->ring[(self->head + self->unapplied) % self->window];
        if (r->index >= first + count)
            break;
        if (r->index >= first) {
            r->result = results[r->index - first];
            r->applied = true;
        }
        self->unapplied++;
    }
}

size_t qkv_dedup_count(const qkv_dedup_t *self) {
    return self->count;
}
