/*  qkv_store.c - the key-value state: a hash table over stable positions.

    Keys live in items, one allocation each (header, key, value), reached
    through pos[], an array of item pointers whose slots never move. The
    hash table maps a key to its position (open addressing, linear probing,
    backward-shift deletion). A slot holds the key's 32-bit hash beside
    its position + 1, so a probe compares hashes in the table itself and
    reaches an item only when they match. Because an
    item keeps its position while it lives, a dump that walks pos[] in
    order visits each key at most once however the table grows.

    While a dump is open, a deleted key is not removed: its item stays in
    place marked dead (value dropped), so re-creating the key revives the
    same position instead of adding a second one. The last dump to close
    sweeps the dead items away.
*/
#include "qkv_store.h"
#include "qkv_hash.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t index; /* entry that last wrote the key */
    uint64_t seq;   /* times written since created; 0 = dead */
    uint32_t key_len;
    uint32_t value_len;
    char data[]; /* key, then value */
} s_item_t;

struct qkv_store_t {
    pthread_rwlock_t lock;  /* writer-preferring; guards all below */
    s_item_t **pos;         /* items by position; NULL = free */
    uint32_t pos_used;      /* high-water mark of positions */
    uint32_t pos_cap;       /* slots allocated in pos */
    uint32_t *free_pos;     /* stack of free positions; pos_cap slots */
    uint32_t free_count;    /* entries on free_pos */
    uint64_t *table;        /* hash << 32 | position + 1; 0 = empty */
    size_t table_mask;      /* slots - 1 (power of two) */
    size_t table_used;      /* occupied slots (live and dead items) */
    size_t live;            /* keys visible to readers */
    size_t dead;            /* dead items kept for open dumps */
    int cursors;            /* dumps open */
    uint64_t applied_index; /* last entry applied */
    size_t item_overhead;   /* allocator bytes of items beyond payloads */
    size_t payload;         /* key and value bytes of items */
};

struct qkv_store_cursor_t {
    qkv_store_t *store; /* the store being dumped */
    uint32_t next;      /* next position to visit */
};

/*  =====================================================================
    Hashing and the table */

static uint32_t s_hash(const char *key, size_t len) {
    uint64_t h = qkv_hash_bytes(QKV_HASH_SEED, key, len);
    return (uint32_t)(h ^ (h >> 32));
}

/* A slot's value for an item of hash at position p. */
static uint64_t s_slot_value(uint32_t hash, uint32_t p) {
    return (uint64_t)hash << 32 | (p + 1);
}

static uint32_t s_slot_pos(uint64_t value) {
    return (uint32_t)value - 1;
}

static s_item_t *s_at(const qkv_store_t *self, size_t slot) {
    return self->pos[s_slot_pos(self->table[slot])];
}

/* Slot holding key, or the empty slot where it would go. */
static size_t s_find(const qkv_store_t *self, const char *key, size_t len,
                     uint32_t hash) {
    size_t slot = hash & self->table_mask;
    for (uint64_t v; (v = self->table[slot]);
         slot = (slot + 1) & self->table_mask) {
        if ((uint32_t)(v >> 32) != hash)
            continue;
        const s_item_t *item = self->pos[s_slot_pos(v)];
        if (item->key_len == len && memcmp(item->data, key, len) == 0)
            return slot;
    }
    return slot;
}

static size_t s_home(const void *ctx, uint64_t value) {
    (void)ctx;
    return (size_t)(value >> 32);
}

static int s_grow_table(qkv_store_t *self) {
    return qkv_probe_grow64(&self->table, &self->table_mask,
                            (self->table_mask + 1) * 2, s_home, self);
}

/* Removes the table slot, shifting later members of its run back. */
static void s_unlink_slot(qkv_store_t *self, size_t hole) {
    qkv_probe_unlink64(self->table, self->table_mask, hole, s_home, self);
    self->table_used--;
}

/* Allocator bytes an item takes beyond its key and value: header, padding
   and malloc's own word. Counted at each allocation and free. */
static size_t s_overhead(const s_item_t *item, size_t key_len,
                         size_t value_len) {
    return malloc_usable_size((void *)item) + sizeof(size_t) - key_len -
           value_len;
}

