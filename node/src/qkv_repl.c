/*  qkv_repl.c - the replication actor: one thread that owns the log, every
    replication socket and every timer of a node.

    Design
    ------
    The leader numbers each write handed over by the HTTP workers, keeps it
    in its log, and streams the log to every follower over one DEALER per
    follower (fixed routing id, so a restarted leader is let back in by the
    follower's ROUTER_HANDOVER). Each APPEND carries prev_index, a batch of
    entries and the leader's commit index; an APPEND without entries is a
    heartbeat. A follower keeps entries only when prev_index equals its last
    index, and answers every APPEND it read in one go with one ACK holding
    its last index.

    A follower's match index is its latest ACK, which may go down (a
    restarted follower answers 0). The commit index is the WRITE_QUORUM-th
    highest match index (qkv_quorum.c), one number for every waiting writer
    as with Redis's WAIT. The leader applies an entry to its store when it
    commits and then answers its writer; followers apply when the commit
    index they are sent covers an entry. Replication never stops at the
    quorum: every follower is sent every entry.

    Sending never blocks: DONTWAIT on every send, a byte window of unacked
    entries per link, ZMQ_IMMEDIATE so nothing queues for an absent peer.
    A link whose send fails, whose follower went back, or whose ACKs stop
    advancing for a resend interval is rewound to its match index + 1, at
    most once per resend interval. A restarted, empty follower is thus
    refilled from index 1.

    Simulated delay: every message to a follower waits in that link's FIFO
    for a delay drawn uniformly from [MIN_DELAY, MAX_DELAY] (never before
    the message ahead of it); the poll timeout wakes the actor when the
    head is due. ACKs are not delayed. Nothing sleeps.
*/
#include "qkv_actor.h"
#include "qkv_quorum.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define QKV_BATCH_BYTES (1u << 20)   /* entries per APPEND, in bytes */
#define QKV_WINDOW_BYTES (16u << 20) /* unacked entry bytes per link */
#define QKV_LINK_HWM 100000          /* ZeroMQ queue, in messages */
#define QKV_ACK_FRAME_MAX 256        /* an ACK is about 20 bytes */
#define QKV_APPLY_CHUNK 256          /* entries applied per store lock */
#define QKV_ACK_REPEAT_US 10000      /* an identical ACK at most this often */
#define QKV_LEADER_ROUTING_ID "qkv-leader"
/* largest APPEND: a full batch plus one entry of the largest legal size */
#define QKV_FRAME_MAX                                                          \
    ((size_t)QKV_BATCH_BYTES + (1u << 20) + (64u << 20) + 4096)

/*  =====================================================================
    State */

static uint64_t s_random(qkv_actor_t *self) {
    uint64_t x = self->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return self->rng = x;
}

static void s_publish(qkv_actor_t *self) {
    atomic_store(&self->node->last_index, qkv_log_last_index(self->log));
    atomic_store(&self->node->commit_index, self->commit_index);
}

/*  =====================================================================
    Applying committed entries */

/* Applies entries up to target. Completes leader writers as their entries
   apply. Returns 0, or -1 when the store ran out of memory. */
static int s_apply(qkv_actor_t *self, uint64_t target) {
    const qkv_entry_t *batch[QKV_APPLY_CHUNK];
    uint64_t seqs[QKV_APPLY_CHUNK];
    uint64_t before = self->applied;
    int rc = 0;
    while (self->applied < target && rc == 0) {
        uint64_t first = self->applied + 1;
        size_t n = 0;
        while (n < QKV_APPLY_CHUNK && first + n <= target) {
            batch[n] = qkv_log_get(self->log, first + n);
            n++;
        }
        size_t done = qkv_store_apply_many(self->node->store, batch, n, seqs);
        self->applied += done;
        while (self->wait_count) {
            s_wait_t *w = &self->waits[self->wait_head];
            if (w->index > self->applied)
                break;
            qkv_waiter_complete(self->node, w->waiter, QKV_WRITE_COMMITTED,
                                seqs[w->index - first]);
            self->wait_head = (self->wait_head + 1) % self->wait_cap;
            self->wait_count--;
        }
        qkv_serve_applied(self, first, done, seqs);
        if (done < n)
            rc = -1;
    }
    if (self->applied > before) {
        qkv_node_applied_advanced(self->node);
        qkv_serve_after_apply(self);
    }
    return rc;
}

