/*  ckit.c - the client suites' helpers (see ckit.h).
 */
#include "ckit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void ckit_endpoint(const kit_node_t *node, char *buf, size_t size) {
    snprintf(buf, size, "tcp://127.0.0.1:%d", node->client_port);
}

qkv_client_t *ckit_client(const char *endpoints,
                          const qkv_client_options_t *options) {
    char err[256] = "";
    qkv_client_t *client = qkv_client_new(endpoints, options, err, sizeof err);
    if (!client)
        fprintf(stderr, "\n  qkv_client_new(%s): %s\n", endpoints, err);
    return client;
}

/* Health through the client port, until it answers. */
static bool s_answers(void *arg) {
    qkv_client_options_t options = {.timeout_ms = 1000};
    qkv_client_t *client = ckit_client(arg, &options);
    qkv_health_t health;
    bool ok = client && qkv_health(client, &health) == 0;
    if (ok)
        qkv_health_clear(&health);
    qkv_client_destroy(&client);
    return ok;
}

/* The leader sees every follower connected: each has heard from it, and
   so knows where to send a client that writes to it. */
static bool s_all_connected(void *arg) {
    qkv_client_options_t options = {.timeout_ms = 1000};
    qkv_client_t *client = ckit_client(arg, &options);
    qkv_health_t health;
    bool ok = client && qkv_health(client, &health) == 0;
    if (ok) {
        for (size_t i = 0; i < health.follower_count; i++)
            ok = ok && health.followers[i].connected;
        qkv_health_clear(&health);
    }
    qkv_client_destroy(&client);
    return ok;
}

int ckit_cluster_start(kit_cluster_t *cluster, size_t followers,
                       int write_quorum, const char *const *leader_args) {
    kit_cluster_opts_t opts = {.followers = followers,
                               .write_quorum = write_quorum,
                               .leader_args = leader_args};
    if (kit_cluster_start(cluster, &opts) != 0)
        return -1;
    for (size_t i = 0; i < cluster->count; i++) {
        char endpoint[64];
        ckit_endpoint(&cluster->nodes[i], endpoint, sizeof endpoint);
        if (!kit_poll_until(CKIT_WAIT_MS, s_answers, endpoint)) {
            fprintf(stderr, "ckit: %s's client port %s does not answer\n",
                    cluster->nodes[i].name, endpoint);
            kit_cluster_stop(cluster);
            return -1;
        }
    }
    char leader[64];
    ckit_endpoint(&cluster->nodes[0], leader, sizeof leader);
    if (!kit_poll_until(CKIT_WAIT_MS, s_all_connected, leader)) {
        fprintf(stderr, "ckit: the followers did not all connect\n");
        kit_cluster_stop(cluster);
        return -1;
    }
    return 0;
}

