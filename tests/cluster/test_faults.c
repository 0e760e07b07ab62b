/*  test_faults.c - what a cluster does when things go wrong. Local
    processes only (with QKV_TEST_NODES set it skips).

    faults_quorum5: a leader with five followers, WRITE_QUORUM=5 and
    REPLICATION_TIMEOUT_MS=1000. One follower stops; a write answers 503
    quorum_not_reached in time and stays invisible everywhere; the follower
    comes back empty on the same ports, the pending write commits and every
    dump becomes identical. Junk on a follower's replication and HTTP ports
    does not hurt it and is counted; a reset empties every node, and a
    tagged reset retried is not applied twice.
    leader_alone: WRITE_QUORUM=0 without followers answers at once.
    follower_no_leader_url: writes get 421.
    churn: followers restart while a writer goes on (quorum 2 of 3), then
    the leader restarts on its data and the cluster keeps every key.
    delay: MIN/MAX_DELAY hold every batch; writes still commit, no sooner,
    and a follower restarting under writes catches up through the delay.
    paused_leader: SIGSTOP the leader again and again while six writers
    go on, each pause longer than the write deadline: a 503
    quorum_not_reached always names its entry's index, a write answered
    unavailable is nowhere, every 200 holds.
*/
#include "kit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define TIMEOUT_MS 1000 /* the cluster's REPLICATION_TIMEOUT_MS */
#define WAIT_MS 30000   /* deadline of polls (ASan, 2 cores) */
#define STOPPED 3       /* the follower that is stopped and restarted */
#define JUNK_FRAMES 200 /* random frames sent to a replication port */

static kit_cluster_t s_cluster;
static char s_tag[9];
static char s_key[64];        /* written before and during the outage */
static char s_key2[64];       /* first written during the outage */
static uint64_t s_index1;     /* index of s_key=v1 */
static uint64_t s_pending[2]; /* indexes of the writes that got 503 */

static const char *leader(void) {
    return s_cluster.nodes[0].url;
}

static const char *node_url(size_t i) {
    return s_cluster.nodes[i].url;
}

/* Writes on the leader and returns the answer's status, index and time. */
static long timed_write(const char *key, const char *value, uint64_t *index,
                        int64_t *elapsed_ms, json_t **answer) {
    long status;
    int64_t start = kit_now_ms();
    json_t *r = kit_qkv_write(leader(), "/put", key, value, &status, NULL);
    *elapsed_ms = kit_now_ms() - start;
    *index = 0;
    kit_json_u64(r, "index", index);
    if (answer)
        *answer = r;
    else
        json_decref(r);
    return status;
}

/* Expects GET key on node i to answer 404, or 200 with exactly value. */
static void expect_old_or_absent(size_t i, const char *key, const char *value) {
    long status;
    json_t *r = kit_qkv_read(node_url(i), "/get", key, &status);
    if (value) {
        CU_ASSERT_EQUAL(status, 200);
        KIT_ASSERT_STR(kit_json_str(r, "value"), value);
    } else {
        CU_ASSERT_EQUAL(status, 404);
    }
    json_decref(r);
}

/*  ---------------------------------------------------------------------
    Losing and regaining the quorum */

static void test_write_with_all_up(void) {
    int64_t elapsed;
    uint64_t index;
    json_t *r = NULL;
    CU_ASSERT_EQUAL_FATAL(timed_write(s_key, "v1", &index, &elapsed, &r), 200);
    uint64_t seq = 0;
    CU_ASSERT(kit_json_u64(r, "seq", &seq) && seq == 1);
    CU_ASSERT(index > 0);
    s_index1 = index;
    json_decref(r);
    /* Quorum 5: every follower holds it, and applies it once it learns
       the commit index. */
    for (size_t i = 1; i < s_cluster.count; i++) {
        CU_ASSERT(kit_qkv_wait_holds(node_url(i), s_key, "v1", 1, WAIT_MS));
    }
}

typedef struct {
    size_t follower; /* 1-based, as in FOLLOWERS */
    bool connected;  /* the state to wait for */
} link_state_t;

/* The leader's /health shows follower k connected (or not). */
static bool s_link_state(void *arg) {
    link_state_t *l = arg;
    long status;
    json_t *h = kit_qkv_health(leader(), &status);
    json_t *f =
        json_array_get(json_object_get(h, "followers"), l->follower - 1);
    json_t *c = json_object_get(f, "connected");
    bool ok = json_is_boolean(c) && json_is_true(c) == l->connected;
    json_decref(h);
    return ok;
}