/*  =====================================================================
    Socket options, all set here */

static void s_common_options(zsock_t *sock) {
    zsock_set_linger(sock, 0);
    zsock_set_sndhwm(sock, QKV_LINK_HWM);
    zsock_set_rcvhwm(sock, QKV_LINK_HWM);
    zsock_set_heartbeat_ivl(sock, 1000);
    zsock_set_heartbeat_ttl(sock, 3000);
    zsock_set_heartbeat_timeout(sock, 3000);
    zsock_set_reconnect_ivl(sock, 100);
    zsock_set_reconnect_ivl_max(sock, 1000);
}

static zsock_t *s_leader_socket(const char *endpoint) {
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    s_common_options(sock);
    zsock_set_identity(sock, QKV_LEADER_ROUTING_ID);
    zsock_set_immediate(sock, 1);
    zsock_set_maxmsgsize(sock, QKV_ACK_FRAME_MAX);
    if (zsock_connect(sock, "%s", endpoint) != 0)
        zsock_destroy(&sock);
    return sock;
}

static zsock_t *s_follower_socket(const qkv_config_t *cfg) {
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock)
        return NULL;
    s_common_options(sock);
    zsock_set_router_handover(sock, 1);
    zsock_set_router_mandatory(sock, 1);
    zsock_set_maxmsgsize(sock, (int64_t)QKV_FRAME_MAX);
    if (zsock_bind(sock, "tcp://%s:%d", cfg->bind, cfg->repl_port) < 0)
        zsock_destroy(&sock);
    return sock;
}

/*  =====================================================================
    Leader: links */

/* Bytes of entries sent to the link and not yet acknowledged. */
static uint64_t s_unacked_bytes(const qkv_actor_t *self, const s_link_t *link) {
    uint64_t sent = link->next_index - 1;
    return sent > link->match ? self->cum[sent] - self->cum[link->match] : 0;
}

static void s_rewind(s_link_t *link, int64_t now) {
    link->next_index = link->match + 1;
    link->released = link->match;
    link->unacked_since_us = 0;
    link->rewind_pending = false;
    link->last_rewind_us = now;
}

/* A message reached the socket. */
static void s_released(s_link_t *link, uint64_t end_index, int64_t now) {
    if (end_index > link->released)
        link->released = end_index;
    if (!link->unacked_since_us && link->released > link->match)
        link->unacked_since_us = now;
}

/* Sends a message now; on a full or absent peer drops it and asks for a
   rewind. */
static void s_send_now(qkv_actor_t *self, s_link_t *link, zmq_msg_t *msg,
                       uint64_t end_index, int64_t now) {
    if (zmq_msg_send(msg, link->handle, ZMQ_DONTWAIT) >= 0) {
        atomic_fetch_add_explicit(&self->node->frames_sent, 1,
                                  memory_order_relaxed);
        s_released(link, end_index, now);
        return;
    }
    zmq_msg_close(msg);
    link->rewind_pending = true;
}

static int s_hold(qkv_actor_t *self, s_link_t *link, zmq_msg_t *msg,
                  uint64_t end_index, int64_t now) {
    if (link->held_count == link->held_cap) {
        size_t cap = link->held_cap ? link->held_cap * 2 : 64;
        s_held_t *held = malloc(cap * sizeof(*held));
        if (!held)
            return -1;
        for (size_t i = 0; i < link->held_count; i++) {
            s_held_t *from =
                &link->held[(link->held_head + i) % link->held_cap];
            held[i] = *from; /* then the message, the way libzmq wants */
            zmq_msg_init(&held[i].msg);
            zmq_msg_move(&held[i].msg, &from->msg);
        }
        free(link->held);
        link->held = held;
        link->held_head = 0;
        link->held_cap = cap;
    }
    const qkv_config_t *cfg = self->cfg;
    int64_t span = cfg->max_delay_us - cfg->min_delay_us;
    int64_t release =
        now + cfg->min_delay_us +
        (span ? (int64_t)(s_random(self) % (uint64_t)(span + 1)) : 0);
    if (link->held_count) {
        size_t tail = (link->held_head + link->held_count - 1) % link->held_cap;
        if (link->held[tail].release_us > release)
            release = link->held[tail].release_us; /* FIFO per link */
    }
    s_held_t *h =
        &link->held[(link->held_head + link->held_count++) % link->held_cap];
    h->release_us = release;
    h->end_index = end_index;
    zmq_msg_init(&h->msg);
    zmq_msg_move(&h->msg, msg);
    return 0;
}

