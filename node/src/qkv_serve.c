/*  qkv_serve.c - the zmq-native client endpoint, run by the replication
    actor (PROTOCOL.md, "Client protocol").

    A ROUTER on CLIENT_PORT takes frames of requests. Each frame is served
    in two passes. The first decides every request: a write is appended to
    the leader's log at once and parked until it commits (its answer is
    deferred), a read waiting for min_index is parked, everything else is
    answered now. The second pass encodes the immediate answers, reading
    the store as it goes, in one reply frame. Deferred answers go out as
    their entries apply, one frame per run of answers to the same client,
    or when their deadline passes.

    Idempotent writes: a write tagged (client_id, client_seq) is recorded
    in the dedup table; a retry finds the record and, instead of appending
    again, is answered with the original entry's result once it applied.

    Parked client writes form a ring ordered by index, which is also the
    order of their deadlines (every write gets REPLICATION_TIMEOUT_MS), so
    both commits and timeouts take from its head. Retries and min_index
    reads are rare and kept in plain arrays scanned when needed.
*/
#include "qkv_actor.h"
#include "qkv_cmsg.h"
#include "qkv_dedup.h"

#include <stdlib.h>
#include <string.h>

#define S_FRAMES_PER_READ 64      /* request frames served per wake-up */
#define S_DUMP_DEFAULT 1000       /* keys per dump chunk by default */
#define S_DUMP_MAX 10000          /* most keys per dump chunk */
#define S_DUMP_BYTES (4u << 20)   /* key + value bytes per dump chunk */
#define S_WAIT_MS_MAX 60000       /* longest min_index wait */
#define S_PARKED_MAX 1000000      /* most retries or reads parked */
#define S_FRAME_BASE (16u << 20)  /* client frame limit beyond 2x limits */
#define S_REPLY_BYTES (64u << 20) /* reads stop filling a reply past this */

/* A write (or a retry of one) parked until its entry applies. */
typedef struct {
    uint64_t index;      /* the entry */
    int64_t deadline_us; /* answer quorum_not_reached then */
    uint64_t id;         /* request id */
    uint8_t op;          /* qkv_cop_t */
    zmq_msg_t peer;      /* client routing id */
} s_cwait_t;

/* A read parked until min_index applies. */
typedef struct {
    int64_t deadline_us; /* answer not_ready then */
    uint64_t min_index;
    qkv_creq_t req; /* key points into key_copy */
    char *key_copy; /* owned */
    zmq_msg_t peer;
} s_rwait_t;

/* What the first pass decided for one request. */
typedef struct {
    bool deferred; /* parked: no answer in this frame */
    bool read_now; /* get, dump, health: read while encoding */
    qkv_cstatus_t status;
    const char *message;
    bool has_index;
    uint64_t index;
    uint64_t result; /* put: seq; delete: 1 existed / 0 */
} s_plan_t;

struct qkv_serve_t {
    zsock_t *sock;          /* ROUTER on CLIENT_PORT */
    void *handle;           /* its libzmq socket */
    qkv_encoder_t *encoder; /* reply frames */
    qkv_decoder_t *decoder; /* request frames */
    qkv_dedup_t *dedup;     /* leader: recent tagged writes */
    s_cwait_t *waits;       /* ring of parked writes, by index */
    size_t head, count, cap;
    s_cwait_t *retries; /* parked retries */
    size_t retry_count, retry_cap;
    s_rwait_t *reads; /* parked min_index reads */
    size_t read_count, read_cap;
    s_plan_t *plans; /* first pass results for one frame */
    size_t plans_cap;
    qkv_buf_t value;      /* a get's value */
    qkv_buf_t dump_bytes; /* a dump chunk's keys and values */
    qkv_citem_t *items;   /* a dump chunk's items */
    size_t items_count, items_cap;
    bool items_failed; /* out of memory while gathering a chunk */
};

/*  =====================================================================
    Sending */

/* Sends the encoder's frame to peer (copied). A client that is gone or
   not reading loses the answer; it will time out and may retry. */
