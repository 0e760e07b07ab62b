/*  qkv_sessions.c - client sessions (qkv_sessions.h).

    A client normally numbers its writes 1, 2, 3, ...; its records then
    form a run of consecutive seqs, kept in a ring inside its session and
    found by position (seq - run_base): recording and forgetting them
    touch memory in order, and judging the next write reads nothing but
    the session (a seq above the highest recorded cannot have a record).
    A record that does not extend the run - a seq below its end (out of
    order), or the first after a gap, which moves the old run out - goes
    to a table by (client_id, client_seq), records in a slab reached
    through open addressing with the pair's hash kept in each slot.

    Sessions live in a slab reached through a table by client_id (they
    are few and stay in cache), and in a list ordered by their last write
    (log time never goes back: a write moves its session to the end;
    expiry and a full table take from the front). Each session is made
    with a new epoch (a count of sessions made, the same on every node).

    The order records were made in is one ring of {client_id, seq, epoch,
    session}: once `window` are held, the oldest is forgotten - taken from
    its session's run, or from the table - and raises its session's floor.
    A dropped session frees its run at once; its table records and ring
    entries carry an epoch no live session has, never match, and go when
    they reach the front. So at most `window` records, live or stale, are
    ever held.
*/
#include "qkv_sessions.h"
#include "qkv_hash.h"
#include "qkv_le.h"
#include "qkv_ring.h"

#include <stdlib.h>
#include <string.h>

#define S_NONE UINT32_MAX

/* A record outside a run. */
typedef struct {
    uint64_t client_id, client_seq;
    uint64_t epoch; /* its session's */
    qkv_session_rec_t rec;
    uint32_t next_free; /* free list link */
} s_record_t;

typedef struct {
    uint64_t client_id;
    uint64_t last_ms;    /* log time of its last write */
    uint64_t floor;      /* highest seq whose record was forgotten */
    uint64_t max_seq;    /* highest seq recorded */
    uint64_t epoch;      /* made as the epoch-th session */
    uint64_t run_base;   /* seq of run element 0 */
    qkv_ring_t run;      /* qkv_session_rec_t of seqs run_base, run_base+1.. */
    uint32_t prev, next; /* idle order, oldest first; S_NONE ends; next is
                            the free list link of a free slab element */
    bool live;           /* in use */
} s_session_t;

/* One record made, in the order they were made. */
typedef struct {
    uint64_t client_id, client_seq, epoch;
    uint32_t session; /* its slab element */
} s_made_t;

struct qkv_sessions_t {
    size_t window;   /* most records and most sessions */
    uint64_t ttl_ms; /* idle log time after which a session goes */
    uint64_t epochs; /* sessions ever made */
    qkv_ring_t made; /* s_made_t, oldest first */
    /* records outside runs */
    s_record_t *recs; /* slab */
    size_t recs_cap, recs_made;
    uint32_t free_rec;
    uint64_t *by_pair; /* pair hash << 32 | slab element + 1; 0 = empty */
    size_t pair_mask, pair_used;
    /* sessions */
    s_session_t *sess; /* slab */
    size_t sess_cap, sess_made;
    uint32_t free_sess;
    uint32_t *by_client; /* slab element + 1; 0 = empty */
    size_t client_mask, client_used;
    size_t live_sess;
    uint32_t idle_first, idle_last; /* idle order */
    qkv_ring_t spare; /* the run of the next session made, reserved */
};

/*  =====================================================================
    Tables */

static uint32_t s_pair_hash(uint64_t id, uint64_t seq) {
    return (uint32_t)qkv_hash_mix(id * 0x9e3779b97f4a7c15ULL ^ seq);
}

static size_t s_client_hash(uint64_t id) {
    return (size_t)qkv_hash_mix(id);
}

static size_t s_pair_home(const void *ctx, uint64_t value) {
    (void)ctx;
    return (size_t)(value >> 32);
}

