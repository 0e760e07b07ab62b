/*  qkv_peers.c - replication links and the simulated delay
    (qkv_peers.h). Held frames are zmq_msg_t on the heap, so the FIFO
    itself is a ring of plain data.
*/
#include "qkv_peers.h"
#include "qkv_clock.h"
#include "qkv_config.h"
#include "qkv_hash.h"
#include "qkv_ring.h"
#include "qkv_sockopt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(QKV_MAX_FOLLOWERS <= 64,
               "qkv_peers_flush reports peers in 64 bits");

typedef struct {
    int64_t release_us; /* when it may go */
    zmq_msg_t *msg;     /* the frame, owned */
} s_held_t;

typedef struct {
    zsock_t *sock;   /* DEALER (leader) or the ROUTER (follower) */
    void *handle;    /* its libzmq socket */
    qkv_ring_t held; /* s_held_t, oldest first */
} s_link_t;

struct qkv_peers_t {
    bool leader;
    bool mesh;                         /* PEERS: links + router */
    s_link_t links[QKV_MAX_FOLLOWERS]; /* leader, mesh: one per peer;
                                          follower: [0] */
    size_t count;
    zsock_t *router;                  /* mesh: where messages come in */
    void *router_handle;              /* its libzmq socket */
    char ids[QKV_MAX_FOLLOWERS][128]; /* mesh: peer routing ids */
    bool curve;                       /* mesh: check User-Id */
    zsock_t *monitor;                 /* mesh: the ROUTER's accept failures */
    qkv_port_guard_t guard;           /* mesh: closes the ROUTER's port
                                         when descriptors run short */
    uint64_t forged;                  /* mesh: User-Id and routing id differ */
    uint64_t sent_items;              /* static: polled links sent on */
    int64_t min_delay_us, max_delay_us;
    uint64_t rng;      /* xorshift state for delays */
    zmq_msg_t sender;  /* follower: routing id answers go to */
    zmq_msg_t last_id; /* follower: routing id of the last message */
    bool have_sender;
};

static uint64_t s_random(qkv_peers_t *self) {
    return qkv_xorshift64(&self->rng);
}

static qkv_peers_t *s_new(void) {
    qkv_peers_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    zmq_msg_init(&self->sender);
    zmq_msg_init(&self->last_id);
    self->rng = qkv_random64() | 1; /* xorshift needs a non-zero state */
    for (size_t i = 0; i < QKV_MAX_FOLLOWERS; i++)
        qkv_ring_init(&self->links[i].held, sizeof(s_held_t));
    return self;
}

/* One DEALER per endpoint (routing id self_id, or the leader's when
   NULL), taking frames of at most max_in bytes; what names the setting in
   an error. Returns 0, or -1 with err filled. */
static int s_connect_links(qkv_peers_t *self, char *const *endpoints,
                           size_t count, const char *self_id, size_t max_in,
                           const qkv_sockopt_curve_t *curve,
                           const char *const *keys, const char *what, char *err,
                           size_t err_size) {
    for (size_t i = 0; i < count; i++) {
        s_link_t *link = &self->links[i];
        link->sock = self_id
                         ? qkv_sockopt_peer_link(endpoints[i], self_id, max_in,
                                                 curve, curve ? keys[i] : NULL)
                         : qkv_sockopt_leader_link(endpoints[i], max_in);
        if (!link->sock) {
            snprintf(err, err_size, "%s: cannot connect to %s: %s", what,
                     endpoints[i], zmq_strerror(zmq_errno()));
            return -1;
        }
        link->handle = zsock_resolve(link->sock);
        self->count++;
    }
    return 0;
}

qkv_peers_t *qkv_peers_new_leader(char *const *endpoints, size_t count,
                                  size_t max_in, int64_t min_delay_us,
                                  int64_t max_delay_us, char *err,
                                  size_t err_size) {
    qkv_peers_t *self = count <= QKV_MAX_FOLLOWERS ? s_new() : NULL;
    if (!self) {
        snprintf(err, err_size, "out of memory starting replication");
        return NULL;
    }
    self->leader = true;
    self->min_delay_us = min_delay_us;
    self->max_delay_us = max_delay_us;
    if (s_connect_links(self, endpoints, count, NULL, max_in, NULL, NULL,
                        "FOLLOWERS", err, err_size) != 0)
        qkv_peers_destroy(&self);
    return self;
}

