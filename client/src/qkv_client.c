/*  qkv_client.c - libqkv: the client protocol over one ZeroMQ DEALER.

    Every request, blocking or pipelined, is one s_req_t holding copies of
    its key and value until it completes, so that it can be sent again: to
    the leader after a not_leader answer, to another endpoint when the node
    falls silent, or on the same connection when a blocking call has waited
    retry_ms. A request lives in three places at once:

      map          by wire id, to match answers (open addressing)
      outstanding  every request not yet completed, ordered by deadline,
                   so expiry looks only at the head
      queue        the requests still to be sent on the current
                   connection, in submission order

    Once completed it leaves all three; a pipelined one moves to the done
    list until qkv_poll hands it over, a blocking one goes back to its
    caller. Nothing runs in the background: all I/O happens inside calls
    (s_run), which send what is queued, take in every answer that has
    arrived, expire deadlines and watch for silence.

    Silence: while requests are outstanding on the connection and nothing
    has come back for retry_ms, a health request is sent as a probe; when
    retry_ms more pass without any answer the node is taken for gone, the
    handle connects to the next endpoint and every outstanding request is
    queued again there. Writes carry client_id and client_seq, so sending
    one twice never applies it twice. That is also how a write answered
    no_leader (an election is under way), leader_changed or
    quorum_not_reached (outcome unknown) is retried: the same request,
    after a pause of 50 ms doubling to 800 ms, while its deadline allows;
    the node it goes to redirects it to the new leader, where the pair
    tells whether it was written. At the deadline such a write completes
    with the last of those answers rather than QKV_ETIMEOUT. A dump chunk that
   continues from a cursor is the exception: the cursor means something only on
   the node that handed it out, so a switch to another endpoint fails it with
    QKV_EBADREQ instead of sending it there.
*/
#include "qkv_client.h"
#include "qkv_client_sock.h"
#include "qkv_clock.h"
#include "qkv_cmsg.h"
#include "qkv_key.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define S_DEFAULT_TIMEOUT_MS 5000
#define S_DEFAULT_RETRY_MS 1000
#define S_DEFAULT_REDIRECTS 3
#define S_DEFAULT_INFLIGHT 10000
#define S_DEFAULT_BATCH 1000
#define S_DEFAULT_BATCH_BYTES (1u << 20)
#define S_DEFAULT_FRAME_BYTES ((size_t)256 << 20)
#define S_REQ_OVERHEAD 96   /* wire bytes of a request besides its data */
#define S_MAX_ENDPOINT 1024 /* longest endpoint we accept */
#define S_NO_TIME INT64_MAX /* "no timer" */

/*  =====================================================================
    Intrusive lists (circular, with a sentinel) */

typedef struct s_link_t {
    struct s_link_t *prev;
    struct s_link_t *next;
} s_link_t;

typedef struct {
    s_link_t head;
    size_t count;
} s_list_t;

static void s_list_init(s_list_t *list) {
    list->head.prev = list->head.next = &list->head;
    list->count = 0;
}

static void s_list_insert_after(s_list_t *list, s_link_t *pos, s_link_t *link) {
    link->prev = pos;
    link->next = pos->next;
    pos->next->prev = link;
    pos->next = link;
    list->count++;
}

static void s_list_push(s_list_t *list, s_link_t *link) {
    s_list_insert_after(list, list->head.prev, link);
}

static void s_list_remove(s_list_t *list, s_link_t *link) {
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = NULL;
    list->count--;
}

static s_link_t *s_list_first(s_list_t *list) {
    return list->count ? list->head.next : NULL;
}

/*  =====================================================================
    Requests */

typedef struct {
    uint64_t id;         /* wire id, from 1 */
    qkv_cop_t op;        /* what the node is asked */
    qkv_req_kind_t kind; /* pipelined: what the caller asked */
    void *user;          /* pipelined: the caller's pointer */
    bool sync;           /* a blocking call waits for it */
    bool done;           /* completed */
    bool queued;         /* in the send queue */
    bool sent;           /* sent on the connection of generation sent_gen */
    int status;          /* 0 or qkv_err_t once done */
    int redirects;       /* not_leader redirects followed */
    int resends;         /* blocking: resends on a live connection */
    uint64_t sent_gen;   /* connection it was last sent on */
    int64_t sent_us;     /* when it was last sent */
    int64_t deadline_us; /* completes with QKV_ETIMEOUT then */
    int64_t retry_at_us; /* write waiting to be sent again; 0 none */
    int retries;         /* ... times so far */
    int retry_status;    /* the answer that made it wait; 0 none */
    uint64_t client_seq; /* writes */
    uint64_t min_index;  /* get, dump */
    uint64_t cursor;     /* dump */
    const char *origin;  /* dump: endpoint that handed out cursor (not
                            owned; NULL with cursor 0) */
    uint64_t limit;      /* dump */
    uint64_t answer_gen; /* connection the answer came on */
    /* The answer */
    uint64_t index;
    uint64_t seq;
    bool deleted;
    char *value; /* get: malloc'd, NUL-terminated */
    size_t value_len;
    qkv_item_t *items; /* dump: one allocation with the strings */
    size_t item_count;
    uint64_t next;          /* dump: next cursor, 0 = finished */
    uint64_t applied_index; /* dump */
    qkv_health_t health;    /* health */
    /* Membership */
    s_link_t by_deadline; /* outstanding list; then the done list */
    s_link_t in_queue;    /* send queue */
    /* The request's own data */
    size_t key_len;
    size_t val_len;
    char *key; /* into data */
    char *val; /* into data */
    char data[];
} s_req_t;

/* The request a list link belongs to. */
static s_req_t *s_req_at(s_link_t *link, size_t offset) {
    return (s_req_t *)(void *)((char *)link - offset);
}

#define S_REQ_OF(link, field) s_req_at((link), offsetof(s_req_t, field))

static s_req_t *s_req_new(qkv_cop_t op, const void *key, size_t key_len,
                          const void *value, size_t value_len) {
    s_req_t *self = malloc(sizeof(*self) + key_len + value_len + 2);
    if (!self)
        return NULL;
    memset(self, 0, sizeof(*self));
    self->op = op;
    self->key_len = key_len;
    self->val_len = value_len;
    self->key = self->data;
    self->val = self->data + key_len + 1;
    if (key_len)
        memcpy(self->key, key, key_len);
    self->key[key_len] = '\0';
    if (value_len)
        memcpy(self->val, value, value_len);
    self->val[value_len] = '\0';
    return self;
}

static void s_req_free(s_req_t *self) {
    if (!self)
        return;
    free(self->value);
    free(self->items);
    qkv_health_clear(&self->health);
    free(self);
}

static bool s_is_write(qkv_cop_t op) {
    return op == QKV_COP_PUT || op == QKV_COP_DELETE || op == QKV_COP_RESET;
}

/*  =====================================================================
    Map of outstanding requests by id: open addressing, linear probing,
    backward-shift deletion. Id 0 marks an empty slot. */

typedef struct {
    uint64_t *keys;
    s_req_t **vals;
    size_t cap; /* a power of two, or 0 */
    size_t count;
} s_map_t;

static size_t s_map_slot(const s_map_t *map, uint64_t id) {
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 20) & (map->cap - 1);
}

static int s_map_grow(s_map_t *map) {
    size_t cap = map->cap ? map->cap * 2 : 64;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    s_req_t **vals = calloc(cap, sizeof(*vals));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    s_map_t grown = {keys, vals, cap, 0};
    for (size_t i = 0; i < map->cap; i++) {
        if (!map->keys[i])
            continue;
        size_t slot = s_map_slot(&grown, map->keys[i]);
        while (grown.keys[slot])
            slot = (slot + 1) & (cap - 1);
        grown.keys[slot] = map->keys[i];
        grown.vals[slot] = map->vals[i];
        grown.count++;
    }
    free(map->keys);
    free(map->vals);
    *map = grown;
    return 0;
}

