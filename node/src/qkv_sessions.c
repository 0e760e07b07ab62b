/*  qkv_sessions.c - client sessions (qkv_sessions.h).

    Records and sessions live in slabs (arrays that grow with realloc up
    to `window` elements, so an element's number never changes), reached
    through two open-addressing tables of uint32 (slab number + 1): one by
    (client_id, client_seq), one by client_id. The records' order of
    recording is a ring of slab numbers (qkv_ring): the oldest is forgotten
    first. Each session links its records (to drop them with it) and sits
    in a list ordered by its last write, oldest first: log time never goes
    backwards, so a write moves its session to the end and expiry takes
    from the front.

    A session dropped for idleness unlinks its records from the table and
    marks them dead; a dead record keeps its place in the ring (and its
    slab element) until it reaches the front, so at most `window` records,
    live or dead, are ever held.
*/
#include "qkv_sessions.h"
#include "qkv_hash.h"
#include "qkv_ring.h"

#include <stdlib.h>
#include <string.h>

#define S_NONE UINT32_MAX

typedef struct {
    uint64_t client_id, client_seq;
    qkv_session_rec_t rec;
    uint32_t prev, next; /* the session's records; S_NONE ends */
    bool dead;           /* its session was dropped */
} s_record_t;

typedef struct {
    uint64_t client_id;
    uint64_t last_ms;    /* log time of its last write */
    uint64_t floor;      /* highest seq whose record was forgotten */
    uint32_t first_rec;  /* its records, S_NONE for none */
    uint32_t prev, next; /* idle order, oldest first; S_NONE ends */
} s_session_t;

/* A table of uint32 (slab number + 1; 0 = empty) with mask + 1 slots. */
typedef struct {
    uint32_t *slots;
    size_t mask;
    size_t used;
} s_table_t;

struct qkv_sessions_t {
    size_t window;   /* most records and most sessions */
    uint64_t ttl_ms; /* idle log time after which a session goes */
    /* records */
    s_record_t *recs; /* slab */
    size_t recs_cap;  /* elements allocated */
    size_t recs_made; /* elements ever used (free ones are on free_rec) */
    uint32_t free_rec;
    qkv_ring_t order; /* uint32 slab numbers, oldest first */
    s_table_t by_pair;
    size_t live_recs;
    /* sessions */
    s_session_t *sess;
    size_t sess_cap, sess_made;
    uint32_t free_sess;
    s_table_t by_client;
    size_t live_sess;
    uint32_t idle_first, idle_last; /* idle order */
};

/*  =====================================================================
    Tables */

static size_t s_pair_hash(uint64_t id, uint64_t seq) {
    return (size_t)qkv_hash_mix(id * 0x9e3779b97f4a7c15ULL ^ seq);
}

static size_t s_client_hash(uint64_t id) {
    return (size_t)qkv_hash_mix(id);
}

static size_t s_rec_home(const void *ctx, uint32_t value) {
    const s_record_t *r = &((const qkv_sessions_t *)ctx)->recs[value - 1];
    return s_pair_hash(r->client_id, r->client_seq);
}

static size_t s_sess_home(const void *ctx, uint32_t value) {
    return s_client_hash(((const qkv_sessions_t *)ctx)->sess[value - 1].client_id);
}

/* Makes room for one more value at load at most 1/2. */
static int s_table_reserve(qkv_sessions_t *self, s_table_t *t,
                           size_t (*home)(const void *, uint32_t)) {
    if (t->slots && (t->used + 1) * 2 <= t->mask + 1)
        return 0;
    size_t slots = t->slots ? (t->mask + 1) * 2 : 64;
    uint32_t *grown = calloc(slots, sizeof(*grown));
    if (!grown)
        return -1;
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        if (!t->slots[i])
            continue;
        size_t slot = home(self, t->slots[i]) & (slots - 1);
        while (grown[slot])
            slot = (slot + 1) & (slots - 1);
        grown[slot] = t->slots[i];
    }
    free(t->slots);
    t->slots = grown;
    t->mask = slots - 1;
    return 0;
}

/* Slot of the record of (id, seq), or the empty slot where it goes. */
static size_t s_rec_slot(const qkv_sessions_t *self, uint64_t id,
                         uint64_t seq) {
    const s_table_t *t = &self->by_pair;
    size_t slot = s_pair_hash(id, seq) & t->mask;
    while (t->slots[slot]) {
        const s_record_t *r = &self->recs[t->slots[slot] - 1];
        if (r->client_id == id && r->client_seq == seq)
            break;
        slot = (slot + 1) & t->mask;
    }
    return slot;
}