static void test_quorum_lost_answers_503(void) {
    kit_node_t *stopped = &s_cluster.nodes[STOPPED];
    CU_ASSERT_EQUAL(kit_node_stop(stopped, 10000), 0); /* a clean exit */
    CU_ASSERT(!kit_node_running(stopped));
    const char *keys[2] = {s_key, s_key2};
    const char *values[2] = {"v2", "w1"};
    for (int w = 0; w < 2; w++) {
        int64_t elapsed;
        json_t *r = NULL;
        long status =
            timed_write(keys[w], values[w], &s_pending[w], &elapsed, &r);
        printf("\n  write %d during the outage: %ld after %lld ms\n", w, status,
               (long long)elapsed);
        CU_ASSERT_EQUAL(status, 503);
        CU_ASSERT(json_is_false(json_object_get(r, "ok")));
        KIT_ASSERT_STR(kit_json_str(r, "status"), "quorum_not_reached");
        KIT_ASSERT_STR(kit_json_str(r, "key"), keys[w]);
        CU_ASSERT(s_pending[w] > s_index1);
        CU_ASSERT(w == 0 || s_pending[1] > s_pending[0]);
        CU_ASSERT(elapsed >= TIMEOUT_MS - 100);
        CU_ASSERT(elapsed <= TIMEOUT_MS + 2500);
        json_decref(r);
    }
    /* The leader notices: connected false within a few heartbeats. */
    link_state_t gone = {STOPPED, false};
    CU_ASSERT(kit_poll_until(WAIT_MS, s_link_state, &gone));
}

static void test_pending_write_invisible(void) {
    for (size_t i = 0; i < s_cluster.count; i++) {
        if (i == STOPPED)
            continue;
        expect_old_or_absent(i, s_key, "v1");
        expect_old_or_absent(i, s_key2, NULL);
        long status;
        json_t *h = kit_qkv_health(node_url(i), &status);
        uint64_t commit = UINT64_MAX, applied = UINT64_MAX;
        CU_ASSERT(kit_json_u64(h, "commit_index", &commit));
        CU_ASSERT(kit_json_u64(h, "applied_index", &applied));
        CU_ASSERT(commit < s_pending[0]);
        CU_ASSERT(applied < s_pending[0]);
        json_decref(h);
    }
    /* The leader holds both entries in its log. */
    long status;
    json_t *h = kit_qkv_health(leader(), &status);
    uint64_t last = 0;
    CU_ASSERT(kit_json_u64(h, "last_index", &last) && last >= s_pending[1]);
    json_decref(h);
}

static void test_restarted_follower_catches_up(void) {
    CU_ASSERT_EQUAL_FATAL(kit_cluster_restart(&s_cluster, STOPPED, WAIT_MS), 0);
    CU_ASSERT(kit_qkv_wait_holds(node_url(0), s_key, "v2", 2, WAIT_MS));
    CU_ASSERT(kit_qkv_wait_holds(node_url(0), s_key2, "w1", 1, WAIT_MS));
    uint64_t settled = 0;
    CU_ASSERT(kit_qkv_settled(leader(), WAIT_MS, &settled));
    CU_ASSERT(settled >= s_pending[1]);
    for (size_t i = 1; i < s_cluster.count; i++)
        CU_ASSERT(kit_qkv_wait_same_dump(leader(), node_url(i), WAIT_MS));
    CU_ASSERT(kit_qkv_holds(node_url(STOPPED), s_key, "v2", 2));
    CU_ASSERT(kit_qkv_holds(node_url(STOPPED), s_key2, "w1", 1));
    link_state_t back = {STOPPED, true};
    CU_ASSERT(kit_poll_until(WAIT_MS, s_link_state, &back));
}

static void test_write_after_recovery(void) {
    int64_t elapsed;
    uint64_t index;
    char key[64];
    snprintf(key, sizeof key, "t%s-after", s_tag);
    CU_ASSERT_EQUAL(timed_write(key, "fine", &index, &elapsed, NULL), 200);
    CU_ASSERT(index > s_pending[1]);
}

/*  ---------------------------------------------------------------------
    Junk on a follower's replication port */

