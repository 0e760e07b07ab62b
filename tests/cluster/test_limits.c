/*  test_limits.c - MAX_PENDING_WRITES and MAX_MEMORY on real qkv-node
    processes.

    Writes in flight: a leader and a follower whose link is delayed by
    300 ms, MAX_PENDING_WRITES 2, eight writers at once, each with a key of
    its own: every answer is 200 or 503 overloaded (with retry_after_ms);
    at least one of each; every 200 key is on both nodes, no overloaded
    key anywhere. Memory: a leader with MAX_MEMORY 16M takes 500 KB values
    until one is answered 507 insufficient_storage; that key is nowhere,
    a delete still passes, and once keys are deleted a put passes again.
*/
#include "kit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITERS 8

typedef struct {
    const char *url;
    char key[64];
    long status;
    char state[32]; /* the answer's status word */
    bool retry_after;
} s_writer_t;

/* True when base answers GET key 404. */
static bool s_absent(const char *base, const char *key) {
    long status = 0;
    json_t *r = kit_qkv_read(base, "/get", key, &status);
    json_decref(r);
    return status == 404;
}

static void *s_write(void *arg) {
    s_writer_t *w = arg;
    kit_http_set_fresh(true);
    json_t *r = kit_qkv_write(w->url, "/put", w->key, "v", &w->status, NULL);
    const char *word = json_string_value(json_object_get(r, "status"));
    snprintf(w->state, sizeof w->state, "%s", word ? word : "");
    w->retry_after =
        json_integer_value(json_object_get(r, "retry_after_ms")) > 0;
    json_decref(r);
    return NULL;
}

static void test_writes_in_flight(void) {
    const char *args[] = {"--max-pending-writes",
                          "2",
                          "--min-delay-ms",
                          "300",
                          "--max-delay-ms",
                          "300",
                          NULL};
    kit_cluster_opts_t opts = {
        .followers = 1, .write_quorum = 1, .node_args = args};
    kit_cluster_t c;
    CU_ASSERT_FATAL(kit_cluster_start(&c, &opts) == 0);
    char tag[9];
    kit_random_tag(tag);
    s_writer_t w[WRITERS];
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (s_writer_t){.url = c.nodes[0].url};
        snprintf(w[i].key, sizeof w[i].key, "inflight-%s-%d", tag, i);
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, s_write, &w[i]) == 0);
    }
    int ok = 0, overloaded = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        if (w[i].status == 200) {
            ok++;
        } else {
            CU_ASSERT_EQUAL(w[i].status, 503);
            CU_ASSERT_STRING_EQUAL(w[i].state, "overloaded");
            CU_ASSERT(w[i].retry_after);
            overloaded++;
        }
    }
    printf("\n  %d committed, %d overloaded ", ok, overloaded);
    CU_ASSERT(ok >= 1 && overloaded >= 1);
    for (int i = 0; i < WRITERS; i++)
        for (size_t n = 0; n < c.count; n++)
            CU_ASSERT(
                w[i].status == 200
                    ? kit_qkv_wait_holds(c.nodes[n].url, w[i].key, "v", 0, 5000)
                    : s_absent(c.nodes[n].url, w[i].key));
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static void test_memory_limit(void) {
    kit_node_t node;
    kit_node_init(&node, "memory", kit_free_port(), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", node.port);
    CU_ASSERT_FATAL(kit_node_args(&node, "--role", "leader", "--port", port,
                                  "--max-memory", "16M", NULL) == 0);
    CU_ASSERT_FATAL(kit_node_start(&node) == 0);
    CU_ASSERT_FATAL(kit_node_wait_healthy(&node, 20000) == 0);
    size_t size = 500 * 1000;
    char *value = malloc(size + 1);
    CU_ASSERT_FATAL(value != NULL);
    memset(value, 'm', size);
    value[size] = '\0';
    char tag[9], key[64];
    kit_random_tag(tag);
    int written = 0;
    long status = 200;
    json_t *r = NULL;
    while (status == 200 && written < 100) {
        snprintf(key, sizeof key, "mem-%s-%d", tag, written);
        json_decref(r);
        r = kit_qkv_write(node.url, "/put", key, value, &status, NULL);
        written += status == 200;
    }
    printf("\n  %d values of 500 KB taken, then %ld ", written, status);
    CU_ASSERT_EQUAL(status, 507);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "status")),
                           "insufficient_storage");
    json_decref(r);
    CU_ASSERT(written >= 10 && written < 40); /* 16 MiB: store and log */
    CU_ASSERT(s_absent(node.url, key));       /* nothing written */
    /* deletes pass; once the store holds less, puts pass again (the log
       keeps its entries until a snapshot, so delete several) */
    for (int i = 0; i < written; i++) {
        char gone[64];
        snprintf(gone, sizeof gone, "mem-%s-%d", tag, i);
        char body[128];
        snprintf(body, sizeof body, "{\"key\":\"%s\"}", gone);
        char url[300];
        snprintf(url, sizeof url, "%s/delete", node.url);
        kit_resp_t resp;
        CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, body, strlen(body), &resp),
                              0);
        CU_ASSERT_EQUAL(resp.status, 200);
        kit_resp_free(&resp);
    }
    r = kit_qkv_write(node.url, "/put", key, "small", &status, NULL);
    json_decref(r);
    CU_ASSERT_EQUAL(status, 200);
    free(value);
    CU_ASSERT_EQUAL(kit_node_stop(&node, 5000), 0);
    kit_node_free(&node);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {KIT_TEST(test_writes_in_flight),
                                       KIT_TEST(test_memory_limit),
                                       KIT_TESTS_END};
    return kit_add_suite("limits", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