static int s_map_put(s_map_t *map, s_req_t *req) {
    if ((map->count + 1) * 2 > map->cap && s_map_grow(map) != 0)
        return -1;
    size_t slot = s_map_slot(map, req->id);
    while (map->keys[slot])
        slot = (slot + 1) & (map->cap - 1);
    map->keys[slot] = req->id;
    map->vals[slot] = req;
    map->count++;
    return 0;
}

static s_req_t *s_map_get(const s_map_t *map, uint64_t id) {
    if (!map->cap || !id)
        return NULL;
    for (size_t slot = s_map_slot(map, id); map->keys[slot];
         slot = (slot + 1) & (map->cap - 1))
        if (map->keys[slot] == id)
            return map->vals[slot];
    return NULL;
}

static void s_map_del(s_map_t *map, uint64_t id) {
    if (!map->cap)
        return;
    size_t mask = map->cap - 1;
    size_t hole = s_map_slot(map, id);
    while (map->keys[hole] && map->keys[hole] != id)
        hole = (hole + 1) & mask;
    if (!map->keys[hole])
        return;
    /* Pull later members of the run back into the hole when their home
       slot does not lie cyclically in (hole, j]. */
    for (size_t j = (hole + 1) & mask; map->keys[j]; j = (j + 1) & mask) {
        size_t home = s_map_slot(map, map->keys[j]);
        bool stays =
            hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        map->keys[hole] = map->keys[j];
        map->vals[hole] = map->vals[j];
        hole = j;
    }
    map->keys[hole] = 0;
    map->vals[hole] = NULL;
    map->count--;
}

/*  =====================================================================
    The handle */

struct qkv_client_t {
    void *ctx;             /* this handle's ZeroMQ context */
    void *sock;            /* DEALER to current */
    char **endpoints;      /* the list given to _new */
    char **endpoint_keys;  /* their |key=, NULL: none */
    size_t endpoint_count; /* at least 1 */
    char curve_secret[41]; /* CURVE: this client's key; "" plain */
    char curve_server[41]; /* CURVE: nodes' key by default; "" none */
    char learned_endpoint[S_MAX_ENDPOINT]; /* a not_leader's leader */
    char learned_key[41];                  /* and its key */
    void *monitor;                         /* PAIR: sock's handshake events */
    bool refused;             /* the last handshake on sock failed */
    char refused_why[96];     /* how */
    char *current;            /* endpoint sock is connected to */
    uint64_t gen;             /* connection generation, +1 per switch */
    int timeout_ms;           /* per-request deadline */
    int retry_ms;             /* silence before probe and resend; <0 never */
    int max_redirects;        /* <0: never follow not_leader */
    size_t max_inflight;      /* pipelined window */
    size_t batch_requests;    /* most requests per frame */
    size_t batch_bytes;       /* frame size that triggers a send */
    size_t max_frame_bytes;   /* ZMQ_MAXMSGSIZE and decoder limit */
    uint64_t client_id;       /* never 0 */
    uint64_t next_seq;        /* client_seq of the next write */
    uint64_t next_id;         /* wire id of the next request */
    s_map_t map;              /* outstanding requests by id */
    s_list_t outstanding;     /* outstanding requests by deadline */
    s_list_t queue;           /* requests to send, in order */
    size_t queue_bytes;       /* wire bytes (estimated) in queue */
    s_list_t done;            /* completed pipelined requests */
    size_t inflight;          /* pipelined requests not completed */
    size_t backing_off;       /* writes waiting to be sent again */
    int64_t silent_since_us;  /* last answer, or start of being busy */
    uint64_t probe_id;        /* outstanding probe, 0 = none */
    int64_t probe_sent_us;    /* when it went */
    s_req_t *waiting;         /* the request a blocking call waits for */
    qkv_client_stats_t stats; /* counters */
    qkv_encoder_t *enc;       /* builds request frames */
    qkv_decoder_t *dec;       /* checks answer frames */
    char errmsg[512];         /* last failure */
};

static void s_set_error(qkv_client_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_set_error(qkv_client_t *self, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(self->errmsg, sizeof self->errmsg, fmt, args);
    va_end(args);
}

static void s_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *errbuf, size_t errlen, const char *fmt, ...) {
    if (!errbuf || !errlen)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(errbuf, errlen, fmt, args);
    va_end(args);
}

const char *qkv_strerror(int code) {
    switch (code) {
    case QKV_OK:
        return "success";
    case QKV_EINVAL:
        return "invalid argument";
    case QKV_ENOMEM:
        return "out of memory";
    case QKV_ETIMEOUT:
        return "timed out";
    case QKV_ENOTFOUND:
        return "not found";
    case QKV_ENOTLEADER:
        return "not the leader";
    case QKV_EQUORUM:
        return "quorum not reached";
    case QKV_ENOTREADY:
        return "not ready";
    case QKV_EBADREQ:
        return "bad request";
    case QKV_ETOOLARGE:
        return "too large";
    case QKV_EUNAVAILABLE:
        return "unavailable";
    case QKV_EPROTO:
        return "protocol error";
    case QKV_EAGAIN:
        return "too many requests in flight";
    case QKV_ESOCKET:
        return "socket error";
    case QKV_ECONFLICT:
        return "conflict: client_seq reused with other content";
    case QKV_EINSUFFICIENT_STORAGE:
        return "insufficient storage: the node cannot write its log";
    case QKV_ENO_LEADER:
        return "no leader: an election is under way";
    case QKV_ELEADER_CHANGED:
        return "the leader changed: outcome unknown, retry with the same "
               "client_seq";
    case QKV_ESESSION_EXPIRED:
        return "session expired";
    case QKV_EOVERLOADED:
        return "overloaded: too many writes in flight on the leader";
    case QKV_EUNAUTHORIZED:
        return "unauthorized: the node refused this client's CURVE key";
    case QKV_EFORBIDDEN:
        return "forbidden: this client's key may not do that";
    default:
        return "unknown error";
    }
}

int qkv_client_read_key(const char *path, bool secret, char *key, char *errbuf,
                        size_t errlen) {
    char err[512];
    if (!path || !key || qkv_key_read(path, secret, key, err, sizeof err)) {
        s_err(errbuf, errlen, "%s", path && key ? err : "invalid argument");
        return QKV_EINVAL;
    }
    return QKV_OK;
}

/*  ---------------------------------------------------------------------
    Sockets (every option is set in qkv_client_sock.c) */

/* The CURVE key of the node at endpoint: its own in the list, the one a
   not_leader named, or the handle's default. */
static const char *s_server_key(const qkv_client_t *self,
                                const char *endpoint) {
    for (size_t i = 0; i < self->endpoint_count; i++)
        if (self->endpoint_keys[i] && !strcmp(self->endpoints[i], endpoint))
            return self->endpoint_keys[i];
    if (self->learned_key[0] && !strcmp(self->learned_endpoint, endpoint))
        return self->learned_key;
    return self->curve_server;
}

static void *s_socket_open(qkv_client_t *self, const char *endpoint) {
    char err[256];
    void *sock = qkv_client_socket_open(
        self->ctx, endpoint, self->max_frame_bytes,
        self->curve_secret[0] ? self->curve_secret : NULL,
        s_server_key(self, endpoint), err, sizeof err);
    if (!sock)
        s_set_error(self, "%s", err);
    return sock;
}

/*  ---------------------------------------------------------------------
    Request bookkeeping */

static void s_queue_push(qkv_client_t *self, s_req_t *req) {
    s_list_push(&self->queue, &req->in_queue);
    self->queue_bytes += req->key_len + req->val_len + S_REQ_OVERHEAD;
    req->queued = true;
    req->sent = false;
}

