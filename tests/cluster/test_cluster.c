/*  test_cluster.c - a running cluster of six nodes through the REST API.

    Starts a leader and five followers (WRITE_QUORUM=3) as local processes,
    or, when QKV_TEST_NODES lists six base URLs (leader first), tests that
    cluster and starts nothing. Keys carry a random per-run prefix so the
    suite also runs against a cluster that holds data. Wherever replication
    is involved the suite polls up to a deadline; it never sleeps and hopes.
*/
#include "kit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES 6
#define REPL_WAIT_MS                                                           \
    20000 /* replication deadline for polls (ASan, 2 cores)                    \
           */

static kit_cluster_t s_cluster;
static char s_tag[9];

static const char *leader(void) {
    return s_cluster.nodes[0].url;
}

static const char *node_url(size_t i) {
    return s_cluster.nodes[i].url;
}

/* A key unique to this run: "t<tag>-<name>". */
static void key_of(char *key, size_t size, const char *name) {
    snprintf(key, size, "t%s-%s", s_tag, name);
}

/*  ---------------------------------------------------------------------
    Assertion helpers */

/* Writes key=value through route on the leader, expects 200 with every
   field, and returns seq and index. */
static void write_ok(const char *route, const char *key, const char *value,
                     uint64_t *seq, uint64_t *index) {
    long status;
    json_t *r = kit_qkv_write(leader(), route, key, value, &status, NULL);
    if (status != 200)
        fprintf(stderr, "\n  POST %s %s answered %ld\n", route, key, status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT(json_is_true(json_object_get(r, "ok")));
    KIT_ASSERT_STR(kit_json_str(r, "status"), "success");
    CU_ASSERT(kit_json_str(r, "key") != NULL &&
              strcmp(kit_json_str(r, "key"), key) == 0);
    CU_ASSERT(json_is_number(json_object_get(r, "latency")));
    CU_ASSERT(json_number_value(json_object_get(r, "latency")) >= 0);
    CU_ASSERT(kit_json_str(r, "message") != NULL);
    *seq = *index = 0;
    CU_ASSERT(kit_json_u64(r, "seq", seq));
    CU_ASSERT(kit_json_u64(r, "index", index));
    CU_ASSERT(*index > 0);
    json_decref(r);
}

/* Reads key on node i and expects value, seq and index (index 0: any). */
static void read_expect(size_t i, const char *route, const char *key,
                        const char *value, uint64_t seq, uint64_t index) {
    long status;
    json_t *r = kit_qkv_read(node_url(i), route, key, &status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    CU_ASSERT_FATAL(r != NULL);
    const char *got_key = kit_json_str(r, "key");
    const char *got_value = kit_json_str(r, "value");
    CU_ASSERT(got_key && strcmp(got_key, key) == 0);
    CU_ASSERT(got_value && strcmp(got_value, value) == 0);
    uint64_t got_seq = 0, got_index = 0;
    CU_ASSERT(kit_json_u64(r, "seq", &got_seq) && got_seq == seq);
    CU_ASSERT(kit_json_u64(r, "index", &got_index));
    CU_ASSERT(index == 0 || got_index == index);
    if (i == 0)
        CU_ASSERT(json_object_get(r, "follower_id") == NULL);
    json_decref(r);
}

/* Polls every follower until it serves key=value with seq. */
static void wait_followers_hold(const char *key, const char *value,
                                uint64_t seq) {
    for (size_t i = 1; i < s_cluster.count; i++) {
        bool ok =
            kit_qkv_wait_holds(node_url(i), key, value, seq, REPL_WAIT_MS);
        if (!ok)
            fprintf(stderr, "\n  %s never served %s=%s seq %llu\n",
                    s_cluster.nodes[i].name, key, value,
                    (unsigned long long)seq);
        CU_ASSERT(ok);
    }
}

/* Sends a raw request to the leader and expects an error answer. */
static void expect_error(const char *method, const char *path, const char *body,
                         size_t body_len, long code, const char *status) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", leader(), path);
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(kit_http(method, url, body, body_len, &resp), 0);
    if (resp.status != code)
        fprintf(stderr,
                "\n  %s %.60s [%.60s] answered %ld, expected %ld: "
                "%.200s\n",
                method, path, body ? body : "", resp.status, code, resp.body);
    CU_ASSERT_EQUAL(resp.status, code);
    json_t *json = kit_json_parse(resp.body, resp.body_len);
    CU_ASSERT(json_is_object(json));
    CU_ASSERT(json_is_false(json_object_get(json, "ok")));
    const char *got = kit_json_str(json, "status");
    if (!got || strcmp(got, status) != 0)
        fprintf(stderr, "\n  %s %.60s: status \"%s\", expected \"%s\"\n",
                method, path, got ? got : "(none)", status);
    CU_ASSERT(got && strcmp(got, status) == 0);
    CU_ASSERT(kit_json_str(json, "message") != NULL);
    json_decref(json);
    kit_resp_free(&resp);
}

static void expect_write_error(const char *json, long code,
                               const char *status) {
    expect_error("POST", "/put", json, strlen(json), code, status);
}

/*  ---------------------------------------------------------------------
    Health and roles */

typedef struct {
    json_t *health; /* the leader's last /health */
    size_t followers;
} connected_t;

static bool s_all_connected(void *arg) {
    connected_t *c = arg;
    long status;
    json_decref(c->health);
    c->health = kit_qkv_health(leader(), &status);
    json_t *list = json_object_get(c->health, "followers");
    if (status != 200 || json_array_size(list) != c->followers)
        return false;
    for (size_t i = 0; i < json_array_size(list); i++)
        if (!json_is_true(
                json_object_get(json_array_get(list, i), "connected")))
            return false;
    return true;
}

static void check_follower_entries(const json_t *list) {
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *f = json_array_get(list, i);
        uint64_t acked, lag;
        CU_ASSERT(kit_json_str(f, "id") != NULL);
        CU_ASSERT(kit_json_str(f, "endpoint") != NULL);
        CU_ASSERT(json_is_boolean(json_object_get(f, "connected")));
        CU_ASSERT(kit_json_u64(f, "acked_index", &acked));
        CU_ASSERT(kit_json_u64(f, "lag", &lag));
    }
}