static size_t s_client_home(const void *ctx, uint32_t value) {
    const qkv_sessions_t *self = ctx;
    return s_client_hash(self->sess[value - 1].client_id);
}

/* Makes room for extra more pairs at load at most 1/2. */
static int s_pairs_reserve(qkv_sessions_t *self, size_t extra) {
    size_t slots = self->by_pair ? self->pair_mask + 1 : 64;
    while ((self->pair_used + extra) * 2 > slots)
        slots *= 2;
    if (self->by_pair && slots == self->pair_mask + 1)
        return 0;
    return qkv_probe_grow64(&self->by_pair, &self->pair_mask, slots,
                            s_pair_home, self);
}

static int s_clients_reserve(qkv_sessions_t *self) {
    if (self->by_client && (self->client_used + 1) * 2 <= self->client_mask + 1)
        return 0;
    size_t slots = self->by_client ? (self->client_mask + 1) * 2 : 64;
    return qkv_probe_grow(&self->by_client, &self->client_mask, slots,
                          s_client_home, self);
}

/* Slot of the record of (id, seq) in session epoch, or the empty slot
   where it goes. The table must exist. */
static size_t s_pair_slot(const qkv_sessions_t *self, uint64_t id, uint64_t seq,
                          uint64_t epoch) {
    uint32_t hash = s_pair_hash(id, seq);
    size_t slot = hash & self->pair_mask;
    for (uint64_t v; (v = self->by_pair[slot]);
         slot = (slot + 1) & self->pair_mask) {
        if ((uint32_t)(v >> 32) != hash)
            continue;
        const s_record_t *r = &self->recs[(uint32_t)v - 1];
        if (r->client_id == id && r->client_seq == seq && r->epoch == epoch)
            return slot;
    }
    return slot;
}

static size_t s_client_slot(const qkv_sessions_t *self, uint64_t id) {
    size_t slot = s_client_hash(id) & self->client_mask;
    while (self->by_client[slot] &&
           self->sess[self->by_client[slot] - 1].client_id != id)
        slot = (slot + 1) & self->client_mask;
    return slot;
}

static s_session_t *s_session(const qkv_sessions_t *self, uint64_t id) {
    if (!self->by_client)
        return NULL;
    uint32_t v = self->by_client[s_client_slot(self, id)];
    return v ? &self->sess[v - 1] : NULL;
}

/* The table record of (id, seq) in session epoch, or NULL. */
static s_record_t *s_pair_find(const qkv_sessions_t *self, uint64_t id,
                               uint64_t seq, uint64_t epoch) {
    if (!self->by_pair)
        return NULL;
    uint64_t v = self->by_pair[s_pair_slot(self, id, seq, epoch)];
    return v ? &self->recs[(uint32_t)v - 1] : NULL;
}

/*  =====================================================================
    Slabs */

/* Makes sure extra more elements can be taken from a slab (free ones on
   its list count), growing it up to max elements. Records and sessions
   never number more than the window, so a slab at max always has room
   once the record forgotten (or the session dropped) before the next is
   made has given its element back. */
static int s_slab_reserve(void **slab, size_t *cap, size_t made,
                          size_t free_count, size_t extra, size_t size,
                          size_t max) {
    if (free_count + (*cap - made) >= extra || *cap == max)
        return 0;
    size_t need = made + extra - free_count;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    if (n > max)
        n = max;
    void *grown = realloc(*slab, n * size);
    if (!grown)
        return -1;
    *slab = grown;
    *cap = n;
    return 0;
}

/*  =====================================================================
    Life cycle */

static void s_init(qkv_sessions_t *self, size_t window, uint64_t ttl_ms) {
    memset(self, 0, sizeof(*self));
    self->window = window;
    self->ttl_ms = ttl_ms;
    self->free_rec = self->free_sess = S_NONE;
    self->idle_first = self->idle_last = S_NONE;
    qkv_ring_init(&self->made, sizeof(s_made_t));
    qkv_ring_init(&self->spare, sizeof(qkv_session_rec_t));
}