/* Queues the encoder's frame to the link, through the delay FIFO when a
   delay is configured. Returns 0, or -1 when the frame was dropped. */
static int s_link_send(qkv_actor_t *self, s_link_t *link, uint64_t end_index,
                       int64_t now) {
    size_t size;
    const void *data = qkv_encoder_data(self->encoder, &size);
    zmq_msg_t msg;
    if (!data || zmq_msg_init_size(&msg, size) != 0)
        return -1;
    memcpy(zmq_msg_data(&msg), data, size);
    link->last_queued_us = now;
    link->commit_sent = self->commit_index;
    if (self->cfg->max_delay_us == 0 && link->held_count == 0) {
        s_send_now(self, link, &msg, end_index, now);
        return link->rewind_pending ? -1 : 0;
    }
    if (s_hold(self, link, &msg, end_index, now) != 0) {
        zmq_msg_close(&msg);
        link->rewind_pending = true;
        return -1;
    }
    return 0;
}

/* Sends the link what it has not been sent, within its window. */
static void s_link_pump(qkv_actor_t *self, s_link_t *link, int64_t now) {
    uint64_t last = qkv_log_last_index(self->log);
    while (link->next_index <= last && !link->rewind_pending &&
           s_unacked_bytes(self, link) < QKV_WINDOW_BYTES) {
        uint64_t start = link->next_index, end = start;
        while (end < last &&
               self->cum[end + 1] - self->cum[start - 1] <= QKV_BATCH_BYTES)
            end++;
        qkv_encoder_append_begin(self->encoder, self->repl_id, start - 1,
                                 self->commit_index, self->leader_endpoint,
                                 strlen(self->leader_endpoint),
                                 end - start + 1);
        for (uint64_t i = start; i <= end; i++)
            qkv_encoder_add_entry(self->encoder, qkv_log_get(self->log, i));
        if (s_link_send(self, link, end, now) != 0)
            return;
        atomic_fetch_add_explicit(&self->node->entries_sent, end - start + 1,
                                  memory_order_relaxed);
        link->next_index = end + 1;
    }
}

/* An APPEND without entries: heartbeat, or news of the commit index. */
static void s_link_heartbeat(qkv_actor_t *self, s_link_t *link, int64_t now) {
    qkv_encoder_append_begin(self->encoder, self->repl_id, link->next_index - 1,
                             self->commit_index, self->leader_endpoint,
                             strlen(self->leader_endpoint), 0);
    s_link_send(self, link, 0, now);
}

/* Releases the held messages that are due. */
static void s_link_release(qkv_actor_t *self, s_link_t *link, int64_t now) {
    while (link->held_count && link->held[link->held_head].release_us <= now) {
        s_held_t *h = &link->held[link->held_head];
        link->held_head = (link->held_head + 1) % link->held_cap;
        link->held_count--;
        s_send_now(self, link, &h->msg, h->end_index, now);
    }
}

/* When s_link_check may next act on the link: 0 for never. */
static int64_t s_link_check_due(const qkv_actor_t *self, const s_link_t *link) {
    int64_t due = 0;
    if (link->unacked_since_us) {
        due = link->unacked_since_us > link->last_advance_us
                  ? link->unacked_since_us
                  : link->last_advance_us;
        due += self->resend_us + 1;
    }
    if (link->rewind_pending)
        due = link->last_rewind_us + self->resend_us;
    if (due && due < link->last_rewind_us + self->resend_us)
        due = link->last_rewind_us + self->resend_us;
    return due;
}