static void s_send(qkv_actor_t *actor, const zmq_msg_t *peer) {
    qkv_serve_t *self = actor->serve;
    size_t size;
    const void *data = qkv_encoder_data(self->encoder, &size);
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_copy(&id, (zmq_msg_t *)peer);
    if (!data ||
        zmq_msg_send(&id, self->handle, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return;
    }
    zmq_send(self->handle, data, size, ZMQ_DONTWAIT);
}

static void s_error(qkv_cres_t *res, uint64_t id, qkv_cstatus_t status,
                    const char *message) {
    memset(res, 0, sizeof(*res));
    res->id = id;
    res->status = status;
    res->message = message;
    res->message_len = strlen(message);
}

/* Sends one result alone. */
static void s_send_one(qkv_actor_t *actor, const zmq_msg_t *peer,
                       const qkv_cres_t *res) {
    qkv_cenc_begin(actor->serve->encoder, 1);
    qkv_cenc_result(actor->serve->encoder, res);
    s_send(actor, peer);
}

/* The result of a committed write. */
static void s_write_result(qkv_cres_t *res, uint64_t id, uint8_t op,
                           uint64_t index, uint64_t result) {
    memset(res, 0, sizeof(*res));
    res->id = id;
    res->status = QKV_CS_OK;
    res->has_index = true;
    res->index = index;
    if (op == QKV_COP_PUT) {
        res->has_seq = true;
        res->seq = result;
    } else if (op == QKV_COP_DELETE) {
        res->has_deleted = true;
        res->deleted = result != 0;
    }
}

static const char s_timeout_text[] =
    "not confirmed in time: the entry stays in the log and commits when "
    "enough followers answer";

static void s_timeout_result(qkv_cres_t *res, const s_cwait_t *w) {
    s_error(res, w->id, QKV_CS_QUORUM_NOT_REACHED, s_timeout_text);
    res->has_index = true;
    res->index = w->index;
}

/*  =====================================================================
    Parking */

static int s_grow(void **array, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *grown = realloc(*array, n * size);
    if (!grown)
        return -1;
    *array = grown;
    *cap = n;
    return 0;
}

static int s_park_write(qkv_serve_t *self, const s_cwait_t *w) {
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 256;
        s_cwait_t *ring = malloc(cap * sizeof(*ring));
        if (!ring)
            return -1;
        for (size_t i = 0; i < self->count; i++) {
            s_cwait_t *from = &self->waits[(self->head + i) % self->cap];
            ring[i] = *from;
            zmq_msg_init(&ring[i].peer);
            zmq_msg_move(&ring[i].peer, &from->peer);
        }
        free(self->waits);
        self->waits = ring;
        self->head = 0;
        self->cap = cap;
    }
    s_cwait_t *slot = &self->waits[(self->head + self->count++) % self->cap];
    *slot = *w;
    zmq_msg_init(&slot->peer);
    zmq_msg_copy(&slot->peer, (zmq_msg_t *)&w->peer);
    return 0;
}

/* zmq_msg_t must not be copied bytewise (zmq_msg_move it), so the arrays
   that hold one grow by hand rather than with realloc. */
static int s_grow_retries(qkv_serve_t *self) {
    if (self->retry_count < self->retry_cap)
        return 0;
    if (self->retry_count >= S_PARKED_MAX)
        return -1;
    size_t cap = self->retry_cap ? self->retry_cap * 2 : 64;
    s_cwait_t *grown = malloc(cap * sizeof(*grown));
    if (!grown)
        return -1;
    for (size_t i = 0; i < self->retry_count; i++) {
        grown[i] = self->retries[i];
        zmq_msg_init(&grown[i].peer);
        zmq_msg_move(&grown[i].peer, &self->retries[i].peer);
    }
    free(self->retries);
    self->retries = grown;
    self->retry_cap = cap;
    return 0;
}