static void test_health_and_roles(void) {
    long status;
    json_t *lh = kit_qkv_health(leader(), &status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    KIT_ASSERT_STR(kit_json_str(lh, "status"), "ok");
    KIT_ASSERT_STR(kit_json_str(lh, "role"), "leader");
    const char *repl_id = kit_json_str(lh, "replication_id");
    CU_ASSERT_FATAL(repl_id != NULL && repl_id[0] != '\0');
    for (size_t i = 0; i < s_cluster.count; i++) {
        json_t *h = i ? kit_qkv_health(node_url(i), &status) : json_incref(lh);
        CU_ASSERT_EQUAL(status, 200);
        KIT_ASSERT_STR(kit_json_str(h, "status"), "ok");
        KIT_ASSERT_STR(kit_json_str(h, "role"), i ? "follower" : "leader");
        const char *id = kit_json_str(h, "id");
        CU_ASSERT(id != NULL && id[0] != '\0');
        if (!s_cluster.external && i > 0)
            CU_ASSERT(id && strcmp(id, s_cluster.nodes[i].name) == 0);
        uint64_t v;
        CU_ASSERT(kit_json_u64(h, "last_index", &v));
        CU_ASSERT(kit_json_u64(h, "commit_index", &v));
        CU_ASSERT(kit_json_u64(h, "applied_index", &v));
        CU_ASSERT(kit_json_str(h, "replication_id") != NULL);
        json_decref(h);
    }
    connected_t c = {NULL, s_cluster.count - 1};
    bool connected = kit_poll_until(REPL_WAIT_MS, s_all_connected, &c);
    if (!connected)
        fprintf(stderr, "\n  not every follower connected\n");
    CU_ASSERT(connected);
    check_follower_entries(json_object_get(c.health, "followers"));
    json_decref(c.health);
    json_decref(lh);
}

/* Every node shows its limits; the zmq frame limit is 16 MiB plus twice
   a largest key and value. */
static void test_health_limits(void) {
    for (size_t i = 0; i < s_cluster.count; i++) {
        long status;
        json_t *h = kit_qkv_health(node_url(i), &status);
        CU_ASSERT_EQUAL(status, 200);
        uint64_t key = 0, value = 0, frame = 0;
        CU_ASSERT(kit_json_u64(h, "max_key_bytes", &key));
        CU_ASSERT(kit_json_u64(h, "max_value_bytes", &value));
        CU_ASSERT(kit_json_u64(h, "max_frame_bytes", &frame));
        CU_ASSERT_EQUAL(frame, (16u << 20) + 2 * (key + value));
        if (!s_cluster.external) { /* the defaults */
            CU_ASSERT_EQUAL(key, 4096);
            CU_ASSERT_EQUAL(value, 1048576);
            CU_ASSERT_EQUAL(frame, 18882560);
        }
        json_decref(h);
    }
}

typedef struct {
    size_t node;
    const char *repl_id;
} same_id_t;

static bool s_same_repl_id(void *arg) {
    same_id_t *s = arg;
    long status;
    json_t *h = kit_qkv_health(node_url(s->node), &status);
    const char *id = kit_json_str(h, "replication_id");
    bool same = id && strcmp(id, s->repl_id) == 0;
    json_decref(h);
    return same;
}

static void test_followers_share_replication_id(void) {
    long status;
    json_t *lh = kit_qkv_health(leader(), &status);
    const char *repl_id = kit_json_str(lh, "replication_id");
    CU_ASSERT_FATAL(repl_id != NULL);
    for (size_t i = 1; i < s_cluster.count; i++) {
        same_id_t s = {i, repl_id};
        CU_ASSERT(kit_poll_until(REPL_WAIT_MS, s_same_repl_id, &s));
    }
    json_decref(lh);
}

/*  ---------------------------------------------------------------------
    Writes and reads */

static void test_put_then_get_on_leader(void) {
    char key[64];
    key_of(key, sizeof key, "pg");
    uint64_t seq1, index1, seq2, index2;
    write_ok("/put", key, "v1", &seq1, &index1);
    CU_ASSERT(seq1 == 1);
    read_expect(0, "/get", key, "v1", 1, index1);
    read_expect(0, "/read", key, "v1", 1, index1);
    write_ok("/write", key, "v2", &seq2, &index2);
    CU_ASSERT(seq2 == 2);
    CU_ASSERT(index2 > index1);
    read_expect(0, "/get", key, "v2", 2, index2);
    read_expect(0, "/read", key, "v2", 2, index2);
}

static void test_follower_reads(void) {
    char key[64];
    key_of(key, sizeof key, "fr");
    uint64_t seq, index;
    write_ok("/put", key, "from-leader", &seq, &index);
    wait_followers_hold(key, "from-leader", 1);
    const char *ids[NODES] = {0};
    for (size_t i = 1; i < s_cluster.count; i++) {
        read_expect(i, "/get", key, "from-leader", 1, index);
        read_expect(i, "/read", key, "from-leader", 1, index);
        long status;
        json_t *r = kit_qkv_read(node_url(i), "/get", key, &status);
        const char *id = kit_json_str(r, "follower_id");
        CU_ASSERT(id != NULL && id[0] != '\0');
        if (id && !s_cluster.external)
            KIT_ASSERT_STR(id, s_cluster.nodes[i].name);
        for (size_t j = 1; id && j < i; j++)
            CU_ASSERT(ids[j] == NULL || strcmp(ids[j], id) != 0);
        ids[i] = id ? strdup(id) : NULL;
        json_decref(r);
    }
    for (size_t i = 0; i < NODES; i++)
        free((char *)ids[i]);
}

typedef struct {
    size_t node;
    size_t next; /* first key not yet seen on the node */
    char (*keys)[64];
    uint64_t *indexes;
} many_t;

static bool s_holds_all(void *arg) {
    many_t *m = arg;
    for (; m->next < 100; m->next++) {
        char value[64];
        snprintf(value, sizeof value, "value-%zu-%s", m->next, s_tag);
        if (!kit_qkv_holds(node_url(m->node), m->keys[m->next], value, 1))
            return false;
    }
    return true;
}

static void test_hundred_keys(void) {
    static char keys[100][64];
    uint64_t indexes[100];
    for (size_t k = 0; k < 100; k++) {
        char name[16], value[64];
        snprintf(name, sizeof name, "h%03zu", k);
        key_of(keys[k], sizeof keys[k], name);
        snprintf(value, sizeof value, "value-%zu-%s", k, s_tag);
        uint64_t seq;
        write_ok("/put", keys[k], value, &seq, &indexes[k]);
        CU_ASSERT(seq == 1);
        CU_ASSERT(k == 0 || indexes[k] > indexes[k - 1]);
    }
    for (size_t i = 1; i < s_cluster.count; i++) {
        many_t m = {i, 0, keys, indexes};
        bool ok = kit_poll_until(REPL_WAIT_MS, s_holds_all, &m);
        if (!ok)
            fprintf(stderr, "\n  %s lacks %s\n", s_cluster.nodes[i].name,
                    keys[m.next]);
        CU_ASSERT(ok);
    }
}

static void test_sequential_seq(void) {
    char key[64];
    key_of(key, sizeof key, "seq");
    uint64_t last_index = 0;
    for (uint64_t n = 1; n <= 10; n++) {
        char value[32];
        snprintf(value, sizeof value, "n%llu", (unsigned long long)n);
        uint64_t seq, index;
        write_ok(n % 2 ? "/put" : "/write", key, value, &seq, &index);
        CU_ASSERT(seq == n);
        CU_ASSERT(index > last_index);
        last_index = index;
    }
    read_expect(0, "/get", key, "n10", 10, last_index);
    wait_followers_hold(key, "n10", 10);
}

static void test_update_propagates(void) {
    char key[64];
    key_of(key, sizeof key, "upd");
    uint64_t seq, index;
    write_ok("/put", key, "before", &seq, &index);
    wait_followers_hold(key, "before", 1);
    write_ok("/put", key, "after", &seq, &index);
    CU_ASSERT(seq == 2);
    wait_followers_hold(key, "after", 2);
    for (size_t i = 1; i < s_cluster.count; i++)
        read_expect(i, "/get", key, "after", 2, index);
}

/*  ---------------------------------------------------------------------
    Dumps */

static void check_dump_shape(size_t i) {
    long status;
    json_t *d = kit_qkv_dump(node_url(i), &status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    CU_ASSERT_FATAL(d != NULL);
    json_t *entries = json_object_get(d, "entries");
    CU_ASSERT_FATAL(json_is_object(entries));
    uint64_t count = 0, applied = 0;
    CU_ASSERT(kit_json_u64(d, "count", &count));
    CU_ASSERT_EQUAL(count, json_object_size(entries));
    CU_ASSERT(kit_json_u64(d, "applied_index", &applied));
    KIT_ASSERT_STR(kit_json_str(d, "role"), i ? "follower" : "leader");
    const char *key;
    json_t *entry;
    int bad = 0;
    json_object_foreach(entries, key, entry) {
        uint64_t seq = 0;
        bad += !json_is_object(entry) || json_object_size(entry) != 2 ||
               !kit_json_str(entry, "value") ||
               !kit_json_u64(entry, "seq", &seq) || seq == 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    json_decref(d);
}

static void test_dump_shape(void) {
    char key[64];
    key_of(key, sizeof key, "dump");
    uint64_t seq, index;
    write_ok("/put", key, "dumped", &seq, &index);
    for (size_t i = 0; i < s_cluster.count; i++)
        check_dump_shape(i);
    long status;
    json_t *d = kit_qkv_dump(leader(), &status);
    json_t *mine = json_object_get(json_object_get(d, "entries"), key);
    CU_ASSERT(json_is_object(mine));
    CU_ASSERT(kit_json_str(mine, "value") &&
              strcmp(kit_json_str(mine, "value"), "dumped") == 0);
    uint64_t got_seq = 0;
    CU_ASSERT(kit_json_u64(mine, "seq", &got_seq) && got_seq == 1);
    json_decref(d);
}

static void test_dumps_identical(void) {
    for (int k = 0; k < 5; k++) {
        char key[64], name[16];
        snprintf(name, sizeof name, "same%d", k);
        key_of(key, sizeof key, name);
        uint64_t seq, index;
        write_ok("/put", key, name, &seq, &index);
    }
    uint64_t settled = 0;
    CU_ASSERT_FATAL(kit_qkv_settled(leader(), REPL_WAIT_MS, &settled));
    CU_ASSERT(settled > 0);
    for (size_t i = 1; i < s_cluster.count; i++)
        CU_ASSERT(kit_qkv_wait_same_dump(leader(), node_url(i), REPL_WAIT_MS));
}

/* Once more after everything else, the large values included. */
static void test_dumps_identical_at_end(void) {
    test_dumps_identical();
}

/*  ---------------------------------------------------------------------
    Concurrent writes to one key */

#define WRITERS 10
#define WRITES_EACH 5

typedef struct {
    const char *key;
    int thread;
    long status[WRITES_EACH];
    uint64_t seq[WRITES_EACH];
    uint64_t index[WRITES_EACH];
} writer_t;

static void *s_writer(void *arg) {
    writer_t *w = arg;
    for (int j = 0; j < WRITES_EACH; j++) {
        char value[32];
        snprintf(value, sizeof value, "w%d-%d", w->thread, j);
        json_t *r =
            kit_qkv_write(leader(), "/put", w->key, value, &w->status[j], NULL);
        w->seq[j] = w->index[j] = 0;
        kit_json_u64(r, "seq", &w->seq[j]);
        kit_json_u64(r, "index", &w->index[j]);
        json_decref(r);
    }
    kit_http_thread_done();
    return NULL;
}

typedef struct {
    uint64_t index;
    uint64_t seq;
    int thread, j;
} outcome_t;

static int s_by_index(const void *a, const void *b) {
    const outcome_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts the outcomes by index: seqs must follow s0+1, s0+2, ... */
static void check_outcomes(writer_t *w, uint64_t s0, char *last_value,
                           size_t size) {
    outcome_t all[WRITERS * WRITES_EACH];
    size_t n = 0;
    int not_ok = 0;
    for (int t = 0; t < WRITERS; t++)
        for (int j = 0; j < WRITES_EACH; j++) {
            not_ok += w[t].status[j] != 200;
            all[n++] = (outcome_t){w[t].index[j], w[t].seq[j], t, j};
        }
    CU_ASSERT_EQUAL(not_ok, 0);
    qsort(all, n, sizeof all[0], s_by_index);
    int out_of_order = 0;
    for (size_t k = 0; k < n; k++) {
        out_of_order += all[k].seq != s0 + 1 + k;
        out_of_order += k > 0 && all[k].index == all[k - 1].index;
    }
    CU_ASSERT_EQUAL(out_of_order, 0);
    snprintf(last_value, size, "w%d-%d", all[n - 1].thread, all[n - 1].j);
}

static void test_concurrent_writes(void) {
    char key[64];
    key_of(key, sizeof key, "conc");
    uint64_t s0, index0;
    write_ok("/put", key, "start", &s0, &index0);
    static writer_t writers[WRITERS];
    pthread_t threads[WRITERS];
    for (int t = 0; t < WRITERS; t++) {
        writers[t] = (writer_t){.key = key, .thread = t};
        CU_ASSERT_FATAL(
            pthread_create(&threads[t], NULL, s_writer, &writers[t]) == 0);
    }
    for (int t = 0; t < WRITERS; t++)
        pthread_join(threads[t], NULL);
    char last[32];
    check_outcomes(writers, s0, last, sizeof last);
    uint64_t final_seq = s0 + WRITERS * WRITES_EACH;
    read_expect(0, "/get", key, last, final_seq, 0);
    wait_followers_hold(key, last, final_seq);
}

/*  ---------------------------------------------------------------------
    Followers redirect writes */

static void check_redirect(const char *path, const char *body) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", node_url(1), path);
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, body, strlen(body), &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 307);
    CU_ASSERT_FATAL(resp.location != NULL);
    if (s_cluster.external) {
        size_t n = strlen(resp.location), p = strlen(path);
        CU_ASSERT(n > p && strcmp(resp.location + n - p, path) == 0);
        CU_ASSERT(strncmp(resp.location, "http", 4) == 0);
    } else {
        char expected[512];
        snprintf(expected, sizeof expected, "%s%s", leader(), path);
        KIT_ASSERT_STR(resp.location, expected);
    }
    json_t *json = kit_json_parse(resp.body, resp.body_len);
    CU_ASSERT(json_is_false(json_object_get(json, "ok")));
    CU_ASSERT(kit_json_str(json, "status") &&
              strcmp(kit_json_str(json, "status"), "not_leader") == 0);
    CU_ASSERT(kit_json_str(json, "leader") != NULL);
    if (!s_cluster.external && kit_json_str(json, "leader"))
        KIT_ASSERT_STR(kit_json_str(json, "leader"), leader());
    json_decref(json);
    kit_resp_free(&resp);
}

static void test_follower_redirects_writes(void) {
    char key[64], body[160];
    key_of(key, sizeof key, "redirected");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"x\"}", key);
    check_redirect("/put", body);
    check_redirect("/write", body);
    check_redirect("/write?trace=1&b=2", body);
    check_redirect("/reset", "");
    /* Nothing was written. */
    long status;
    json_t *r = kit_qkv_read(leader(), "/get", key, &status);
    CU_ASSERT_EQUAL(status, 404);
    json_decref(r);
}

/*  ---------------------------------------------------------------------
    Bad requests */

static void test_bad_json(void) {
    expect_write_error("{not json", 400, "bad_request");
    expect_write_error("[\"key\",\"value\"]", 400, "bad_request");
    expect_write_error("\"key\"", 400, "bad_request");
    expect_write_error("", 400, "bad_request");
    expect_write_error("{\"value\":\"x\"}", 400, "bad_request");
    expect_write_error("{\"key\":\"k\"}", 400, "bad_request");
    expect_write_error("{\"key\":\"k\",\"value\":5}", 400, "bad_request");
    expect_write_error("{\"key\":\"k\",\"value\":null}", 400, "bad_request");
    expect_write_error("{\"key\":\"k\",\"value\":{}}", 400, "bad_request");
    expect_write_error("{\"key\":7,\"value\":\"x\"}", 400, "bad_request");
    expect_write_error("{\"key\":\"\",\"value\":\"x\"}", 400, "bad_request");
    expect_error("POST", "/write", "{", 1, 400, "bad_request");
}

static void test_bad_reads(void) {
    expect_error("GET", "/get", NULL, 0, 400, "bad_request");
    expect_error("GET", "/read", NULL, 0, 400, "bad_request");
    expect_error("GET", "/get?key=", NULL, 0, 400, "bad_request");
    expect_error("GET", "/get?other=1", NULL, 0, 400, "bad_request");
    char path[128];
    snprintf(path, sizeof path, "/get?key=t%s-never-written", s_tag);
    expect_error("GET", path, NULL, 0, 404, "not_found");
    snprintf(path, sizeof path, "/read?key=t%s-never-written", s_tag);
    expect_error("GET", path, NULL, 0, 404, "not_found");
}

static void test_wrong_methods(void) {
    const char *body = "{\"key\":\"k\",\"value\":\"v\"}";
    expect_error("GET", "/put", NULL, 0, 405, "method_not_allowed");
    expect_error("GET", "/write", NULL, 0, 405, "method_not_allowed");
    expect_error("PUT", "/put", body, strlen(body), 405, "method_not_allowed");
    expect_error("POST", "/get?key=k", body, strlen(body), 405,
                 "method_not_allowed");
    expect_error("POST", "/read?key=k", "", 0, 405, "method_not_allowed");
    expect_error("POST", "/dump", "", 0, 405, "method_not_allowed");
    expect_error("POST", "/health", "", 0, 405, "method_not_allowed");
    expect_error("GET", "/reset", NULL, 0, 405, "method_not_allowed");
}

/* {"key": <key_len x 'k'>, "value": <value_len x 'v'>} */
static char *sized_body(const char *prefix, size_t key_len, size_t value_len) {
    char *key = malloc(key_len + 1), *value = malloc(value_len + 1);
    CU_ASSERT_FATAL(key && value);
    size_t p = strlen(prefix) < key_len ? strlen(prefix) : key_len;
    memset(key, 'k', key_len);
    memcpy(key, prefix, p);
    key[key_len] = '\0';
    memset(value, 'v', value_len);
    value[value_len] = '\0';
    json_t *body = json_object();
    json_object_set_new(body, "key", json_string(key));
    json_object_set_new(body, "value", json_string(value));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    free(key);
    free(value);
    return text;
}

static void expect_size_answer(const char *body, long code) {
    char url[512];
    snprintf(url, sizeof url, "%s/put", leader());
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, body, strlen(body), &resp), 0);
    if (resp.status != code)
        fprintf(stderr,
                "\n  a %zu-byte body answered %ld, expected %ld: "
                "%.200s\n",
                strlen(body), resp.status, code, resp.body);
    CU_ASSERT_EQUAL(resp.status, code);
    if (code != 200) {
        json_t *json = kit_json_parse(resp.body, resp.body_len);
        CU_ASSERT(json_is_false(json_object_get(json, "ok")));
        CU_ASSERT(kit_json_str(json, "status") &&
                  strcmp(kit_json_str(json, "status"), "too_large") == 0);
        json_decref(json);
    }
    kit_resp_free(&resp);
}