static void s_free_item(qkv_store_t *self, s_item_t *item) {
    self->item_overhead -= s_overhead(item, item->key_len, item->value_len);
    self->payload -= item->key_len + item->value_len;
    free(item);
}

/*  =====================================================================
    Positions */

static int s_take_pos(qkv_store_t *self, uint32_t *out) {
    if (self->free_count) {
        *out = self->free_pos[--self->free_count];
        return 0;
    }
    if (self->pos_used == UINT32_MAX - 1)
        return -1;
    if (self->pos_used == self->pos_cap) {
        /* free_pos grows with pos, so releasing a position never fails */
        uint32_t cap = self->pos_cap ? self->pos_cap * 2 : 1024;
        uint32_t *fp = realloc(self->free_pos, cap * sizeof(*fp));
        if (!fp)
            return -1;
        self->free_pos = fp;
        s_item_t **pos = realloc(self->pos, cap * sizeof(*pos));
        if (!pos)
            return -1;
        self->pos = pos;
        self->pos_cap = cap;
    }
    *out = self->pos_used++;
    return 0;
}

static void s_release_pos(qkv_store_t *self, uint32_t p) {
    self->pos[p] = NULL;
    self->free_pos[self->free_count++] = p;
}

/*  =====================================================================
    Life cycle */

qkv_store_t *qkv_store_new(void) {
    qkv_store_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->table_mask = 1023;
    self->table = calloc(self->table_mask + 1, sizeof(*self->table));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&self->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (!self->table || rc != 0) {
        free(self->table);
        free(self);
        return NULL;
    }
    return self;
}

static void s_free_all(qkv_store_t *self) {
    for (uint32_t p = 0; p < self->pos_used; p++)
        free(self->pos[p]);
    self->item_overhead = 0;
    self->payload = 0;
    self->pos_used = 0;
    self->free_count = 0;
    memset(self->table, 0, (self->table_mask + 1) * sizeof(*self->table));
    self->table_used = 0;
    self->live = 0;
    self->dead = 0;
}

void qkv_store_destroy(qkv_store_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_store_t *self = *self_p;
    s_free_all(self);
    pthread_rwlock_destroy(&self->lock);
    free(self->pos);
    free(self->free_pos);
    free(self->table);
    free(self);
    *self_p = NULL;
}

/*  =====================================================================
    Writing (caller holds the write lock) */

/* Removes every item, or marks each dead while a dump is open. */
static void s_reset(qkv_store_t *self) {
    if (!self->cursors) {
        s_free_all(self);
        return;
    }
    for (uint32_t p = 0; p < self->pos_used; p++) {
        s_item_t *item = self->pos[p];
        if (item && item->seq) {
            item->seq = 0;
            self->live--;
            self->dead++;
        }
    }
}

/* Removes the key; returns 1 when it existed, else 0. */
static int s_delete(qkv_store_t *self, const qkv_entry_t *e) {
    uint32_t hash = s_hash(e->data, e->key_len);
    size_t slot = s_find(self, e->data, e->key_len, hash);
    if (!self->table[slot] || !s_at(self, slot)->seq)
        return 0;
    s_item_t *item = s_at(self, slot);
    self->live--;
    if (self->cursors) {
        item->seq = 0; /* dead: keeps its place (and bytes) for the dumps */
        self->dead++;
        return 1;
    }
    uint32_t p = s_slot_pos(self->table[slot]);
    s_unlink_slot(self, slot);
    s_free_item(self, item);
    s_release_pos(self, p);
    return 1;
}