qkv_sessions_t *qkv_sessions_new(size_t window, uint64_t ttl_ms) {
    if (window == 0 || window > (1u << 30) || ttl_ms == 0)
        return NULL;
    qkv_sessions_t *self = malloc(sizeof(*self));
    if (self)
        s_init(self, window, ttl_ms);
    return self;
}

static void s_free_all(qkv_sessions_t *self) {
    for (size_t i = 0; i < self->sess_made; i++)
        qkv_ring_free(&self->sess[i].run);
    free(self->sess);
    free(self->recs);
    free(self->by_pair);
    free(self->by_client);
    qkv_ring_free(&self->made);
    qkv_ring_free(&self->spare);
}

void qkv_sessions_destroy(qkv_sessions_t **self_p) {
    if (!self_p || !*self_p)
        return;
    s_free_all(*self_p);
    free(*self_p);
    *self_p = NULL;
}

void qkv_sessions_clear(qkv_sessions_t *self) {
    size_t window = self->window;
    uint64_t ttl_ms = self->ttl_ms;
    s_free_all(self);
    s_init(self, window, ttl_ms);
}

size_t qkv_sessions_count(const qkv_sessions_t *self) {
    return self->live_sess;
}

size_t qkv_sessions_records(const qkv_sessions_t *self) {
    return self->made.count;
}