static void test_too_large(void) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "t%s-big-", s_tag);
    char *body = sized_body(prefix, 4097, 1);
    expect_size_answer(body, 413);
    free(body);
    body = sized_body(prefix, 20, 1048577);
    expect_size_answer(body, 413);
    free(body);
    /* Exactly at the limits is fine. */
    body = sized_body(prefix, 4096, 1);
    expect_size_answer(body, 200);
    free(body);
    body = sized_body(prefix, 21, 1048576);
    expect_size_answer(body, 200);
    free(body);
    /* The connection still works after a refused large body. */
    uint64_t seq, index;
    char key[64];
    key_of(key, sizeof key, "after-big");
    write_ok("/put", key, "small", &seq, &index);
}

/* The node's /metrics, checked for syntax; NULL on failure. */
static char *metrics_of(size_t i) {
    char url[512], *body = NULL, why[256] = "";
    long status;
    snprintf(url, sizeof url, "%s/metrics", node_url(i));
    CU_ASSERT_EQUAL_FATAL(kit_http_get(url, &status, &body), 0);
    CU_ASSERT_EQUAL(status, 200);
    bool ok = body && kit_prom_check(body, why, sizeof why);
    if (!ok)
        fprintf(stderr, "\n  %s/metrics: %s\n", node_url(i), why);
    CU_ASSERT(ok);
    return body;
}