static int s_put(qkv_store_t *self, const qkv_entry_t *e, uint64_t *seq) {
    const char *key = e->data, *value = e->data + e->key_len;
    uint32_t hash = s_hash(key, e->key_len);
    if ((self->table_used + 1) * 4 > (self->table_mask + 1) * 3 &&
        s_grow_table(self) != 0)
        return -1;
    size_t slot = s_find(self, key, e->key_len, hash);
    size_t size = sizeof(s_item_t) + e->key_len + e->value_len;
    if (self->table[slot]) {
        uint32_t p = s_slot_pos(self->table[slot]);
        s_item_t *item = self->pos[p];
        if (item->value_len != e->value_len) {
            size_t before = s_overhead(item, item->key_len, item->value_len);
            item = realloc(item, size);
            if (!item)
                return -1;
            self->pos[p] = item;
            self->item_overhead +=
                s_overhead(item, e->key_len, e->value_len) - before;
            self->payload += e->value_len;
            self->payload -= item->value_len;
        }
        if (!item->seq) {
            self->dead--;
            self->live++;
        }
        item->seq++;
        item->index = e->index;
        item->value_len = e->value_len;
        memcpy(item->data + e->key_len, value, e->value_len);
        *seq = item->seq;
        return 0;
    }
    uint32_t p;
    s_item_t *item = malloc(size);
    if (!item || s_take_pos(self, &p) != 0) {
        free(item);
        return -1;
    }
    item->index = e->index;
    item->seq = 1;
    item->key_len = e->key_len;
    item->value_len = e->value_len;
    memcpy(item->data, key, e->key_len + e->value_len);
    self->item_overhead += s_overhead(item, e->key_len, e->value_len);
    self->payload += e->key_len + e->value_len;
    self->pos[p] = item;
    self->table[slot] = s_slot_value(hash, p);
    self->table_used++;
    self->live++;
    *seq = 1;
    return 0;
}

static int s_apply(qkv_store_t *self, const qkv_entry_t *e, uint64_t *seq) {
    *seq = 0;
    int rc = 0;
    if (e->op == QKV_OP_PUT)
        rc = s_put(self, e, seq);
    else if (e->op == QKV_OP_DELETE)
        *seq = (uint64_t)s_delete(self, e);
    else if (e->op == QKV_OP_RESET)
        s_reset(self);
    if (rc == 0)
        self->applied_index = e->index;
    return rc;
}

void qkv_store_write_begin(qkv_store_t *self) {
    pthread_rwlock_wrlock(&self->lock);
}

int qkv_store_apply_locked(qkv_store_t *self, const qkv_entry_t *entry,
                           uint64_t *seq) {
    return s_apply(self, entry, seq);
}

void qkv_store_skip_locked(qkv_store_t *self, uint64_t index) {
    self->applied_index = index;
}

void qkv_store_write_end(qkv_store_t *self) {
    pthread_rwlock_unlock(&self->lock);
}

int qkv_store_apply(qkv_store_t *self, const qkv_entry_t *entry,
                    uint64_t *seq) {
    pthread_rwlock_wrlock(&self->lock);
    int rc = s_apply(self, entry, seq);
    pthread_rwlock_unlock(&self->lock);
    return rc;
}

int qkv_store_load_locked(qkv_store_t *self, const qkv_entry_t *entry,
                          uint64_t seq) {
    uint64_t got;
    if (seq == 0 || s_put(self, entry, &got) != 0)
        return -1;
    uint32_t hash = s_hash(entry->data, entry->key_len);
    size_t slot = s_find(self, entry->data, entry->key_len, hash);
    self->pos[s_slot_pos(self->table[slot])]->seq = seq;
    return 0;
}

void qkv_store_clear(qkv_store_t *self) {

    pthread_rwlock_wrlock(&self->lock);
    s_reset(self);
    self->applied_index = 0;
    pthread_rwlock_unlock(&self->lock);
}

/*  =====================================================================
    Reading */

int qkv_store_get(qkv_store_t *self, const char *key, size_t key_len,
                  qkv_buf_t *value, uint64_t *seq, uint64_t *index) {
    uint32_t hash = s_hash(key, key_len);
    int rc = 0;
    pthread_rwlock_rdlock(&self->lock);
    size_t slot = s_find(self, key, key_len, hash);
    if (self->table[slot] && s_at(self, slot)->seq) {
        const s_item_t *item = s_at(self, slot);
        qkv_buf_reset(value);
        rc = qkv_buf_append(value, item->data + item->key_len,
                            item->value_len) == 0
                 ? 1
                 : -1;
        *seq = item->seq;
        *index = item->index;
    }
    pthread_rwlock_unlock(&self->lock);
    return rc;
}