static int s_grow_reads(qkv_serve_t *self) {
    if (self->read_count < self->read_cap)
        return 0;
    if (self->read_count >= S_PARKED_MAX)
        return -1;
    size_t cap = self->read_cap ? self->read_cap * 2 : 64;
    s_rwait_t *grown = malloc(cap * sizeof(*grown));
    if (!grown)
        return -1;
    for (size_t i = 0; i < self->read_count; i++) {
        grown[i] = self->reads[i];
        zmq_msg_init(&grown[i].peer);
        zmq_msg_move(&grown[i].peer, &self->reads[i].peer);
    }
    free(self->reads);
    self->reads = grown;
    self->read_cap = cap;
    return 0;
}

/* Removes parked retry i (order does not matter). */
static void s_drop_retry(qkv_serve_t *self, size_t i) {
    zmq_msg_close(&self->retries[i].peer);
    if (i != --self->retry_count) {
        self->retries[i] = self->retries[self->retry_count];
        zmq_msg_init(&self->retries[i].peer);
        zmq_msg_move(&self->retries[i].peer,
                     &self->retries[self->retry_count].peer);
    }
}

static void s_drop_read(qkv_serve_t *self, size_t i) {
    zmq_msg_close(&self->reads[i].peer);
    free(self->reads[i].key_copy);
    if (i != --self->read_count) {
        self->reads[i] = self->reads[self->read_count];
        zmq_msg_init(&self->reads[i].peer);
        zmq_msg_move(&self->reads[i].peer, &self->reads[self->read_count].peer);
    }
}

/*  =====================================================================
    First pass: decide */

static bool s_too_large(const qkv_config_t *cfg, const qkv_creq_t *r) {
    return r->key_len > cfg->max_key_bytes ||
           r->value_len > cfg->max_value_bytes;
}

static void s_plan_error(s_plan_t *plan, qkv_cstatus_t status,
                         const char *message) {
    plan->status = status;
    plan->message = message;
}

static qkv_op_t s_entry_op(qkv_cop_t op) {
    return op == QKV_COP_PUT      ? QKV_OP_PUT
           : op == QKV_COP_DELETE ? QKV_OP_DELETE
                                  : QKV_OP_RESET;
}

/* A retry of a write the dedup table remembers. */
static void s_plan_retry(qkv_actor_t *actor, const qkv_creq_t *r,
                         const qkv_dedup_rec_t *rec, const zmq_msg_t *peer,
                         int64_t now, s_plan_t *plan) {
    qkv_serve_t *self = actor->serve;
    if (rec->applied) {
        plan->status = QKV_CS_OK;
        plan->has_index = true;
        plan->index = rec->index;
        plan->result = rec->result;
        return;
    }
    if (s_grow_retries(self) != 0) {
        s_plan_error(plan, QKV_CS_UNAVAILABLE, "too many parked retries");
        return;
    }
    s_cwait_t *w = &self->retries[self->retry_count++];
    w->index = rec->index;
    w->deadline_us = now + (int64_t)actor->cfg->replication_timeout_ms * 1000;
    w->id = r->id;
    w->op = (uint8_t)r->op;
    zmq_msg_init(&w->peer);
    zmq_msg_copy(&w->peer, (zmq_msg_t *)peer);
    plan->deferred = true;
}