static double metric_of(const char *body, const char *name) {
    double v = -1;
    CU_ASSERT(body && kit_prom_value(body, name, &v));
    return v;
}

static void test_metrics(void) {
    /* Earlier tests wrote and waited for every follower to hold their
       writes, so replication frames went both ways on every link. */
    char *leader = metrics_of(0);
    double sent = metric_of(leader, "qkv_repl_entries_sent_total");
    CU_ASSERT(metric_of(leader, "qkv_repl_frames_sent_total") >= 1);
    CU_ASSERT(metric_of(leader, "qkv_repl_frames_received_total") >= 1);
    for (size_t i = 1; i < s_cluster.count; i++) {
        char *body = metrics_of(i);
        /* every entry a follower holds, this leader sent at least once */
        double held = metric_of(body, "qkv_last_index");
        CU_ASSERT(held >= 1 && sent >= held);
        CU_ASSERT(metric_of(body, "qkv_repl_frames_received_total") >= 1);
        CU_ASSERT(metric_of(body, "qkv_repl_frames_sent_total") >= 1);
        CU_ASSERT_EQUAL(metric_of(body, "qkv_repl_entries_sent_total"), 0);
        free(body);
    }
    free(leader);
}

/* The value of the sample written exactly as series (name and labels);
   false when there is none. */
