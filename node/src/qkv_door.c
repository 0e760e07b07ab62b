/*  qkv_door.c - the one door for writes (qkv_door.h).

    Three structures:
    - parked: a ring of writes waiting for their entry, by index (and so
      by deadline: every write gets REPLICATION_TIMEOUT_MS from when it
      came in, and came in in index order);
    - retries: writes waiting for an entry someone else logged (a retry
      of a pending write); an array scanned when entries apply;
    - pending pairs: the tagged entries in the log not applied yet, as a
      ring in index order and a table from (client_id, client_seq) to the
      ring element's number, so that a retry finds its original.
*/
#include "qkv_door.h"
#include "qkv_hash.h"
#include "qkv_ring.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t index;      /* the entry */
    int64_t deadline_us; /* answered TIMEOUT then */
    qkv_origin_t origin;
} s_parked_t;

typedef struct {
    uint64_t client_id, client_seq, hash;
    uint64_t index;
} s_pair_t;

struct qkv_door_t {
    qkv_node_t *node;
    const qkv_config_t *cfg;
    qkv_core_t *core;
    const qkv_state_t *state;
    qkv_door_hooks_t hooks;
    int64_t timeout_us;
    qkv_ring_t parked;  /* s_parked_t by index */
    s_parked_t *retries; /* unordered */
    size_t retry_count, retry_cap;
    qkv_ring_t pairs;   /* s_pair_t by index */
    uint64_t pairs_popped; /* number of the ring's first element */
    uint64_t *table;    /* pair element number + 1; 0 = empty */
    size_t table_mask, table_used;
};

/*  =====================================================================
    Life cycle */

qkv_door_t *qkv_door_new(qkv_node_t *node, qkv_core_t *core,
                         const qkv_state_t *state,
                         const qkv_door_hooks_t *hooks) {
    qkv_door_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->node = node;
    self->cfg = &node->config;
    self->core = core;
    self->state = state;
    self->hooks = *hooks;
    self->timeout_us = (int64_t)self->cfg->replication_timeout_ms * 1000;
    qkv_ring_init(&self->parked, sizeof(s_parked_t));
    qkv_ring_init(&self->pairs, sizeof(s_pair_t));
    self->table_mask = 255;
    self->table = calloc(self->table_mask + 1, sizeof(*self->table));
    if (!self->table)
        qkv_door_destroy(&self);
    return self;
}

void qkv_door_destroy(qkv_door_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_door_t *self = *self_p;
    qkv_ring_free(&self->parked);
    qkv_ring_free(&self->pairs);
    free(self->retries);
    free(self->table);
    free(self);
    *self_p = NULL;
}

/*  =====================================================================
    Answers and counters */

static qkv_proto_counters_t *s_counters(qkv_door_t *self,
                                        const qkv_origin_t *o) {
    return &self->node->by_proto[o->proto < QKV_PROTO_COUNT ? o->proto : 0];
}

static void s_answer(qkv_door_t *self, const qkv_origin_t *o,
                     qkv_write_status_t status, uint64_t index,
                     uint64_t result, int64_t now) {
    qkv_write_result_t r = {status, index, result, now - o->start_us};
    qkv_proto_counters_t *c = s_counters(self, o);
    if (status == QKV_WRITE_COMMITTED) {
        atomic_fetch_add_explicit(&c->commits, 1, memory_order_relaxed);
        qkv_node_observe(self->node, (qkv_proto_t)o->proto, r.latency_us);
    } else if (status == QKV_WRITE_TIMEOUT) {
        atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed);
    }
    self->hooks.answer(self->hooks.ctx, o, &r);
}

/* The answer an applied entry gives its writers. */
static void s_answer_outcome(qkv_door_t *self, const qkv_origin_t *o,
                             const qkv_outcome_t *out, int64_t now) {
    switch (out->kind) {
    case QKV_APPLIED:
    case QKV_APPLIED_RETRY:
        s_answer(self, o, QKV_WRITE_COMMITTED, out->answer_index, out->result,
                 now);
        break;
    case QKV_APPLIED_CONFLICT:
        s_answer(self, o, QKV_WRITE_CONFLICT, 0, 0, now);
        break;
    default:
        s_answer(self, o, QKV_WRITE_SESSION_EXPIRED, 0, 0, now);
    }
}

/*  =====================================================================
    Pending pairs */

static size_t s_pair_hash(uint64_t id, uint64_t seq) {
    return (size_t)qkv_hash_mix(id * 0x9e3779b97f4a7c15ULL ^ seq);
}

