/*  qkv_clients.c - the zmq-native client endpoint (qkv_clients.h,
    PROTOCOL.md "Client protocol").

    A frame of requests is served in one pass, in order: a write goes to
    the door (which answers it now - a retry, not_leader - or when its
    entry applies or its deadline passes), a read waiting for min_index is
    parked, everything else is answered from the store at once. Every
    answer to a client is appended to that client's open result frame
    (qkv_cenc_begin_open), which is sent when an answer for another client
    comes, when it holds QKV_CMSG_MAX_BATCH results or its bytes pass
    S_FRAME_SOFT, and at the end of each actor turn (qkv_clients_flush).

    Clients are known by their ZeroMQ routing id, kept once in a peer
    table (slab + open-addressing table) with a count of the writes and
    reads that still owe it an answer; parked items hold the peer's slab
    number, so they are plain data.

    A dump cursor is the store's position and a check (a keyed hash of the
    position with a secret drawn at start), so a cursor this node never
    handed out is refused instead of silently dumping from elsewhere.

    ZeroMQ drops a frame above the size limit by closing its connection;
    nothing tells which disconnect that was, so a socket monitor counts
    every client disconnect for /metrics. The monitor also feeds the
    port's guard (qkv_port_guard_t in qkv_sockopt.h), which closes the
    port for a second when file descriptors run short.
*/
#include "qkv_clients.h"
#include "qkv_buf.h"
#include "qkv_cmsg.h"
#include "qkv_curve.h"
#include "qkv_hash.h"
#include "qkv_peers.h"
#include "qkv_ring.h"
#include "qkv_sockopt.h"

#include <stdlib.h>
#include <string.h>

#define S_FRAMES_PER_READ 64     /* request frames served per wake-up */
#define S_DUMP_DEFAULT 1000      /* keys per dump chunk by default */
#define S_DUMP_BYTES (4u << 20)  /* key + value bytes per dump chunk */
#define S_PARKED_MAX 1000000     /* most reads parked */
#define S_FRAME_SOFT (64u << 20) /* an open result frame goes out past */
#define S_NONE UINT32_MAX

/* A client, by routing id. */
typedef struct {
    uint32_t refs;      /* answers owed to it */
    uint32_t next_free; /* free list link */
    uint8_t id_len;
    uint8_t id[255]; /* ZeroMQ routing ids are 1 to 255 bytes */
} s_peer_t;

/* A read parked until min_index applies. */
typedef struct {
    int64_t deadline_us; /* answer not_ready then */
    uint32_t peer;
    qkv_creq_t req; /* key points into key_copy */
    char *key_copy; /* owned */
} s_read_t;

struct qkv_clients_t {
    qkv_node_t *node;
    const qkv_config_t *cfg;
    qkv_door_t *door;
    const char *leader_endpoint; /* the actor's; "" unknown */
    bool curve;                  /* CURVE: clients' keys say what they may */
    zsock_t *sock;               /* ROUTER on CLIENT_PORT */
    void *handle;                /* its libzmq socket */
    bool sent;                   /* answers went out on it since asked */
    zsock_t *monitor;            /* PAIR receiving its disconnect events */
    qkv_encoder_t *encoder;      /* the open result frame */
    qkv_decoder_t *decoder;      /* request frames */
    uint32_t open_peer;          /* whose frame is open; S_NONE: none */
    size_t open_count;           /* results in it */
    /* peers */
    qkv_ring_t peers; /* s_peer_t slab, never popped */
    uint32_t free_peer;
    uint32_t *table; /* slab number + 1; 0 = empty */
    size_t table_mask, table_used;
    /* parked reads */
    qkv_ring_t reads; /* s_read_t, unordered */
    /* dump and get scratch */
    qkv_buf_t value;      /* a get's value */
    qkv_buf_t dump_bytes; /* a dump chunk's keys and values */
    qkv_ring_t items;     /* qkv_citem_t of a dump chunk, never popped */
    bool items_failed;
    uint64_t cursor_secret;
    qkv_port_guard_t guard; /* closes the port when descriptors run short */
};

/*  =====================================================================
    Peers */

static s_peer_t *s_peer(const qkv_clients_t *self, uint32_t n) {
    return qkv_ring_at(&self->peers, n);
}

static size_t s_id_hash(const void *id, size_t len) {
    return (size_t)qkv_hash_bytes(QKV_HASH_SEED, id, len);
}