static void send_zmq_junk(int port) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    CU_ASSERT_FATAL(ctx && s);
    int linger = 2000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, "kit-junk", 8);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    CU_ASSERT_EQUAL(zmq_connect(s, endpoint), 0);
    static const unsigned char frames[][12] = {
        {0},                                  /* one zero byte */
        {0xdd, 0x02, 0xfa, 0xf0, 0x80},       /* array32 of 50M */
        {0xdb, 0x02, 0xfa, 0xf0, 0x80},       /* str32 of 50M */
        {0x93, 0x02, 0x01, 0xa1, 'x'},        /* ACK with a string */
        {0x95, 0x01, 0x01, 0x00, 0x00, 0xdf}, /* APPEND, entries map32 */
        {0x91, 0x91, 0x91, 0x91, 0x91, 0x91}, /* nesting, truncated */
        {0xc1, 0xc1, 0xc1},                   /* reserved bytes */
    };
    zmq_send(s, "", 0, 0);
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++)
        zmq_send(s, frames[i], sizeof frames[i], 0);
    zmq_send(s, frames[3], 5, ZMQ_SNDMORE); /* a multipart message */
    zmq_send(s, frames[3], 5, 0);
    kit_rng_t rng;
    kit_rng_seed(&rng, 31337);
    unsigned char random[256];
    for (int m = 0; m < JUNK_FRAMES; m++) {
        size_t n = 1 + kit_rng_below(&rng, sizeof random);
        for (size_t b = 0; b < n; b++)
            random[b] = (unsigned char)kit_rng_next(&rng);
        zmq_send(s, random, n, 0);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void send_tcp_junk(int port, const char *junk, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
        CU_ASSERT(send(fd, junk, len, MSG_NOSIGNAL) >= 0);
    close(fd);
}

/* Requests that lie or break off, on the HTTP port. */
static void send_http_junk(int port, const char *junk, size_t len) {
    static const char *const requests[] = {
        "GARBAGE / NONSENSE\r\n\r\n",
        "POST /put HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
        "\r\n{\"key\":",
        "POST /put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "\r\n5\r\n{\"key\r\nzz\r\n",
        "POST /put HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "GET /get?key=%zz%00%",
        "GET /health HTTP/1.1\r\nHost: x\r\nX: \x01\x02\xff\r\n\r\n",
        NULL};
    for (size_t i = 0; requests[i]; i++)
        send_tcp_junk(port, requests[i], strlen(requests[i]));
    send_tcp_junk(port, junk, len);
}

typedef struct {
    const char *url;
    double value; /* the last value read, -1 when absent */
} counter_t;

static bool s_malformed_counted(void *arg) {
    counter_t *c = arg;
    char url[512], *body = NULL;
    long status;
    snprintf(url, sizeof url, "%s/metrics", c->url);
    c->value = -1;
    if (kit_http_get(url, &status, &body) == 0 && status == 200)
        kit_prom_value(body, "qkv_malformed_frames_total", &c->value);
    free(body);
    return c->value >= JUNK_FRAMES;
}

static void test_junk_on_replication_port(void) {
    kit_node_t *target = &s_cluster.nodes[2];
    send_zmq_junk(target->repl_port);
    char junk[4096];
    kit_rng_t rng;
    kit_rng_seed(&rng, 4);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)kit_rng_next(&rng);
    send_tcp_junk(target->repl_port, junk, sizeof junk);
    send_http_junk(target->port, junk, sizeof junk);
    /* Quorum 5: this commits only if the target still acks. */
    int64_t elapsed;
    uint64_t index;
    char key[64];
    snprintf(key, sizeof key, "t%s-after-junk", s_tag);
    CU_ASSERT_EQUAL(timed_write(key, "still-fine", &index, &elapsed, NULL),
                    200);
    CU_ASSERT(kit_node_running(target));
    CU_ASSERT(kit_node_wait_healthy(target, WAIT_MS) == 0);
    CU_ASSERT(kit_qkv_wait_same_dump(leader(), target->url, WAIT_MS));
    /* PROTOCOL.md: malformed frames are dropped and counted. */
    counter_t c = {target->url, -1};
    bool counted = kit_poll_until(WAIT_MS, s_malformed_counted, &c);
    if (!counted)
        fprintf(stderr,
                "\n  qkv_malformed_frames_total on %s: %g (-1: "
                "absent), %d junk frames sent\n",
                target->name, c.value, JUNK_FRAMES);
    CU_ASSERT(counted);
}

/*  ---------------------------------------------------------------------
    Reset */

typedef struct {
    size_t node;
} empty_t;

static bool s_dump_empty(void *arg) {
    empty_t *e = arg;
    long status;
    json_t *d = kit_qkv_dump(node_url(e->node), &status);
    uint64_t count = 1;
    bool empty = status == 200 && kit_json_u64(d, "count", &count) &&
                 count == 0 &&
                 json_object_size(json_object_get(d, "entries")) == 0;
    json_decref(d);
    return empty;
}

static void test_reset_empties_every_node(void) {
    char url[512];
    snprintf(url, sizeof url, "%s/reset", leader());
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, "", 0, &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 200);
    json_t *json = kit_json_parse(resp.body, resp.body_len);
    uint64_t index = 0;
    CU_ASSERT(kit_json_u64(json, "index", &index) && index > s_pending[1]);
    json_decref(json);
    kit_resp_free(&resp);
    for (size_t i = 0; i < s_cluster.count; i++) {
        empty_t e = {i};
        CU_ASSERT(kit_poll_until(WAIT_MS, s_dump_empty, &e));
    }
    int64_t elapsed;
    json_t *r = NULL;
    CU_ASSERT_EQUAL(timed_write(s_key, "v-after-reset", &index, &elapsed, &r),
                    200);
    uint64_t seq = 0;
    CU_ASSERT(kit_json_u64(r, "seq", &seq) && seq == 1);
    json_decref(r);
    for (size_t i = 1; i < s_cluster.count; i++)
        CU_ASSERT(kit_qkv_wait_same_dump(leader(), node_url(i), WAIT_MS));
}