static int64_t s_min_due(int64_t a, int64_t b) {
    return !a ? b : !b ? a : a < b ? a : b;
}

/* Rewinds a link that asked for it or whose ACKs stalled, at most once per
   resend interval. */
static void s_link_check(qkv_actor_t *self, s_link_t *link, int64_t now) {
    bool stalled = link->unacked_since_us &&
                   now - link->unacked_since_us > self->resend_us &&
                   now - link->last_advance_us > self->resend_us;
    if ((link->rewind_pending || stalled) &&
        now - link->last_rewind_us >= self->resend_us)
        s_rewind(link, now);
}

/*  =====================================================================
    Leader: events */

static int s_grow_cum(qkv_actor_t *self, uint64_t index) {
    if (index < self->cum_cap)
        return 0;
    size_t cap = self->cum_cap ? self->cum_cap * 2 : 4096;
    while (cap <= index)
        cap *= 2;
    uint64_t *cum = realloc(self->cum, cap * sizeof(*cum));
    if (!cum)
        return -1;
    self->cum = cum;
    self->cum_cap = cap;
    return 0;
}

/* Makes room for one more waiting writer. */
static int s_wait_reserve(qkv_actor_t *self) {
    if (self->wait_count < self->wait_cap)
        return 0;
    size_t cap = self->wait_cap ? self->wait_cap * 2 : 256;
    s_wait_t *waits = malloc(cap * sizeof(*waits));
    if (!waits)
        return -1;
    for (size_t i = 0; i < self->wait_count; i++)
        waits[i] = self->waits[(self->wait_head + i) % self->wait_cap];
    free(self->waits);
    self->waits = waits;
    self->wait_head = 0;
    self->wait_cap = cap;
    return 0;
}

uint64_t qkv_actor_append(qkv_actor_t *self, qkv_entry_t **entry_p) {
    uint64_t index = qkv_log_last_index(self->log) + 1;
    size_t wire = qkv_entry_wire_size(*entry_p);
    if (s_grow_cum(self, index) != 0)
        return 0;
    (*entry_p)->term = self->repl_id;
    if (!qkv_log_append(self->log, entry_p))
        return 0;
    self->cum[index] = self->cum[index - 1] + wire;
    return index;
}

/* Numbers and logs one HTTP write; returns -1 when out of memory. */
static int s_leader_append(qkv_actor_t *self, qkv_waiter_t *w) {
    if (s_wait_reserve(self) != 0)
        return -1;
    uint64_t index = qkv_actor_append(self, &w->entry);
    if (!index)
        return -1;
    qkv_waiter_numbered(w, index);
    self->waits[(self->wait_head + self->wait_count++) % self->wait_cap] =
        (s_wait_t){index, w};
    return 0;
}

/* Numbers and logs every write in the inbox. */
static void s_leader_take_writes(qkv_actor_t *self) {
    qkv_waiter_t *w = qkv_node_inbox_take(self->node);
    while (w) {
        qkv_waiter_t *next = w->next;
        if (s_leader_append(self, w) != 0)
            qkv_waiter_complete(self->node, w, QKV_WRITE_UNAVAILABLE, 0);
        w = next;
    }
}

static void s_leader_ack(qkv_actor_t *self, s_link_t *link, const qkv_msg_t *m,
                         int64_t now) {
    if (m->type != QKV_MSG_ACK || m->repl_id != self->repl_id ||
        m->last_index > qkv_log_last_index(self->log)) {
        atomic_fetch_add(&self->node->malformed, 1);
        return;
    }
    uint64_t before = link->match;
    link->match = m->last_index;
    if (link->match > before) {
        link->last_advance_us = now;
        link->unacked_since_us = link->match >= link->released ? 0 : now;
    } else if (link->match < before) {
        link->rewind_pending = true; /* it went back: restarted */
    }
    if (link->next_index <= link->match)
        link->next_index = link->match + 1;
    if (link->released < link->match)
        link->released = link->match;
    qkv_follower_pub_t *pub = &self->node->followers[link->id];
    atomic_store(&pub->acked_index, link->match);
    atomic_store(&pub->last_ack_us, now);
}

