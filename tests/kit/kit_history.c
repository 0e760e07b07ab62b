/*  kit_history.c - a history of registers recorded against a cluster
    while a suite does harm to it, then checked for linearizability
    (kit.h, "Histories").

    A writer puts new values (each written once) to a few registers on
    whichever node leads, following 307s; a reader reads them round robin
    from every node. Every write is recorded with its call and return
    time: a 200 happened; no answer once sent (a timeout, a broken
    connection), or 503 quorum_not_reached or leader_changed, has an
    unknown outcome; anything else (no connection at all, a redirect,
    no_leader) did not happen and is left out. A read is recorded when a
    leader answered it (a follower's answer carries follower_id). Follower
    reads may be stale by design: each is only checked to show a value
    some recorded write wrote, sent before the read returned - never one
    of a write that did not happen, nor one from the future.
*/
#include "kit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_REGISTERS 6
#define S_MAX_OPS 200000

struct kit_history_t {
    kit_cluster_t *cluster;
    long timeout_ms;
    pthread_mutex_t mutex;
    kit_op_t *ops;
    size_t count;
    kit_op_t *follower; /* follower reads */
    size_t follower_count;
    atomic_bool stop;
    atomic_uint seq; /* written values: unique */
    pthread_t writer, reader;
};

static int64_t s_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_record(kit_history_t *h, const kit_op_t *op) {
    pthread_mutex_lock(&h->mutex);
    if (h->count < S_MAX_OPS)
        h->ops[h->count++] = *op;
    else
        free((char *)op->value);
    pthread_mutex_unlock(&h->mutex);
}

static const char *s_register(unsigned i) {
    static const char *names[S_REGISTERS] = {"reg0", "reg1", "reg2",
                                             "reg3", "reg4", "reg5"};
    return names[i % S_REGISTERS];
}

/* One write to node at; returns the node to write to next. */
static size_t s_write(kit_history_t *h, size_t at) {
    kit_cluster_t *c = h->cluster;
    unsigned n = atomic_fetch_add(&h->seq, 1);
    char value[24];
    snprintf(value, sizeof value, "v%u", n);
    kit_op_t op = {s_register(n), true, strdup(value), false, s_now_us(), 0};
    long status = 0;
    char *location = NULL;
    json_t *r = kit_qkv_write(c->nodes[at].url, "/put", op.key, value, &status,
                              &location);
    const char *word = kit_json_str(r, "status");
    if (status == 200)
        op.return_us = s_now_us();
    else if ((status == 0 && !kit_http_not_sent()) ||
             (status == 503 && word &&
              (!strcmp(word, "quorum_not_reached") ||
               !strcmp(word, "leader_changed"))))
        op.return_us = INT64_MAX;
    json_decref(r);
    if (op.return_us)
        s_record(h, &op);
    else
        free((char *)op.value);
    size_t next = kit_cluster_follow(c, at, status, location);
    free(location);
    return next;
}

static void *s_writer(void *arg) {
    kit_history_t *h = arg;
    kit_http_set_timeout_ms(h->timeout_ms);
    kit_http_set_quiet(true);
    kit_http_set_fresh(true); /* a failed connect: never sent */
    size_t at = 0;
    while (!atomic_load(&h->stop))
        at = s_write(h, at);
    return NULL;
}

static void *s_reader(void *arg) {
    kit_history_t *h = arg;
    kit_http_set_timeout_ms(h->timeout_ms);
    kit_http_set_quiet(true);
    size_t nodes = h->cluster->count;
    for (unsigned n = 0; !atomic_load(&h->stop); n++) {
        kit_op_t op = {
            s_register(n / (unsigned)nodes), false, NULL, true, s_now_us(), 0};
        long status = 0;
        json_t *r = kit_qkv_read(h->cluster->nodes[n % nodes].url, "/get",
                                 op.key, &status);
        op.return_us = s_now_us();
        const char *value = kit_json_str(r, "value");
        if (status == 200 && value && !json_object_get(r, "follower_id")) {
            op.value = strdup(value);
            s_record(h, &op);
        } else if (status == 200 && value && h->follower_count < S_MAX_OPS) {
            op.value = strdup(value);
            h->follower[h->follower_count++] = op; /* this thread's alone */
        }
        json_decref(r);
    }
    return NULL;
}