static bool sample_of(const char *text, const char *series, double *value) {
    size_t n = strlen(series);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            char *end;
            *value = strtod(line + n + 1, &end);
            return end != line + n + 1;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return false;
}

/* Write metrics carry proto="rest" and proto="zmq"; the session gauges
   and the client disconnect counter are there. */
static void test_metrics_by_proto(void) {
    static const char *series[] = {
        "qkv_writes_total{proto=\"rest\"}",
        "qkv_writes_total{proto=\"zmq\"}",
        "qkv_commits_total{proto=\"rest\"}",
        "qkv_commits_total{proto=\"zmq\"}",
        "qkv_quorum_timeouts_total{proto=\"rest\"}",
        "qkv_quorum_timeouts_total{proto=\"zmq\"}",
        "qkv_bad_requests_total{proto=\"rest\"}",
        "qkv_bad_requests_total{proto=\"zmq\"}",
        "qkv_write_latency_seconds_bucket{proto=\"rest\",le=\"+Inf\"}",
        "qkv_write_latency_seconds_bucket{proto=\"zmq\",le=\"+Inf\"}",
        "qkv_write_latency_seconds_sum{proto=\"rest\"}",
        "qkv_write_latency_seconds_sum{proto=\"zmq\"}",
        "qkv_write_latency_seconds_count{proto=\"rest\"}",
        "qkv_write_latency_seconds_count{proto=\"zmq\"}",
        "qkv_sessions",
        "qkv_session_records",
        "qkv_client_disconnects_total",
    };
    for (size_t i = 0; i < s_cluster.count; i++) {
        char *body = metrics_of(i);
        CU_ASSERT_FATAL(body != NULL);
        for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
            double v = -1;
            bool found = sample_of(body, series[k], &v);
            if (!found)
                fprintf(stderr, "\n  %s/metrics lacks %s\n", node_url(i),
                        series[k]);
            CU_ASSERT(found && v >= 0);
        }
        CU_ASSERT(strstr(body, "\nqkv_writes_total ") == NULL);
        if (i == 0) { /* earlier tests wrote and were refused over REST */
            double writes = 0, count = 0, bad = 0;
            CU_ASSERT(sample_of(body, series[0], &writes) && writes >= 100);
            CU_ASSERT(sample_of(body, series[12], &count) && count >= 100);
            CU_ASSERT(sample_of(body, series[6], &bad) && bad >= 10);
        }
        free(body);
    }
}

/*  ---------------------------------------------------------------------
    Keys and values as arbitrary strings */

typedef struct {
    const char *bytes;
    size_t len;
} bytes_t;

#define B(s)                                                                   \
    { s, sizeof s - 1 }

static const bytes_t s_special[] = {
    B("sp ace"),
    B("a&b=c?d#e"),
    B("100%"),
    B("sl/ash"),
    B("\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"),
    B("emoji-\xf0\x9f\x98\x80"),
    B("quo\"te\\"),
    B("nul\0key"),
    B("tab\tnew\nline"),
    B("plus+sign"),
    B("%00%zz"),
    B("\x01\x1f\x7f"),
};

/* "t<tag>-" + b into out; returns the length. */
static size_t tagged(char *out, size_t size, const bytes_t *b) {
    int n = snprintf(out, size, "t%s-", s_tag);
    CU_ASSERT_FATAL(n > 0 && (size_t)n + b->len < size);
    memcpy(out + n, b->bytes, b->len);
    return (size_t)n + b->len;
}

static bool json_bytes_eq(const json_t *obj, const char *field,
                          const char *bytes, size_t len) {
    json_t *v = json_object_get(obj, field);
    return json_is_string(v) && json_string_length(v) == len &&
           memcmp(json_string_value(v), bytes, len) == 0;
}

typedef struct {
    size_t node;
    const char *key, *value;
    size_t key_len, value_len;
} nholds_t;

static bool s_nholds(void *arg) {
    nholds_t *h = arg;
    long status;
    json_t *r =
        kit_qkv_readn(node_url(h->node), "/get", h->key, h->key_len, &status);
    bool ok = status == 200 && json_bytes_eq(r, "key", h->key, h->key_len) &&
              json_bytes_eq(r, "value", h->value, h->value_len);
    json_decref(r);
    return ok;
}

static void test_special_keys(void) {
    size_t n = sizeof s_special / sizeof s_special[0];
    char keys[16][64], values[16][80];
    size_t key_lens[16], value_lens[16];
    for (size_t i = 0; i < n; i++) {
        key_lens[i] = tagged(keys[i], sizeof keys[i], &s_special[i]);
        value_lens[i] =
            (size_t)snprintf(values[i], sizeof values[i], "v%zu", i);
        memcpy(values[i] + value_lens[i], "\0after-nul", 10);
        value_lens[i] += 10;
        long status;
        json_t *r = kit_qkv_writen(leader(), "/put", keys[i], key_lens[i],
                                   values[i], value_lens[i], &status, NULL);
        if (status != 200)
            fprintf(stderr, "\n  writing special key %zu: %ld\n", i, status);
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT(json_bytes_eq(r, "key", keys[i], key_lens[i]));
        json_decref(r);
    }
    /* "t<tag>-nul", the NUL key cut at its NUL, is another key. */
    char cut[64];
    snprintf(cut, sizeof cut, "t%s-nul", s_tag);
    uint64_t seq, index;
    write_ok("/put", cut, "the-cut-key", &seq, &index);
    for (size_t node = 0; node < s_cluster.count; node++) {
        for (size_t i = 0; i < n; i++) {
            nholds_t h = {node, keys[i], values[i], key_lens[i], value_lens[i]};
            bool ok = kit_poll_until(REPL_WAIT_MS, s_nholds, &h);
            if (!ok)
                fprintf(stderr, "\n  %s: special key %zu not served right\n",
                        s_cluster.nodes[node].name, i);
            CU_ASSERT(ok);
        }
    }
    read_expect(0, "/get", cut, "the-cut-key", 1, index);
}

static void test_invalid_text(void) {
    const char *bad_utf8 = "{\"key\":\"k\xff\xfe\",\"value\":\"v\"}";
    expect_write_error(bad_utf8, 400, "bad_request");
    expect_write_error("{\"key\":\"k\",\"value\":\"\\ud800\"}", 400,
                       "bad_request");
    expect_write_error("{\"key\":\"k\",\"value\":\"v\"} trailing", 400,
                       "bad_request");
}

/* A key of n copies of a 2-byte UTF-8 character: limits count bytes. */
static char *two_byte_key_body(const char *prefix, size_t chars) {
    size_t p = strlen(prefix);
    char *key = malloc(p + 2 * chars + 1);
    CU_ASSERT_FATAL(key != NULL);
    memcpy(key, prefix, p);
    for (size_t i = 0; i < chars; i++)
        memcpy(key + p + 2 * i, "\xd0\xb6", 2);
    key[p + 2 * chars] = '\0';
    json_t *body = json_object();
    json_object_set_new(body, "key", json_string(key));
    json_object_set_new(body, "value", json_string("v"));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    free(key);
    return text;
}