static size_t s_peer_home(const void *ctx, uint32_t value) {
    const s_peer_t *p = s_peer(ctx, value - 1);
    return s_id_hash(p->id, p->id_len);
}

static size_t s_peer_slot(const qkv_clients_t *self, const void *id,
                          size_t len) {
    size_t slot = s_id_hash(id, len) & self->table_mask;
    while (self->table[slot]) {
        const s_peer_t *p = s_peer(self, self->table[slot] - 1);
        if (p->id_len == len && memcmp(p->id, id, len) == 0)
            break;
        slot = (slot + 1) & self->table_mask;
    }
    return slot;
}

static int s_table_grow(qkv_clients_t *self) {
    return qkv_probe_grow(&self->table, &self->table_mask,
                          (self->table_mask + 1) * 2, s_peer_home, self);
}

/* The peer of routing id (made when new), with one more reference taken;
   S_NONE when out of memory or the id is not 1 to 255 bytes. */
static uint32_t s_peer_hold(qkv_clients_t *self, const zmq_msg_t *id) {
    size_t len = zmq_msg_size((zmq_msg_t *)id);
    const void *data = zmq_msg_data((zmq_msg_t *)id);
    if (len == 0 || len > 255)
        return S_NONE;
    size_t slot = s_peer_slot(self, data, len);
    if (self->table[slot]) {
        uint32_t n = self->table[slot] - 1;
        s_peer(self, n)->refs++;
        return n;
    }
    if ((self->table_used + 1) * 2 > self->table_mask + 1) {
        if (s_table_grow(self) != 0)
            return S_NONE;
        slot = s_peer_slot(self, data, len);
    }
    uint32_t n;
    if (self->free_peer != S_NONE) {
        n = self->free_peer;
        self->free_peer = s_peer(self, n)->next_free;
    } else {
        if (!qkv_ring_push(&self->peers))
            return S_NONE;
        n = (uint32_t)(self->peers.count - 1);
    }
    s_peer_t *p = s_peer(self, n);
    p->refs = 1;
    p->id_len = (uint8_t)len;
    memcpy(p->id, data, len);
    self->table[slot] = n + 1;
    self->table_used++;
    return n;
}

/* Drops a reference; the last one forgets the peer. */
static void s_peer_release(qkv_clients_t *self, uint32_t n) {
    s_peer_t *p = s_peer(self, n);
    if (--p->refs)
        return;
    qkv_probe_unlink(self->table, self->table_mask,
                     s_peer_slot(self, p->id, p->id_len), s_peer_home, self);
    self->table_used--;
    p->next_free = self->free_peer;
    self->free_peer = n;
}

/*  =====================================================================
    The open result frame */