/* Reads every ACK waiting on a link. */
static void s_leader_read(qkv_actor_t *self, s_link_t *link, int64_t now) {
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, link->handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        atomic_fetch_add_explicit(&self->node->frames_received, 1,
                                  memory_order_relaxed);
        const qkv_msg_t *m;
        bool more = zmq_msg_more(&msg);
        if (!more && qkv_decoder_decode(self->decoder, zmq_msg_data(&msg),
                                        zmq_msg_size(&msg), &m) == 0)
            s_leader_ack(self, link, m, now);
        else
            atomic_fetch_add(&self->node->malformed, 1);
        zmq_msg_close(&msg);
    }
}

static void s_leader_commit(qkv_actor_t *self) {
    uint64_t match[QKV_MAX_FOLLOWERS];
    for (size_t i = 0; i < self->link_count; i++)
        match[i] = self->links[i].match;
    self->commit_index = qkv_quorum_commit_index(
        match, self->link_count, (size_t)self->cfg->write_quorum,
        qkv_log_last_index(self->log), self->commit_index);
    if (self->applied < self->commit_index && s_apply(self, self->commit_index))
        qkv_node_set_error(self->node, "out of memory applying index %llu",
                           (unsigned long long)self->applied + 1);
}

/* Everything the leader does after an event: commit, send, heartbeat. */
static void s_leader_flush(qkv_actor_t *self, int64_t now) {
    s_leader_commit(self);
    int64_t hb = (int64_t)self->cfg->heartbeat_ms * 1000;
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        s_link_release(self, link, now);
        s_link_check(self, link, now);
        s_link_pump(self, link, now);
        if (link->commit_sent < self->commit_index ||
            now - link->last_queued_us >= hb)
            s_link_heartbeat(self, link, now);
    }
    s_publish(self);
}

/*  =====================================================================
    Follower */

static void s_follower_new_leader(qkv_actor_t *self, uint64_t repl_id) {
    if (self->repl_id)
        qkv_info("new replication id %016llx: dropping state of %016llx",
                 (unsigned long long)repl_id,
                 (unsigned long long)self->repl_id);
    else
        qkv_info("following replication id %016llx",
                 (unsigned long long)repl_id);
    qkv_log_clear(self->log);
    qkv_store_clear(self->node->store);
    self->repl_id = repl_id;
    self->commit_index = 0;
    self->applied = 0;
    self->broken = false;
    atomic_store(&self->node->repl_id, repl_id);
}

static void s_follower_append(qkv_actor_t *self, const qkv_msg_t *m) {
    if (m->repl_id != self->repl_id)
        s_follower_new_leader(self, m->repl_id);
    if (m->leader_len &&
        (strlen(self->leader_endpoint) != m->leader_len ||
         memcmp(self->leader_endpoint, m->leader, m->leader_len) != 0)) {
        memcpy(self->leader_endpoint, m->leader, m->leader_len);
        self->leader_endpoint[m->leader_len] = '\0';
    }
    if (self->broken)
        return;
    uint64_t last = qkv_log_last_index(self->log);
    if (m->prev_index <= last && m->prev_index + m->entry_count > last) {
        for (size_t i = last - m->prev_index; i < m->entry_count; i++) {
            const qkv_entry_view_t *v = &m->entries[i];
            qkv_entry_t *e = qkv_entry_new(v->op, v->term, v->key, v->key_len,
                                           v->value, v->value_len);
            if (!e || !qkv_log_append(self->log, &e)) {
                free(e);
                self->broken = true;
                qkv_node_set_error(self->node,
                                   "out of memory holding index %llu: not "
                                   "acking",
                                   (unsigned long long)m->prev_index + i + 1);
                return;
            }
        }
        last = qkv_log_last_index(self->log);
    }
    if (m->commit_index > self->commit_index)
        self->commit_index = m->commit_index;
    uint64_t target = self->commit_index < last ? self->commit_index : last;
    if (s_apply(self, target) != 0) {
        self->broken = true;
        qkv_node_set_error(self->node,
                           "out of memory applying index %llu: not acking",
                           (unsigned long long)self->applied + 1);
    }
    qkv_log_forget(self->log, self->applied); /* the store holds them now */
}