static void test_limits_count_bytes(void) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "t%s-mb", s_tag); /* 12 bytes */
    size_t p = strlen(prefix);
    CU_ASSERT_FATAL(p % 2 == 0);
    /* 4096 bytes: fine; 4098 bytes in 2049 characters: too large. */
    char *body = two_byte_key_body(prefix, (4096 - p) / 2);
    expect_size_answer(body, 200);
    free(body);
    body = two_byte_key_body(prefix, (4098 - p) / 2);
    expect_size_answer(body, 413);
    free(body);
}

/* Every answer but the streamed dump carries Content-Length. */
static void expect_content_length(const char *method, const char *path,
                                  const char *body) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", leader(), path);
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(
        kit_http(method, url, body, body ? strlen(body) : 0, &resp), 0);
    if (resp.content_length != (long long)resp.body_len)
        fprintf(stderr, "\n  %s %s: Content-Length %lld, body %zu bytes\n",
                method, path, resp.content_length, resp.body_len);
    CU_ASSERT(resp.content_length == (long long)resp.body_len);
    kit_resp_free(&resp);
}

static void test_content_length(void) {
    char path[128], body[160];
    snprintf(path, sizeof path, "/get?key=t%s-pg", s_tag);
    snprintf(body, sizeof body, "{\"key\":\"t%s-cl\",\"value\":\"v\"}", s_tag);
    expect_content_length("GET", "/health", NULL);
    expect_content_length("GET", path, NULL);
    expect_content_length("GET", "/get?key=t-never-there", NULL);
    expect_content_length("GET", "/get", NULL);
    expect_content_length("POST", "/put", body);
    expect_content_length("POST", "/put", "{bad");
    expect_content_length("GET", "/put", NULL);
}

typedef struct {
    size_t followers;
    char why[160];
} caught_up_t;

static bool s_caught_up(void *arg) {
    caught_up_t *c = arg;
    long status;
    json_t *h = kit_qkv_health(leader(), &status);
    uint64_t last = 0;
    json_t *list = json_object_get(h, "followers");
    bool ok = status == 200 && kit_json_u64(h, "last_index", &last) &&
              json_array_size(list) == c->followers;
    for (size_t i = 0; ok && i < json_array_size(list); i++) {
        json_t *f = json_array_get(list, i);
        uint64_t acked = 0, lag = 1;
        ok = kit_json_u64(f, "acked_index", &acked) &&
             kit_json_u64(f, "lag", &lag) && acked == last && lag == 0;
        if (!ok)
            snprintf(c->why, sizeof c->why, "%s: acked %llu lag %llu of %llu",
                     kit_json_str(f, "id"), (unsigned long long)acked,
                     (unsigned long long)lag, (unsigned long long)last);
    }
    json_decref(h);
    return ok;
}

static void test_followers_caught_up(void) {
    CU_ASSERT(kit_qkv_settled(leader(), REPL_WAIT_MS, NULL));
    caught_up_t c = {s_cluster.count - 1, ""};
    bool ok = kit_poll_until(REPL_WAIT_MS, s_caught_up, &c);
    if (!ok)
        fprintf(stderr, "\n  %s\n", c.why);
    CU_ASSERT(ok);
}

/*  ---------------------------------------------------------------------
    Read-your-writes: ?min_index=I&wait_ms=W (DESIGN.md: "not_ready once
    reads take min_index"; the gateway answers 503 not_ready after W ms) */

static void test_read_your_writes(void) {
    char key[64], path[256];
    key_of(key, sizeof key, "ryw");
    uint64_t seq, index;
    write_ok("/put", key, "mine", &seq, &index);
    /* No polling: every node answers once it has applied the write. */
    for (size_t i = 0; i < s_cluster.count; i++) {
        snprintf(path, sizeof path, "%s/get?key=%s&min_index=%llu&wait_ms=%d",
                 node_url(i), key, (unsigned long long)index, REPL_WAIT_MS);
        long status;
        json_t *r = kit_get_json(path, &status);
        CU_ASSERT_EQUAL(status, 200);
        KIT_ASSERT_STR(kit_json_str(r, "value"), "mine");
        json_decref(r);
        snprintf(path, sizeof path, "%s/dump?min_index=%llu&wait_ms=%d",
                 node_url(i), (unsigned long long)index, REPL_WAIT_MS);
        r = kit_get_dump(path, &status);
        uint64_t applied = 0;
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT(kit_json_u64(r, "applied_index", &applied) &&
                  applied >= index);
        json_decref(r);
    }
    /* An index far ahead: 503 not_ready after about wait_ms. */
    snprintf(path, sizeof path, "/get?key=%s&min_index=%llu&wait_ms=300", key,
             (unsigned long long)index + 1000000);
    int64_t start = kit_now_ms();
    expect_error("GET", path, NULL, 0, 503, "not_ready");
    int64_t elapsed = kit_now_ms() - start;
    CU_ASSERT(elapsed >= 250);
    CU_ASSERT(elapsed < 3000);
    snprintf(path, sizeof path, "/get?key=%s&min_index=abc", key);
    expect_error("GET", path, NULL, 0, 400, "bad_request");
}

/*  ---------------------------------------------------------------------
    POST /delete {"key"}: a replicated entry; the key's seq starts again */

/* POSTs {"key": key} to base/delete; returns the answer, sets *status. */
static json_t *s_delete(const char *base, const char *key, long *status,
                        char **location) {
    char url[512];
    snprintf(url, sizeof url, "%s/delete", base);
    json_t *body = json_pack("{s:s}", "key", key);
    json_t *r = kit_post_json(url, body, status, location);
    json_decref(body);
    return r;
}

static void test_delete(void) {
    char key[64];
    key_of(key, sizeof key, "del");
    uint64_t seq, index, deleted_at = 0;
    write_ok("/put", key, "a", &seq, &index);
    write_ok("/put", key, "b", &seq, &index);
    CU_ASSERT(seq == 2);
    long status;
    json_t *r = s_delete(leader(), key, &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(json_is_true(json_object_get(r, "deleted")));
    CU_ASSERT(kit_json_u64(r, "index", &deleted_at) && deleted_at > index);
    json_decref(r);
    /* gone on the leader at once, on every follower once applied */
    for (size_t i = 0; i < s_cluster.count; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/get?key=%s&min_index=%llu&wait_ms=%d",
                 node_url(i), key, (unsigned long long)deleted_at,
                 REPL_WAIT_MS);
        r = kit_get_json(path, &status);
        CU_ASSERT_EQUAL(status, 404);
        json_decref(r);
    }
    /* deleting what is not there is still an entry, deleted false */
    r = s_delete(leader(), key, &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(json_is_false(json_object_get(r, "deleted")));
    json_decref(r);
    /* written again, the key starts over at seq 1; index keeps growing */
    uint64_t again;
    write_ok("/put", key, "c", &seq, &again);
    CU_ASSERT(seq == 1);
    CU_ASSERT(again > deleted_at);
    /* a follower redirects a delete to the leader */
    char *location = NULL;
    r = s_delete(node_url(1), key, &status, &location);
    CU_ASSERT_EQUAL(status, 307);
    CU_ASSERT(location != NULL && strstr(location, "/delete") != NULL);
    free(location);
    json_decref(r);
    expect_error("POST", "/delete", "{\"value\":\"x\"}", 13, 400,
                 "bad_request");
}

/*  ---------------------------------------------------------------------
    Idempotent writes: "client_id" and "client_seq" (DESIGN.md, "Sessions
    in the log"; errors conflict and session_expired). Client ids come from
    the run's tag, so runs never share a session. */

static uint64_t s_client_base; /* client_id_of(n) = s_client_base + n */

static uint64_t client_id_of(unsigned n) {
    return s_client_base + n;
}

/* POSTs body (JSON text) to the leader's path; returns the parsed answer
   (NULL when not JSON) and sets *status (0: no answer). */
static json_t *post_leader(const char *path, const char *body, long *status) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", leader(), path);
    kit_resp_t resp;
    json_t *json = NULL;
    *status = 0;
    if (kit_http("POST", url, body, strlen(body), &resp) == 0) {
        *status = resp.status;
        json = kit_json_parse(resp.body, resp.body_len);
        kit_resp_free(&resp);
    }
    return json;
}

