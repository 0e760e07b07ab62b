/*  kit_curve.c - CURVE pieces for the cluster suites (kit_curve.h). */
#include "kit_curve.h"
#include "qkv_config.h"
#include "qkv_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int kit_keypair(kit_keypair_t *p, const char *dir, const char *name) {
    if (zmq_curve_keypair(p->pub, p->sec) != 0)
        return -1;
    if (!dir || !name)
        return 0;
    char path[700], err[800];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    return qkv_key_write(path, p->sec, true, "test", err, sizeof err);
}

int kit_node_keys(const char *suite, size_t count, kit_keypair_t *keys,
                  const char **pubs, char *dir, size_t dir_size) {
    snprintf(dir, dir_size, "%s/keys-%s-%d", kit_log_dir(), suite,
             (int)getpid());
    kit_rmtree(dir);
    if (mkdir(dir, 0700) != 0)
        return -1;
    for (size_t k = 0; k < count; k++) {
        char name[32];
        snprintf(name, sizeof name, "node%zu", k);
        if (kit_keypair(&keys[k], dir, name) != 0)
            return -1;
        pubs[k] = keys[k].pub;
    }
    return 0;
}

/* The PEERS the kit gives a cluster (s_setup_peers in kit_cluster.c),
   keys read back from node 0's --peers argument. */
static const char *s_peers_arg(const kit_cluster_t *c) {
    const kit_node_t *n = &c->nodes[0];
    for (int i = 1; i + 1 < n->argc; i++)
        if (!strcmp(n->argv[i], "--peers"))
            return n->argv[i + 1];
    return NULL;
}

int kit_cluster_facts(const kit_cluster_t *c, size_t k,
                      kit_cluster_facts_t *facts) {
    memset(facts, 0, sizeof *facts);
    long status = 0;
    json_t *h = kit_qkv_health(c->nodes[k].url, &status);
    const char *id = json_string_value(json_object_get(h, "cluster_id"));
    if (!id) {
        json_decref(h);
        return -1;
    }
    facts->cluster_id = strtoull(id, NULL, 16);
    facts->term = (uint64_t)json_integer_value(json_object_get(h, "term"));
    facts->last =
        (uint64_t)json_integer_value(json_object_get(h, "last_index"));
    json_decref(h);
    const char *peers = s_peers_arg(c);
    if (!peers)
        return -1;
    char *argv[] = {"qkv-node", "--peers",        (char *)peers, "--node-id",
                    "node0",    "--write-quorum", "1",           NULL};
    qkv_config_t cfg;
    char err[256];
    int rc = qkv_config_parse(&cfg, 7, argv, NULL, err, sizeof err);
    facts->hash = cfg.cluster_hash;
    qkv_config_clear(&cfg);
    return rc == 0 ? 0 : -1;
}

int kit_forge_leader(kit_forgery_t *f, const kit_cluster_facts_t *c,
                     bool commit) {
    memset(f, 0, sizeof *f);
    qkv_entry_t *entry = qkv_entry_new(QKV_OP_PUT, "forged", 6, "x", 1);
    for (int i = 0; i < 3; i++)
        f->encoders[i] = qkv_encoder_new();
    if (!entry || !f->encoders[0] || !f->encoders[1] || !f->encoders[2]) {
        free(entry);
        kit_forgery_free(f);
        return -1;
    }
    entry->term = c->term + 100;
    entry->index = c->last + 1;
    qkv_append_head_t head = {.cluster_id = c->cluster_id,
                              .term = c->term + 100,
                              .prev_index = c->last,
                              .prev_term = c->term,
                              .commit_index = commit ? c->last + 1 : c->last,
                              .cluster_hash = c->hash};
    qkv_encoder_append_begin(f->encoders[0], &head, 1);
    qkv_encoder_add_entry(f->encoders[0], entry);
    free(entry);
    qkv_vote_t vote = {.type = QKV_MSG_VOTE,
                       .cluster_id = c->cluster_id,
                       .term = c->term + 200,
                       .last_index = c->last + 1000,
                       .last_term = c->term + 100,
                       .cluster_hash = c->hash,
                       .transfer = true};
    qkv_encoder_vote(f->encoders[1], &vote);
    qkv_encoder_timeout_now(f->encoders[2], c->cluster_id, c->term + 300,
                            c->hash);
    for (int i = 0; i < 3; i++) {
        f->frames[i] = qkv_encoder_data(f->encoders[i], &f->sizes[i]);
        if (!f->frames[i]) {
            kit_forgery_free(f);
            return -1;
        }
    }
    return 0;
}

void kit_forgery_free(kit_forgery_t *f) {
    for (int i = 0; i < 3; i++)
        qkv_encoder_destroy(&f->encoders[i]);
}

void kit_send_as(int port, const char *as, const kit_keypair_t *p,
                 const char *server_pub, const void *const *frames,
                 const size_t *sizes, size_t count) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 200;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, as, strlen(as));
    if (p) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, p->pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, p->sec, 40);
    }
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    if (zmq_connect(s, endpoint) == 0)
        for (int round = 0; round < 50; round++) {
            s_sleep_ms(20);
            for (size_t i = 0; i < count; i++)
                zmq_send(s, frames[i], sizes[i], ZMQ_DONTWAIT);
        }
    s_sleep_ms(300);
    zmq_close(s);
    zmq_ctx_term(ctx);
}