int qkv_actor_router_recv(void *router, zmq_msg_t *id, zmq_msg_t *body) {
    zmq_msg_init(id);
    if (zmq_msg_recv(id, router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(id);
        return -1;
    }
    zmq_msg_init(body);
    bool well_framed = zmq_msg_more(id) && zmq_msg_recv(body, router, 0) >= 0 &&
                       !zmq_msg_more(body);
    while (zmq_msg_more(body) && zmq_msg_recv(body, router, 0) >= 0)
        ; /* drop the rest of a message with too many frames */
    return well_framed ? 1 : 0;
}

/* Reads one routing id + payload message; returns 1 when one was
   handled, 0 when nothing is waiting. */
static int s_follower_read_one(qkv_actor_t *self) {
    zmq_msg_t id, body;
    int rc = qkv_actor_router_recv(self->router_handle, &id, &body);
    if (rc < 0)
        return 0;
    atomic_fetch_add_explicit(&self->node->frames_received, 1,
                              memory_order_relaxed);
    bool well_framed = rc == 1;
    const qkv_msg_t *m;
    if (well_framed &&
        qkv_decoder_decode(self->decoder, zmq_msg_data(&body),
                           zmq_msg_size(&body), &m) == 0 &&
        m->type == QKV_MSG_APPEND) {
        s_follower_append(self, m);
        zmq_msg_copy(&self->peer, &id);
        self->have_peer = true;
    } else {
        atomic_fetch_add(&self->node->malformed, 1);
    }
    zmq_msg_close(&body);
    zmq_msg_close(&id);
    return 1;
}

/* Reads what is waiting (bounded, so the pipe stays served) and answers
   with one ACK. */
static void s_follower_read(qkv_actor_t *self) {
    int n = 0;
    while (n < 1024 && s_follower_read_one(self))
        n++;
    if (!n || !self->have_peer || self->broken)
        return;
    /* An ACK that would only repeat the previous one within
       QKV_ACK_REPEAT_US is left out: it tells the leader nothing, and the
       commit-index news the leader sends after each commit would
       otherwise cost a second ACK per write. Liveness still comes from
       the periodic heartbeats, whose ACKs are further apart. */
    uint64_t last = qkv_log_last_index(self->log);
    int64_t now = qkv_now_us();
    if (last == self->acked_last && self->repl_id == self->acked_repl_id &&
        now - self->acked_at_us < QKV_ACK_REPEAT_US) {
        s_publish(self);
        return;
    }
    self->acked_last = last;
    self->acked_repl_id = self->repl_id;
    self->acked_at_us = now;
    qkv_encoder_ack(self->encoder, self->repl_id,
                    qkv_log_last_index(self->log));
    size_t size;
    const void *data = qkv_encoder_data(self->encoder, &size);
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_copy(&id, &self->peer);
    if (!data || zmq_msg_send(&id, self->router_handle,
                              ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id); /* leader gone: it will ask again */
    } else {
        if (zmq_send(self->router_handle, data, size, ZMQ_DONTWAIT) >= 0)
            atomic_fetch_add_explicit(&self->node->frames_sent, 1,
                                      memory_order_relaxed);
    }
    s_publish(self);
}

/*  =====================================================================
    The actor */

static int s_start(qkv_actor_t *self) {
    qkv_node_t *node = self->node;
    const qkv_config_t *cfg = self->cfg;
    qkv_decoder_limits_t limits = {QKV_FRAME_MAX, 1u << 20, 64u << 20};
    self->log = qkv_log_new();
    self->encoder = qkv_encoder_new();
    self->decoder = qkv_decoder_new(&limits);
    zmq_msg_init(&self->peer);
    if (!self->log || !self->encoder || !self->decoder ||
        s_grow_cum(self, 1) != 0) {
        snprintf(node->start_error, sizeof(node->start_error),
                 "out of memory starting replication");
        return -1;
    }
    self->cum[0] = 0;
    self->timer_fd =
        timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (self->timer_fd < 0) {
        snprintf(node->start_error, sizeof(node->start_error),
                 "cannot create a timer: %s", strerror(errno));
        return -1;
    }
    while (getrandom(&self->rng, sizeof(self->rng), 0) != sizeof(self->rng))
        ;
    self->rng |= 1;
    int64_t hb = (int64_t)cfg->heartbeat_ms * 1000;
    self->resend_us = hb > 100000 ? hb : 100000;
    snprintf(self->leader_endpoint, sizeof(self->leader_endpoint), "%s",
             cfg->role == QKV_ROLE_LEADER ? cfg->client_advertise
                                          : cfg->leader_endpoint);
    if (qkv_serve_start(self) != 0)
        return -1;
    if (cfg->role == QKV_ROLE_FOLLOWER) {
        self->router = s_follower_socket(cfg);
        if (!self->router) {
            snprintf(node->start_error, sizeof(node->start_error),
                     "REPL_PORT: cannot bind tcp://%s:%d: %s", cfg->bind,
                     cfg->repl_port, zmq_strerror(zmq_errno()));
            return -1;
        }
        self->router_handle = zsock_resolve(self->router);
        return 0;
    }
    do
        self->repl_id = s_random(self);
    while (!self->repl_id);
    atomic_store(&node->repl_id, self->repl_id);
    qkv_info("leader with replication id %016llx, %zu followers, quorum %d",
             (unsigned long long)self->repl_id, cfg->follower_count,
             cfg->write_quorum);
    for (size_t i = 0; i < cfg->follower_count; i++) {
        s_link_t *link = &self->links[i];
        link->id = i;
        link->next_index = 1;
        link->sock = s_leader_socket(cfg->followers[i]);
        if (!link->sock) {
            snprintf(node->start_error, sizeof(node->start_error),
                     "FOLLOWERS: cannot connect to %s: %s", cfg->followers[i],
                     zmq_strerror(zmq_errno()));
            return -1;
        }
        link->handle = zsock_resolve(link->sock);
        self->link_count++;
    }
    return 0;
}

static void s_stop(qkv_actor_t *self) {
    qkv_serve_stop(self);
    qkv_waiter_t *w = qkv_node_inbox_close(self->node);
    while (w) {
        qkv_waiter_t *next = w->next;
        qkv_waiter_complete(self->node, w, QKV_WRITE_UNAVAILABLE, 0);
        w = next;
    }
    while (self->wait_count) {
        s_wait_t *sw = &self->waits[self->wait_head];
        qkv_waiter_complete(self->node, sw->waiter, QKV_WRITE_UNAVAILABLE, 0);
        self->wait_head = (self->wait_head + 1) % self->wait_cap;
        self->wait_count--;
    }
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        while (link->held_count) {
            zmq_msg_close(&link->held[link->held_head].msg);
            link->held_head = (link->held_head + 1) % link->held_cap;
            link->held_count--;
        }
        free(link->held);
        zsock_destroy(&link->sock);
    }
    zsock_destroy(&self->router);
    zmq_msg_close(&self->peer);
    free(self->waits);
    free(self->cum);
    qkv_log_destroy(&self->log);
    qkv_encoder_destroy(&self->encoder);
    qkv_decoder_destroy(&self->decoder);
    if (self->timer_fd > 0)
        close(self->timer_fd);
}