static void s_plan_write(qkv_actor_t *actor, const qkv_creq_t *r,
                         const zmq_msg_t *peer, int64_t now, s_plan_t *plan) {
    qkv_serve_t *self = actor->serve;
    if (actor->cfg->role != QKV_ROLE_LEADER) {
        s_plan_error(plan, QKV_CS_NOT_LEADER, "writes go to the leader");
        return;
    }
    if (s_too_large(actor->cfg, r)) {
        s_plan_error(plan, QKV_CS_TOO_LARGE,
                     "key over MAX_KEY_BYTES or value over MAX_VALUE_BYTES");
        return;
    }
    if (r->client_id) {
        const qkv_dedup_rec_t *rec =
            qkv_dedup_find(self->dedup, r->client_id, r->client_seq);
        if (rec) {
            s_plan_retry(actor, r, rec, peer, now, plan);
            return;
        }
    }
    qkv_entry_t *entry = qkv_entry_new(s_entry_op(r->op), 0, r->key, r->key_len,
                                       r->value, r->value_len);
    uint64_t index = entry ? qkv_actor_append(actor, &entry) : 0;
    s_cwait_t w;
    w.index = index;
    w.deadline_us = now + (int64_t)actor->cfg->replication_timeout_ms * 1000;
    w.id = r->id;
    w.op = (uint8_t)r->op;
    zmq_msg_init(&w.peer);
    zmq_msg_copy(&w.peer, (zmq_msg_t *)peer);
    if (!index || s_park_write(self, &w) != 0) {
        free(entry);
        zmq_msg_close(&w.peer);
        /* appended but untracked: it still commits; the client times out */
        s_plan_error(plan, QKV_CS_UNAVAILABLE, "out of memory");
        return;
    }
    zmq_msg_close(&w.peer);
    if (r->client_id)
        qkv_dedup_add(self->dedup, r->client_id, r->client_seq, index);
    plan->deferred = true;
}

static void s_plan_read(qkv_actor_t *actor, const qkv_creq_t *r,
                        const zmq_msg_t *peer, int64_t now, s_plan_t *plan) {
    qkv_serve_t *self = actor->serve;
    if (r->key_len > actor->cfg->max_key_bytes) {
        s_plan_error(plan, QKV_CS_TOO_LARGE, "key over MAX_KEY_BYTES");
        return;
    }
    if (r->min_index <= actor->applied) {
        plan->read_now = true;
        return;
    }
    if (r->wait_ms == 0) {
        s_plan_error(plan, QKV_CS_NOT_READY,
                     "min_index not applied on this node yet");
        return;
    }
    if (s_grow_reads(self) != 0) {
        s_plan_error(plan, QKV_CS_UNAVAILABLE, "too many parked reads");
        return;
    }
    s_rwait_t *w = &self->reads[self->read_count];
    memset(w, 0, sizeof(*w));
    w->req = *r;
    if (r->key_len) {
        w->key_copy = malloc(r->key_len);
        if (!w->key_copy) {
            s_plan_error(plan, QKV_CS_UNAVAILABLE, "out of memory");
            return;
        }
        memcpy(w->key_copy, r->key, r->key_len);
        w->req.key = w->key_copy;
    }
    uint64_t wait = r->wait_ms < S_WAIT_MS_MAX ? r->wait_ms : S_WAIT_MS_MAX;
    w->deadline_us = now + (int64_t)wait * 1000;
    w->min_index = r->min_index;
    zmq_msg_init(&w->peer);
    zmq_msg_copy(&w->peer, (zmq_msg_t *)peer);
    self->read_count++;
    plan->deferred = true;
}

static void s_plan(qkv_actor_t *actor, const qkv_creq_t *r,
                   const zmq_msg_t *peer, int64_t now, s_plan_t *plan) {
    memset(plan, 0, sizeof(*plan));
    switch (r->op) {
    case QKV_COP_PUT:
    case QKV_COP_DELETE:
    case QKV_COP_RESET:
        s_plan_write(actor, r, peer, now, plan);
        break;
    case QKV_COP_GET:
    case QKV_COP_DUMP:
        s_plan_read(actor, r, peer, now, plan);
        break;
    case QKV_COP_HEALTH:
        plan->read_now = true;
        break;
    default:
        s_plan_error(plan, QKV_CS_BAD_REQUEST, r->reason);
    }
}

/*  =====================================================================
    Second pass: answer */