/* POST /put {"key","value","client_id","client_seq"}. */
static json_t *tagged_put(const char *key, const char *value, uint64_t id,
                          uint64_t seq, long *status) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"key\":\"%s\",\"value\":\"%s\",\"client_id\":%llu,"
             "\"client_seq\":%llu}",
             key, value, (unsigned long long)id, (unsigned long long)seq);
    return post_leader("/put", body, status);
}

/* Expects a 200 write answer with exactly today's members; returns its
   seq (0 for a delete) and index. */
static void expect_put_ok(json_t *r, long status, const char *key,
                          uint64_t *seq, uint64_t *index) {
    if (status != 200)
        fprintf(stderr, "\n  tagged write of %s answered %ld\n", key, status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    CU_ASSERT(json_is_true(json_object_get(r, "ok")));
    KIT_ASSERT_STR(kit_json_str(r, "status"), "success");
    KIT_ASSERT_STR(kit_json_str(r, "key"), key);
    CU_ASSERT(json_is_number(json_object_get(r, "latency")));
    CU_ASSERT(kit_json_str(r, "message") != NULL);
    CU_ASSERT_EQUAL(json_object_size(r), 7);
    *seq = *index = 0;
    CU_ASSERT(kit_json_u64(r, "seq", seq));
    CU_ASSERT(kit_json_u64(r, "index", index) && *index > 0);
}

/* Expects an error answer with status word word, carrying key. */
static void expect_refused(json_t *r, long status, long code, const char *word,
                           const char *key) {
    if (status != code)
        fprintf(stderr, "\n  expected %ld %s, got %ld %s\n", code, word, status,
                r ? kit_json_str(r, "status") : "(no JSON)");
    CU_ASSERT_EQUAL(status, code);
    CU_ASSERT(json_is_false(json_object_get(r, "ok")));
    KIT_ASSERT_STR(kit_json_str(r, "status"), word);
    CU_ASSERT(kit_json_str(r, "message") != NULL);
    if (key)
        KIT_ASSERT_STR(kit_json_str(r, "key"), key);
    CU_ASSERT(json_object_get(r, "index") == NULL); /* nothing written */
}

/* The same tagged PUT twice: one entry, the original's answer. */
static void test_tagged_put_retried(void) {
    char key[64];
    key_of(key, sizeof key, "idem");
    uint64_t id = client_id_of(1), seq1, index1, seq2, index2;
    long status;
    json_t *r = tagged_put(key, "once", id, 1, &status);
    expect_put_ok(r, status, key, &seq1, &index1);
    CU_ASSERT_EQUAL(seq1, 1);
    json_decref(r);
    r = tagged_put(key, "once", id, 1, &status);
    expect_put_ok(r, status, key, &seq2, &index2);
    json_decref(r);
    if (seq2 != seq1 || index2 != index1)
        fprintf(stderr,
                "\n  retry answered seq %llu index %llu, first "
                "seq %llu index %llu\n",
                (unsigned long long)seq2, (unsigned long long)index2,
                (unsigned long long)seq1, (unsigned long long)index1);
    CU_ASSERT_EQUAL(seq2, seq1);
    CU_ASSERT_EQUAL_FATAL(index2, index1); /* else no use waiting below */
    read_expect(0, "/get", key, "once", 1, index1);
    wait_followers_hold(key, "once", 1);
    /* the next client_seq is a new write */
    r = tagged_put(key, "twice", id, 2, &status);
    expect_put_ok(r, status, key, &seq2, &index2);
    CU_ASSERT_EQUAL(seq2, 2);
    CU_ASSERT(index2 > index1);
    json_decref(r);
}

/* The same pair with other content: 409 conflict, nothing written. */
static void test_tagged_conflict(void) {
    char key[64], other[64];
    key_of(key, sizeof key, "conflict");
    key_of(other, sizeof other, "conflict-other");
    uint64_t id = client_id_of(2), seq, index;
    long status;
    json_t *r = tagged_put(key, "first", id, 1, &status);
    expect_put_ok(r, status, key, &seq, &index);
    json_decref(r);
    r = tagged_put(key, "second", id, 1, &status);
    expect_refused(r, status, 409, "conflict", key);
    json_decref(r);
    r = tagged_put(other, "first", id, 1, &status); /* other key */
    expect_refused(r, status, 409, "conflict", other);
    json_decref(r);
    read_expect(0, "/get", key, "first", 1, index);
    r = kit_qkv_read(leader(), "/get", other, &status);
    CU_ASSERT_EQUAL(status, 404);
    json_decref(r);
}

/* A pair older than its session remembers (a client_id never seen, at
   client_seq 5): 409 session_expired, never applied on any node. */
static void test_tagged_session_expired(void) {
    char key[64], later[64], path[256];
    key_of(key, sizeof key, "expired");
    key_of(later, sizeof later, "expired-later");
    long status;
    json_t *r = tagged_put(key, "never", client_id_of(3), 5, &status);
    expect_refused(r, status, 409, "session_expired", key);
    json_decref(r);
    /* once a later write applied everywhere, the key is on no node */
    uint64_t seq, index;
    write_ok("/put", later, "v", &seq, &index);
    for (size_t i = 0; i < s_cluster.count; i++) {
        snprintf(path, sizeof path, "%s/get?key=%s&min_index=%llu&wait_ms=%d",
                 node_url(i), key, (unsigned long long)index, REPL_WAIT_MS);
        r = kit_get_json(path, &status);
        if (status != 404)
            fprintf(stderr, "\n  %s: %s answered %ld\n",
                    s_cluster.nodes[i].name, key, status);
        CU_ASSERT_EQUAL(status, 404);
        json_decref(r);
    }
}

/* Malformed pairs: 400 naming the field, nothing written. */
static void test_tagged_bad_pairs(void) {
    char key[64];
    key_of(key, sizeof key, "badpair");
    static const char *tails[] = {
        "\"client_id\":5",
        "\"client_seq\":5",
        "\"client_id\":0,\"client_seq\":1",
        "\"client_id\":1,\"client_seq\":0",
        "\"client_id\":9007199254740992,\"client_seq\":1",
        "\"client_id\":1,\"client_seq\":9007199254740992",
        "\"client_id\":1.5,\"client_seq\":1",
        "\"client_id\":\"1\",\"client_seq\":1",
        "\"client_id\":1,\"client_seq\":\"1\"",
        "\"client_id\":-1,\"client_seq\":1",
        "\"client_id\":true,\"client_seq\":1",
        "\"client_id\":1,\"client_seq\":1e2",
        "\"client_id\":99999999999999999999999,\"client_seq\":1",
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"v\",%s}", key,
                 tails[i]);
        long status;
        json_t *r = post_leader("/put", body, &status);
        const char *message = kit_json_str(r, "message");
        if (status != 400 || !message || !strstr(message, "client_"))
            fprintf(stderr, "\n  %s: %ld %s\n", body, status,
                    message ? message : "(no message)");
        CU_ASSERT_EQUAL(status, 400);
        KIT_ASSERT_STR(kit_json_str(r, "status"), "bad_request");
        CU_ASSERT(message != NULL && strstr(message, "client_") != NULL);
        json_decref(r);
    }
    long status;
    json_t *r = kit_qkv_read(leader(), "/get", key, &status);
    CU_ASSERT_EQUAL(status, 404);
    json_decref(r);
}

