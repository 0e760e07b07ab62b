/*  qkv_door.c - the one door for writes (qkv_door.h).

    Parked writes form a ring ordered by index, which is also the order of
    their deadlines: every write gets REPLICATION_TIMEOUT_MS from when it
    came in, and they came in in index order. Committed entries and
    timeouts both take from its head. Retries waiting for an entry someone
    else logged are few: an array scanned when entries apply.

    Pending pairs: for each client with tagged entries in the log that
    have not applied yet, the door keeps them as a ring of {seq, hash,
    index} in log order (a client table by client_id reaches it; a client
    with none pending is forgotten). A client numbers its writes in order,
    so the ring is normally sorted by seq and a retry finds its original
    by binary search. When a client's ring is out of order, its retries
    of pending writes are logged again instead: applied right after the
    original, such an entry is judged a retry and answered with the
    original's result, so correctness never rests on the shortcut.
*/
#include "qkv_door.h"
#include "qkv_hash.h"
#include "qkv_log.h"
#include "qkv_ring.h"
#include "qkv_store.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t index;      /* the entry */
    int64_t deadline_us; /* answered TIMEOUT then */
    qkv_origin_t origin;
} s_parked_t;

/* A tagged entry in the log, not applied yet. */
typedef struct {
    uint64_t seq, hash, index;
} s_pending_t;

/* A client with pending entries. */
typedef struct {
    uint64_t client_id;
    qkv_ring_t pending; /* s_pending_t in log order */
    bool sorted;        /* and in seq order too */
} s_client_t;

struct qkv_door_t {
    qkv_node_t *node;
    const qkv_config_t *cfg;
    qkv_core_t *core;
    const qkv_state_t *state;
    qkv_door_hooks_t hooks;
    int64_t timeout_us;
    bool no_space;      /* the log cannot be written: refuse writes */
    qkv_ring_t parked;  /* s_parked_t by index */
    qkv_ring_t retries; /* s_parked_t, unordered */
    /* clients with pending entries: an open-addressing table of
       s_client_t pointers (as integers; 0 = empty) */
    uint64_t *clients;
    size_t client_mask, client_count;
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
    qkv_ring_init(&self->retries, sizeof(s_parked_t));
    self->client_mask = 63;
    self->clients = calloc(self->client_mask + 1, sizeof(*self->clients));
    if (!self->clients)
        qkv_door_destroy(&self);
    return self;
}

