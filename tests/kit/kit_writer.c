/*  kit_writer.c - a writer that follows the leader and keeps what was
    acknowledged (kit.h, "Writers that follow the leader"), for the
    suites that kill, pause and cut off nodes under writes.
*/
#include "kit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_KEYS 100000
#define S_KEY_BYTES 32

struct kit_writer_t {
    kit_cluster_t *cluster;
    char prefix[16];
    long timeout_ms;
    atomic_bool stop;
    char (*acked)[S_KEY_BYTES];
    atomic_size_t count;
    size_t refused;
    pthread_t thread;
};

size_t kit_cluster_follow(const kit_cluster_t *cluster, size_t at, long status,
                          const char *location) {
    if (status == 307 && location) {
        for (size_t i = 0; i < cluster->count; i++)
            if (!strncmp(location, cluster->nodes[i].url,
                         strlen(cluster->nodes[i].url)))
                return i;
        return at;
    }
    if (status == 200)
        return at;
    struct timespec ts = {0, 10 * 1000000L}; /* a moment: an election */
    nanosleep(&ts, NULL);
    return (at + 1) % cluster->count;
}

static void *s_run(void *arg) {
    kit_writer_t *w = arg;
    kit_http_set_timeout_ms(w->timeout_ms);
    kit_http_set_quiet(true);
    size_t at = 0;
    for (unsigned n = 0;
         !atomic_load(&w->stop) && atomic_load(&w->count) < S_MAX_KEYS; n++) {
        char key[S_KEY_BYTES];
        snprintf(key, sizeof key, "%s%u", w->prefix, n);
        for (int attempt = 0; attempt < 40 && !atomic_load(&w->stop);
             attempt++) {
            long status = 0;
            char *location = NULL;
            json_t *r = kit_qkv_write(w->cluster->nodes[at].url, "/put", key,
                                      key, &status, &location);
            json_decref(r);
            at = kit_cluster_follow(w->cluster, at, status, location);
            free(location);
            if (status == 200) {
                memcpy(w->acked[atomic_load(&w->count)], key, sizeof key);
                atomic_fetch_add(&w->count, 1);
                break;
            }
            w->refused += status != 307;
        }
    }
    return NULL;
}

kit_writer_t *kit_writer_start(kit_cluster_t *cluster, const char *prefix,
                               long timeout_ms) {
    kit_writer_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cluster = cluster;
    w->timeout_ms = timeout_ms;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    w->acked = calloc(S_MAX_KEYS, sizeof(*w->acked));
    if (!w->acked || pthread_create(&w->thread, NULL, s_run, w) != 0) {
        free(w->acked);
        free(w);
        return NULL;
    }
    return w;
}

size_t kit_writer_count(const kit_writer_t *w) {
    return atomic_load(&w->count);
}

size_t kit_writer_stop(kit_writer_t *w) {
    if (!atomic_exchange(&w->stop, true))
        pthread_join(w->thread, NULL);
    return atomic_load(&w->count);
}

size_t kit_writer_refused(const kit_writer_t *w) {
    return w->refused;
}

size_t kit_writer_missing(const kit_writer_t *w, const kit_node_t *node) {
    long status = 0;
    json_t *dump = kit_qkv_dump(node->url, &status);
    json_t *entries = json_object_get(dump, "entries");
    size_t missing = 0, count = atomic_load(&w->count);
    for (size_t k = 0; k < count; k++) {
        const char *v =
            kit_json_str(json_object_get(entries, w->acked[k]), "value");
        if ((!v || strcmp(v, w->acked[k]) != 0) && missing++ < 5)
            fprintf(stderr, "\n  %s lacks acknowledged key %s", node->name,
                    w->acked[k]);
    }
    json_decref(dump);
    return status == 200 ? missing : count;
}

void kit_writer_free(kit_writer_t **w_p) {
    kit_writer_t *w = *w_p;
    if (!w)
        return;
    kit_writer_stop(w);
    free(w->acked);
    free(w);
    *w_p = NULL;
}
