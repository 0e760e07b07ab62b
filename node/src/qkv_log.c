/*  qkv_log.c - the in-memory log: a ring of entry pointers, element i
    holding index first + i (qkv_log.h).
*/
#include "qkv_log.h"

#include <stdlib.h>

struct qkv_log_t {
    qkv_ring_t entries; /* qkv_entry_t *, oldest first */
    uint64_t first;     /* index of the oldest held */
    uint64_t base_term; /* term of the entry at first - 1 (0 for index 0) */
    size_t bytes;       /* entries' sizes, for MAX_MEMORY */
};

static size_t s_size(const qkv_entry_t *e) {
    return sizeof(*e) + e->key_len + e->value_len + sizeof(qkv_entry_t *);
}

qkv_log_t *qkv_log_new(void) {
    qkv_log_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    qkv_ring_init(&self->entries, sizeof(qkv_entry_t *));
    self->first = 1;
    return self;
}

void qkv_log_destroy(qkv_log_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_log_clear(*self_p);
    qkv_ring_free(&(*self_p)->entries);
    free(*self_p);
    *self_p = NULL;
}

static qkv_entry_t *s_at(const qkv_log_t *self, size_t i) {
    return *(qkv_entry_t **)qkv_ring_at(&self->entries, i);
}

uint64_t qkv_log_append(qkv_log_t *self, qkv_entry_t **entry_p) {
    qkv_entry_t **slot = qkv_ring_push(&self->entries);
    if (!slot)
        return 0;
    qkv_entry_t *entry = *entry_p;
    entry->index = self->first + self->entries.count - 1;
    self->bytes += s_size(entry);
    *slot = entry;
    *entry_p = NULL;
    return entry->index;
}

uint64_t qkv_log_last_index(const qkv_log_t *self) {
    return self->first + self->entries.count - 1;
}

size_t qkv_log_bytes(const qkv_log_t *self) {
    return self->bytes;
}

uint64_t qkv_log_first_index(const qkv_log_t *self) {
    return self->first;
}

const qkv_entry_t *qkv_log_get(const qkv_log_t *self, uint64_t index) {
    if (index < self->first || index - self->first >= self->entries.count)
        return NULL;
    return s_at(self, (size_t)(index - self->first));
}

uint64_t qkv_log_term_at(const qkv_log_t *self, uint64_t index) {
    if (index == 0)
        return 0;
    if (index == self->first - 1)
        return self->base_term;
    const qkv_entry_t *entry = qkv_log_get(self, index);
    return entry ? entry->term : QKV_TERM_UNKNOWN;
}

void qkv_log_forget(qkv_log_t *self, uint64_t index) {
    while (self->entries.count && self->first <= index) {
        qkv_entry_t *entry = s_at(self, 0);
        self->base_term = entry->term;
        self->bytes -= s_size(entry);
        free(entry);
        qkv_ring_pop(&self->entries, 1);
        self->first++;
    }
}

void qkv_log_truncate(qkv_log_t *self, uint64_t index) {
    if (index < self->first)
        index = self->first;
    size_t keep = (size_t)(index - self->first);
    for (size_t i = keep; i < self->entries.count; i++) {
        self->bytes -= s_size(s_at(self, i));
        free(s_at(self, i));
    }
    qkv_ring_truncate(&self->entries, keep);
}

void qkv_log_clear(qkv_log_t *self) {
    for (size_t i = 0; i < self->entries.count; i++)
        free(s_at(self, i));
    qkv_ring_truncate(&self->entries, 0);
    self->bytes = 0;
    self->first = 1;
    self->base_term = 0;
}

void qkv_log_reset(qkv_log_t *self, uint64_t index, uint64_t term) {
    qkv_log_clear(self);
    self->first = index + 1;
    self->base_term = term;
}