static void s_queue_remove(qkv_client_t *self, s_req_t *req) {
    s_list_remove(&self->queue, &req->in_queue);
    self->queue_bytes -= req->key_len + req->val_len + S_REQ_OVERHEAD;
    req->queued = false;
}

/* Gives req an id and deadline and queues it. */
static int s_enqueue(qkv_client_t *self, s_req_t *req) {
    if (s_is_write(req->op) && self->next_seq > QKV_CLIENT_ID_MAX) {
        s_set_error(self, "client_seq would pass 2^53-1: make a new handle");
        return QKV_EINVAL;
    }
    req->id = self->next_id++;
    self->stats.requests++;
    if (s_map_put(&self->map, req) != 0) {
        s_set_error(self, "out of memory");
        return QKV_ENOMEM;
    }
    req->deadline_us = qkv_now_us() + (int64_t)self->timeout_ms * 1000;
    /* Keep outstanding sorted by deadline: usually this is the tail. */
    s_link_t *pos = self->outstanding.head.prev;
    while (pos != &self->outstanding.head &&
           S_REQ_OF(pos, by_deadline)->deadline_us > req->deadline_us)
        pos = pos->prev;
    s_list_insert_after(&self->outstanding, pos, &req->by_deadline);
    if (s_is_write(req->op))
        req->client_seq = self->next_seq++;
    s_queue_push(self, req);
    return 0;
}

/* Finishes req with status; a pipelined one goes to the done list. */
static void s_complete(qkv_client_t *self, s_req_t *req, int status) {
    /* A write refused before it reached a log gives its seq back when it
       was the last one handed out, so a handle whose first write was
       refused still starts its session at seq 1. */
    if (s_is_write(req->op) && req->client_seq + 1 == self->next_seq &&
        (status == QKV_ETOOLARGE || status == QKV_EBADREQ ||
         status == QKV_ENOTLEADER))
        self->next_seq--;
    s_map_del(&self->map, req->id);
    s_list_remove(&self->outstanding, &req->by_deadline);
    if (req->retry_at_us) {
        req->retry_at_us = 0;
        self->backing_off--;
    }
    if (req->queued)
        s_queue_remove(self, req);
    req->status = status;
    req->done = true;
    if (status == QKV_ETIMEOUT)
        self->stats.timeouts++;
    if (!req->sync) {
        self->inflight--;
        s_list_push(&self->done, &req->by_deadline);
    }
}