static size_t s_sess_slot(const qkv_sessions_t *self, uint64_t id) {
    const s_table_t *t = &self->by_client;
    size_t slot = s_client_hash(id) & t->mask;
    while (t->slots[slot] && self->sess[t->slots[slot] - 1].client_id != id)
        slot = (slot + 1) & t->mask;
    return slot;
}

static s_session_t *s_session(const qkv_sessions_t *self, uint64_t id) {
    if (!self->by_client.slots)
        return NULL;
    uint32_t v = self->by_client.slots[s_sess_slot(self, id)];
    return v ? &self->sess[v - 1] : NULL;
}

/*  =====================================================================
    Slabs */

/* Makes sure one more element can be taken from a slab. */
static int s_slab_reserve(void **slab, size_t *cap, size_t made,
                          uint32_t free_head, size_t size, size_t window) {
    if (free_head != S_NONE || made < *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    if (n > window)
        n = window;
    if (n <= *cap)
        return -1; /* callers forget one first: cannot happen */
    void *grown = realloc(*slab, n * size);
    if (!grown)
        return -1;
    *slab = grown;
    *cap = n;
    return 0;
}

/*  =====================================================================
    Life cycle */

qkv_sessions_t *qkv_sessions_new(size_t window, uint64_t ttl_ms) {
    if (window == 0 || window > (1u << 30) || ttl_ms == 0)
        return NULL;
    qkv_sessions_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->window = window;
    self->ttl_ms = ttl_ms;
    self->free_rec = self->free_sess = S_NONE;
    self->idle_first = self->idle_last = S_NONE;
    qkv_ring_init(&self->order, sizeof(uint32_t));
    return self;
}

void qkv_sessions_destroy(qkv_sessions_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_sessions_t *self = *self_p;
    free(self->recs);
    free(self->sess);
    free(self->by_pair.slots);
    free(self->by_client.slots);
    qkv_ring_free(&self->order);
    free(self);
    *self_p = NULL;
}

void qkv_sessions_clear(qkv_sessions_t *self) {
    size_t window = self->window;
    uint64_t ttl_ms = self->ttl_ms;
    free(self->recs);
    free(self->sess);
    free(self->by_pair.slots);
    free(self->by_client.slots);
    qkv_ring_free(&self->order);
    memset(self, 0, sizeof(*self));
    self->window = window;
    self->ttl_ms = ttl_ms;
    self->free_rec = self->free_sess = S_NONE;
    self->idle_first = self->idle_last = S_NONE;
    qkv_ring_init(&self->order, sizeof(uint32_t));
}

size_t qkv_sessions_count(const qkv_sessions_t *self) {
    return self->live_sess;
}

size_t qkv_sessions_records(const qkv_sessions_t *self) {
    return self->live_recs;
}

/*  =====================================================================
    Forgetting */

static void s_idle_unlink(qkv_sessions_t *self, uint32_t n) {
    s_session_t *s = &self->sess[n];
    if (s->prev != S_NONE)
        self->sess[s->prev].next = s->next;
    else
        self->idle_first = s->next;
    if (s->next != S_NONE)
        self->sess[s->next].prev = s->prev;
    else
        self->idle_last = s->prev;
}

static void s_idle_append(qkv_sessions_t *self, uint32_t n) {
    s_session_t *s = &self->sess[n];
    s->prev = self->idle_last;
    s->next = S_NONE;
    if (self->idle_last != S_NONE)
        self->sess[self->idle_last].next = n;
    else
        self->idle_first = n;
    self->idle_last = n;
}

/* Removes a live record from the table and from its session's list. */
static void s_record_unlink(qkv_sessions_t *self, uint32_t n,
                            s_session_t *s) {
    s_record_t *r = &self->recs[n];
    qkv_probe_unlink(self->by_pair.slots, self->by_pair.mask,
                     s_rec_slot(self, r->client_id, r->client_seq),
                     s_rec_home, self);
    self->by_pair.used--;
    if (r->prev != S_NONE)
        self->recs[r->prev].next = r->next;
    else
        s->first_rec = r->next;
    if (r->next != S_NONE)
        self->recs[r->next].prev = r->prev;
    self->live_recs--;
}

/* Drops session n and its records. */
static void s_session_drop(qkv_sessions_t *self, uint32_t n) {
    s_session_t *s = &self->sess[n];
    while (s->first_rec != S_NONE) {
        uint32_t r = s->first_rec;
        s_record_unlink(self, r, s);
        self->recs[r].dead = true; /* freed when it leaves the ring */
    }
    s_idle_unlink(self, n);
    qkv_probe_unlink(self->by_client.slots, self->by_client.mask,
                     s_sess_slot(self, s->client_id), s_sess_home, self);
    self->by_client.used--;
    s->next = self->free_sess;
    self->free_sess = n;
    self->live_sess--;
}

/* Forgets the oldest record, raising its session's floor. */
static void s_forget_oldest(qkv_sessions_t *self) {
    uint32_t n = *(uint32_t *)qkv_ring_first(&self->order);
    qkv_ring_pop(&self->order, 1);
    s_record_t *r = &self->recs[n];
    if (!r->dead) {
        s_session_t *s = s_session(self, r->client_id);
        s_record_unlink(self, n, s);
        if (r->client_seq > s->floor)
            s->floor = r->client_seq;
    }
    r->next = self->free_rec;
    self->free_rec = n;
}

void qkv_sessions_tick(qkv_sessions_t *self, uint64_t time_ms) {
    if (time_ms <= self->ttl_ms)
        return;
    uint64_t horizon = time_ms - self->ttl_ms;
    while (self->idle_first != S_NONE &&
           self->sess[self->idle_first].last_ms < horizon)
        s_session_drop(self, self->idle_first);
}

/*  =====================================================================
    Checking and recording */

qkv_session_verdict_t qkv_sessions_check(const qkv_sessions_t *self,
                                         uint64_t client_id,
                                         uint64_t client_seq, uint64_t hash,
                                         const qkv_session_rec_t **rec) {
    if (self->by_pair.slots) {
        uint32_t v = self->by_pair.slots[s_rec_slot(self, client_id,
                                                    client_seq)];
        if (v) {
            const s_record_t *r = &self->recs[v - 1];
            if (r->rec.hash != hash)
                return QKV_SESSION_CONFLICT;
            if (rec)
                *rec = &r->rec;
            return QKV_SESSION_RETRY;
        }
    }
    const s_session_t *s = s_session(self, client_id);
    if (s)
        return client_seq <= s->floor ? QKV_SESSION_EXPIRED : QKV_SESSION_NEW;
    return client_seq > 1 ? QKV_SESSION_EXPIRED : QKV_SESSION_NEW;
}

int qkv_sessions_reserve(qkv_sessions_t *self, uint64_t client_id) {
    bool known = s_session(self, client_id) != NULL;
    if (s_table_reserve(self, &self->by_pair, s_rec_home) != 0 ||
        s_table_reserve(self, &self->by_client, s_sess_home) != 0 ||
        qkv_ring_reserve(&self->order, 1) != 0 ||
        (self->order.count < self->window &&
         s_slab_reserve((void **)&self->recs, &self->recs_cap,
                        self->recs_made, self->free_rec, sizeof(s_record_t),
                        self->window) != 0) ||
        (!known && self->live_sess < self->window &&
         s_slab_reserve((void **)&self->sess, &self->sess_cap,
                        self->sess_made, self->free_sess, sizeof(s_session_t),
                        self->window) != 0))
        return -1;
    return 0;
}

int qkv_sessions_record(qkv_sessions_t *self, uint64_t client_id,
                        uint64_t client_seq, uint64_t hash, uint64_t index,
                        uint64_t result, uint64_t time_ms) {
    if (qkv_sessions_reserve(self, client_id) != 0)
        return -1; /* nothing changed */
    bool known = s_session(self, client_id) != NULL;
    if (self->order.count == self->window)
        s_forget_oldest(self);
    if (!known && self->live_sess == self->window)
        s_session_drop(self, self->idle_first); /* idle the longest */
    size_t slot = s_sess_slot(self, client_id);
    uint32_t sn;
    if (known) {
        sn = self->by_client.slots[slot] - 1;
        s_idle_unlink(self, sn);
    } else {
        if (self->free_sess != S_NONE) {
            sn = self->free_sess;
            self->free_sess = self->sess[sn].next;
        } else {
            sn = (uint32_t)self->sess_made++;
        }
        self->sess[sn] = (s_session_t){client_id, time_ms, 0, S_NONE,
                                       S_NONE, S_NONE};
        self->by_client.slots[slot] = sn + 1;
        self->by_client.used++;
        self->live_sess++;
    }
    s_session_t *s = &self->sess[sn];
    if (time_ms > s->last_ms)
        s->last_ms = time_ms;
    s_idle_append(self, sn);

    uint32_t rn;
    if (self->free_rec != S_NONE) {
        rn = self->free_rec;
        self->free_rec = self->recs[rn].next;
    } else {
        rn = (uint32_t)self->recs_made++;
    }
    s_record_t *r = &self->recs[rn];
    *r = (s_record_t){client_id, client_seq, {index, result, hash}, S_NONE,
                      s->first_rec, false};
    if (s->first_rec != S_NONE)
        self->recs[s->first_rec].prev = rn;
    s->first_rec = rn;
    self->by_pair.slots[s_rec_slot(self, client_id, client_seq)] = rn + 1;
    self->by_pair.used++;
    *(uint32_t *)qkv_ring_push(&self->order) = rn; /* reserved above */
    self->live_recs++;
    return 0;
}