/* POSTs body to the leader's /reset; returns the status, sets *index. */
static long reset_with(const char *body, uint64_t *index) {
    char url[512];
    snprintf(url, sizeof url, "%s/reset", leader());
    kit_resp_t resp;
    *index = 0;
    if (kit_http("POST", url, body, strlen(body), &resp) != 0)
        return 0;
    json_t *json = kit_json_parse(resp.body, resp.body_len);
    kit_json_u64(json, "index", index);
    json_decref(json);
    long status = resp.status;
    kit_resp_free(&resp);
    return status;
}

/* A tagged reset retried answers the original's index and empties
   nothing again: a key written between the two survives. */
static void test_tagged_reset_retried(void) {
    char body[128];
    snprintf(body, sizeof body, "{\"client_id\":%llu,\"client_seq\":1}",
             strtoull(s_tag, NULL, 16) * 1000 + 1001);
    uint64_t first, again, index;
    CU_ASSERT_EQUAL_FATAL(reset_with(body, &first), 200);
    CU_ASSERT(first > 0);
    int64_t elapsed;
    CU_ASSERT_EQUAL(
        timed_write(s_key2, "after-tagged-reset", &index, &elapsed, NULL), 200);
    CU_ASSERT(index > first);
    CU_ASSERT_EQUAL(reset_with(body, &again), 200);
    if (again != first)
        fprintf(stderr, "\n  reset retry: index %llu, first %llu\n",
                (unsigned long long)again, (unsigned long long)first);
    CU_ASSERT_EQUAL(again, first);
    expect_old_or_absent(0, s_key2, "after-tagged-reset");
    /* an untagged reset with an empty object for a body */
    CU_ASSERT_EQUAL(reset_with("{}", &again), 200);
    CU_ASSERT(again > index);
    expect_old_or_absent(0, s_key2, NULL);
    for (size_t i = 1; i < s_cluster.count; i++)
        CU_ASSERT(kit_qkv_wait_same_dump(leader(), node_url(i), WAIT_MS));
}

static int s_faults_start(void) {
    kit_random_tag(s_tag);
    snprintf(s_key, sizeof s_key, "t%s-k", s_tag);
    snprintf(s_key2, sizeof s_key2, "t%s-k2", s_tag);
    kit_cluster_opts_t opts = {.followers = 5,
                               .write_quorum = 5,
                               .replication_timeout_ms = TIMEOUT_MS,
                               .heartbeat_ms = 50};
    return kit_cluster_start(&s_cluster, &opts);
}

static int s_faults_stop(void) {
    return kit_cluster_stop(&s_cluster) ? -1 : 0;
}

/*  ---------------------------------------------------------------------
    A leader without followers: WRITE_QUORUM=0 */

static kit_cluster_t s_alone;

static int s_alone_start(void) {
    kit_cluster_opts_t opts = {.followers = 0, .write_quorum = 0};
    return kit_cluster_start(&s_alone, &opts);
}

static int s_alone_stop(void) {
    return kit_cluster_stop(&s_alone) ? -1 : 0;
}

static void test_alone_writes_at_once(void) {
    const char *url = s_alone.nodes[0].url;
    char key[64];
    snprintf(key, sizeof key, "t%s-alone", s_tag);
    for (uint64_t n = 1; n <= 10; n++) {
        long status;
        int64_t start = kit_now_ms();
        json_t *r = kit_qkv_write(url, "/put", key, "x", &status, NULL);
        int64_t elapsed = kit_now_ms() - start;
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT(elapsed < 1000);
        uint64_t seq = 0;
        CU_ASSERT(kit_json_u64(r, "seq", &seq) && seq == n);
        json_decref(r);
        CU_ASSERT(kit_qkv_holds(url, key, "x", n));
    }
    long status;
    json_t *h = kit_qkv_health(url, &status);
    CU_ASSERT_EQUAL(status, 200);
    json_t *followers = json_object_get(h, "followers");
    CU_ASSERT(json_is_array(followers) && json_array_size(followers) == 0);
    json_decref(h);
}

/*  ---------------------------------------------------------------------
    A follower without LEADER_URL */

static kit_node_t s_lonely;