/* A tagged DELETE retried: the original's index and answer. */
static void test_tagged_delete_retried(void) {
    char key[64], body[256];
    key_of(key, sizeof key, "idem-del");
    uint64_t seq, index, first = 0, again = 0;
    write_ok("/put", key, "doomed", &seq, &index);
    snprintf(body, sizeof body,
             "{\"key\":\"%s\",\"client_id\":%llu,\"client_seq\":1}", key,
             (unsigned long long)client_id_of(4));
    long status;
    json_t *r = post_leader("/delete", body, &status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    CU_ASSERT(json_is_true(json_object_get(r, "deleted")));
    CU_ASSERT(kit_json_u64(r, "index", &first) && first > index);
    json_decref(r);
    r = post_leader("/delete", body, &status);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(json_is_true(json_object_get(r, "deleted"))); /* the original's */
    CU_ASSERT(kit_json_u64(r, "index", &again));
    if (again != first)
        fprintf(stderr, "\n  delete retry: index %llu, first %llu\n",
                (unsigned long long)again, (unsigned long long)first);
    CU_ASSERT_EQUAL(again, first);
    json_decref(r);
    r = kit_qkv_read(leader(), "/get", key, &status);
    CU_ASSERT_EQUAL(status, 404);
    json_decref(r);
}

/* The value of sample name in node i's /metrics, -1 when absent. */
static double node_metric(size_t i, const char *name) {
    char url[sizeof s_cluster.nodes[0].url + 16], *body = NULL;
    long status = 0;
    snprintf(url, sizeof url, "%s/metrics", node_url(i));
    double v = -1;
    if (kit_http_get(url, &status, &body) == 0 && status == 200)
        kit_prom_value(body, name, &v);
    free(body);
    return v;
}

typedef struct {
    size_t node;
    double sessions, records; /* the leader's */
} same_sessions_t;

static bool s_same_sessions(void *arg) {
    same_sessions_t *s = arg;
    return node_metric(s->node, "qkv_sessions") == s->sessions &&
           node_metric(s->node, "qkv_session_records") == s->records;
}

/* Sessions are part of the replicated state: once every node applied the
   same entries, every node holds the same session table. */
static void test_sessions_on_every_node(void) {
    CU_ASSERT(kit_qkv_settled(leader(), REPL_WAIT_MS, NULL));
    same_sessions_t want = {0, node_metric(0, "qkv_sessions"),
                            node_metric(0, "qkv_session_records")};
    CU_ASSERT(want.sessions >= 3 && want.records >= 4); /* the tests above */
    for (size_t i = 1; i < s_cluster.count; i++) {
        want.node = i;
        bool same = kit_poll_until(REPL_WAIT_MS, s_same_sessions, &want);
        if (!same)
            fprintf(stderr,
                    "\n  %s holds %g sessions and %g records, the "
                    "leader %g and %g\n",
                    s_cluster.nodes[i].name, node_metric(i, "qkv_sessions"),
                    node_metric(i, "qkv_session_records"), want.sessions,
                    want.records);
        CU_ASSERT(same);
    }
}

/*  ---------------------------------------------------------------------
    Setup */

static int s_start(void) {
    kit_random_tag(s_tag);
    s_client_base = strtoull(s_tag, NULL, 16) * 1000 + 1000;
    int rc = kit_cluster_from_env(&s_cluster, NODES);
    if (rc == 1) {
        printf("\ntesting the cluster at QKV_TEST_NODES, key prefix t%s-\n",
               s_tag);
        return kit_cluster_wait_healthy(&s_cluster, 30000);
    }
    if (rc < 0)
        return -1;
    kit_cluster_opts_t opts = {.followers = NODES - 1,
                               .write_quorum = 3,
                               .replication_timeout_ms = 5000,
                               .heartbeat_ms = 50};
    return kit_cluster_start(&s_cluster, &opts);
}

static int s_stop(void) {
    int unclean = kit_cluster_stop(&s_cluster);
    if (unclean)
        fprintf(stderr, "\n%d node(s) did not exit cleanly\n", unclean);
    return unclean ? -1 : 0;
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_health_and_roles),
        KIT_TEST(test_health_limits),
        KIT_TEST(test_followers_share_replication_id),
        KIT_TEST(test_put_then_get_on_leader),
        KIT_TEST(test_follower_reads),
        KIT_TEST(test_hundred_keys),
        KIT_TEST(test_sequential_seq),
        KIT_TEST(test_update_propagates),
        KIT_TEST(test_dump_shape),
        KIT_TEST(test_dumps_identical),
        KIT_TEST(test_concurrent_writes),
        KIT_TEST(test_follower_redirects_writes),
        KIT_TEST(test_bad_json),
        KIT_TEST(test_bad_reads),
        KIT_TEST(test_wrong_methods),
        KIT_TEST(test_too_large),
        KIT_TEST(test_metrics),
        KIT_TEST(test_metrics_by_proto),
        KIT_TEST(test_special_keys),
        KIT_TEST(test_invalid_text),
        KIT_TEST(test_limits_count_bytes),
        KIT_TEST(test_content_length),
        KIT_TEST(test_followers_caught_up),
        KIT_TEST(test_read_your_writes),
        KIT_TEST(test_delete),
        KIT_TEST(test_tagged_bad_pairs),
        KIT_TEST(test_tagged_put_retried),
        KIT_TEST(test_tagged_conflict),
        KIT_TEST(test_tagged_session_expired),
        KIT_TEST(test_tagged_delete_retried),
        KIT_TEST(test_sessions_on_every_node),
        KIT_TEST(test_dumps_identical_at_end),
        KIT_TESTS_END};
    return kit_add_suite("cluster", s_start, s_stop, tests) ? 0 : -1;
}

int main(void) {
    if (!getenv("QKV_TEST_NODES"))
        kit_node_bin(); /* skips (CI: fails) without the program */
    return kit_run(s_add_suites);
}