static int s_item_cmp(const void *x, const void *y) {
    const qkv_item_t *a = x, *b = y;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static char *s_dup(const char *s, size_t len) {
    char *copy = malloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

int ckit_snapshot(const char *endpoint, uint64_t min_index,
                  ckit_snapshot_t *snap) {
    memset(snap, 0, sizeof *snap);
    qkv_client_options_t options = {.timeout_ms = CKIT_WAIT_MS};
    qkv_client_t *client = ckit_client(endpoint, &options);
    if (!client)
        return QKV_EINVAL;
    qkv_dump_t *dump = qkv_dump_new(client, min_index, 0);
    size_t cap = 0;
    const qkv_item_t *item;
    int rc;
    while ((rc = qkv_dump_next(dump, &item)) == 0 && item) {
        if (snap->count == cap) {
            cap = cap ? cap * 2 : 1024;
            snap->items = realloc(snap->items, cap * sizeof *snap->items);
        }
        qkv_item_t *copy = &snap->items[snap->count++];
        *copy = *item;
        copy->key = s_dup(item->key, item->key_len);
        copy->value = s_dup(item->value, item->value_len);
    }
    snap->applied_index = qkv_dump_applied_index(dump);
    if (rc != 0)
        fprintf(stderr, "\n  dump of %s: %s: %s\n", endpoint, qkv_strerror(rc),
                qkv_client_errmsg(client));
    qkv_dump_destroy(&dump);
    qkv_client_destroy(&client);
    if (rc != 0) {
        ckit_snapshot_free(snap);
        return rc;
    }
    if (snap->count)
        qsort(snap->items, snap->count, sizeof *snap->items, s_item_cmp);
    return 0;
}

void ckit_snapshot_free(ckit_snapshot_t *snap) {
    for (size_t i = 0; i < snap->count; i++) {
        free((char *)snap->items[i].key);
        free((char *)snap->items[i].value);
    }
    free(snap->items);
    memset(snap, 0, sizeof *snap);
}

bool ckit_snapshot_same(const ckit_snapshot_t *a, const ckit_snapshot_t *b) {
    size_t n = a->count < b->count ? a->count : b->count;
    for (size_t i = 0; i < n; i++) {
        const qkv_item_t *x = &a->items[i], *y = &b->items[i];
        if (s_item_cmp(x, y) != 0 || x->seq != y->seq ||
            x->value_len != y->value_len ||
            memcmp(x->value, y->value, x->value_len) != 0) {
            fprintf(stderr,
                    "\n  entry %zu differs: \"%.60s\" = \"%.60s\" seq %llu "
                    "vs \"%.60s\" = \"%.60s\" seq %llu\n",
                    i, x->key, x->value, (unsigned long long)x->seq, y->key,
                    y->value, (unsigned long long)y->seq);
            return false;
        }
    }
    if (a->count != b->count) {
        fprintf(stderr, "\n  %zu entries vs %zu\n", a->count, b->count);
        return false;
    }
    return true;
}

const qkv_item_t *ckit_snapshot_find(const ckit_snapshot_t *snap,
                                     const char *key) {
    qkv_item_t probe = {.key = key, .key_len = strlen(key)};
    if (!snap->count)
        return NULL;
    return bsearch(&probe, snap->items, snap->count, sizeof *snap->items,
                   s_item_cmp);
}

typedef struct {
    const char *endpoint;
    uint64_t index;
} s_settle_t;

static bool s_settled(void *arg) {
    s_settle_t *s = arg;
    qkv_client_options_t options = {.timeout_ms = 2000};
    qkv_client_t *client = ckit_client(s->endpoint, &options);
    qkv_health_t h;
    bool ok = client && qkv_health(client, &h) == 0;
    if (ok) {
        ok = h.commit_index == h.last_index && h.applied_index == h.last_index;
        s->index = h.last_index;
        qkv_health_clear(&h);
    }
    qkv_client_destroy(&client);
    return ok;
}

bool ckit_settled(const char *endpoint, int timeout_ms, uint64_t *index) {
    s_settle_t s = {endpoint, 0};
    bool ok = kit_poll_until(timeout_ms, s_settled, &s);
    if (index)
        *index = s.index;
    return ok;
}

/*  ---------------------------------------------------------------------
    Fake nodes */

struct ckit_fake_t {
    void *ctx;              /* its own ZeroMQ context */
    void *sock;             /* ROUTER; used by the thread only once started */
    char endpoint[64];      /* where it listens */
    ckit_answer_fn *answer; /* what to say */
    void *arg;              /* for answer */
    qkv_encoder_t *enc;     /* answer frames */
    qkv_decoder_t *dec;     /* request frames */
    pthread_t thread;       /* serves sock */
    bool started;           /* thread runs */
    atomic_bool stop;       /* asks the thread to end */
};

/* Answers one [routing id][frame] message. */
static void s_fake_serve(ckit_fake_t *self, zmq_msg_t *peer, const void *data,
                         size_t size) {
    const qkv_creq_t *reqs;
    size_t n = 0, count = 0;
    const char *reason = NULL;
    int rc = qkv_cdec_requests(self->dec, data, size, &reqs, &n, &reason);
    qkv_cenc_begin_open(self->enc);
    if (rc != 0) {
        const char *why = reason ? reason : "out of memory";
        qkv_cres_t res = {.id = 0,
                          .status = QKV_CS_BAD_REQUEST,
                          .message = why,
                          .message_len = strlen(why)};
        qkv_cenc_result(self->enc, &res);
        count = 1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        qkv_cres_t res;
        memset(&res, 0, sizeof res);
        res.id = reqs[i].id;
        if (self->answer(&reqs[i], &res, self->arg)) {
            qkv_cenc_result(self->enc, &res);
            count++;
        }
    }
    qkv_cenc_end_open(self->enc, count);
    size_t out_size;
    const void *out = qkv_encoder_data(self->enc, &out_size);
    if (!count || !out)
        return;
    zmq_msg_send(peer, self->sock, ZMQ_SNDMORE);
    zmq_send(self->sock, out, out_size, 0);
}

static void *s_fake_run(void *arg) {
    ckit_fake_t *self = arg;
    while (!atomic_load(&self->stop)) {
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 20) <= 0)
            continue;
        zmq_msg_t peer, body;
        zmq_msg_init(&peer);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&peer, self->sock, 0) >= 0 && zmq_msg_more(&peer) &&
            zmq_msg_recv(&body, self->sock, 0) >= 0 && !zmq_msg_more(&body))
            s_fake_serve(self, &peer, zmq_msg_data(&body), zmq_msg_size(&body));
        zmq_msg_close(&body);
        zmq_msg_close(&peer);
    }
    return NULL;
}

ckit_fake_t *ckit_fake_new(ckit_answer_fn *answer, void *arg) {
    ckit_fake_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->answer = answer;
    self->arg = arg;
    atomic_init(&self->stop, false);
    qkv_decoder_limits_t limits = {64u << 20, QKV_CMSG_MAX_KEY,
                                   QKV_CMSG_MAX_VALUE};
    self->enc = qkv_encoder_new();
    self->dec = qkv_decoder_new(&limits);
    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    int linger = 0;
    size_t len = sizeof self->endpoint;
    if (!self->enc || !self->dec || !self->sock ||
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(self->sock, "tcp://127.0.0.1:*") ||
        zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) ||
        pthread_create(&self->thread, NULL, s_fake_run, self)) {
        fprintf(stderr, "\n  ckit_fake_new: %s\n", zmq_strerror(zmq_errno()));
        ckit_fake_destroy(&self);
        return NULL;
    }
    self->started = true;
    return self;
}

const char *ckit_fake_endpoint(const ckit_fake_t *self) {
    return self->endpoint;
}

void ckit_fake_destroy(ckit_fake_t **self_p) {
    if (!self_p || !*self_p)
        return;
    ckit_fake_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, true);
        pthread_join(self->thread, NULL);
    }
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    qkv_encoder_destroy(&self->enc);
    qkv_decoder_destroy(&self->dec);
    free(self);
    *self_p = NULL;
}