size_t qkv_store_count(qkv_store_t *self) {
    pthread_rwlock_rdlock(&self->lock);
    size_t n = self->live;
    pthread_rwlock_unlock(&self->lock);
    return n;
}

uint64_t qkv_store_applied_index(qkv_store_t *self) {
    pthread_rwlock_rdlock(&self->lock);
    uint64_t i = self->applied_index;
    pthread_rwlock_unlock(&self->lock);
    return i;
}

/* Bytes beyond keys and values; under the lock. */
static size_t s_overhead_bytes(const qkv_store_t *self) {
    return sizeof(*self) + (self->table_mask + 1) * sizeof(*self->table) +
           (size_t)self->pos_cap *
               (sizeof(*self->pos) + sizeof(*self->free_pos)) +
           self->item_overhead;
}

size_t qkv_store_bytes(qkv_store_t *self) {
    pthread_rwlock_rdlock(&self->lock);
    size_t bytes = s_overhead_bytes(self) + self->payload;
    pthread_rwlock_unlock(&self->lock);
    return bytes;
}

size_t qkv_store_overhead_bytes(qkv_store_t *self) {
    pthread_rwlock_rdlock(&self->lock);
    size_t bytes = s_overhead_bytes(self);
    pthread_rwlock_unlock(&self->lock);
    return bytes;
}

/*  =====================================================================
    Dumps */

qkv_store_cursor_t *qkv_store_cursor_new(qkv_store_t *self,
                                         uint64_t *applied_index,
                                         size_t *count) {
    qkv_store_cursor_t *cursor = calloc(1, sizeof(*cursor));
    if (!cursor)
        return NULL;
    cursor->store = self;
    pthread_rwlock_wrlock(&self->lock);
    self->cursors++;
    *applied_index = self->applied_index;
    *count = self->live;
    pthread_rwlock_unlock(&self->lock);
    return cursor;
}

size_t qkv_store_cursor_next(qkv_store_cursor_t *self, size_t max_keys,
                             qkv_store_visit_fn *visit, void *arg) {
    qkv_store_t *store = self->store;
    size_t visited = 0;
    pthread_rwlock_rdlock(&store->lock);
    while (visited < max_keys && self->next < store->pos_used) {
        const s_item_t *item = store->pos[self->next++];
        if (!item || !item->seq)
            continue;
        visit(arg, item->data, item->key_len, item->data + item->key_len,
              item->value_len, item->seq, item->index);
        visited++;
    }
    pthread_rwlock_unlock(&store->lock);
    return visited;
}

size_t qkv_store_scan(qkv_store_t *self, uint64_t *cursor, size_t max_keys,
                      size_t max_bytes, qkv_store_visit_fn *visit, void *arg) {
    size_t visited = 0, bytes = 0;
    pthread_rwlock_rdlock(&self->lock);
    uint64_t p = *cursor;
    while (p < self->pos_used && visited < max_keys && bytes < max_bytes) {
        const s_item_t *item = self->pos[p++];
        if (!item || !item->seq)
            continue;
        visit(arg, item->data, item->key_len, item->data + item->key_len,
              item->value_len, item->seq, item->index);
        visited++;
        bytes += item->key_len + item->value_len;
    }
    *cursor = p < self->pos_used ? p : 0;
    pthread_rwlock_unlock(&self->lock);
    return visited;
}

/* Removes the dead items left by dumps (write lock held, no cursor). */
static void s_sweep(qkv_store_t *self) {
    for (uint32_t p = 0; p < self->pos_used && self->dead; p++) {
        s_item_t *item = self->pos[p];
        if (!item || item->seq)
            continue;
        size_t slot = s_find(self, item->data, item->key_len,
                             s_hash(item->data, item->key_len));
        s_unlink_slot(self, slot);
        s_free_item(self, item);
        s_release_pos(self, p);
        self->dead--;
    }
}

void qkv_store_cursor_destroy(qkv_store_cursor_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_store_t *store = (*self_p)->store;
    pthread_rwlock_wrlock(&store->lock);
    if (--store->cursors == 0 && store->dead)
        s_sweep(store);
    pthread_rwlock_unlock(&store->lock);
    free(*self_p);
    *self_p = NULL;
}
