/*  qkv_log.c - the in-memory log: a growable array of entry pointers,
    slot i holding index first + i. Forgetting a prefix advances first and
    compacts the array once the hole is at least half of it.
*/
#include "qkv_log.h"

#include <stdlib.h>
#include <string.h>

struct qkv_log_t {
    qkv_entry_t **slots; /* slots[head .. head + count) are held */
    size_t head;         /* slot of the first held entry */
    size_t count;        /* entries held */
    size_t cap;          /* slots allocated */
    uint64_t first;      /* index of slots[head] */
};

qkv_log_t *qkv_log_new(void) {
    qkv_log_t *self = calloc(1, sizeof(*self));
    if (self)
        self->first = 1;
    return self;
}

void qkv_log_destroy(qkv_log_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_log_clear(*self_p);
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

uint64_t qkv_log_append(qkv_log_t *self, qkv_entry_t **entry_p) {
    if (self->head + self->count == self->cap) {
        if (self->head > 0 && self->head >= self->count) {
            memmove(self->slots, self->slots + self->head,
                    self->count * sizeof(*self->slots));
            self->head = 0;
        } else {
            size_t cap = self->cap ? self->cap * 2 : 4096;
            qkv_entry_t **slots = realloc(self->slots, cap * sizeof(*slots));
            if (!slots)
                return 0;
            self->slots = slots;
            self->cap = cap;
        }
    }
    qkv_entry_t *entry = *entry_p;
    entry->index = self->first + self->count;
    self->slots[self->head + self->count++] = entry;
    *entry_p = NULL;
    return entry->index;
}

uint64_t qkv_log_last_index(const qkv_log_t *self) {
    return self->first + self->count - 1;
}

uint64_t qkv_log_first_index(const qkv_log_t *self) {
    return self->first;
}

const qkv_entry_t *qkv_log_get(const qkv_log_t *self, uint64_t index) {
    if (index < self->first || index - self->first >= self->count)
        return NULL;
    return self->slots[self->head + (index - self->first)];
}

void qkv_log_forget(qkv_log_t *self, uint64_t index) {
    while (self->count && self->first <= index) {
        free(self->slots[self->head++]);
        self->count--;
        self->first++;
    }
    if (self->count == 0)
        self->head = 0;
}

void qkv_log_clear(qkv_log_t *self) {
    for (size_t i = 0; i < self->count; i++)
        free(self->slots[self->head + i]);
    self->head = 0;
    self->count = 0;
    self->first = 1;
}