void qkv_door_destroy(qkv_door_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_door_t *self = *self_p;
    for (size_t i = 0; self->clients && i <= self->client_mask; i++) {
        s_client_t *c = (s_client_t *)(uintptr_t)self->clients[i];
        if (!c)
            continue;
        qkv_ring_free(&c->pending);
        free(c);
    }
    free(self->clients);
    qkv_ring_free(&self->parked);
    qkv_ring_free(&self->retries);
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
                     qkv_write_status_t status, uint64_t index, uint64_t result,
                     int64_t now) {
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

static s_client_t *s_at(const qkv_door_t *self, size_t slot) {
    return (s_client_t *)(uintptr_t)self->clients[slot];
}

static size_t s_client_slot(const qkv_door_t *self, uint64_t id) {
    size_t slot = (size_t)qkv_hash_mix(id) & self->client_mask;
    while (s_at(self, slot) && s_at(self, slot)->client_id != id)
        slot = (slot + 1) & self->client_mask;
    return slot;
}

static s_client_t *s_client(const qkv_door_t *self, uint64_t id) {
    return s_at(self, s_client_slot(self, id));
}

static size_t s_client_home(const void *ctx, uint64_t value) {
    (void)ctx;
    return (size_t)qkv_hash_mix(((s_client_t *)(uintptr_t)value)->client_id);
}

/* Forgets a client with nothing pending. */
static void s_client_drop(qkv_door_t *self, uint64_t id) {
    size_t slot = s_client_slot(self, id);
    s_client_t *gone = s_at(self, slot);
    qkv_probe_unlink64(self->clients, self->client_mask, slot, s_client_home,
                       self);
    qkv_ring_free(&gone->pending);
    free(gone);
    self->client_count--;
}

/* Remembers a tagged entry just logged; on failure (out of memory) only
   the shortcut for its retries is lost. */
static void s_pending_add(qkv_door_t *self, const qkv_entry_t *e,
                          uint64_t hash) {
    s_client_t *c = s_client(self, e->client_id);
    if (!c) {
        if ((self->client_count + 1) * 2 > self->client_mask + 1 &&
            qkv_probe_grow64(&self->clients, &self->client_mask,
                             (self->client_mask + 1) * 2, s_client_home,
                             self) != 0)
            return;
        c = calloc(1, sizeof(*c));
        if (!c)
            return;
        c->client_id = e->client_id;
        c->sorted = true;
        qkv_ring_init(&c->pending, sizeof(s_pending_t));
        self->clients[s_client_slot(self, e->client_id)] = (uintptr_t)c;
        self->client_count++;
    }
    const s_pending_t *last = qkv_ring_last(&c->pending);
    if (last && e->client_seq <= last->seq)
        c->sorted = false;
    s_pending_t *p = qkv_ring_push(&c->pending); /* last moves with it */
    if (!p)
        return;
    *p = (s_pending_t){e->client_seq, hash, e->index};
}

/* The pending entry of (client, seq), or NULL when there is none or it
   cannot be told quickly (the client's entries are out of order). */
static const s_pending_t *s_pending_find(const qkv_door_t *self, uint64_t id,
                                         uint64_t seq) {
    const s_client_t *c = s_client(self, id);
    if (!c || !c->sorted || !c->pending.count)
        return NULL;
    size_t lo = 0, hi = c->pending.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const s_pending_t *p = qkv_ring_at(&c->pending, mid);
        if (p->seq == seq)
            return p;
        if (p->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Entries up to index applied: their pairs are not pending any more. */
static void s_pending_applied(qkv_door_t *self, const qkv_outcome_t *outs,
                              size_t count) {
    const qkv_log_t *log = qkv_core_log(self->core);
    for (size_t i = 0; i < count; i++) {
        const qkv_entry_t *e = qkv_log_get(log, outs[i].index);
        if (!e || !e->client_id)
            continue;
        s_client_t *c = s_client(self, e->client_id);
        const s_pending_t *p;
        while (c && (p = qkv_ring_first(&c->pending)) &&
               p->index <= outs[i].index)
            qkv_ring_pop(&c->pending, 1);
        if (c && !c->pending.count)
            s_client_drop(self, e->client_id);
        else if (c)
            qkv_ring_shrink(&c->pending);
    }
}

/*  =====================================================================
    Taking writes */

static int s_park_retry(qkv_door_t *self, const qkv_origin_t *o, uint64_t index,
                        int64_t now) {
    s_parked_t *r = qkv_ring_push(&self->retries);
    if (!r)
        return -1;
    *r = (s_parked_t){index, now + self->timeout_us, *o};
    return 0;
}

/* Takes retry i out of the retries (the newest takes its place). */
static s_parked_t s_retry_take(qkv_door_t *self, size_t i) {
    s_parked_t *r = qkv_ring_at(&self->retries, i);
    s_parked_t taken = *r;
    *r = *(s_parked_t *)qkv_ring_last(&self->retries);
    qkv_ring_truncate(&self->retries, self->retries.count - 1);
    return taken;
}

/* The shortcut for a tagged write: answers or parks it and returns true,
   or returns false when it must be logged. */
static bool s_shortcut(qkv_door_t *self, const qkv_entry_t *e, uint64_t hash,
                       const qkv_origin_t *o, int64_t now) {
    const s_pending_t *p = s_pending_find(self, e->client_id, e->client_seq);
    if (p) {
        /* the original is in the log: wait for it */
        if (p->hash != hash)
            s_answer(self, o, QKV_WRITE_CONFLICT, 0, 0, now);
        else if (s_park_retry(self, o, p->index, now) != 0)
            return false; /* no room to wait: log it again */
        return true;
    }
    const qkv_sessions_t *sessions = qkv_state_sessions(self->state);
    const qkv_session_rec_t *rec = NULL;
    switch (
        qkv_sessions_check(sessions, e->client_id, e->client_seq, hash, &rec)) {
    case QKV_SESSION_RETRY:
        s_answer(self, o, QKV_WRITE_COMMITTED, rec->index, rec->result, now);
        return true;
    case QKV_SESSION_CONFLICT:
        s_answer(self, o, QKV_WRITE_CONFLICT, 0, 0, now);
        return true;
    case QKV_SESSION_EXPIRED:
        /* below a known session's floor: nothing in the log can change
           that. An unknown client's seq above 1 may yet be known once an
           entry of that client still in the log applies: the entry
           decides then. */
        if (!qkv_sessions_known(sessions, e->client_id))
            return false;
        s_answer(self, o, QKV_WRITE_SESSION_EXPIRED, 0, 0, now);
        return true;
    default:
        return false;
    }
}

/* Rough bytes of one session and of one remembered write (their structs
   and table slots), for MAX_MEMORY. */
#define S_SESSION_BYTES 96
#define S_RECORD_BYTES 64

/* Every byte MAX_MEMORY counts: the store, the in-memory log, sessions. */
static uint64_t s_memory(const qkv_door_t *self) {
    const qkv_sessions_t *sessions = qkv_state_sessions(self->state);
    return qkv_store_bytes(qkv_node_store(self->node)) +
           qkv_log_bytes(qkv_core_log(self->core)) +
           qkv_sessions_count(sessions) * S_SESSION_BYTES +
           qkv_sessions_records(sessions) * S_RECORD_BYTES;
}

/* MAX_PENDING_WRITES (writes waiting to commit) and MAX_MEMORY (a put
   that would go past it; deletes and resets free memory and always
   pass): the refusal, or QKV_WRITE_COMMITTED to go on. */
static qkv_write_status_t s_over_limit(qkv_door_t *self, const qkv_entry_t *e) {
    if (self->parked.count + self->retries.count >=
        (size_t)self->cfg->max_pending_writes) {
        atomic_fetch_add_explicit(&self->node->overloaded, 1,
                                  memory_order_relaxed);
        return QKV_WRITE_OVERLOADED;
    }
    if (self->cfg->max_memory && e->op == QKV_OP_PUT &&
        s_memory(self) + 2 * (sizeof(*e) + e->key_len + e->value_len) >
            self->cfg->max_memory) {
        atomic_fetch_add_explicit(&self->node->memory_full, 1,
                                  memory_order_relaxed);
        return QKV_WRITE_MEMORY_FULL;
    }
    return QKV_WRITE_COMMITTED;
}

void qkv_door_write(qkv_door_t *self, qkv_entry_t **entry_p,
                    const qkv_origin_t *origin, int64_t now) {
    qkv_entry_t *e = *entry_p;
    *entry_p = NULL;
    if (!qkv_core_is_leader(self->core) || qkv_core_transferring(self->core)) {
        free(e);
        /* no leader known, or this one hands over: no_leader (retry
           shortly); a leader known elsewhere: not_leader */
        bool none = qkv_core_transferring(self->core) ||
                    (qkv_core_leader(self->core) == QKV_CORE_NOBODY &&
                     qkv_node_config(self->node)->peers);
        s_answer(self, origin,
                 none ? QKV_WRITE_NO_LEADER : QKV_WRITE_NOT_LEADER, 0, 0, now);
        return;
    }
    if (self->no_space) {
        free(e);
        s_answer(self, origin, QKV_WRITE_NO_SPACE, 0, 0, now);
        return;
    }
    qkv_write_status_t limit = s_over_limit(self, e);
    if (limit != QKV_WRITE_COMMITTED) {
        free(e);
        s_answer(self, origin, limit, 0, 0, now);
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
        s_pending_add(self, logged, hash);
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
    for (size_t i = 0; i < self->retries.count;) {
        const s_parked_t *r = qkv_ring_at(&self->retries, i);
        if (r->index < first || r->index > last) {
            i++;
            continue;
        }
        s_parked_t retry = s_retry_take(self, i);
        s_answer_outcome(self, &retry.origin, &outcomes[retry.index - first],
                         now);
    }
    if (self->client_count)
        s_pending_applied(self, outcomes, count);
}

/* Answers TIMEOUT, with its index, to every write whose deadline is at
   or before until; returns the next deadline of those left, 0 for none. */
/* Answers what waits until until with status (and its index). */
static int64_t s_give_up(qkv_door_t *self, int64_t until,
                         qkv_write_status_t status, int64_t now) {
    const s_parked_t *w;
    while ((w = qkv_ring_first(&self->parked)) && w->deadline_us <= until) {
        s_parked_t parked = *w;
        qkv_ring_pop(&self->parked, 1);
        s_answer(self, &parked.origin, status, parked.index, 0, now);
    }
    int64_t next = w ? w->deadline_us : 0;
    for (size_t i = 0; i < self->retries.count;) {
        const s_parked_t *r = qkv_ring_at(&self->retries, i);
        if (r->deadline_us > until) {
            next = next && next < r->deadline_us ? next : r->deadline_us;
            i++;
            continue;
        }
        s_parked_t retry = s_retry_take(self, i);
        s_answer(self, &retry.origin, status, retry.index, 0, now);
    }
    return next;
}

int64_t qkv_door_expire(qkv_door_t *self, int64_t now) {
    return s_give_up(self, now, QKV_WRITE_TIMEOUT, now);
}

void qkv_door_set_no_space(qkv_door_t *self, bool no_space) {
    self->no_space = no_space;
}

void qkv_door_fail_all(qkv_door_t *self, int64_t now) {
    s_give_up(self, INT64_MAX, QKV_WRITE_TIMEOUT, now);
}

void qkv_door_step_down(qkv_door_t *self, int64_t now) {
    s_give_up(self, INT64_MAX, QKV_WRITE_LEADER_CHANGED, now);
}