void qkv_clients_flush(qkv_clients_t *self) {
    if (self->open_peer == S_NONE)
        return;
    qkv_cenc_end_open(self->encoder, self->open_count);
    size_t size;
    const void *data = qkv_encoder_data(self->encoder, &size);
    const s_peer_t *p = s_peer(self, self->open_peer);
    /* a client that is gone or not reading loses the answers; it times
       out and may retry */
    if (data && zmq_send(self->handle, p->id, p->id_len,
                         ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(self->handle, data, size, ZMQ_DONTWAIT);
    self->sent = true;
    s_peer_release(self, self->open_peer);
    self->open_peer = S_NONE;
    self->open_count = 0;
}

/* Adds a result to peer's open frame (the peer reference is the caller's
   still: the frame takes one of its own). */
static void s_put(qkv_clients_t *self, uint32_t peer, const qkv_cres_t *res) {
    if (self->open_peer != peer) {
        qkv_clients_flush(self);
        s_peer(self, peer)->refs++;
        self->open_peer = peer;
        qkv_cenc_begin_open(self->encoder);
    }
    qkv_cenc_result(self->encoder, res);
    self->open_count++;
    size_t size;
    qkv_encoder_data(self->encoder, &size);
    if (self->open_count == QKV_CMSG_MAX_BATCH || size >= S_FRAME_SOFT)
        qkv_clients_flush(self);
}

static void s_error(qkv_cres_t *res, uint64_t id, qkv_cstatus_t status,
                    const char *message) {
    memset(res, 0, sizeof(*res));
    res->id = id;
    res->status = status;
    res->message = message;
    res->message_len = strlen(message);
}

static void s_put_error(qkv_clients_t *self, uint32_t peer, uint64_t id,
                        qkv_cstatus_t status, const char *message) {
    qkv_cres_t res;
    s_error(&res, id, status, message);
    s_put(self, peer, &res);
}

/*  =====================================================================
    Writes */

static qkv_op_t s_entry_op(qkv_cop_t op) {
    return op == QKV_COP_PUT      ? QKV_OP_PUT
           : op == QKV_COP_DELETE ? QKV_OP_DELETE
                                  : QKV_OP_RESET;
}

static const char s_timeout_text[] =
    "not confirmed in time: the entry stays in the log and commits when "
    "enough followers answer";

void qkv_clients_answer(qkv_clients_t *self, const qkv_origin_t *origin,
                        const qkv_write_result_t *r) {
    qkv_cres_t res;
    memset(&res, 0, sizeof(res));
    res.id = origin->id;
    switch (r->status) {
    case QKV_WRITE_COMMITTED:
        res.status = QKV_CS_OK;
        res.has_index = true;
        res.index = r->index;
        if (origin->op == QKV_OP_PUT) {
            res.has_seq = true;
            res.seq = r->seq;
        } else if (origin->op == QKV_OP_DELETE) {
            res.has_deleted = true;
            res.deleted = r->seq != 0;
        }
        break;
    case QKV_WRITE_TIMEOUT:
        s_error(&res, origin->id, QKV_CS_QUORUM_NOT_REACHED, s_timeout_text);
        res.has_index = true;
        res.index = r->index;
        break;
    case QKV_WRITE_NOT_LEADER:
        s_error(&res, origin->id, QKV_CS_NOT_LEADER, "writes go to the leader");
        res.leader = self->leader_endpoint;
        res.leader_len = strlen(self->leader_endpoint);
        for (size_t i = 0; self->curve && i < self->cfg->peer_count; i++)
            if (!strcmp(self->cfg->peers[i].client, self->leader_endpoint)) {
                res.leader_key = self->cfg->peers[i].key;
                res.leader_key_len = strlen(res.leader_key);
            }
        break;
    case QKV_WRITE_NO_LEADER:
        s_error(&res, origin->id, QKV_CS_NO_LEADER,
                "no leader known: an election is under way; nothing "
                "written, try again shortly");
        break;
    case QKV_WRITE_LEADER_CHANGED:
        s_error(&res, origin->id, QKV_CS_LEADER_CHANGED,
                "the leader stepped down while the write waited: it may "
                "commit or be dropped by the next leader; retry with the "
                "same client_id and client_seq to learn which");
        res.has_index = true;
        res.index = r->index;
        break;
    case QKV_WRITE_CONFLICT:
        s_error(&res, origin->id, QKV_CS_CONFLICT,
                "client_id and client_seq were used for another write: "
                "nothing written");
        break;
    case QKV_WRITE_SESSION_EXPIRED:
        s_error(&res, origin->id, QKV_CS_SESSION_EXPIRED,
                "client_seq is older than this client's session remembers "
                "(or the client is unknown and client_seq is above 1): not "
                "applied; take a new client_id");
        break;
    case QKV_WRITE_NO_SPACE:
        s_error(&res, origin->id, QKV_CS_INSUFFICIENT_STORAGE,
                "not written: the node cannot write its log (disk full or "
                "an I/O error); try again later");
        break;
    case QKV_WRITE_MEMORY_FULL:
        s_error(&res, origin->id, QKV_CS_INSUFFICIENT_STORAGE,
                "not written: the node holds MAX_MEMORY bytes; delete keys "
                "or raise MAX_MEMORY");
        break;
    case QKV_WRITE_OVERLOADED:
        s_error(&res, origin->id, QKV_CS_OVERLOADED,
                "not written: MAX_PENDING_WRITES writes are in flight on "
                "the leader; try again shortly");
        break;
    default:
        s_error(&res, origin->id, QKV_CS_UNAVAILABLE,
                "not written: the node is out of memory or stopping");
    }
    s_put(self, origin->peer, &res);
    s_peer_release(self, origin->peer);
}

static void s_write(qkv_clients_t *self, const qkv_creq_t *r, uint32_t peer,
                    int64_t now) {
    if (r->key_len > self->cfg->max_key_bytes ||
        r->value_len > self->cfg->max_value_bytes) {
        s_put_error(self, peer, r->id, QKV_CS_TOO_LARGE,
                    "key over MAX_KEY_BYTES or value over MAX_VALUE_BYTES");
        return;
    }
    qkv_entry_t *e = qkv_entry_new(s_entry_op(r->op), r->key, r->key_len,
                                   r->value, r->value_len);
    if (!e) {
        s_put_error(self, peer, r->id, QKV_CS_UNAVAILABLE, "out of memory");
        return;
    }
    e->client_id = r->client_id;
    e->client_seq = r->client_seq;
    s_peer(self, peer)->refs++; /* the door's answer releases it */
    qkv_origin_t origin = {QKV_PROTO_ZMQ, e->op, peer, r->id, NULL, now};
    qkv_door_write(self->door, &e, &origin, now);
}

/*  =====================================================================
    Reads */

static uint64_t s_cursor_check(const qkv_clients_t *self, uint64_t pos) {
    return qkv_hash_mix(pos ^ self->cursor_secret) & 0xffffffffu;
}

/* The cursor handed out for store position pos (0: the walk ended). */
static uint64_t s_cursor_out(const qkv_clients_t *self, uint64_t pos) {
    return pos ? pos << 32 | s_cursor_check(self, pos) : 0;
}

/* The store position of a cursor; false when this node never handed it
   out. */
static bool s_cursor_in(const qkv_clients_t *self, uint64_t cursor,
                        uint64_t *pos) {
    *pos = cursor >> 32;
    return cursor == 0 ||
           (*pos && (cursor & 0xffffffffu) == s_cursor_check(self, *pos));
}

static void s_dump_visit(void *arg, const char *key, size_t key_len,
                         const char *value, size_t value_len, uint64_t seq,
                         uint64_t index) {
    qkv_clients_t *self = arg;
    qkv_citem_t *it = qkv_ring_push(&self->items);
    if (!it) {
        self->items_failed = true;
        return;
    }
    /* pointers are offsets until the chunk is complete */
    it->key = (const char *)(uintptr_t)self->dump_bytes.size;
    it->key_len = key_len;
    qkv_buf_append(&self->dump_bytes, key, key_len);
    it->value = (const char *)(uintptr_t)self->dump_bytes.size;
    it->value_len = value_len;
    qkv_buf_append(&self->dump_bytes, value, value_len);
    it->seq = seq;
    it->index = index;
}

static void s_answer_dump(qkv_clients_t *self, const qkv_creq_t *r,
                          qkv_cres_t *res) {
    uint64_t pos;
    if (!s_cursor_in(self, r->cursor, &pos)) {
        qkv_node_count_bad_request(self->node, QKV_PROTO_ZMQ);
        s_error(res, r->id, QKV_CS_BAD_REQUEST,
                "unknown cursor: a cursor is valid only on the node that "
                "handed it out, while it runs");
        return;
    }
    qkv_buf_reset(&self->dump_bytes);
    qkv_ring_truncate(&self->items, 0);
    self->items_failed = false;
    qkv_store_t *store = self->node->store;
    res->applied_index = qkv_store_applied_index(store);
    qkv_store_scan(store, &pos, r->limit ? r->limit : S_DUMP_DEFAULT,
                   S_DUMP_BYTES, s_dump_visit, self);
    if (self->items_failed || self->dump_bytes.failed) {
        s_error(res, r->id, QKV_CS_UNAVAILABLE, "out of memory");
        return;
    }
    qkv_citem_t *items = (qkv_citem_t *)self->items.data;
    for (size_t i = 0; i < self->items.count; i++) {
        qkv_citem_t *it = &items[i];
        it->key = self->dump_bytes.data + (uintptr_t)it->key;
        it->value = self->dump_bytes.data + (uintptr_t)it->value;
    }
    res->items = self->items.count ? items : NULL;
    res->item_count = self->items.count;
    res->has_next = true;
    res->next = s_cursor_out(self, pos);
}

static void s_answer_get(qkv_clients_t *self, const qkv_creq_t *r,
                         qkv_cres_t *res) {
    uint64_t seq, index;
    int found = qkv_store_get(self->node->store, r->key, r->key_len,
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

static void s_answer_health(qkv_clients_t *self, uint32_t peer, uint64_t id) {
    static qkv_node_status_t st; /* the actor's thread only; large */
    qkv_node_status(self->node, &st);
    qkv_cfollower_t fs[QKV_MAX_FOLLOWERS];
    const char *role = st.role == QKV_ROLE_LEADER ? "leader" : "follower";
    qkv_chealth_t h;
    memset(&h, 0, sizeof(h));
    h.role = role;
    h.role_len = strlen(role);
    h.node_id = self->cfg->node_id;
    h.node_id_len = strlen(self->cfg->node_id);
    h.replication_id = st.cluster_id;
    h.replication_id_len = strlen(st.cluster_id);
    h.error = st.error;
    h.error_len = strlen(st.error);
    h.last_index = st.last_index;
    h.commit_index = st.commit_index;
    h.applied_index = st.applied_index;
    h.max_key_bytes = self->cfg->max_key_bytes;
    h.max_value_bytes = self->cfg->max_value_bytes;
    h.max_frame_bytes = st.max_frame_bytes;
    for (size_t i = 0; i < st.follower_count; i++) {
        const qkv_follower_status_t *f = &st.followers[i];
        fs[i] = (qkv_cfollower_t){
            f->id,        strlen(f->id),  f->endpoint, strlen(f->endpoint),
            f->connected, f->acked_index, f->lag};
    }
    h.followers = fs;
    h.follower_count = st.follower_count;
    qkv_cres_t res;
    memset(&res, 0, sizeof(res));
    res.id = id;
    res.health = &h;
    s_put(self, peer, &res);
}

/* Answers a get, dump or health now, from what is applied. */
static void s_answer_read(qkv_clients_t *self, uint32_t peer,
                          const qkv_creq_t *r) {
    if (r->op == QKV_COP_HEALTH) {
        s_answer_health(self, peer, r->id);
        return;
    }
    /* the store changes only on this thread (the actor's): a lease that
       holds now holds for the read that follows at once */
    const char *late =
        r->op == QKV_COP_GET ? qkv_node_read_confirm(self->node) : NULL;
    if (late) {
        s_put_error(self, peer, r->id, QKV_CS_NOT_READY, late);
        return;
    }
    qkv_cres_t res;
    memset(&res, 0, sizeof(res));
    res.id = r->id;
    if (r->op == QKV_COP_GET)
        s_answer_get(self, r, &res);
    else
        s_answer_dump(self, r, &res);
    s_put(self, peer, &res);
}

static void s_read(qkv_clients_t *self, const qkv_creq_t *r, uint32_t peer,
                   int64_t now) {
    if (r->key_len > self->cfg->max_key_bytes) {
        s_put_error(self, peer, r->id, QKV_CS_TOO_LARGE,
                    "key over MAX_KEY_BYTES");
        return;
    }
    const char *refusal =
        r->op == QKV_COP_GET ? qkv_node_read_refusal(self->node) : NULL;
    if (refusal) {
        s_put_error(self, peer, r->id, QKV_CS_NOT_READY, refusal);
        return;
    }
    if (r->min_index <= qkv_store_applied_index(self->node->store)) {
        s_answer_read(self, peer, r);
        return;
    }

    if (r->wait_ms == 0) {
        s_put_error(self, peer, r->id, QKV_CS_NOT_READY,
                    "min_index not applied on this node yet");
        return;
    }
    s_read_t *w =
        self->reads.count < S_PARKED_MAX ? qkv_ring_push(&self->reads) : NULL;
    if (!w) {
        s_put_error(self, peer, r->id, QKV_CS_UNAVAILABLE,
                    "too many reads waiting for min_index");
        return;
    }
    memset(w, 0, sizeof(*w));
    w->req = *r;
    if (r->key_len) {
        w->key_copy = malloc(r->key_len);
        if (!w->key_copy) {
            qkv_ring_truncate(&self->reads, self->reads.count - 1);
            s_put_error(self, peer, r->id, QKV_CS_UNAVAILABLE, "out of memory");
            return;
        }
        memcpy(w->key_copy, r->key, r->key_len);
        w->req.key = w->key_copy;
    }
    w->deadline_us = now + (int64_t)r->wait_ms * 1000;
    w->peer = peer;
    s_peer(self, peer)->refs++;
}

static void s_drop_read(qkv_clients_t *self, size_t i) {
    s_read_t *w = qkv_ring_at(&self->reads, i);
    free(w->key_copy);
    s_peer_release(self, w->peer);
    *w = *(s_read_t *)qkv_ring_last(&self->reads);
    qkv_ring_truncate(&self->reads, self->reads.count - 1);
}

void qkv_clients_applied(qkv_clients_t *self, uint64_t applied) {
    for (size_t i = 0; i < self->reads.count;) {
        s_read_t *w = qkv_ring_at(&self->reads, i);
        if (w->req.min_index > applied) {
            i++;
            continue;
        }
        s_answer_read(self, w->peer, &w->req);
        s_drop_read(self, i);
    }
}

int64_t qkv_clients_expire(qkv_clients_t *self, int64_t now) {
    int64_t next = qkv_port_guard_reopen(&self->guard, now);
    for (size_t i = 0; i < self->reads.count;) {
        s_read_t *w = qkv_ring_at(&self->reads, i);
        if (w->deadline_us > now) {
            next = next && next < w->deadline_us ? next : w->deadline_us;
            i++;
            continue;
        }
        s_put_error(self, w->peer, w->req.id, QKV_CS_NOT_READY,
                    "min_index not applied on this node within wait_ms");
        s_drop_read(self, i);
    }
    return next;
}

/*  =====================================================================
    Frames */

static void s_serve(qkv_clients_t *self, const qkv_creq_t *r, uint32_t peer,
                    bool may_write, int64_t now) {
    if (!may_write && r->op != QKV_COP_GET && r->op != QKV_COP_HEALTH &&
        r->op != QKV_COP_INVALID) {
        atomic_fetch_add_explicit(&self->node->client_forbidden, 1,
                                  memory_order_relaxed);
        s_put_error(self, peer, r->id, QKV_CS_FORBIDDEN,
                    "this client's key may read, not write or dump "
                    "(CLIENT_KEYS lists it as read)");
        return;
    }
    switch (r->op) {
    case QKV_COP_PUT:
    case QKV_COP_DELETE:
    case QKV_COP_RESET:
        s_write(self, r, peer, now);
        break;
    case QKV_COP_GET:
    case QKV_COP_DUMP:
        s_read(self, r, peer, now);
        break;
    case QKV_COP_HEALTH:
        s_answer_read(self, peer, r);
        break;
    default:
        qkv_node_count_bad_request(self->node, QKV_PROTO_ZMQ);
        s_put_error(self, peer, r->id, QKV_CS_BAD_REQUEST, r->reason);
    }
}

/* Serves one [routing id][frame] message. */
static void s_frame(qkv_clients_t *self, const zmq_msg_t *id, zmq_msg_t *body,
                    bool well_framed, int64_t now) {
    uint32_t peer = s_peer_hold(self, id);
    if (peer == S_NONE)
        return; /* out of memory: the client times out */
    const qkv_creq_t *reqs;
    size_t n = 0;
    const char *reason = "malformed message: send one frame per message";
    int rc = well_framed
                 ? qkv_cdec_requests(self->decoder, zmq_msg_data(body),
                                     zmq_msg_size(body), &reqs, &n, &reason)
                 : QKV_MALFORMED;
    if (rc == -1) {
        s_put_error(self, peer, 0, QKV_CS_UNAVAILABLE, "out of memory");
    } else if (rc != 0) {
        qkv_node_count_bad_request(self->node, QKV_PROTO_ZMQ);
        char message[160];
        snprintf(message, sizeof(message), "malformed frame: %s", reason);
        s_put_error(self, peer, 0, QKV_CS_BAD_REQUEST, message);
    } else {
        /* CURVE: the User-Id the ZAP handler gave this connection */
        const char *user = self->curve ? zmq_msg_gets(body, "User-Id") : NULL;
        bool may_write =
            !self->curve || (user && !strcmp(user, QKV_CURVE_USER_WRITE));
        for (size_t i = 0; i < n; i++)
            s_serve(self, &reqs[i], peer, may_write, now);
    }
    s_peer_release(self, peer);
}

static void s_monitor_read(qkv_clients_t *self, int64_t now) {
    uint16_t id;
    uint32_t value;
    while (qkv_sockopt_monitor_event(self->monitor, &id, &value) == 0) {
        if (id == ZMQ_EVENT_DISCONNECTED)
            atomic_fetch_add_explicit(&self->node->client_disconnects, 1,
                                      memory_order_relaxed);
        else
            qkv_port_guard_event(&self->guard, id, value, now);
    }
    atomic_store_explicit(&self->node->client_port_closed, self->guard.closed,
                          memory_order_relaxed);
}

bool qkv_clients_read(qkv_clients_t *self, int64_t now) {
    s_monitor_read(self, now);
    for (int i = 0; i < S_FRAMES_PER_READ; i++) {
        zmq_msg_t id, body;
        int rc = qkv_router_recv(self->handle, &id, &body);
        if (rc < 0)
            return true;
        s_frame(self, &id, &body, rc == 1, now);
        zmq_msg_close(&body);
        zmq_msg_close(&id);
    }
    return false;
}

bool qkv_clients_take_sent(qkv_clients_t *self) {
    bool sent = self->sent;
    self->sent = false;
    return sent;
}

/*  =====================================================================
    Life cycle */

size_t qkv_clients_poll_items(qkv_clients_t *self, zmq_pollitem_t *items) {
    items[0] = (zmq_pollitem_t){self->handle, 0, ZMQ_POLLIN, 0};
    items[1] = (zmq_pollitem_t){zsock_resolve(self->monitor), 0, ZMQ_POLLIN, 0};
    return 2;
}

qkv_clients_t *qkv_clients_new(qkv_node_t *node, qkv_door_t *door,
                               const char *leader_endpoint,
                               const qkv_fd_budget_t *fds, char *err,
                               size_t err_size) {
    const qkv_config_t *cfg = &node->config;
    qkv_clients_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, err_size, "out of memory starting the client endpoint");
        return NULL;
    }
    self->node = node;
    self->cfg = cfg;
    self->door = door;
    self->leader_endpoint = leader_endpoint;
    self->guard.budget = fds;
    self->guard.name = "client port";
    self->curve = qkv_node_curve(node) != NULL;
    self->open_peer = self->free_peer = S_NONE;
    qkv_ring_init(&self->peers, sizeof(s_peer_t));
    qkv_ring_init(&self->reads, sizeof(s_read_t));
    qkv_ring_init(&self->items, sizeof(qkv_citem_t));
    self->cursor_secret = qkv_random64();
    qkv_decoder_limits_t limits = {node->client_frame_max, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    self->encoder = qkv_encoder_new();
    self->decoder = qkv_decoder_new(&limits);
    self->table_mask = 63;
    self->table = calloc(self->table_mask + 1, sizeof(*self->table));
    if (!self->encoder || !self->decoder || !self->table) {
        snprintf(err, err_size, "out of memory starting the client endpoint");
        qkv_clients_destroy(&self);
        return NULL;
    }
    self->sock =
        qkv_sockopt_client_router(cfg->bind, cfg->client_port,
                                  node->client_frame_max, qkv_node_curve(node));
    if (!self->sock) {
        snprintf(err, err_size, "CLIENT_PORT: cannot bind tcp://%s:%d: %s",
                 cfg->bind, cfg->client_port, zmq_strerror(zmq_errno()));
        qkv_clients_destroy(&self);
        return NULL;
    }
    self->handle = zsock_resolve(self->sock);
    self->guard.handle = self->handle;
    snprintf(self->guard.endpoint, sizeof(self->guard.endpoint), "tcp://%s:%d",
             cfg->bind, cfg->client_port);
    char monitor[64];
    snprintf(monitor, sizeof(monitor), "inproc://qkv-clients-%p", (void *)self);
    if (zmq_socket_monitor(self->handle, monitor,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_ACCEPT_FAILED) != 0 ||
        !(self->monitor = zsock_new_pair(monitor))) {
        snprintf(err, err_size, "cannot watch the client endpoint: %s",
                 zmq_strerror(zmq_errno()));
        qkv_clients_destroy(&self);
        return NULL;
    }
    return self;
}

void qkv_clients_destroy(qkv_clients_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_clients_t *self = *self_p;
    while (self->reads.count)
        s_drop_read(self, self->reads.count - 1);
    if (self->handle && self->monitor)
        zmq_socket_monitor(self->handle, NULL, 0);
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->sock);
    qkv_ring_free(&self->reads);
    qkv_ring_free(&self->items);
    qkv_ring_free(&self->peers);
    free(self->table);
    qkv_buf_free(&self->value);
    qkv_buf_free(&self->dump_bytes);
    qkv_encoder_destroy(&self->encoder);
    qkv_decoder_destroy(&self->decoder);
    free(self);
    *self_p = NULL;
}