static int s_cmp_id(const void *a, const void *b) {
    uint64_t x = (*(s_req_t *const *)a)->id;
    uint64_t y = (*(s_req_t *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* Queues every outstanding request again, in submission order; a dump
   chunk whose cursor came from another endpoint fails instead. */
static int s_requeue_all(qkv_client_t *self) {
    while (self->queue.count)
        s_queue_remove(self, S_REQ_OF(s_list_first(&self->queue), in_queue));
    s_link_t *l = self->outstanding.head.next;
    while (l != &self->outstanding.head) {
        s_req_t *req = S_REQ_OF(l, by_deadline);
        l = l->next;
        if (req->retry_at_us) {
            req->retry_at_us = 0; /* a new connection: at once */
            self->backing_off--;
        }
        if (req->op == QKV_COP_DUMP && req->cursor &&
            strcmp(req->origin, self->current) != 0) {
            s_set_error(self,
                        "dump cursor from %s is not valid on %s: start "
                        "the dump again",
                        req->origin, self->current);
            s_complete(self, req, QKV_EBADREQ);
        }
    }
    size_t count = self->outstanding.count, n = 0;
    if (!count)
        return 0;
    s_req_t **all = malloc(count * sizeof(*all));
    if (!all) {
        s_set_error(self, "out of memory");
        return QKV_ENOMEM;
    }
    for (s_link_t *l = self->outstanding.head.next;
         l != &self->outstanding.head; l = l->next)
        all[n++] = S_REQ_OF(l, by_deadline);
    qsort(all, n, sizeof(*all), s_cmp_id);
    for (size_t i = 0; i < n; i++) {
        self->stats.resent += all[i]->sent;
        s_queue_push(self, all[i]);
    }
    free(all);
    return 0;
}

/* Watches sock's handshakes: a node that refuses our CURVE key (or wants
   CURVE from a plain-text client) fails them, and a request that then
   times out says so (QKV_EUNAUTHORIZED) instead of "timed out". Without
   the watch (no memory, say) it is only the plain timeout. */
static void s_watch(qkv_client_t *self) {
    if (self->monitor)
        zmq_close(self->monitor);
    self->monitor = NULL;
    self->refused = false;
    char address[96];
    snprintf(address, sizeof address, "inproc://qkv-client-%p-%llu",
             (void *)self, (unsigned long long)self->gen);
    if (zmq_socket_monitor(self->sock, address,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return;
    self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
    if (self->monitor && zmq_connect(self->monitor, address) != 0) {
        zmq_close(self->monitor);
        self->monitor = NULL;
    }
}

/* Reads the handshake events waiting. */
static void s_watch_read(qkv_client_t *self) {
    for (int i = 0; self->monitor && i < 64; i++) {
        zmq_msg_t event;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return;
        }
        uint16_t id = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&event) >= 6) {
            memcpy(&id, zmq_msg_data(&event), 2);
            memcpy(&value, (char *)zmq_msg_data(&event) + 2, 4);
        }
        bool more = zmq_msg_more(&event);
        zmq_msg_close(&event);
        while (more) { /* the endpoint frame */
            zmq_msg_t part;
            zmq_msg_init(&part);
            more = zmq_msg_recv(&part, self->monitor, 0) >= 0 &&
                   zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        self->refused = id != ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
        snprintf(self->refused_why, sizeof self->refused_why, "%s",
                 id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                     ? "the node refused this client's key"
                 : id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                     ? "the handshake failed: does the node want CURVE, or "
                       "is its key not the one given?"
                     : "the handshake failed");
    }
}

/* Moves the handle to endpoint: a new DEALER, every outstanding request
   queued again. On failure the old connection stays. */
static int s_switch(qkv_client_t *self, const char *endpoint) {
    char *copy = strdup(endpoint);
    if (!copy) {
        s_set_error(self, "out of memory");
        return QKV_ENOMEM;
    }
    void *sock = s_socket_open(self, endpoint);
    if (!sock) {
        free(copy);
        return QKV_ESOCKET;
    }
    if (self->sock)
        zmq_close(self->sock);
    self->sock = sock;
    free(self->current);
    self->current = copy;
    self->gen++;
    s_watch(self);
    self->probe_id = 0;
    self->silent_since_us = qkv_now_us();
    return s_requeue_all(self);
}

/* The endpoint after the current one in the list (the first when the
   current one came from a redirect); the same one when alone. */
static const char *s_fallback(const qkv_client_t *self) {
    for (size_t i = 0; i < self->endpoint_count; i++)
        if (strcmp(self->endpoints[i], self->current) == 0)
            return self->endpoints[(i + 1) % self->endpoint_count];
    return self->endpoints[0];
}

/*  ---------------------------------------------------------------------
    Sending */

static void s_fill_request(const qkv_client_t *self, const s_req_t *req,
                           int64_t now, qkv_creq_t *creq) {
    memset(creq, 0, sizeof(*creq));
    creq->id = req->id;
    creq->op = req->op;
    if (req->op == QKV_COP_PUT || req->op == QKV_COP_GET ||
        req->op == QKV_COP_DELETE) {
        creq->key = req->key;
        creq->key_len = req->key_len;
    }
    if (req->op == QKV_COP_PUT) {
        creq->value = req->val;
        creq->value_len = req->val_len;
    }
    if (s_is_write(req->op)) {
        creq->client_id = self->client_id;
        creq->client_seq = req->client_seq;
    }
    if (req->min_index) {
        /* Let the node give up a little before we do, so that it can
           say not_ready. */
        int64_t left = (req->deadline_us - now) / 1000;
        int64_t margin = left / 4 < 1000 ? left / 4 : 1000;
        int64_t wait = left - margin;
        creq->min_index = req->min_index;
        creq->wait_ms =
            (uint64_t)(wait < 0                      ? 0
                       : wait > QKV_CMSG_MAX_WAIT_MS ? QKV_CMSG_MAX_WAIT_MS
                                                     : wait);
    }
    if (req->op == QKV_COP_DUMP) {
        creq->cursor = req->cursor;
        creq->limit = req->limit;
    }
}

/* Sends queued requests in frames until the queue is empty or ZeroMQ
   would block; with full_only, only frames that are full. */
static int s_send_queue(qkv_client_t *self, bool full_only) {
    while (self->queue.count) {
        if (full_only && self->queue.count < self->batch_requests &&
            self->queue_bytes < self->batch_bytes)
            return 0;
        size_t n = 0, bytes = 0;
        s_link_t *l = self->queue.head.next;
        for (; l != &self->queue.head && n < self->batch_requests;
             l = l->next) {
            s_req_t *req = S_REQ_OF(l, in_queue);
            size_t size = req->key_len + req->val_len + S_REQ_OVERHEAD;
            if (n && bytes + size > self->batch_bytes)
                break;
            n++;
            bytes += size;
        }
        int64_t now = qkv_now_us();
        qkv_cenc_begin(self->enc, n);
        l = self->queue.head.next;
        for (size_t i = 0; i < n; i++, l = l->next) {
            qkv_creq_t creq;
            s_fill_request(self, S_REQ_OF(l, in_queue), now, &creq);
            qkv_cenc_request(self->enc, &creq);
        }
        size_t size = 0;
        const void *data = qkv_encoder_data(self->enc, &size);
        if (!data) {
            s_set_error(self, "out of memory encoding a frame");
            return QKV_ENOMEM;
        }
        if (zmq_send(self->sock, data, size, ZMQ_DONTWAIT) < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0; /* retried when the socket takes more */
            s_set_error(self, "zmq_send: %s", zmq_strerror(errno));
            return QKV_ESOCKET;
        }
        if (self->outstanding.count - self->queue.count == 0)
            self->silent_since_us = now; /* busy from now on */
        for (size_t i = 0; i < n; i++) {
            s_req_t *req = S_REQ_OF(self->queue.head.next, in_queue);
            s_queue_remove(self, req);
            req->sent = true;
            req->sent_gen = self->gen;
            req->sent_us = now;
        }
        self->stats.frames_sent++;
        size_t in_flight = self->outstanding.count - self->queue.count;
        if (in_flight > self->stats.peak_in_flight)
            self->stats.peak_in_flight = in_flight;
    }
    return 0;
}

static void s_send_probe(qkv_client_t *self, int64_t now) {
    qkv_creq_t creq;
    memset(&creq, 0, sizeof creq);
    creq.id = self->next_id++;
    creq.op = QKV_COP_HEALTH;
    qkv_cenc_begin(self->enc, 1);
    qkv_cenc_request(self->enc, &creq);
    size_t size = 0;
    const void *data = qkv_encoder_data(self->enc, &size);
    if (data)
        zmq_send(self->sock, data, size, ZMQ_DONTWAIT);
    /* Counted as sent even when ZeroMQ refused it: a node that does not
       take our frames is as silent as one that does not answer. */
    self->probe_id = creq.id;
    self->probe_sent_us = now;
}

/*  ---------------------------------------------------------------------
    Answers */

static char *s_memdup(const char *data, size_t len) {
    char *copy = malloc(len + 1);
    if (copy) {
        if (len)
            memcpy(copy, data, len);
        copy[len] = '\0';
    }
    return copy;
}

static int s_take_items(s_req_t *req, const qkv_cres_t *res) {
    size_t bytes = res->item_count * sizeof(qkv_item_t);
    for (size_t i = 0; i < res->item_count; i++)
        bytes += res->items[i].key_len + res->items[i].value_len + 2;
    qkv_item_t *items = malloc(bytes ? bytes : 1);
    if (!items)
        return QKV_ENOMEM;
    char *blob = (char *)(items + res->item_count);
    for (size_t i = 0; i < res->item_count; i++) {
        const qkv_citem_t *in = &res->items[i];
        qkv_item_t *out = &items[i];
        out->key = blob;
        out->key_len = in->key_len;
        if (in->key_len)
            memcpy(blob, in->key, in->key_len);
        blob[in->key_len] = '\0';
        blob += in->key_len + 1;
        out->value = blob;
        out->value_len = in->value_len;
        if (in->value_len)
            memcpy(blob, in->value, in->value_len);
        blob[in->value_len] = '\0';
        blob += in->value_len + 1;
        out->seq = in->seq;
        out->index = in->index;
    }
    req->items = items;
    req->item_count = res->item_count;
    req->next = res->has_next ? res->next : 0;
    req->applied_index = res->applied_index;
    return 0;
}

static int s_take_health(s_req_t *req, const qkv_chealth_t *in) {
    qkv_health_t *h = &req->health;
    h->role = s_memdup(in->role, in->role_len);
    h->node_id = s_memdup(in->node_id, in->node_id_len);
    h->replication_id = s_memdup(in->replication_id, in->replication_id_len);
    h->error = s_memdup(in->error, in->error_len);
    h->last_index = in->last_index;
    h->commit_index = in->commit_index;
    h->applied_index = in->applied_index;
    h->max_key_bytes = in->max_key_bytes;
    h->max_value_bytes = in->max_value_bytes;
    h->max_frame_bytes = in->max_frame_bytes;
    if (!h->role || !h->node_id || !h->replication_id || !h->error)
        return QKV_ENOMEM;
    if (in->follower_count) {
        h->followers = calloc(in->follower_count, sizeof(*h->followers));
        if (!h->followers)
            return QKV_ENOMEM;
        h->follower_count = in->follower_count;
        for (size_t i = 0; i < in->follower_count; i++) {
            const qkv_cfollower_t *f = &in->followers[i];
            qkv_follower_info_t *out = &h->followers[i];
            out->id = s_memdup(f->id, f->id_len);
            out->endpoint = s_memdup(f->endpoint, f->endpoint_len);
            out->connected = f->connected;
            out->acked_index = f->acked_index;
            out->lag = f->lag;
            if (!out->id || !out->endpoint)
                return QKV_ENOMEM;
        }
    }
    return 0;
}

/* An ok answer: checks it carries what the op needs and keeps it. */
static int s_take_ok(qkv_client_t *self, s_req_t *req, const qkv_cres_t *res) {
    const char *missing = NULL;
    switch (req->op) {
    case QKV_COP_PUT:
        if (!res->has_index || !res->has_seq)
            missing = "index or seq";
        break;
    case QKV_COP_DELETE:
    case QKV_COP_RESET:
        if (!res->has_index)
            missing = "index";
        break;
    case QKV_COP_GET:
        if (!res->has_index || !res->has_seq)
            missing = "index or seq";
        break;
    case QKV_COP_HEALTH:
        if (!res->health)
            missing = "health";
        break;
    default:
        break;
    }
    if (missing) {
        s_set_error(self, "answer to request %llu has no %s",
                    (unsigned long long)req->id, missing);
        return QKV_EPROTO;
    }
    req->index = res->index;
    req->seq = res->seq;
    req->deleted = res->has_deleted && res->deleted;
    int rc = 0;
    if (req->op == QKV_COP_GET) {
        req->value = s_memdup(res->value ? res->value : "", res->value_len);
        rc = req->value ? 0 : QKV_ENOMEM;
        req->value_len = res->value_len;
    } else if (req->op == QKV_COP_DUMP)
        rc = s_take_items(req, res);
    else if (req->op == QKV_COP_HEALTH)
        rc = s_take_health(req, res->health);
    if (rc == QKV_ENOMEM)
        s_set_error(self, "out of memory copying an answer");
    return rc;
}

static void s_on_not_leader(qkv_client_t *self, s_req_t *req,
                            const qkv_cres_t *res, uint64_t gen) {
    /* An answer to an earlier attempt: the request is on its way to
       another node already. */
    if (!req->sent || req->sent_gen != gen)
        return;
    s_set_error(self, "%.*s (leader: %.*s)", (int)res->message_len,
                res->message ? res->message : "", (int)res->leader_len,
                res->leader ? res->leader : "");
    if (s_is_write(req->op) && self->max_redirects >= 0 &&
        req->redirects < self->max_redirects && res->leader_len > 0 &&
        res->leader_len < S_MAX_ENDPOINT) {
        char leader[S_MAX_ENDPOINT];
        memcpy(leader, res->leader, res->leader_len);
        leader[res->leader_len] = '\0';
        if (res->leader_key_len == 40) { /* from a node we authenticated */
            memcpy(self->learned_endpoint, leader, res->leader_len + 1);
            memcpy(self->learned_key, res->leader_key, 40);
            self->learned_key[40] = '\0';
        }
        if (strcmp(leader, self->current) != 0) {
            req->redirects++;
            if (s_switch(self, leader) == 0) {
                self->stats.redirects++;
                return;
            }
        }
    }
    s_complete(self, req, QKV_ENOTLEADER);
}

static int s_status_error(qkv_cstatus_t status) {
    switch (status) {
    case QKV_CS_NOT_FOUND:
        return QKV_ENOTFOUND;
    case QKV_CS_QUORUM_NOT_REACHED:
        return QKV_EQUORUM;
    case QKV_CS_NOT_READY:
        return QKV_ENOTREADY;
    case QKV_CS_BAD_REQUEST:
        return QKV_EBADREQ;
    case QKV_CS_TOO_LARGE:
        return QKV_ETOOLARGE;
    case QKV_CS_UNAVAILABLE:
        return QKV_EUNAVAILABLE;
    case QKV_CS_CONFLICT:
        return QKV_ECONFLICT;
    case QKV_CS_SESSION_EXPIRED:
        return QKV_ESESSION_EXPIRED;
    case QKV_CS_INSUFFICIENT_STORAGE:
        return QKV_EINSUFFICIENT_STORAGE;
    case QKV_CS_NO_LEADER:
        return QKV_ENO_LEADER;
    case QKV_CS_LEADER_CHANGED:
        return QKV_ELEADER_CHANGED;
    case QKV_CS_OVERLOADED:
        return QKV_EOVERLOADED;
    case QKV_CS_FORBIDDEN:
        return QKV_EFORBIDDEN;
    default:
        return QKV_EPROTO;
    }
}

/* A write answered no_leader, leader_changed or quorum_not_reached waits
   and goes again (same client_seq) when its deadline allows: true then. */
static bool s_retry_later(qkv_client_t *self, s_req_t *req, int status,
                          uint64_t gen) {
    if (!s_is_write(req->op) || self->retry_ms < 0 || !req->sent ||
        req->sent_gen != gen ||
        (status != QKV_ENO_LEADER && status != QKV_ELEADER_CHANGED &&
         status != QKV_EQUORUM && status != QKV_EOVERLOADED))
        return false;
    int64_t now = qkv_now_us();
    int64_t wait = (int64_t)50000 << (req->retries < 4 ? req->retries : 4);
    if (now + wait >= req->deadline_us)
        return false;
    req->retries++;
    req->retry_status = status;
    req->sent = false;
    req->retry_at_us = now + wait;
    self->backing_off++;
    self->stats.retried++;
    return true;
}

static void s_on_result(qkv_client_t *self, const qkv_cres_t *res,
                        uint64_t gen) {
    if (res->id == 0) {
        /* The node refused a whole frame of ours: we cannot tell which,
           so every request it may have held fails. */
        s_set_error(self, "the node refused a frame: %.*s",
                    (int)res->message_len, res->message ? res->message : "");
        s_link_t *l = self->outstanding.head.next;
        while (l != &self->outstanding.head) {
            s_req_t *req = S_REQ_OF(l, by_deadline);
            l = l->next;
            if (req->sent && req->sent_gen == gen)
                s_complete(self, req, QKV_EBADREQ);
        }
        return;
    }
    s_req_t *req = s_map_get(&self->map, res->id);
    if (!req)
        return; /* a probe, or a second answer to a resent request */
    req->answer_gen = gen;
    if (res->status == QKV_CS_OK) {
        s_complete(self, req, s_take_ok(self, req, res));
        return;
    }
    if (res->status == QKV_CS_NOT_LEADER) {
        s_on_not_leader(self, req, res, gen);
        return;
    }
    int status = s_status_error(res->status);
    if (res->has_index)
        req->index = res->index;
    if (s_retry_later(self, req, status, gen))
        return;
    if (res->message_len)
        s_set_error(self, "%.*s", (int)res->message_len, res->message);
    else
        s_set_error(self, "%s", qkv_strerror(status));
    s_complete(self, req, status);
}

/* Takes in every frame that has arrived. */
static int s_recv_ready(qkv_client_t *self) {
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(&msg);
            if (err == EAGAIN)
                return 0;
            if (err == EINTR)
                continue;
            s_set_error(self, "zmq_msg_recv: %s", zmq_strerror(err));
            return QKV_ESOCKET;
        }
        self->silent_since_us = qkv_now_us();
        self->probe_id = 0;
        self->stats.frames_received++;
        bool more = zmq_msg_more(&msg);
        if (more) {
            /* Not ours to read: answers are single frames. Drop it all. */
            s_set_error(self, "multi-part answer from %s dropped",
                        self->current);
            while (more && zmq_msg_recv(&msg, self->sock, 0) >= 0)
                more = zmq_msg_more(&msg);
            zmq_msg_close(&msg);
            continue;
        }
        const qkv_cres_t *results = NULL;
        size_t count = 0;
        int rc = qkv_cdec_results(self->dec, zmq_msg_data(&msg),
                                  zmq_msg_size(&msg), &results, &count);
        self->stats.malformed += rc == QKV_MALFORMED;
        if (rc == QKV_MALFORMED)
            s_set_error(self, "malformed answer frame from %s dropped",
                        self->current);
        else if (rc != 0)
            s_set_error(self, "out of memory decoding an answer");
        uint64_t gen = self->gen;
        for (size_t i = 0; rc == 0 && i < count; i++)
            s_on_result(self, &results[i], gen);
        zmq_msg_close(&msg);
    }
}

/*  ---------------------------------------------------------------------
    Timers: deadlines, silence, resends */

/* How long a blocking call waits on a live connection before it sends its
   request again: retry_ms, doubling with each resend up to 32 x. */
static int64_t s_resend_us(const qkv_client_t *self, const s_req_t *req) {
    return ((int64_t)self->retry_ms * 1000)
           << (req->resends < 5 ? req->resends : 5);
}

static int s_timers(qkv_client_t *self, int64_t now) {
    s_link_t *l;
    while ((l = s_list_first(&self->outstanding)) &&
           S_REQ_OF(l, by_deadline)->deadline_us <= now) {
        s_req_t *req = S_REQ_OF(l, by_deadline);
        if (req->retry_status) {
            s_set_error(self, "%s (retried %d times within %d ms)",
                        qkv_strerror(req->retry_status), req->retries,
                        self->timeout_ms);
            s_complete(self, req, req->retry_status);
            continue;
        }
        s_watch_read(self);
        if (self->refused) {
            s_set_error(self, "%s: %s", self->current, self->refused_why);
            s_complete(self, req, QKV_EUNAUTHORIZED);
            continue;
        }
        s_set_error(self, "no answer from %s within %d ms", self->current,
                    self->timeout_ms);
        s_complete(self, req, QKV_ETIMEOUT);
    }
    for (l = self->outstanding.head.next;
         self->backing_off && l != &self->outstanding.head; l = l->next) {
        s_req_t *req = S_REQ_OF(l, by_deadline);
        if (req->retry_at_us && req->retry_at_us <= now) {
            req->retry_at_us = 0;
            self->backing_off--;
            s_queue_push(self, req);
        }
    }
    if (self->retry_ms < 0)
        return 0;
    int64_t retry_us = (int64_t)self->retry_ms * 1000;
    size_t sent = self->outstanding.count - self->queue.count;
    if (self->probe_id && now - self->probe_sent_us >= retry_us) {
        char next[S_MAX_ENDPOINT];
        snprintf(next, sizeof next, "%s", s_fallback(self));
        self->stats.failovers++;
        return s_switch(self, next);
    }
    if (!self->probe_id && sent && now - self->silent_since_us >= retry_us)
        s_send_probe(self, now);
    s_req_t *w = self->waiting;
    if (w && w->sent && now - w->sent_us >= s_resend_us(self, w) &&
        self->silent_since_us > w->sent_us) {
        s_queue_push(self, w); /* the node lives; ask again */
        w->resends++;
        self->stats.resent++;
    }
    return 0;
}

/* When s_timers next has something to do. */
static int64_t s_next_timer(const qkv_client_t *self) {
    int64_t next = S_NO_TIME;
    if (self->outstanding.count)
        next = S_REQ_OF(self->outstanding.head.next, by_deadline)->deadline_us;
    if (self->retry_ms < 0)
        return next;
    int64_t retry_us = (int64_t)self->retry_ms * 1000, at = S_NO_TIME;
    if (self->probe_id)
        at = self->probe_sent_us + retry_us;
    else if (self->outstanding.count > self->queue.count)
        at = self->silent_since_us + retry_us;
    next = at < next ? at : next;
    const s_req_t *w = self->waiting;
    if (w && w->sent && self->silent_since_us > w->sent_us &&
        w->sent_us + s_resend_us(self, w) < next)
        next = w->sent_us + s_resend_us(self, w);
    for (s_link_t *l = self->outstanding.head.next;
         self->backing_off && l != &self->outstanding.head; l = l->next) {
        const s_req_t *req = S_REQ_OF(l, by_deadline);
        if (req->retry_at_us && req->retry_at_us < next)
            next = req->retry_at_us;
    }
    return next;
}

typedef bool(s_done_fn)(qkv_client_t *self, void *arg);

/* Runs the I/O until done(self, arg) holds or until_us (monotonic; -1:
   no limit) passes. Returns 0, or an error when the socket failed. */
static int s_run(qkv_client_t *self, int64_t until_us, s_done_fn *done,
                 void *arg) {
    for (;;) {
        int rc = s_send_queue(self, false);
        if (rc == 0)
            rc = s_recv_ready(self);
        if (rc == 0)
            rc = s_timers(self, qkv_now_us());
        if (rc != 0)
            return rc;
        if (done(self, arg))
            return 0;
        int64_t now = qkv_now_us(), wake = s_next_timer(self);
        if (until_us >= 0 && now >= until_us)
            return 0;
        if (until_us >= 0 && until_us < wake)
            wake = until_us;
        long wait_ms = -1;
        if (wake != S_NO_TIME)
            wait_ms = wake <= now ? 0 : (long)((wake - now + 999) / 1000);
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        if (self->queue.count)
            item.events |= ZMQ_POLLOUT;
        if (zmq_poll(&item, 1, wait_ms) < 0 && errno != EINTR) {
            s_set_error(self, "zmq_poll: %s", zmq_strerror(errno));
            return QKV_ESOCKET;
        }
    }
}

static bool s_req_done(qkv_client_t *self, void *arg) {
    (void)self;
    return ((s_req_t *)arg)->done;
}

/* Sends req (a blocking call's) and waits for it; returns its status.
   The caller keeps req and frees it. */
static int s_call(qkv_client_t *self, s_req_t *req) {
    req->sync = true;
    int rc = s_enqueue(self, req);
    if (rc != 0)
        return rc;
    self->waiting = req;
    rc = s_run(self, -1, s_req_done, req);
    self->waiting = NULL;
    if (rc != 0 && !req->done)
        s_complete(self, req, rc);
    return req->status;
}

/*  ---------------------------------------------------------------------
    Construction */

/* A random client_id in 1 ... QKV_CLIENT_ID_MAX. */
static uint64_t s_random_id(void) {
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)&id;
        }
        id &= QKV_CLIENT_ID_MAX;
    }
    return id;
}