static void s_dump_visit(void *arg, const char *key, size_t key_len,
                         const char *value, size_t value_len, uint64_t seq,
                         uint64_t index) {
    qkv_serve_t *self = arg;
    if (self->items_count == self->items_cap &&
        s_grow((void **)&self->items, &self->items_cap, self->items_count + 1,
               sizeof(*self->items)) != 0) {
        self->items_failed = true;
        return;
    }
    /* pointers are offsets until the chunk is complete */
    qkv_citem_t *it = &self->items[self->items_count++];
    it->key = (const char *)(uintptr_t)self->dump_bytes.size;
    it->key_len = key_len;
    qkv_buf_append(&self->dump_bytes, key, key_len);
    it->value = (const char *)(uintptr_t)self->dump_bytes.size;
    it->value_len = value_len;
    qkv_buf_append(&self->dump_bytes, value, value_len);
    it->seq = seq;
    it->index = index;
}

static void s_answer_dump(qkv_actor_t *actor, const qkv_creq_t *r,
                          qkv_cres_t *res) {
    qkv_serve_t *self = actor->serve;
    qkv_buf_reset(&self->dump_bytes);
    self->items_count = 0;
    self->items_failed = false;
    uint64_t cursor = r->cursor;
    size_t limit = r->limit ? r->limit : S_DUMP_DEFAULT;
    if (limit > S_DUMP_MAX)
        limit = S_DUMP_MAX;
    res->applied_index = actor->applied;
    qkv_store_scan(actor->node->store, &cursor, limit, S_DUMP_BYTES,
                   s_dump_visit, self);
    if (self->items_failed || self->dump_bytes.failed) {
        s_error(res, r->id, QKV_CS_UNAVAILABLE, "out of memory");
        return;
    }
    for (size_t i = 0; i < self->items_count; i++) {
        qkv_citem_t *it = &self->items[i];
        it->key = self->dump_bytes.data + (uintptr_t)it->key;
        it->value = self->dump_bytes.data + (uintptr_t)it->value;
    }
    res->items = self->items_count ? self->items : NULL;
    res->item_count = self->items_count;
    res->has_next = true;
    res->next = cursor;
}

static void s_answer_get(qkv_actor_t *actor, const qkv_creq_t *r,
                         qkv_cres_t *res) {
    qkv_serve_t *self = actor->serve;
    uint64_t seq, index;
    int found = qkv_store_get(actor->node->store, r->key, r->key_len,
                              &self->value, &seq, &index);
    if (found < 0) {
        s_error(res, r->id, QKV_CS_UNAVAILABLE, "out of memory");
    } else if (found == 0) {
        res->status = QKV_CS_NOT_FOUND;
    } else {
        res->key = r->key;
        res->key_len = r->key_len;
        res->value = self->value.data ? self->value.data : "";
        res->value_len = self->value.size;
        res->has_seq = res->has_index = true;
        res->seq = seq;
        res->index = index;
    }
}

/* Encodes a health result: needs storage for the duration of the call. */
static void s_answer_health(qkv_actor_t *actor, uint64_t id) {
    qkv_node_status_t st;
    qkv_node_status(actor->node, &st);
    qkv_cfollower_t fs[QKV_MAX_FOLLOWERS];
    const char *role = st.role == QKV_ROLE_LEADER ? "leader" : "follower";
    qkv_chealth_t h = {role,
                       strlen(role),
                       actor->cfg->node_id,
                       strlen(actor->cfg->node_id),
                       st.replication_id,
                       strlen(st.replication_id),
                       st.error,
                       strlen(st.error),
                       st.last_index,
                       st.commit_index,
                       st.applied_index,
                       fs,
                       st.follower_count,
                       actor->cfg->max_key_bytes,
                       actor->cfg->max_value_bytes,
                       S_FRAME_BASE + 2 * (actor->cfg->max_key_bytes +
                                           actor->cfg->max_value_bytes)};
    for (size_t i = 0; i < st.follower_count; i++) {
        const qkv_follower_status_t *f = &st.followers[i];
        fs[i] = (qkv_cfollower_t){
            f->id,        strlen(f->id),  f->endpoint, strlen(f->endpoint),
            f->connected, f->acked_index, f->lag};
    }
    qkv_cres_t res;
    memset(&res, 0, sizeof(res));
    res.id = id;
    res.health = &h;
    qkv_cenc_result(actor->serve->encoder, &res);
}