qkv_peers_t *qkv_peers_new_mesh(const qkv_mesh_opts_t *o, char *err,
                                size_t err_size) {
    qkv_peers_t *self = o->count <= QKV_MAX_FOLLOWERS ? s_new() : NULL;
    if (!self) {
        snprintf(err, err_size, "out of memory starting replication");
        return NULL;
    }
    self->mesh = true;
    self->curve = o->curve != NULL;
    self->guard.budget = o->fds;
    self->guard.name = "replication port";
    self->min_delay_us = o->min_delay_us;
    self->max_delay_us = o->max_delay_us;
    self->router =
        qkv_sockopt_follower_router(o->bind, o->port, o->max_in, o->curve);
    if (!self->router) {
        snprintf(err, err_size, "REPL_PORT: cannot bind tcp://%s:%d: %s",
                 o->bind, o->port, zmq_strerror(zmq_errno()));
        qkv_peers_destroy(&self);
        return NULL;
    }
    self->router_handle = zsock_resolve(self->router);
    self->guard.handle = self->router_handle;
    snprintf(self->guard.endpoint, sizeof(self->guard.endpoint), "tcp://%s:%d",
             o->bind, o->port);
    char monitor[64];
    snprintf(monitor, sizeof(monitor), "inproc://qkv-peers-%p", (void *)self);
    if (zmq_socket_monitor(self->router_handle, monitor,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_ACCEPT_FAILED) != 0 ||
        !(self->monitor = zsock_new_pair(monitor))) {
        snprintf(err, err_size, "cannot watch the replication port: %s",
                 zmq_strerror(zmq_errno()));
        qkv_peers_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < o->count; i++)
        snprintf(self->ids[i], sizeof(self->ids[i]), "%s", o->ids[i]);
    /* answers never come back on these DEALERs: 256 bytes is plenty */
    if (s_connect_links(self, o->endpoints, o->count, o->self_id, 256, o->curve,
                        o->keys, "PEERS", err, err_size) != 0)
        qkv_peers_destroy(&self);
    return self;
}

uint64_t qkv_peers_forged(const qkv_peers_t *self) {
    return self->forged;
}

qkv_peers_t *qkv_peers_new_follower(const char *bind, int port, size_t max_in,
                                    char *err, size_t err_size) {
    qkv_peers_t *self = s_new();
    if (!self) {
        snprintf(err, err_size, "out of memory starting replication");
        return NULL;
    }
    s_link_t *link = &self->links[0];
    link->sock = qkv_sockopt_follower_router(bind, port, max_in, NULL);
    if (!link->sock) {
        snprintf(err, err_size, "REPL_PORT: cannot bind tcp://%s:%d: %s", bind,
                 port, zmq_strerror(zmq_errno()));
        qkv_peers_destroy(&self);
        return NULL;
    }
    link->handle = zsock_resolve(link->sock);
    self->count = 1;
    return self;
}

static void s_held_drop(s_held_t *h) {
    zmq_msg_close(h->msg);
    free(h->msg);
}

void qkv_peers_destroy(qkv_peers_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_peers_t *self = *self_p;
    for (size_t i = 0; i < QKV_MAX_FOLLOWERS; i++) {
        s_link_t *link = &self->links[i];
        for (size_t k = 0; k < link->held.count; k++)
            s_held_drop(qkv_ring_at(&link->held, k));
        qkv_ring_free(&link->held);
        zsock_destroy(&link->sock);
    }
    if (self->monitor)
        zmq_socket_monitor(self->router_handle, NULL, 0);
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->router);
    zmq_msg_close(&self->sender);
    zmq_msg_close(&self->last_id);
    free(self);
    *self_p = NULL;
}

size_t qkv_peers_poll_items(qkv_peers_t *self, zmq_pollitem_t *items,
                            size_t max) {
    size_t n = 0;
    if (self->mesh) {
        if (max)
            items[n++] =
                (zmq_pollitem_t){self->router_handle, 0, ZMQ_POLLIN, 0};
        if (n < max)
            items[n++] = (zmq_pollitem_t){zsock_resolve(self->monitor), 0,
                                          ZMQ_POLLIN, 0};
        return n; /* nothing comes back on the DEALERs */
    }
    for (size_t i = 0; i < self->count && n < max; i++)
        items[n++] = (zmq_pollitem_t){self->links[i].handle, 0, ZMQ_POLLIN, 0};
    return n;
}

/*  =====================================================================
    Sending */