/* Splits a comma-separated list into self->endpoints. */
static int s_parse_endpoints(qkv_client_t *self, const char *list, char *errbuf,
                             size_t errlen) {
    size_t max = 1;
    for (const char *p = list; *p; p++)
        max += *p == ',';
    self->endpoints = calloc(max, sizeof(char *));
    self->endpoint_keys = calloc(max, sizeof(char *));
    if (!self->endpoints || !self->endpoint_keys) {
        s_err(errbuf, errlen, "out of memory");
        return -1;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        size_t len = (size_t)(end - p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        const char *bar = memchr(p, '|', len);
        if (bar) { /* tcp://HOST:PORT|key=KEY */
            size_t klen = len - (size_t)(bar + 1 - p);
            char key[41] = "";
            if (klen == 44 && strncmp(bar + 1, "key=", 4) == 0) {
                memcpy(key, bar + 5, 40);
                key[40] = '\0';
            }
            if (!qkv_key_text(key)) {
                s_err(errbuf, errlen,
                      "bad endpoint '%.*s' (expected tcp://HOST:PORT or "
                      "tcp://HOST:PORT|key=KEY, KEY 40 Z85 characters)",
                      (int)len, p);
                return -1;
            }
            self->endpoint_keys[self->endpoint_count] = s_memdup(key, 40);
            if (!self->endpoint_keys[self->endpoint_count]) {
                s_err(errbuf, errlen, "out of memory");
                return -1;
            }
            len = (size_t)(bar - p);
        }
        if (len) {
            const char *sep = memchr(p, ':', len);
            if (len >= S_MAX_ENDPOINT || !sep || len < (size_t)(sep - p) + 4 ||
                sep[1] != '/' || sep[2] != '/') {
                s_err(errbuf, errlen,
                      "bad endpoint '%.*s' (expected tcp://HOST:PORT)",
                      (int)len, p);
                return -1;
            }
            char *copy = s_memdup(p, len);
            if (!copy) {
                s_err(errbuf, errlen, "out of memory");
                return -1;
            }
            self->endpoints[self->endpoint_count++] = copy;
        }
        p = *end ? end + 1 : end;
    }
    if (!self->endpoint_count) {
        s_err(errbuf, errlen, "no endpoint given");
        return -1;
    }
    return 0;
}

qkv_client_t *qkv_client_new(const char *endpoints,
                             const qkv_client_options_t *options, char *errbuf,
                             size_t errlen) {
    qkv_client_options_t opts;
    memset(&opts, 0, sizeof opts);
    if (options)
        opts = *options;
    if (!endpoints || opts.timeout_ms < 0 ||
        opts.batch_requests > QKV_CMSG_MAX_BATCH) {
        s_err(errbuf, errlen, "invalid %s",
              !endpoints ? "endpoints" : "options");
        return NULL;
    }
    if (opts.client_id > QKV_CLIENT_ID_MAX ||
        opts.first_seq > QKV_CLIENT_ID_MAX) {
        s_err(errbuf, errlen, "invalid options: %s above 2^53-1",
              opts.client_id > QKV_CLIENT_ID_MAX ? "client_id" : "first_seq");
        return NULL;
    }
    qkv_client_t *self = calloc(1, sizeof(*self));
    if (!self) {
        s_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    s_list_init(&self->outstanding);
    s_list_init(&self->queue);
    s_list_init(&self->done);
    self->timeout_ms = opts.timeout_ms ? opts.timeout_ms : S_DEFAULT_TIMEOUT_MS;
    self->retry_ms = opts.retry_ms ? opts.retry_ms : S_DEFAULT_RETRY_MS;
    self->max_redirects =
        opts.max_redirects ? opts.max_redirects : S_DEFAULT_REDIRECTS;
    self->max_inflight =
        opts.max_inflight ? opts.max_inflight : S_DEFAULT_INFLIGHT;
    self->batch_requests =
        opts.batch_requests ? opts.batch_requests : S_DEFAULT_BATCH;
    self->batch_bytes =
        opts.batch_bytes ? opts.batch_bytes : S_DEFAULT_BATCH_BYTES;
    self->max_frame_bytes =
        opts.max_frame_bytes ? opts.max_frame_bytes : S_DEFAULT_FRAME_BYTES;
    self->client_id = opts.client_id ? opts.client_id : s_random_id();
    self->next_seq = opts.first_seq ? opts.first_seq : 1;
    self->next_id = 1;
    if (s_parse_endpoints(self, endpoints, errbuf, errlen) != 0)
        goto failed;
    const char *keys[2] = {opts.curve_secret_key, opts.curve_server_key};
    char *slots[2] = {self->curve_secret, self->curve_server};
    for (int k = 0; k < 2; k++)
        if (keys[k] && *keys[k]) {
            if (!qkv_key_text(keys[k])) {
                s_err(errbuf, errlen,
                      "invalid options: %s is not 40 Z85 characters",
                      k ? "curve_server_key" : "curve_secret_key");
                goto failed;
            }
            memcpy(slots[k], keys[k], 41);
        }
    qkv_decoder_limits_t limits = {self->max_frame_bytes, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    self->enc = qkv_encoder_new();
    self->dec = qkv_decoder_new(&limits);
    self->ctx = zmq_ctx_new();
    if (!self->enc || !self->dec || !self->ctx) {
        s_err(errbuf, errlen, "out of memory");
        goto failed;
    }
    if (zmq_ctx_set(self->ctx, ZMQ_IO_THREADS, 1) != 0 ||
        zmq_ctx_set(self->ctx, ZMQ_BLOCKY, 0) != 0) {
        s_err(errbuf, errlen, "zmq_ctx_set: %s", zmq_strerror(errno));
        goto failed;
    }
    if (s_switch(self, self->endpoints[0]) != 0) {
        s_err(errbuf, errlen, "%s", self->errmsg);
        goto failed;
    }
    return self;
failed:
    qkv_client_destroy(&self);
    return NULL;
}

void qkv_client_destroy(qkv_client_t **self_p) {
    if (!self_p || !*self_p)
        return;
    qkv_client_t *self = *self_p;
    s_list_t *lists[] = {&self->outstanding, &self->done};
    for (size_t i = 0; i < 2; i++) {
        s_link_t *l = lists[i]->head.next;
        while (l && l != &lists[i]->head) {
            s_req_t *req = S_REQ_OF(l, by_deadline);
            l = l->next;
            s_req_free(req);
        }
    }
    free(self->map.keys);
    free(self->map.vals);
    if (self->sock)
        zmq_close(self->sock);
    if (self->monitor)
        zmq_close(self->monitor);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    for (size_t i = 0; i < self->endpoint_count; i++) {
        free(self->endpoints[i]);
        free(self->endpoint_keys[i]);
    }
    free(self->endpoints);
    free(self->endpoint_keys);
    explicit_bzero(self->curve_secret, sizeof(self->curve_secret));
    free(self->current);
    qkv_encoder_destroy(&self->enc);
    qkv_decoder_destroy(&self->dec);
    free(self);
    *self_p = NULL;
}

const char *qkv_client_errmsg(const qkv_client_t *self) {
    return self->errmsg;
}

const char *qkv_client_endpoint(const qkv_client_t *self) {
    return self->current;
}

void qkv_client_stats(const qkv_client_t *self, qkv_client_stats_t *stats) {
    *stats = self->stats;
}

void qkv_client_set_timeout(qkv_client_t *self, int timeout_ms) {
    if (timeout_ms > 0)
        self->timeout_ms = timeout_ms;
}

uint64_t qkv_client_id(const qkv_client_t *self) {
    return self->client_id;
}

uint64_t qkv_client_next_seq(const qkv_client_t *self) {
    return self->next_seq;
}

int qkv_client_set_next_seq(qkv_client_t *self, uint64_t seq) {
    if (seq == 0 || seq > QKV_CLIENT_ID_MAX) {
        s_set_error(self, "client_seq must be 1 to 2^53-1");
        return QKV_EINVAL;
    }
    self->next_seq = seq;
    return 0;
}

/*  ---------------------------------------------------------------------
    Blocking calls */

/* Checks a key (and value) against the protocol's limits. */
static int s_check(qkv_client_t *self, const void *key, size_t key_len,
                   const void *value, size_t value_len) {
    if (!key || !key_len || (value_len && !value)) {
        s_set_error(self, "%s", !key || !key_len ? "empty key" : "no value");
        return QKV_EINVAL;
    }
    if (key_len > QKV_CMSG_MAX_KEY || value_len > QKV_CMSG_MAX_VALUE) {
        s_set_error(self, "%s larger than the protocol allows",
                    key_len > QKV_CMSG_MAX_KEY ? "key" : "value");
        return QKV_ETOOLARGE;
    }
    return 0;
}

/* Runs req as a blocking call and copies its answer to result. */
static int s_call_result(qkv_client_t *self, s_req_t *req,
                         qkv_result_t *result) {
    int rc = s_call(self, req);
    if (result) {
        memset(result, 0, sizeof(*result));
        result->index = req->index;
        result->seq = req->seq;
        result->deleted = req->deleted;
        if (rc == 0) {
            result->value = req->value;
            result->value_len = req->value_len;
            req->value = NULL;
        }
    }
    s_req_free(req);
    return rc;
}

static s_req_t *s_new_or_fail(qkv_client_t *self, qkv_cop_t op, const void *key,
                              size_t key_len, const void *value,
                              size_t value_len) {
    s_req_t *req = s_req_new(op, key, key_len, value, value_len);
    if (!req)
        s_set_error(self, "out of memory");
    return req;
}

int qkv_put(qkv_client_t *self, const void *key, size_t key_len,
            const void *value, size_t value_len, qkv_result_t *result) {
    if (result)
        memset(result, 0, sizeof(*result));
    int rc = s_check(self, key, key_len, value, value_len);
    if (rc != 0)
        return rc;
    s_req_t *req =
        s_new_or_fail(self, QKV_COP_PUT, key, key_len, value, value_len);
    return req ? s_call_result(self, req, result) : QKV_ENOMEM;
}

int qkv_get(qkv_client_t *self, const void *key, size_t key_len,
            uint64_t min_index, qkv_result_t *result) {
    if (result)
        memset(result, 0, sizeof(*result));
    int rc = s_check(self, key, key_len, NULL, 0);
    if (rc != 0)
        return rc;
    s_req_t *req = s_new_or_fail(self, QKV_COP_GET, key, key_len, NULL, 0);
    if (!req)
        return QKV_ENOMEM;
    req->min_index = min_index;
    return s_call_result(self, req, result);
}

int qkv_delete(qkv_client_t *self, const void *key, size_t key_len,
               qkv_result_t *result) {
    if (result)
        memset(result, 0, sizeof(*result));
    int rc = s_check(self, key, key_len, NULL, 0);
    if (rc != 0)
        return rc;
    s_req_t *req = s_new_or_fail(self, QKV_COP_DELETE, key, key_len, NULL, 0);
    return req ? s_call_result(self, req, result) : QKV_ENOMEM;
}

int qkv_reset(qkv_client_t *self, qkv_result_t *result) {
    if (result)
        memset(result, 0, sizeof(*result));
    s_req_t *req = s_new_or_fail(self, QKV_COP_RESET, NULL, 0, NULL, 0);
    return req ? s_call_result(self, req, result) : QKV_ENOMEM;
}

int qkv_health(qkv_client_t *self, qkv_health_t *health) {
    memset(health, 0, sizeof(*health));
    s_req_t *req = s_new_or_fail(self, QKV_COP_HEALTH, NULL, 0, NULL, 0);
    if (!req)
        return QKV_ENOMEM;
    int rc = s_call(self, req);
    if (rc == 0) {
        *health = req->health;
        memset(&req->health, 0, sizeof req->health);
    }
    s_req_free(req);
    return rc;
}

void qkv_health_clear(qkv_health_t *health) {
    if (!health)
        return;
    free(health->role);
    free(health->node_id);
    free(health->replication_id);
    free(health->error);
    for (size_t i = 0; i < health->follower_count; i++) {
        free(health->followers[i].id);
        free(health->followers[i].endpoint);
    }
    free(health->followers);
    memset(health, 0, sizeof(*health));
}

/*  ---------------------------------------------------------------------
    Dump iterator */

struct qkv_dump_t {
    qkv_client_t *client;   /* not owned */
    uint64_t min_index;     /* every chunk waits for it */
    uint64_t limit;         /* keys per chunk, 0 = node's default */
    uint64_t cursor;        /* of the next chunk */
    char *origin;           /* endpoint that handed out cursor; NULL when
                               unknown (the handle moved as it came) */
    bool started;           /* the first chunk came */
    bool finished;          /* the last chunk came */
    uint64_t applied_index; /* of the first chunk */
    qkv_item_t *items;      /* the current chunk (one allocation) */
    size_t count;           /* items in it */
    size_t pos;             /* next item to hand out */
};

qkv_dump_t *qkv_dump_new(qkv_client_t *client, uint64_t min_index,
                         size_t limit) {
    qkv_dump_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->client = client;
    self->min_index = min_index;
    self->limit = limit;
    return self;
}

int qkv_dump_next(qkv_dump_t *self, const qkv_item_t **item) {
    qkv_client_t *client = self->client;
    *item = NULL;
    while (self->pos == self->count) {
        if (self->finished)
            return 0;
        if (self->limit > QKV_CMSG_MAX_DUMP_LIMIT) {
            s_set_error(client, "dump limit above %d", QKV_CMSG_MAX_DUMP_LIMIT);
            return QKV_EINVAL;
        }
        if (self->cursor &&
            (!self->origin || strcmp(self->origin, client->current))) {
            s_set_error(client,
                        "dump cursor from %s is not valid on %s: start "
                        "the dump again",
                        self->origin ? self->origin : "an earlier connection",
                        client->current);
            return QKV_EBADREQ;
        }
        s_req_t *req = s_new_or_fail(client, QKV_COP_DUMP, NULL, 0, NULL, 0);
        if (!req)
            return QKV_ENOMEM;
        req->cursor = self->cursor;
        req->origin = self->origin;
        req->limit = self->limit;
        req->min_index = self->min_index;
        int rc = s_call(client, req);
        if (rc != 0) {
            s_req_free(req);
            return rc;
        }
        /* The cursor is the current node's, unless the handle moved on
           after the answer came (then whose it is stays unknown). */
        char *from = NULL;
        if (req->next && req->answer_gen == client->gen &&
            !(from = strdup(client->current))) {
            s_req_free(req);
            s_set_error(client, "out of memory");
            return QKV_ENOMEM;
        }
        free(self->origin);
        self->origin = from;
        free(self->items);
        self->items = req->items;
        self->count = req->item_count;
        self->pos = 0;
        req->items = NULL;
        if (!self->started)
            self->applied_index = req->applied_index;
        self->started = true;
        self->cursor = req->next;
        self->finished = req->next == 0;
        s_req_free(req);
    }
    *item = &self->items[self->pos++];
    return 0;
}

uint64_t qkv_dump_applied_index(const qkv_dump_t *self) {
    return self->applied_index;
}

void qkv_dump_destroy(qkv_dump_t **self_p) {
    if (!self_p || !*self_p)
        return;
    free((*self_p)->items);
    free((*self_p)->origin);
    free(*self_p);
    *self_p = NULL;
}

/*  ---------------------------------------------------------------------
    Pipelined calls */

static int s_submit(qkv_client_t *self, qkv_req_kind_t kind, qkv_cop_t op,
                    const void *key, size_t key_len, const void *value,
                    size_t value_len, uint64_t min_index, void *user,
                    uint64_t *id) {
    int rc = s_check(self, key, key_len, value, value_len);
    if (rc != 0)
        return rc;
    if (self->inflight >= self->max_inflight) {
        s_set_error(self, "%zu requests in flight: poll first", self->inflight);
        return QKV_EAGAIN;
    }
    s_req_t *req = s_new_or_fail(self, op, key, key_len, value, value_len);
    if (!req)
        return QKV_ENOMEM;
    req->kind = kind;
    req->user = user;
    req->min_index = min_index;
    rc = s_enqueue(self, req);
    if (rc != 0) {
        s_req_free(req);
        return rc;
    }
    self->inflight++;
    if (id)
        *id = req->id;
    /* Full frames go now; answers that came are taken in. Errors show up
       again at the next poll: the request is queued either way. */
    if (self->queue.count >= self->batch_requests ||
        self->queue_bytes >= self->batch_bytes) {
        if (s_send_queue(self, true) == 0)
            s_recv_ready(self);
    }
    return 0;
}

int qkv_submit_put(qkv_client_t *self, const void *key, size_t key_len,
                   const void *value, size_t value_len, void *user,
                   uint64_t *id) {
    return s_submit(self, QKV_REQ_PUT, QKV_COP_PUT, key, key_len, value,
                    value_len, 0, user, id);
}

int qkv_submit_get(qkv_client_t *self, const void *key, size_t key_len,
                   uint64_t min_index, void *user, uint64_t *id) {
    return s_submit(self, QKV_REQ_GET, QKV_COP_GET, key, key_len, NULL, 0,
                    min_index, user, id);
}

int qkv_submit_delete(qkv_client_t *self, const void *key, size_t key_len,
                      void *user, uint64_t *id) {
    return s_submit(self, QKV_REQ_DELETE, QKV_COP_DELETE, key, key_len, NULL, 0,
                    0, user, id);
}

int qkv_flush(qkv_client_t *self) {
    int rc = s_send_queue(self, false);
    return rc == 0 ? s_recv_ready(self) : rc;
}

static bool s_poll_done(qkv_client_t *self, void *arg) {
    (void)arg;
    return self->done.count > 0 || self->inflight == 0;
}

int qkv_poll(qkv_client_t *self, qkv_completion_t *out, size_t max,
             int timeout_ms) {
    if (max && !out)
        return QKV_EINVAL;
    if (max > INT_MAX)
        max = INT_MAX;
    int64_t until = timeout_ms < 0 ? -1 : qkv_now_us() + timeout_ms * 1000LL;
    int rc = s_run(self, until, s_poll_done, NULL);
    if (rc != 0)
        return rc;
    size_t n = 0;
    while (n < max && self->done.count) {
        s_link_t *l = s_list_first(&self->done);
        s_list_remove(&self->done, l);
        s_req_t *req = S_REQ_OF(l, by_deadline);
        qkv_completion_t *c = &out[n++];
        c->id = req->id;
        c->user = req->user;
        c->kind = req->kind;
        c->status = req->status;
        c->index = req->index;
        c->seq = req->seq;
        c->deleted = req->deleted;
        c->value = req->value;
        c->value_len = req->value_len;
        req->value = NULL;
        s_req_free(req);
    }
    return (int)n;
}

size_t qkv_outstanding(const qkv_client_t *self) {
    return self->inflight + self->done.count;
}