kit_history_t *kit_history_start(kit_cluster_t *cluster, long timeout_ms) {
    kit_history_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cluster = cluster;
    h->timeout_ms = timeout_ms;
    pthread_mutex_init(&h->mutex, NULL);
    h->ops = calloc(S_MAX_OPS, sizeof(*h->ops));
    h->follower = calloc(S_MAX_OPS, sizeof(*h->follower));
    if (!h->ops || !h->follower) {
        free(h->ops);
        free(h->follower);
        free(h);
        return NULL;
    }
    /* every register written once first, so that reads find them */
    size_t at = 0;
    kit_http_set_fresh(true);
    for (int tries = 0; atomic_load(&h->seq) < S_REGISTERS && tries < 1000;
         tries++)
        at = s_write(h, at);
    kit_http_set_fresh(false);
    if (pthread_create(&h->writer, NULL, s_writer, h) != 0) {
        free(h->ops);
        free(h);
        return NULL;
    }
    if (pthread_create(&h->reader, NULL, s_reader, h) != 0) {
        atomic_store(&h->stop, true);
        pthread_join(h->writer, NULL);
        free(h->ops);
        free(h);
        return NULL;
    }
    return h;
}

/* Every follower read shows a value a recorded write wrote (values are
   "v" and the write's number), sent before the read returned. Returns the
   reads that do not. */
static size_t s_check_follower_reads(const kit_history_t *h) {
    unsigned seq = atomic_load(&h->seq);
    int64_t *sent = calloc(seq ? seq : 1, sizeof(*sent)); /* 0: no write */
    size_t bad = 0;
    for (size_t i = 0; sent && i < h->count; i++)
        if (h->ops[i].write) {
            unsigned n = (unsigned)strtoul(h->ops[i].value + 1, NULL, 10);
            if (n < seq)
                sent[n] = h->ops[i].call_us;
        }
    for (size_t i = 0; sent && i < h->follower_count; i++) {
        const kit_op_t *r = &h->follower[i];
        char *end = NULL;
        unsigned long n = strtoul(r->value + 1, &end, 10);
        bool ok = r->value[0] == 'v' && end && !*end && n < seq && sent[n] &&
                  sent[n] < r->return_us;
        if (!ok && bad++ < 5)
            fprintf(stderr,
                    "\n  a follower read of %s showed %s, which no "
                    "recorded write sent before it\n",
                    r->key, r->value);
    }
    printf("; %zu follower reads, %s", h->follower_count,
           !sent ? "not checked (out of memory)"
           : bad ? "some of values never written"
                 : "each of a value written before it");
    bool checked = sent != NULL;
    free(sent);
    return checked ? bad : 0;
}

int kit_history_check(kit_history_t **h_p) {
    kit_history_t *h = *h_p;
    *h_p = NULL;
    atomic_store(&h->stop, true);
    pthread_join(h->writer, NULL);
    pthread_join(h->reader, NULL);
    size_t writes = 0, unknown = 0, reads = 0;
    for (size_t i = 0; i < h->count; i++) {
        writes += h->ops[i].write;
        unknown += h->ops[i].return_us == INT64_MAX;
        reads += !h->ops[i].write;
    }
    const char *bad = NULL;
    int rc = kit_linearizable(h->ops, h->count, &bad);
    printf("\n  history: %zu writes (%zu of unknown outcome), %zu leader "
           "reads: %s",
           writes, unknown, reads,
           rc == 1    ? "linearizable"
           : rc == 0  ? "NOT linearizable"
           : rc == -2 ? "undecided (search budget)"
                      : "out of memory");
    if (rc == 0 || rc == -2)
        fprintf(stderr, "\n  register %s: %s\n", bad,
                rc ? "undecided" : "not linearizable");
    const char *dump = getenv("QKV_HISTORY_DUMP");
    FILE *f = rc != 1 && dump ? fopen(dump, "w") : NULL;
    for (size_t i = 0; f && i < h->count; i++) {
        const kit_op_t *o = &h->ops[i];
        if (bad && !strcmp(o->key, bad))
            fprintf(f, "%s %s %lld %lld\n", o->write ? "W" : "R",
                    o->value ? o->value : "-", (long long)o->call_us,
                    o->return_us == INT64_MAX ? -1LL : (long long)o->return_us);
    }
    if (f)
        fclose(f);
    if (writes < 10 || reads < 10) {
        fprintf(stderr, "\n  too short a history to tell\n");
        rc = 0;
    }
    if (s_check_follower_reads(h) != 0 && rc == 1)
        rc = 0;
    for (size_t i = 0; i < h->count; i++)
        free((char *)h->ops[i].value);
    for (size_t i = 0; i < h->follower_count; i++)
        free((char *)h->follower[i].value);
    free(h->follower);
    free(h->ops);
    pthread_mutex_destroy(&h->mutex);
    free(h);
    return rc;
}