/* Answers a read: get, dump or health, from what is applied now. */
static void s_answer_read(qkv_actor_t *actor, const qkv_creq_t *r) {
    if (r->op == QKV_COP_HEALTH) {
        s_answer_health(actor, r->id);
        return;
    }
    qkv_cres_t res;
    memset(&res, 0, sizeof(res));
    res.id = r->id;
    size_t so_far;
    qkv_encoder_data(actor->serve->encoder, &so_far);
    if (so_far > S_REPLY_BYTES) {
        /* many large reads in one frame: bound what one reply may take */
        s_error(&res, r->id, QKV_CS_TOO_LARGE,
                "the reply to this frame passed 64 MiB: send fewer reads "
                "per frame");
    } else if (r->op == QKV_COP_GET) {
        s_answer_get(actor, r, &res);
    } else {
        s_answer_dump(actor, r, &res);
    }
    qkv_cenc_result(actor->serve->encoder, &res);
}

static void s_answer(qkv_actor_t *actor, const qkv_creq_t *r,
                     const s_plan_t *plan) {
    if (plan->read_now) {
        s_answer_read(actor, r);
        return;
    }
    qkv_cres_t res;
    if (plan->status == QKV_CS_OK) {
        s_write_result(&res, r->id, (uint8_t)r->op, plan->index, plan->result);
    } else {
        s_error(&res, r->id, plan->status, plan->message);
        if (plan->status == QKV_CS_NOT_LEADER) {
            res.leader = actor->leader_endpoint;
            res.leader_len = strlen(actor->leader_endpoint);
        }
    }
    qkv_cenc_result(actor->serve->encoder, &res);
}

/*  =====================================================================
    Frames */

static void s_serve_frame(qkv_actor_t *actor, const zmq_msg_t *peer,
                          const void *data, size_t size, int64_t now) {
    qkv_serve_t *self = actor->serve;
    const qkv_creq_t *reqs;
    size_t n;
    const char *reason = NULL;
    int rc = qkv_cdec_requests(self->decoder, data, size, &reqs, &n, &reason);
    if (rc == 0 && s_grow((void **)&self->plans, &self->plans_cap, n,
                          sizeof(*self->plans)) != 0)
        rc = -1;
    if (rc != 0) {
        qkv_cres_t res;
        s_error(&res, 0, rc == -1 ? QKV_CS_UNAVAILABLE : QKV_CS_BAD_REQUEST,
                rc == -1 ? "out of memory" : reason);
        if (rc != -1)
            qkv_node_count_bad_request(actor->node, QKV_PROTO_ZMQ);
        s_send_one(actor, peer, &res);
        return;
    }
    size_t immediate = 0;
    for (size_t i = 0; i < n; i++) {
        s_plan(actor, &reqs[i], peer, now, &self->plans[i]);
        immediate += !self->plans[i].deferred;
        if (self->plans[i].status == QKV_CS_BAD_REQUEST)
            qkv_node_count_bad_request(actor->node, QKV_PROTO_ZMQ);
    }
    if (!immediate)
        return;
    qkv_cenc_begin(self->encoder, immediate);
    for (size_t i = 0; i < n; i++)
        if (!self->plans[i].deferred)
            s_answer(actor, &reqs[i], &self->plans[i]);
    s_send(actor, peer);
}

/* Reads one [routing id][frame] message; returns 0 when none waits. */
static int s_read_one(qkv_actor_t *actor, int64_t now) {
    zmq_msg_t id, body;
    int rc = qkv_actor_router_recv(actor->serve->handle, &id, &body);
    if (rc < 0)
        return 0;
    if (rc == 1) {
        s_serve_frame(actor, &id, zmq_msg_data(&body), zmq_msg_size(&body),
                      now);
    } else {
        qkv_cres_t res;
        s_error(&res, 0, QKV_CS_BAD_REQUEST,
                "malformed message: send one frame per message");
        qkv_node_count_bad_request(actor->node, QKV_PROTO_ZMQ);
        s_send_one(actor, &id, &res);
    }
    zmq_msg_close(&body);
    zmq_msg_close(&id);
    return 1;
}