static const s_pair_t *s_pair_at(const qkv_door_t *self, uint64_t number) {
    return qkv_ring_at(&self->pairs, (size_t)(number - self->pairs_popped));
}

static size_t s_pair_home(const void *ctx, uint64_t value) {
    const s_pair_t *p = s_pair_at(ctx, value - 1);
    return s_pair_hash(p->client_id, p->client_seq);
}

/* Slot holding (id, seq), or the empty slot where it goes. */
static size_t s_pair_slot(const qkv_door_t *self, uint64_t id, uint64_t seq) {
    size_t slot = s_pair_hash(id, seq) & self->table_mask;
    while (self->table[slot]) {
        const s_pair_t *p = s_pair_at(self, self->table[slot] - 1);
        if (p->client_id == id && p->client_seq == seq)
            break;
        slot = (slot + 1) & self->table_mask;
    }
    return slot;
}

static int s_table_grow(qkv_door_t *self) {
    size_t slots = (self->table_mask + 1) * 2;
    uint64_t *table = calloc(slots, sizeof(*table));
    if (!table)
        return -1;
    for (size_t i = 0; i <= self->table_mask; i++) {
        if (!self->table[i])
            continue;
        size_t slot = s_pair_home(self, self->table[i]) & (slots - 1);
        while (table[slot])
            slot = (slot + 1) & (slots - 1);
        table[slot] = self->table[i];
    }
    free(self->table);
    self->table = table;
    self->table_mask = slots - 1;
    return 0;
}

/* Remembers a tagged entry just logged. Returns 0 or -1 (out of memory:
   only the shortcut for its retries is lost). */
static int s_pair_add(qkv_door_t *self, const qkv_entry_t *e, uint64_t hash) {
    if ((self->table_used + 1) * 2 > self->table_mask + 1 &&
        s_table_grow(self) != 0)
        return -1;
    s_pair_t *p = qkv_ring_push(&self->pairs);
    if (!p)
        return -1;
    *p = (s_pair_t){e->client_id, e->client_seq, hash, e->index};
    uint64_t number = self->pairs_popped + self->pairs.count - 1;
    self->table[s_pair_slot(self, e->client_id, e->client_seq)] = number + 1;
    self->table_used++;
    return 0;
}

/* Forgets the pairs of entries up to index (applied). */
static void s_pairs_applied(qkv_door_t *self, uint64_t index) {
    const s_pair_t *p;
    while ((p = qkv_ring_first(&self->pairs)) && p->index <= index) {
        qkv_probe_unlink64(self->table, self->table_mask,
                           s_pair_slot(self, p->client_id, p->client_seq),
                           s_pair_home, self);
        self->table_used--;
        qkv_ring_pop(&self->pairs, 1);
        self->pairs_popped++;
    }
}

static const s_pair_t *s_pair_find(const qkv_door_t *self, uint64_t id,
                                   uint64_t seq) {
    uint64_t v = self->table[s_pair_slot(self, id, seq)];
    return v ? s_pair_at(self, v - 1) : NULL;
}

/*  =====================================================================
    Taking writes */

static int s_park_retry(qkv_door_t *self, const qkv_origin_t *o,
                        uint64_t index, int64_t now) {
    if (self->retry_count == self->retry_cap) {
        size_t cap = self->retry_cap ? self->retry_cap * 2 : 16;
        s_parked_t *grown = realloc(self->retries, cap * sizeof(*grown));
        if (!grown)
            return -1;
        self->retries = grown;
        self->retry_cap = cap;
    }
    self->retries[self->retry_count++] =
        (s_parked_t){index, now + self->timeout_us, *o};
    return 0;
}

/* The shortcut for a tagged write: answers or parks it and returns true,
   or returns false when it must be logged. */
static bool s_shortcut(qkv_door_t *self, const qkv_entry_t *e, uint64_t hash,
                       const qkv_origin_t *o, int64_t now) {
    const s_pair_t *p = s_pair_find(self, e->client_id, e->client_seq);
    if (p) {
        if (p->hash != hash)
            s_answer(self, o, QKV_WRITE_CONFLICT, 0, 0, now);
        else if (s_park_retry(self, o, p->index, now) != 0)
            s_answer(self, o, QKV_WRITE_UNAVAILABLE, 0, 0, now);
        return true;
    }
    const qkv_session_rec_t *rec = NULL;
    switch (qkv_sessions_check(qkv_state_sessions(self->state), e->client_id,
                               e->client_seq, hash, &rec)) {
    case QKV_SESSION_RETRY:
        s_answer(self, o, QKV_WRITE_COMMITTED, rec->index, rec->result, now);
        return true;
    case QKV_SESSION_CONFLICT:
        s_answer(self, o, QKV_WRITE_CONFLICT, 0, 0, now);
        return true;
    default:
        /* new, or expired as far as what is applied tells: an entry of
           the same client still in the log may change that, so the
           entry decides when it applies */
        return false;
    }
}