static int s_lonely_start(void) {
    int port = kit_free_port(), repl = kit_free_port();
    char p[16], r[16];
    snprintf(p, sizeof p, "%d", port);
    snprintf(r, sizeof r, "%d", repl);
    kit_node_init(&s_lonely, "lonely", port, repl);
    if (kit_node_args(&s_lonely, "--role", "follower", "--port", p,
                      "--repl-port", r, "--node-id", "lonely", NULL) != 0 ||
        kit_node_start(&s_lonely) != 0)
        return -1;
    return kit_node_wait_healthy(&s_lonely, WAIT_MS);
}

static int s_lonely_stop(void) {
    int code = kit_node_stop(&s_lonely, 10000);
    kit_node_free(&s_lonely);
    return code == 0 ? 0 : -1;
}

static void test_follower_without_leader_url(void) {
    const char *paths[] = {"/put", "/write", "/reset"};
    for (size_t i = 0; i < 3; i++) {
        char url[512];
        snprintf(url, sizeof url, "%s%s", s_lonely.url, paths[i]);
        kit_resp_t resp;
        const char *body = "{\"key\":\"k\",\"value\":\"v\"}";
        CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, body, strlen(body), &resp),
                              0);
        CU_ASSERT_EQUAL(resp.status, 421);
        CU_ASSERT(resp.location == NULL);
        json_t *json = kit_json_parse(resp.body, resp.body_len);
        CU_ASSERT(json_is_false(json_object_get(json, "ok")));
        KIT_ASSERT_STR(kit_json_str(json, "status"), "not_leader");
        json_decref(json);
        kit_resp_free(&resp);
    }
    long status;
    json_t *r = kit_qkv_read(s_lonely.url, "/get", "k", &status);
    CU_ASSERT_EQUAL(status, 404);
    json_decref(r);
    json_t *h = kit_qkv_health(s_lonely.url, &status);
    CU_ASSERT_EQUAL(status, 200);
    KIT_ASSERT_STR(kit_json_str(h, "role"), "follower");
    json_decref(h);
}

/*  ---------------------------------------------------------------------
    Churn: followers restart while writes go on; then the leader restarts
    on its data directory: the cluster keeps every key. Quorum 2 of 3.
*/

#define CHURN_FOLLOWERS 3

static kit_cluster_t s_churn;

typedef struct {
    const char *url;  /* the leader written to */
    int stop;         /* atomic: set to end the writer */
    int done;         /* atomic: writes answered */
    int not_ok;       /* answers other than 200 */
    long last_status; /* the last one of those */
} writer_t;

static writer_t s_writer;

static void churn_key(char *key, size_t size, int n) {
    snprintf(key, size, "t%s-churn-%d", s_tag, n);
}

static void *s_write_on(void *arg) {
    writer_t *w = arg;
    const char *url = w->url;
    for (int n = 0; !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); n++) {
        char key[64], value[32];
        churn_key(key, sizeof key, n);
        snprintf(value, sizeof value, "c%d", n);
        long status;
        json_t *r = kit_qkv_write(url, "/put", key, value, &status, NULL);
        json_decref(r);
        if (status != 200) {
            w->not_ok++;
            w->last_status = status;
        }
        __atomic_add_fetch(&w->done, 1, __ATOMIC_RELEASE);
    }
    kit_http_thread_done();
    return NULL;
}

typedef struct {
    int target;
} progress_t;

static bool s_progressed(void *arg) {
    progress_t *p = arg;
    return __atomic_load_n(&s_writer.done, __ATOMIC_ACQUIRE) >= p->target;
}

/* Waits for `more` writes beyond those answered so far. */
static void wait_writes(int more) {
    progress_t p = {__atomic_load_n(&s_writer.done, __ATOMIC_ACQUIRE) + more};
    CU_ASSERT(kit_poll_until(WAIT_MS, s_progressed, &p));
}

static int s_churn_start(void) {
    kit_cluster_opts_t opts = {.followers = CHURN_FOLLOWERS,
                               .write_quorum = 2,
                               .replication_timeout_ms = 5000,
                               .heartbeat_ms = 50};
    return kit_cluster_start(&s_churn, &opts);
}

static int s_churn_stop(void) {
    return kit_cluster_stop(&s_churn) ? -1 : 0;
}

/* Restarts followers 1..restarts of cluster one by one while a writer
   goes on; every write must succeed and every dump end up the leader's. */