/* Sends msg now (it is consumed either way). Returns 0 or -1. */
static int s_send_now(qkv_peers_t *self, s_link_t *link, zmq_msg_t *msg) {
    if (!self->mesh) /* the link is poll item link - links */
        self->sent_items |= 1ULL << (size_t)(link - self->links);
    if (!self->leader && !self->mesh) {
        zmq_msg_t id;
        zmq_msg_init(&id);
        if (!self->have_sender || zmq_msg_copy(&id, &self->sender) != 0 ||
            zmq_msg_send(&id, link->handle, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(msg);
            return -1; /* the leader is gone: it will ask again */
        }
    }
    if (zmq_msg_send(msg, link->handle, ZMQ_DONTWAIT) >= 0)
        return 0;
    zmq_msg_close(msg);
    return -1;
}

int qkv_peers_send(qkv_peers_t *self, size_t peer, const void *data,
                   size_t size, bool delayed, int64_t now) {
    if (peer >= self->count || !data)
        return -1;
    s_link_t *link = &self->links[peer];
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, size) != 0)
        return -1;
    memcpy(zmq_msg_data(&msg), data, size);
    if (!delayed || (self->max_delay_us == 0 && link->held.count == 0))
        return s_send_now(self, link, &msg);
    int64_t span = self->max_delay_us - self->min_delay_us;
    int64_t release =
        now + self->min_delay_us +
        (span ? (int64_t)(s_random(self) % (uint64_t)(span + 1)) : 0);
    const s_held_t *tail = qkv_ring_last(&link->held);
    if (tail && tail->release_us > release)
        release = tail->release_us; /* first in, first out per link */
    zmq_msg_t *copy = malloc(sizeof(*copy));
    s_held_t *h = copy ? qkv_ring_push(&link->held) : NULL;
    if (!h) {
        free(copy);
        zmq_msg_close(&msg);
        return -1;
    }
    zmq_msg_init(copy);
    zmq_msg_move(copy, &msg);
    *h = (s_held_t){release, copy};
    return 0;
}

uint64_t qkv_peers_take_sent(qkv_peers_t *self) {
    uint64_t sent = self->sent_items;
    self->sent_items = 0;
    return sent;
}

uint64_t qkv_peers_flush(qkv_peers_t *self, int64_t now, int64_t *next_due) {
    uint64_t failed = 0;
    *next_due = self->mesh ? qkv_port_guard_reopen(&self->guard, now) : 0;
    for (size_t i = 0; i < self->count; i++) {
        s_link_t *link = &self->links[i];
        const s_held_t *h;
        while ((h = qkv_ring_first(&link->held)) && h->release_us <= now) {
            zmq_msg_t *msg = h->msg;
            qkv_ring_pop(&link->held, 1);
            if (s_send_now(self, link, msg) != 0)
                failed |= 1ULL << i;
            free(msg);
        }
        if (h && (!*next_due || h->release_us < *next_due))
            *next_due = h->release_us;
    }
    return failed;
}

/*  =====================================================================
    Receiving */

int qkv_router_recv(void *router, zmq_msg_t *id, zmq_msg_t *body) {
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

/* Mesh: the peer whose routing id is id, or count when none is. */
static size_t s_peer_of(const qkv_peers_t *self, const zmq_msg_t *id) {
    size_t len = zmq_msg_size(id);
    const char *data = zmq_msg_data((zmq_msg_t *)id);
    for (size_t i = 0; i < self->count; i++)
        if (strlen(self->ids[i]) == len && memcmp(self->ids[i], data, len) == 0)
            return i;
    return self->count;
}

/* The ROUTER's monitor: what its port guard needs. */
static void s_monitor_read(qkv_peers_t *self) {
    uint16_t id;
    uint32_t value;
    while (qkv_sockopt_monitor_event(self->monitor, &id, &value) == 0)
        qkv_port_guard_event(&self->guard, id, value, qkv_now_us());
}

uint64_t qkv_peers_closed(const qkv_peers_t *self) {
    return self->guard.closed;
}

int qkv_peers_recv(qkv_peers_t *self, size_t item, size_t *peer,
                   zmq_msg_t *frame) {
    if (self->mesh && item == 1) {
        s_monitor_read(self);
        return -1;
    }
    if (self->mesh) {
        zmq_msg_t id;
        int rc =
            item == 0 ? qkv_router_recv(self->router_handle, &id, frame) : -1;
        if (rc < 0)
            return -1;
        *peer = s_peer_of(self, &id);
        zmq_msg_close(&id);
        if (rc == 1 && *peer < self->count && self->curve) {
            /* the key that authenticated the connection names the sender */
            const char *user = zmq_msg_gets(frame, "User-Id");
            if (!user || strcmp(user, self->ids[*peer]) != 0) {
                self->forged++;
                return 2;
            }
        }
        return rc == 1 && *peer < self->count ? 1 : 0; /* a stranger: 0 */
    }
    if (item >= self->count)
        return -1;
    s_link_t *link = &self->links[item];
    if (self->leader) {
        zmq_msg_init(frame);
        if (zmq_msg_recv(frame, link->handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(frame);
            return -1;
        }
        *peer = item;
        if (!zmq_msg_more(frame))
            return 1;
        while (zmq_msg_more(frame) && zmq_msg_recv(frame, link->handle, 0) >= 0)
            ;
        return 0;
    }
    zmq_msg_t id;
    int rc = qkv_router_recv(link->handle, &id, frame);
    if (rc < 0)
        return -1;
    if (rc == 1)
        zmq_msg_copy(&self->last_id, &id);
    zmq_msg_close(&id);
    *peer = 0;
    return rc;
}

void qkv_peers_keep_sender(qkv_peers_t *self) {
    if (self->leader || zmq_msg_size(&self->last_id) == 0)
        return;
    zmq_msg_copy(&self->sender, &self->last_id);
    self->have_sender = true;
}