void qkv_door_write(qkv_door_t *self, qkv_entry_t **entry_p,
                    const qkv_origin_t *origin, int64_t now) {
    qkv_entry_t *e = *entry_p;
    *entry_p = NULL;
    if (!qkv_core_is_leader(self->core)) {
        free(e);
        s_answer(self, origin, QKV_WRITE_NOT_LEADER, 0, 0, now);
        return;
    }
    atomic_fetch_add_explicit(&s_counters(self, origin)->writes, 1,
                              memory_order_relaxed);
    uint64_t hash = 0;
    if (e->client_id) {
        hash = qkv_entry_hash(e);
        if (s_shortcut(self, e, hash, origin, now)) {
            free(e);
            return;
        }
    }
    s_parked_t *slot = qkv_ring_push(&self->parked);
    if (!slot) {
        free(e);
        s_answer(self, origin, QKV_WRITE_UNAVAILABLE, 0, 0, now);
        return;
    }
    e->time_ms = qkv_wall_ms();
    uint64_t index = qkv_core_propose(self->core, &e);
    if (!index) {
        free(e);
        qkv_ring_truncate(&self->parked, self->parked.count - 1);
        s_answer(self, origin, QKV_WRITE_UNAVAILABLE, 0, 0, now);
        return;
    }
    *slot = (s_parked_t){index, now + self->timeout_us, *origin};
    const qkv_entry_t *logged = qkv_log_get(qkv_core_log(self->core), index);
    if (logged->client_id)
        s_pair_add(self, logged, hash);
    if (self->hooks.numbered)
        self->hooks.numbered(self->hooks.ctx, origin, index);
}

/*  =====================================================================
    Answering */

void qkv_door_applied(qkv_door_t *self, const qkv_outcome_t *outcomes,
                      size_t count, int64_t now) {
    if (!count)
        return;
    uint64_t first = outcomes[0].index, last = first + count - 1;
    const s_parked_t *w;
    while ((w = qkv_ring_first(&self->parked)) && w->index <= last) {
        s_parked_t parked = *w;
        qkv_ring_pop(&self->parked, 1);
        if (parked.index >= first)
            s_answer_outcome(self, &parked.origin,
                             &outcomes[parked.index - first], now);
    }
    for (size_t i = 0; i < self->retry_count;) {
        s_parked_t *r = &self->retries[i];
        if (r->index < first || r->index > last) {
            i++;
            continue;
        }
        s_parked_t retry = *r;
        *r = self->retries[--self->retry_count];
        s_answer_outcome(self, &retry.origin, &outcomes[retry.index - first],
                         now);
    }
    s_pairs_applied(self, last);
}

static void s_timeout(qkv_door_t *self, const s_parked_t *w, int64_t now) {
    s_answer(self, &w->origin, QKV_WRITE_TIMEOUT, w->index, 0, now);
}

int64_t qkv_door_expire(qkv_door_t *self, int64_t now) {
    const s_parked_t *w;
    while ((w = qkv_ring_first(&self->parked)) && w->deadline_us <= now) {
        s_parked_t parked = *w;
        qkv_ring_pop(&self->parked, 1);
        s_timeout(self, &parked, now);
    }
    int64_t next = w ? w->deadline_us : 0;
    for (size_t i = 0; i < self->retry_count;) {
        s_parked_t *r = &self->retries[i];
        if (r->deadline_us > now) {
            next = next && next < r->deadline_us ? next : r->deadline_us;
            i++;
            continue;
        }
        s_parked_t retry = *r;
        *r = self->retries[--self->retry_count];
        s_timeout(self, &retry, now);
    }
    return next;
}

void qkv_door_fail_all(qkv_door_t *self, int64_t now) {
    const s_parked_t *w;
    while ((w = qkv_ring_first(&self->parked))) {
        s_parked_t parked = *w;
        qkv_ring_pop(&self->parked, 1);
        s_timeout(self, &parked, now);
    }
    while (self->retry_count) {
        s_parked_t retry = self->retries[--self->retry_count];
        s_timeout(self, &retry, now);
    }
}