static void restarts_under_writes(kit_cluster_t *cluster, size_t restarts) {
    CU_ASSERT_FATAL(kit_cluster_alive(cluster));
    long status;
    json_t *d = kit_qkv_dump(cluster->nodes[0].url, &status);
    uint64_t before = 0, count = 0;
    CU_ASSERT_FATAL(kit_json_u64(d, "count", &before));
    json_decref(d);
    memset(&s_writer, 0, sizeof s_writer);
    s_writer.url = cluster->nodes[0].url;
    pthread_t thread;
    CU_ASSERT_FATAL(pthread_create(&thread, NULL, s_write_on, &s_writer) == 0);
    wait_writes(20);
    for (size_t f = 1; f <= restarts; f++) {
        CU_ASSERT_EQUAL(kit_node_stop(&cluster->nodes[f], 10000), 0);
        wait_writes(20);
        CU_ASSERT_EQUAL(kit_cluster_restart(cluster, f, WAIT_MS), 0);
        wait_writes(20);
    }
    __atomic_store_n(&s_writer.stop, 1, __ATOMIC_RELEASE);
    pthread_join(thread, NULL);
    if (s_writer.not_ok)
        fprintf(stderr, "\n  %d of %d writes failed, the last with %ld\n",
                s_writer.not_ok, s_writer.done, s_writer.last_status);
    CU_ASSERT_EQUAL(s_writer.not_ok, 0);
    const char *leader_url = cluster->nodes[0].url;
    CU_ASSERT(kit_qkv_settled(leader_url, WAIT_MS, NULL));
    for (size_t i = 1; i < cluster->count; i++)
        CU_ASSERT(
            kit_qkv_wait_same_dump(leader_url, cluster->nodes[i].url, WAIT_MS));
    d = kit_qkv_dump(leader_url, &status);
    CU_ASSERT(kit_json_u64(d, "count", &count));
    CU_ASSERT(count == before + (uint64_t)s_writer.done);
    json_decref(d);
}

static void test_restarts_under_writes(void) {
    restarts_under_writes(&s_churn, 2);
}

/* A leader restarted on its data directory keeps the cluster: the same
   cluster id, a term one higher, every key with its seq; seqs go on. */