void qkv_serve_read(qkv_actor_t *actor, int64_t now) {
    for (int i = 0; i < S_FRAMES_PER_READ && s_read_one(actor, now); i++)
        ;
}

/*  =====================================================================
    Completion */

void qkv_serve_applied(qkv_actor_t *actor, uint64_t first, size_t count,
                       const uint64_t *seqs) {
    qkv_serve_t *self = actor->serve;
    uint64_t end = first + count; /* one past the last applied */
    if (self->dedup)
        qkv_dedup_applied(self->dedup, first, count, seqs);
    /* parked writes: one frame per run of the same client */
    while (self->count && self->waits[self->head].index < end) {
        const s_cwait_t *start = &self->waits[self->head];
        size_t run = 1;
        while (run < self->count) {
            const s_cwait_t *w = &self->waits[(self->head + run) % self->cap];
            if (w->index >= end ||
                zmq_msg_size((zmq_msg_t *)&w->peer) !=
                    zmq_msg_size((zmq_msg_t *)&start->peer) ||
                memcmp(zmq_msg_data((zmq_msg_t *)&w->peer),
                       zmq_msg_data((zmq_msg_t *)&start->peer),
                       zmq_msg_size((zmq_msg_t *)&w->peer)) != 0)
                break;
            run++;
        }
        qkv_cenc_begin(self->encoder, run);
        for (size_t i = 0; i < run; i++) {
            const s_cwait_t *w = &self->waits[(self->head + i) % self->cap];
            qkv_cres_t res;
            uint64_t result = w->index >= first ? seqs[w->index - first] : 0;
            s_write_result(&res, w->id, w->op, w->index, result);
            qkv_cenc_result(self->encoder, &res);
        }
        s_send(actor, &start->peer);
        for (size_t i = 0; i < run; i++) {
            zmq_msg_close(&self->waits[self->head].peer);
            self->head = (self->head + 1) % self->cap;
            self->count--;
        }
    }
    for (size_t i = 0; i < self->retry_count;) {
        s_cwait_t *w = &self->retries[i];
        if (w->index >= end) {
            i++;
            continue;
        }
        qkv_cres_t res;
        uint64_t result = w->index >= first ? seqs[w->index - first] : 0;
        s_write_result(&res, w->id, w->op, w->index, result);
        s_send_one(actor, &w->peer, &res);
        s_drop_retry(self, i);
    }
}

void qkv_serve_after_apply(qkv_actor_t *actor) {
    qkv_serve_t *self = actor->serve;
    for (size_t i = 0; i < self->read_count;) {
        s_rwait_t *w = &self->reads[i];
        if (w->min_index > actor->applied) {
            i++;
            continue;
        }
        qkv_cenc_begin(self->encoder, 1);
        s_answer_read(actor, &w->req);
        s_send(actor, &w->peer);
        s_drop_read(self, i);
    }
}

int64_t qkv_serve_timers(qkv_actor_t *actor, int64_t now) {
    qkv_serve_t *self = actor->serve;
    int64_t next = 0;
    qkv_cres_t res;
    while (self->count && self->waits[self->head].deadline_us <= now) {
        s_cwait_t *w = &self->waits[self->head];
        s_timeout_result(&res, w);
        s_send_one(actor, &w->peer, &res);
        zmq_msg_close(&w->peer);
        self->head = (self->head + 1) % self->cap;
        self->count--;
    }
    if (self->count)
        next = self->waits[self->head].deadline_us;
    for (size_t i = 0; i < self->retry_count;) {
        s_cwait_t *w = &self->retries[i];
        if (w->deadline_us > now) {
            next = next && next < w->deadline_us ? next : w->deadline_us;
            i++;
            continue;
        }
        s_timeout_result(&res, w);
        s_send_one(actor, &w->peer, &res);
        s_drop_retry(self, i);
    }
    for (size_t i = 0; i < self->read_count;) {
        s_rwait_t *w = &self->reads[i];
        if (w->deadline_us > now) {
            next = next && next < w->deadline_us ? next : w->deadline_us;
            i++;
            continue;
        }
        s_error(&res, w->req.id, QKV_CS_NOT_READY,
                "min_index not applied on this node within wait_ms");
        s_send_one(actor, &w->peer, &res);
        s_drop_read(self, i);
    }
    return next;
}