bool qkv_sessions_known(const qkv_sessions_t *self, uint64_t client_id) {
    return s_session(self, client_id) != NULL;
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

/* Drops session n: its run at once, its other records when they come to
   be forgotten (their epoch matches no live session). */
static void s_session_drop(qkv_sessions_t *self, uint32_t n) {
    s_session_t *s = &self->sess[n];
    s_idle_unlink(self, n);
    qkv_probe_unlink(self->by_client, self->client_mask,
                     s_client_slot(self, s->client_id), s_client_home, self);
    self->client_used--;
    qkv_ring_free(&s->run);
    s->live = false;
    s->next = self->free_sess;
    self->free_sess = n;
    self->live_sess--;
}

/* Removes a record from the table and frees it. */
static void s_pair_remove(qkv_sessions_t *self, uint64_t id, uint64_t seq,
                          uint64_t epoch) {
    size_t slot = s_pair_slot(self, id, seq, epoch);
    uint64_t v = self->by_pair[slot];
    if (!v)
        return;
    uint32_t n = (uint32_t)v - 1;
    qkv_probe_unlink64(self->by_pair, self->pair_mask, slot, s_pair_home, self);
    self->pair_used--;
    self->recs[n].next_free = self->free_rec;
    self->free_rec = n;
}

/* Forgets the oldest record, raising its session's floor. */
static void s_forget_oldest(qkv_sessions_t *self) {
    s_made_t m = *(s_made_t *)qkv_ring_first(&self->made);
    qkv_ring_pop(&self->made, 1);
    if (m.epoch == 0)
        return; /* stale when a snapshot was loaded: held nothing else */
    s_session_t *s = &self->sess[m.session];
    bool current = s->live && s->epoch == m.epoch;
    if (current && s->run.count && m.client_seq == s->run_base) {
        qkv_ring_pop(&s->run, 1);
        s->run_base++;
        qkv_ring_shrink(&s->run);
    } else {
        s_pair_remove(self, m.client_id, m.client_seq, m.epoch);
    }
    if (current && m.client_seq > s->floor)
        s->floor = m.client_seq;
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

/* The record of seq in session s, or NULL. */
static const qkv_session_rec_t *s_find(const qkv_sessions_t *self,
                                       const s_session_t *s, uint64_t seq) {
    if (seq >= s->run_base && seq - s->run_base < s->run.count)
        return qkv_ring_at(&s->run, (size_t)(seq - s->run_base));
    const s_record_t *r = s_pair_find(self, s->client_id, seq, s->epoch);
    return r ? &r->rec : NULL;
}

qkv_session_verdict_t qkv_sessions_check(const qkv_sessions_t *self,
                                         uint64_t client_id,
                                         uint64_t client_seq, uint64_t hash,
                                         const qkv_session_rec_t **rec) {
    const s_session_t *s = s_session(self, client_id);
    if (!s)
        return client_seq > 1 ? QKV_SESSION_EXPIRED : QKV_SESSION_NEW;
    if (client_seq > s->max_seq)
        return QKV_SESSION_NEW; /* nothing recorded that high */
    const qkv_session_rec_t *r = s_find(self, s, client_seq);
    if (r) {
        if (r->hash != hash)
            return QKV_SESSION_CONFLICT;
        if (rec)
            *rec = r;
        return QKV_SESSION_RETRY;
    }
    return client_seq <= s->floor ? QKV_SESSION_EXPIRED : QKV_SESSION_NEW;
}

/* Where a new record of seq goes in session s (NULL: a new session). */
typedef enum { S_EXTEND, S_RESTART, S_TABLE } s_place_t;

static s_place_t s_place(const s_session_t *s, uint64_t seq) {
    if (!s || !s->run.count)
        return S_EXTEND; /* a new run */
    uint64_t end = s->run_base + s->run.count;
    return seq == end ? S_EXTEND : seq > end ? S_RESTART : S_TABLE;
}

int qkv_sessions_reserve(qkv_sessions_t *self, uint64_t client_id,
                         uint64_t client_seq) {
    s_session_t *s = s_session(self, client_id);
    s_place_t place = s_place(s, client_seq);
    if (qkv_ring_reserve(&self->made, 1) != 0)
        return -1;
    if (!s) {
        /* a new session: its table slot, its run, and a slab element
           unless a full table drops one to make room */
        if (s_clients_reserve(self) != 0 ||
            qkv_ring_reserve(&self->spare, 1) != 0)
            return -1;
        if (self->live_sess < self->window &&
            s_slab_reserve((void **)&self->sess, &self->sess_cap,
                           self->sess_made, self->free_sess != S_NONE, 1,
                           sizeof(s_session_t), self->window) != 0)
            return -1;
    } else if (place != S_TABLE && qkv_ring_reserve(&s->run, 1) != 0) {
        return -1;
    }
    /* records going to the table: this one, or the run a gap moves out */
    size_t to_table = place == S_TABLE     ? 1
                      : place == S_RESTART ? s->run.count
                                           : 0;
    if (!to_table)
        return 0;
    size_t free_recs = 0;
    for (uint32_t n = self->free_rec; n != S_NONE && free_recs < to_table;
         n = self->recs[n].next_free)
        free_recs++;
    if (s_pairs_reserve(self, to_table) != 0 ||
        s_slab_reserve((void **)&self->recs, &self->recs_cap, self->recs_made,
                       free_recs, to_table, sizeof(s_record_t),
                       self->window) != 0)
        return -1;
    return 0;
}

/* Takes a free record element (reserved beforehand). */
static s_record_t *s_record_take(qkv_sessions_t *self, uint32_t *n) {
    if (self->free_rec != S_NONE) {
        *n = self->free_rec;
        self->free_rec = self->recs[*n].next_free;
    } else {
        *n = (uint32_t)self->recs_made++;
    }
    return &self->recs[*n];
}

/* Puts a record of session s into the table (room reserved). */
static void s_pair_add(qkv_sessions_t *self, const s_session_t *s, uint64_t seq,
                       const qkv_session_rec_t *rec) {
    uint32_t n;
    s_record_t *r = s_record_take(self, &n);
    *r = (s_record_t){s->client_id, seq, s->epoch, *rec, S_NONE};
    self->by_pair[s_pair_slot(self, s->client_id, seq, s->epoch)] =
        (uint64_t)s_pair_hash(s->client_id, seq) << 32 | (n + 1);
    self->pair_used++;
}

/* Makes a session for client_id (room reserved). */
static uint32_t s_session_make(qkv_sessions_t *self, uint64_t client_id,
                               uint64_t time_ms) {
    if (self->live_sess == self->window)
        s_session_drop(self, self->idle_first); /* idle the longest */
    uint32_t sn;
    if (self->free_sess != S_NONE) {
        sn = self->free_sess;
        self->free_sess = self->sess[sn].next;
    } else {
        sn = (uint32_t)self->sess_made++;
    }
    s_session_t *s = &self->sess[sn];
    memset(s, 0, sizeof(*s));
    s->client_id = client_id;
    s->last_ms = time_ms;
    s->epoch = ++self->epochs;
    s->live = true;
    s->run = self->spare; /* its room was reserved */
    qkv_ring_init(&self->spare, sizeof(qkv_session_rec_t));
    self->by_client[s_client_slot(self, client_id)] = sn + 1;
    self->client_used++;
    self->live_sess++;
    s_idle_append(self, sn);
    return sn;
}

int qkv_sessions_record(qkv_sessions_t *self, uint64_t client_id,
                        uint64_t client_seq, uint64_t hash, uint64_t index,
                        uint64_t result, uint64_t time_ms) {
    if (qkv_sessions_reserve(self, client_id, client_seq) != 0)
        return -1; /* nothing changed */
    if (self->made.count == self->window)
        s_forget_oldest(self);
    s_session_t *s = s_session(self, client_id);
    uint32_t sn;
    if (s) {
        sn = (uint32_t)(s - self->sess);
        s_idle_unlink(self, sn);
        s_idle_append(self, sn);
    } else {
        sn = s_session_make(self, client_id, time_ms);
        s = &self->sess[sn];
    }
    if (time_ms > s->last_ms)
        s->last_ms = time_ms;
    if (client_seq > s->max_seq)
        s->max_seq = client_seq;
    qkv_session_rec_t rec = {index, result, hash};
    switch (s_place(s, client_seq)) {
    case S_RESTART: /* a gap: the old run moves to the table */
        for (size_t i = 0; i < s->run.count; i++)
            s_pair_add(self, s, s->run_base + i, qkv_ring_at(&s->run, i));
        qkv_ring_truncate(&s->run, 0);
        /* fall through */
    case S_EXTEND:
        if (!s->run.count)
            s->run_base = client_seq;
        *(qkv_session_rec_t *)qkv_ring_push(&s->run) = rec; /* reserved */
        break;
    default:
        s_pair_add(self, s, client_seq, &rec);
    }
    *(s_made_t *)qkv_ring_push(&self->made) =
        (s_made_t){client_id, client_seq, s->epoch, sn};
    return 0;
}

/*  =====================================================================
    Saving and loading (snapshots)

    What decides future verdicts is saved, nothing else: the sessions in
    idle order (client_id, last_ms, floor, max_seq) and the records in
    the order they were made, each with its content, or as stale when
    its session was dropped (a stale record still holds its place in the
    window until it is forgotten). Epochs and the run/table split are
    rebuilt; they change no verdict. Numbers are little-endian u64. */

static int s_put_u64(qkv_buf_t *out, uint64_t v) {
    uint8_t b[8];
    qkv_put_le64(b, v);
    return qkv_buf_append(out, b, 8);
}

int qkv_sessions_save(const qkv_sessions_t *self, qkv_buf_t *out) {
    int rc = s_put_u64(out, self->live_sess);
    for (uint32_t n = self->idle_first; n != S_NONE && rc == 0;
         n = self->sess[n].next) {
        const s_session_t *s = &self->sess[n];
        rc = s_put_u64(out, s->client_id) || s_put_u64(out, s->last_ms) ||
             s_put_u64(out, s->floor) || s_put_u64(out, s->max_seq);
    }
    rc = rc || s_put_u64(out, self->made.count);
    for (size_t i = 0; i < self->made.count && rc == 0; i++) {
        const s_made_t *m = qkv_ring_at(&self->made, i);
        const s_session_t *s = m->epoch ? &self->sess[m->session] : NULL;
        const qkv_session_rec_t *r = s && s->live && s->epoch == m->epoch
                                         ? s_find(self, s, m->client_seq)
                                         : NULL;

        rc = s_put_u64(out, m->client_id) || s_put_u64(out, m->client_seq) ||
             s_put_u64(out, r ? 1 : 0);
        if (r && rc == 0)
            rc = s_put_u64(out, r->index) || s_put_u64(out, r->result) ||
                 s_put_u64(out, r->hash);
    }
    return rc ? -1 : 0;
}

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} s_reader_t;

static uint64_t s_get_u64(s_reader_t *r) {
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = qkv_get_le64(r->p);
    r->p += 8;
    return v;
}

int qkv_sessions_load(qkv_sessions_t *self, const void *data, size_t size,
                      size_t *used) {
    qkv_sessions_clear(self);
    s_reader_t r = {data, (const uint8_t *)data + size, false};
    uint64_t sessions = s_get_u64(&r);
    if (r.bad || sessions > self->window)
        return -1;
    for (uint64_t i = 0; i < sessions; i++) {
        uint64_t id = s_get_u64(&r), last_ms = s_get_u64(&r);
        uint64_t floor = s_get_u64(&r), max_seq = s_get_u64(&r);
        if (r.bad || id == 0 || s_session(self, id))
            return -1;
        if (s_clients_reserve(self) != 0 ||
            s_slab_reserve((void **)&self->sess, &self->sess_cap,
                           self->sess_made, self->free_sess != S_NONE, 1,
                           sizeof(s_session_t), self->window) != 0)
            return -1;
        uint32_t sn = s_session_make(self, id, last_ms);
        self->sess[sn].floor = floor;
        self->sess[sn].max_seq = max_seq;
    }
    uint64_t made = s_get_u64(&r);
    if (r.bad || made > self->window)
        return -1;
    for (uint64_t i = 0; i < made; i++) {
        uint64_t id = s_get_u64(&r), seq = s_get_u64(&r);
        uint64_t live = s_get_u64(&r);
        qkv_session_rec_t rec = {0, 0, 0};
        if (live) {
            rec.index = s_get_u64(&r);
            rec.result = s_get_u64(&r);
            rec.hash = s_get_u64(&r);
        }
        if (r.bad || live > 1 || qkv_ring_reserve(&self->made, 1) != 0)
            return -1;
        s_session_t *s = live ? s_session(self, id) : NULL;
        if (live &&
            (!s || seq == 0 || seq > s->max_seq || s_find(self, s, seq)))
            return -1;
        uint32_t sn = 0;
        uint64_t epoch = 0; /* stale: matches no session */
        if (s) {
            sn = (uint32_t)(s - self->sess);
            epoch = s->epoch;
            if (qkv_sessions_reserve(self, id, seq) != 0)
                return -1;
            switch (s_place(s, seq)) {
            case S_RESTART:
                for (size_t k = 0; k < s->run.count; k++)
                    s_pair_add(self, s, s->run_base + k,
                               qkv_ring_at(&s->run, k));
                qkv_ring_truncate(&s->run, 0);
                /* fall through */
            case S_EXTEND:
                if (!s->run.count)
                    s->run_base = seq;
                *(qkv_session_rec_t *)qkv_ring_push(&s->run) = rec;
                break;
            default:
                s_pair_add(self, s, seq, &rec);
            }
        }
        *(s_made_t *)qkv_ring_push(&self->made) =
            (s_made_t){id, seq, epoch, sn};
    }
    *used = (size_t)(r.p - (const uint8_t *)data);
    return 0;
}