static void test_leader_restart_keeps_data(void) {
    kit_node_t *leader_node = &s_churn.nodes[0];
    const char *url = leader_node->url;
    long status;
    CU_ASSERT_FATAL(kit_qkv_settled(url, WAIT_MS, NULL));
    json_t *before = kit_qkv_dump(url, &status);
    json_t *h = kit_qkv_health(url, &status);
    char old_id[64];
    uint64_t old_term = 0, count = 0;
    snprintf(old_id, sizeof old_id, "%s", kit_json_str(h, "cluster_id"));
    CU_ASSERT(kit_json_u64(h, "term", &old_term));
    json_decref(h);
    CU_ASSERT_FATAL(kit_json_u64(before, "count", &count) && count > 0);
    CU_ASSERT_EQUAL(kit_node_stop(leader_node, 10000), 0);
    CU_ASSERT_EQUAL_FATAL(kit_cluster_restart(&s_churn, 0, WAIT_MS), 0);
    CU_ASSERT(kit_qkv_settled(url, WAIT_MS, NULL));
    h = kit_qkv_health(url, &status);
    uint64_t term = 0;
    CU_ASSERT_STRING_EQUAL(kit_json_str(h, "cluster_id"), old_id);
    CU_ASSERT(kit_json_u64(h, "term", &term) && term == old_term + 1);
    json_decref(h);
    /* every key as it was, on the leader and on every follower */
    json_t *after = kit_qkv_dump(url, &status);
    CU_ASSERT(json_equal(json_object_get(before, "entries"),
                         json_object_get(after, "entries")));
    json_decref(after);
    for (size_t i = 1; i < s_churn.count; i++)
        CU_ASSERT(kit_qkv_wait_same_dump(url, s_churn.nodes[i].url, WAIT_MS));
    /* an old key's seq goes on */
    char key[64];
    churn_key(key, sizeof key, 0);
    json_t *old = json_object_get(json_object_get(before, "entries"), key);
    uint64_t old_seq = 0, seq = 0;
    CU_ASSERT_FATAL(kit_json_u64(old, "seq", &old_seq));
    json_t *r = kit_qkv_write(url, "/put", key, "again", &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(kit_json_u64(r, "seq", &seq) && seq == old_seq + 1);
    json_decref(r);
    json_decref(before);
}

/*  ---------------------------------------------------------------------
    Simulated delay: every batch to a follower waits 100..150 ms */

#define MIN_DELAY_MS 100

static kit_cluster_t s_slow;

static int s_slow_start(void) {
    static const char *const delays[] = {"--min-delay", "0.1", "--max-delay",
                                         "0.15", NULL};
    kit_cluster_opts_t opts = {.followers = 3,
                               .write_quorum = 2,
                               .replication_timeout_ms = 5000,
                               .heartbeat_ms = 50,
                               .leader_args = delays};
    return kit_cluster_start(&s_slow, &opts);
}

static int s_slow_stop(void) {
    return kit_cluster_stop(&s_slow) ? -1 : 0;
}

static void test_delayed_writes(void) {
    const char *url = s_slow.nodes[0].url;
    char key[64];
    snprintf(key, sizeof key, "t%s-slow", s_tag);
    for (uint64_t n = 1; n <= 5; n++) {
        long status;
        int64_t start = kit_now_ms();
        json_t *r = kit_qkv_write(url, "/put", key, "slow", &status, NULL);
        int64_t elapsed = kit_now_ms() - start;
        if (status != 200 && !kit_cluster_alive(&s_slow)) {
            json_decref(r);
            CU_FAIL_FATAL("a node of the delayed cluster died");
        }
        CU_ASSERT_EQUAL(status, 200);
        CU_ASSERT(elapsed >= MIN_DELAY_MS);
        double latency = json_number_value(json_object_get(r, "latency"));
        if (latency < MIN_DELAY_MS / 1000.0 ||
            latency > elapsed / 1000.0 + 0.002)
            fprintf(stderr, "\n  latency %.3f s, the client waited %lld ms\n",
                    latency, (long long)elapsed);
        CU_ASSERT(latency >= MIN_DELAY_MS / 1000.0);
        CU_ASSERT(latency <= elapsed / 1000.0 + 0.002);
        uint64_t seq = 0;
        CU_ASSERT(kit_json_u64(r, "seq", &seq) && seq == n);
        json_decref(r);
    }
    for (size_t i = 1; i < s_slow.count; i++)
        CU_ASSERT(kit_qkv_wait_same_dump(url, s_slow.nodes[i].url, WAIT_MS));
}

/* The delay queue keeps each link in order across a follower's restart. */
static void test_delayed_restart_under_writes(void) {
    restarts_under_writes(&s_slow, 1);
}

/*  ---------------------------------------------------------------------
    A paused leader: SIGSTOP while writes arrive, longer than their
    deadline. A 503 quorum_not_reached names its entry's index; a write
    answered unavailable was never written; every 200 holds. */

#define PAUSE_WRITERS 6
#define PAUSE_TIMEOUT_MS 300
#define PAUSES 5

static kit_cluster_t s_paused;

typedef struct {
    int n;            /* writer number */
    int stop;         /* set to end */
    int count;        /* writes answered */
    char (*keys)[48]; /* key of write i */
    long *status;     /* its HTTP status */
    char (*word)[24]; /* its status word */
    uint64_t *index;  /* its index, 0 when the answer had none */
} pause_writer_t;

#define PAUSE_MAX_WRITES 4000

static void *s_pause_write(void *arg) {
    pause_writer_t *w = arg;
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) &&
           w->count < PAUSE_MAX_WRITES) {
        int i = w->count;
        snprintf(w->keys[i], sizeof w->keys[i], "t%s-pause-%d-%d", s_tag, w->n,
                 i);
        json_t *r = kit_qkv_write(s_paused.nodes[0].url, "/put", w->keys[i],
                                  "p", &w->status[i], NULL);
        const char *word = kit_json_str(r, "status");
        snprintf(w->word[i], sizeof w->word[i], "%s", word ? word : "");
        w->index[i] = 0;
        kit_json_u64(r, "index", &w->index[i]);
        json_decref(r);
        __atomic_store_n(&w->count, i + 1, __ATOMIC_RELEASE);
    }
    kit_http_thread_done();
    return NULL;
}

static int s_paused_start(void) {
    kit_cluster_opts_t opts = {.followers = 2,
                               .write_quorum = 1,
                               .replication_timeout_ms = PAUSE_TIMEOUT_MS,
                               .heartbeat_ms = 50};
    return kit_cluster_start(&s_paused, &opts);
}

static int s_paused_stop(void) {
    return kit_cluster_stop(&s_paused) ? -1 : 0;
}