/*  =====================================================================
    Life cycle */

void *qkv_serve_handle(qkv_actor_t *actor) {
    return actor->serve->handle;
}

int qkv_serve_start(qkv_actor_t *actor) {
    const qkv_config_t *cfg = actor->cfg;
    qkv_serve_t *self = calloc(1, sizeof(*self));
    actor->serve = self;
    if (!self)
        goto nomem;
    size_t frame_max =
        S_FRAME_BASE + 2 * (cfg->max_key_bytes + cfg->max_value_bytes);
    qkv_decoder_limits_t limits = {frame_max, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    self->encoder = qkv_encoder_new();
    self->decoder = qkv_decoder_new(&limits);
    if (cfg->role == QKV_ROLE_LEADER)
        self->dedup = qkv_dedup_new(cfg->dedup_window);
    if (!self->encoder || !self->decoder ||
        (cfg->role == QKV_ROLE_LEADER && !self->dedup))
        goto nomem;
    self->sock = zsock_new(ZMQ_ROUTER);
    if (!self->sock)
        goto nomem;
    zsock_set_linger(self->sock, 0);
    zsock_set_sndhwm(self->sock, 100000);
    zsock_set_rcvhwm(self->sock, 100000);
    zsock_set_router_mandatory(self->sock, 1);
    zsock_set_maxmsgsize(self->sock, (int64_t)frame_max);
    zsock_set_heartbeat_ivl(self->sock, 1000);
    zsock_set_heartbeat_ttl(self->sock, 3000);
    zsock_set_heartbeat_timeout(self->sock, 3000);
    if (zsock_bind(self->sock, "tcp://%s:%d", cfg->bind, cfg->client_port) <
        0) {
        snprintf(actor->node->start_error, sizeof(actor->node->start_error),
                 "CLIENT_PORT: cannot bind tcp://%s:%d: %s", cfg->bind,
                 cfg->client_port, zmq_strerror(zmq_errno()));
        return -1;
    }
    self->handle = zsock_resolve(self->sock);
    return 0;
nomem:
    snprintf(actor->node->start_error, sizeof(actor->node->start_error),
             "out of memory starting the client endpoint");
    return -1;
}

void qkv_serve_stop(qkv_actor_t *actor) {
    qkv_serve_t *self = actor->serve;
    if (!self)
        return;
    qkv_cres_t res;
    while (self->count) {
        s_cwait_t *w = &self->waits[self->head];
        if (self->handle) {
            s_error(&res, w->id, QKV_CS_UNAVAILABLE, "node stopping");
            res.has_index = true;
            res.index = w->index;
            s_send_one(actor, &w->peer, &res);
        }
        zmq_msg_close(&w->peer);
        self->head = (self->head + 1) % self->cap;
        self->count--;
    }
    while (self->retry_count)
        s_drop_retry(self, self->retry_count - 1);
    while (self->read_count)
        s_drop_read(self, self->read_count - 1);
    zsock_destroy(&self->sock);
    free(self->waits);
    free(self->retries);
    free(self->reads);
    free(self->plans);
    free(self->items);
    qkv_buf_free(&self->value);
    qkv_buf_free(&self->dump_bytes);
    qkv_dedup_destroy(&self->dedup);
    qkv_encoder_destroy(&self->encoder);
    qkv_decoder_destroy(&self->decoder);
    free(self);
    actor->serve = NULL;
}