/* When the next timer is due (qkv_now_us), or 0 for none: the earliest of
   client_due (the client endpoint's next deadline), heartbeats, held
   messages and resends. */
static int64_t s_next_due(qkv_actor_t *self, int64_t now, int64_t client_due) {
    if (self->cfg->role == QKV_ROLE_FOLLOWER)
        return client_due;
    int64_t hb = (int64_t)self->cfg->heartbeat_ms * 1000;
    int64_t due = client_due ? client_due : now + hb;
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        int64_t t = link->last_queued_us + hb;
        if (link->held_count && link->held[link->held_head].release_us < t)
            t = link->held[link->held_head].release_us;
        t = s_min_due(t, s_link_check_due(self, link));
        if (t < due)
            due = t;
    }
    return due;
}

/* The zmq_poll timeout for the next timer: 0 when one is due, else -1
   with the timerfd armed for it (zmq_poll's own timeout has only
   millisecond resolution; simulated delays need better). */
static long s_arm_timer(qkv_actor_t *self, int64_t now, int64_t client_due) {
    int64_t due = s_next_due(self, now, client_due);
    if (due && due <= now)
        return 0;
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (due) {
        its.it_value.tv_sec = due / 1000000;
        its.it_value.tv_nsec = (due % 1000000) * 1000;
    }
    timerfd_settime(self->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
    return -1;
}

void qkv_repl_actor(zsock_t *pipe, void *args) {
    qkv_actor_t *self = calloc(1, sizeof(*self));
    qkv_node_t *node = args;
    if (!self) {
        snprintf(node->start_error, sizeof(node->start_error),
                 "out of memory starting replication");
        zsock_signal(pipe, 1);
        return;
    }
    self->node = node;
    self->cfg = &node->config;
    self->pipe = pipe;
    if (s_start(self) != 0) {
        s_stop(self);
        free(self);
        zsock_signal(pipe, 1);
        return;
    }
    /* poll items: pipe, timer, clients, then the follower's ROUTER or the
       leader's inbox wake-up and one DEALER per follower */
    enum { I_PIPE, I_TIMER, I_CLIENTS, I_REPL, I_LINKS };
    zmq_pollitem_t items[I_LINKS + QKV_MAX_FOLLOWERS];
    items[I_PIPE] = (zmq_pollitem_t){zsock_resolve(pipe), 0, ZMQ_POLLIN, 0};
    items[I_TIMER] = (zmq_pollitem_t){NULL, self->timer_fd, ZMQ_POLLIN, 0};
    items[I_CLIENTS] =
        (zmq_pollitem_t){qkv_serve_handle(self), 0, ZMQ_POLLIN, 0};
    items[I_REPL] =
        self->router ? (zmq_pollitem_t){self->router_handle, 0, ZMQ_POLLIN, 0}
                     : (zmq_pollitem_t){NULL, node->wake_fd, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < self->link_count; i++)
        items[I_LINKS + i] =
            (zmq_pollitem_t){self->links[i].handle, 0, ZMQ_POLLIN, 0};
    int count = I_LINKS + (int)self->link_count;
    zsock_signal(pipe, 0);

    for (;;) {
        /* client deadlines that passed are answered here, every turn */
        int64_t now = qkv_now_us();
        int64_t client_due = qkv_serve_timers(self, now);
        long timeout = s_arm_timer(self, now, client_due);
        if (zmq_poll(items, count, timeout) < 0 && zmq_errno() != EINTR)
            break;
        if (items[I_PIPE].revents & ZMQ_POLLIN) {
            char *command = zstr_recv(pipe);
            bool term = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (term)
                break;
        }
        if (items[I_TIMER].revents & ZMQ_POLLIN) {
            uint64_t expirations;
            ssize_t rc = read(self->timer_fd, &expirations, sizeof expirations);
            (void)rc; /* EAGAIN: re-armed since it fired */
        }
        now = qkv_now_us();
        if (items[I_CLIENTS].revents & ZMQ_POLLIN)
            qkv_serve_read(self, now);
        if (self->router) {
            if (items[I_REPL].revents & ZMQ_POLLIN)
                s_follower_read(self);
            continue;
        }
        if (items[I_REPL].revents & ZMQ_POLLIN)
            s_leader_take_writes(self);
        for (size_t i = 0; i < self->link_count; i++)
            if (items[I_LINKS + i].revents & ZMQ_POLLIN)
                s_leader_read(self, &self->links[i], now);
        s_leader_flush(self, now);
    }
    s_stop(self);
    free(self);
}