static void s_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_paused_leader_answers(void) {
    static pause_writer_t writers[PAUSE_WRITERS];
    pthread_t threads[PAUSE_WRITERS];
    pid_t leader_pid = s_paused.nodes[0].pid;
    for (int t = 0; t < PAUSE_WRITERS; t++) {
        pause_writer_t *w = &writers[t];
        memset(w, 0, sizeof *w);
        w->n = t;
        w->keys = calloc(PAUSE_MAX_WRITES, sizeof *w->keys);
        w->status = calloc(PAUSE_MAX_WRITES, sizeof *w->status);
        w->word = calloc(PAUSE_MAX_WRITES, sizeof *w->word);
        w->index = calloc(PAUSE_MAX_WRITES, sizeof *w->index);
        CU_ASSERT_FATAL(w->keys && w->status && w->word && w->index);
        CU_ASSERT_FATAL(pthread_create(&threads[t], NULL, s_pause_write, w) ==
                        0);
    }
    for (int p = 0; p < PAUSES; p++) {
        s_sleep_ms(150);
        kill(leader_pid, SIGSTOP);
        s_sleep_ms(2 * PAUSE_TIMEOUT_MS);
        kill(leader_pid, SIGCONT);
    }
    s_sleep_ms(150);
    for (int t = 0; t < PAUSE_WRITERS; t++) {
        __atomic_store_n(&writers[t].stop, 1, __ATOMIC_RELEASE);
        pthread_join(threads[t], NULL);
    }
    CU_ASSERT(kit_cluster_alive(&s_paused));
    const char *leader_url = s_paused.nodes[0].url;
    CU_ASSERT(kit_qkv_settled(leader_url, WAIT_MS, NULL));
    for (size_t i = 1; i < s_paused.count; i++)
        CU_ASSERT(
            kit_qkv_wait_same_dump(leader_url, s_paused.nodes[i].url, WAIT_MS));
    int ok = 0, timeouts = 0, unwritten = 0, bad = 0, total = 0;
    for (int t = 0; t < PAUSE_WRITERS; t++) {
        pause_writer_t *w = &writers[t];
        for (int i = 0; i < w->count; i++) {
            total++;
            bool held = kit_qkv_holds(leader_url, w->keys[i], "p", 1);
            bool good;
            if (w->status[i] == 200) {
                ok++;
                good = held && w->index[i] > 0;
            } else if (strcmp(w->word[i], "quorum_not_reached") == 0) {
                /* not confirmed in time, never rolled back: the followers
                   are up, so it commits */
                timeouts++;
                good = w->index[i] > 0 && held;
            } else if (strcmp(w->word[i], "unavailable") == 0) {
                unwritten++;
                good = !held; /* nothing was written */
            } else {
                good = false;
            }
            if (!good && bad++ < 5)
                fprintf(stderr, "\n  %s: %ld %s index %llu, %s on the leader\n",
                        w->keys[i], w->status[i], w->word[i],
                        (unsigned long long)w->index[i],
                        held ? "held" : "absent");
        }
        free(w->keys);
        free(w->status);
        free(w->word);
        free(w->index);
    }
    fprintf(stderr,
            "\n  %d writes: %d ok, %d not confirmed in time, %d "
            "not written\n",
            total, ok, timeouts, unwritten);
    CU_ASSERT(total > 0 && ok > 0);
    CU_ASSERT_EQUAL(bad, 0);
}

static int s_add_suites(void) {
    static const kit_test_t faults[] = {
        KIT_TEST(test_write_with_all_up),
        KIT_TEST(test_quorum_lost_answers_503),
        KIT_TEST(test_pending_write_invisible),
        KIT_TEST(test_restarted_follower_catches_up),
        KIT_TEST(test_write_after_recovery),
        KIT_TEST(test_junk_on_replication_port),
        KIT_TEST(test_reset_empties_every_node),
        KIT_TEST(test_tagged_reset_retried),
        KIT_TESTS_END};
    static const kit_test_t alone[] = {KIT_TEST(test_alone_writes_at_once),
                                       KIT_TESTS_END};
    static const kit_test_t lonely[] = {
        KIT_TEST(test_follower_without_leader_url), KIT_TESTS_END};
    static const kit_test_t churn[] = {KIT_TEST(test_restarts_under_writes),
                                       KIT_TEST(test_leader_restart_keeps_data),
                                       KIT_TESTS_END};
    static const kit_test_t slow[] = {
        KIT_TEST(test_delayed_writes),
        KIT_TEST(test_delayed_restart_under_writes), KIT_TESTS_END};
    static const kit_test_t paused[] = {KIT_TEST(test_paused_leader_answers),
                                        KIT_TESTS_END};
    if (!kit_add_suite("faults_quorum5", s_faults_start, s_faults_stop,
                       faults) ||
        !kit_add_suite("leader_alone", s_alone_start, s_alone_stop, alone) ||
        !kit_add_suite("follower_no_leader_url", s_lonely_start, s_lonely_stop,
                       lonely) ||
        !kit_add_suite("churn", s_churn_start, s_churn_stop, churn) ||
        !kit_add_suite("delay", s_slow_start, s_slow_stop, slow) ||
        !kit_add_suite("paused_leader", s_paused_start, s_paused_stop, paused))
        return -1;
    return 0;
}

int main(void) {
    const char *external = getenv("QKV_TEST_NODES");
    if (external && *external)
        kit_skip("test_faults needs local processes (QKV_TEST_NODES is "
                 "set)",
                 false);
    kit_node_bin();
    return kit_run(s_add_suites);
}
