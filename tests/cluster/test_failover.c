/*  test_failover.c - elections with real qkv-node processes (PEERS).

    The rules are tested without processes in tests/unit/test_election.c;
    this suite proves the wiring: a six-node cluster (q = 3) whose leader
    is killed with SIGKILL ten times under two writers elects a new leader
    every time, every write that was acknowledged - each under a key of
    its own - is on every node afterwards, and a history of registers
    (writes and leader reads) recorded meanwhile is linearizable; a leader
   paused past the election timeout (SIGSTOP) and resumed serves no read as
   leader from its old state and acknowledges nothing the new leader lacks; with
   q = 1 (E = 5 of 6) two nodes down leave no leader and writes are answered
    no_leader, and one node back brings a leader.
*/
#include "kit.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NEW_LEADER_MS 10000 /* here; the < 2 s figure belongs to perf/ */
#define KILLS 10
#define WRITERS 2

static void s_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts followers + 1 nodes with PEERS at write_quorum q and returns the
   node that leads them. */
static int s_start(kit_cluster_t *c, size_t followers, int q) {
    kit_cluster_opts_t opts = {
        .followers = followers, .write_quorum = q, .peers = true};
    CU_ASSERT_FATAL(kit_cluster_start(c, &opts) == 0);
    int leader = kit_cluster_leader(c, NEW_LEADER_MS);
    CU_ASSERT_FATAL(leader >= 0);
    return leader;
}

/*  ---------------------------------------------------------------------
    Tests */

static void test_kill_leader_under_load(void) {
    kit_cluster_t c;
    kit_cluster_opts_t opts = {.followers = 5,
                               .write_quorum = 3,
                               .peers = true,
                               .replication_timeout_ms = 3000};
    CU_ASSERT_FATAL(kit_cluster_start(&c, &opts) == 0);
    kit_writer_t *w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        char prefix[8];
        snprintf(prefix, sizeof prefix, "w%d-", i);
        w[i] = kit_writer_start(&c, prefix, 30000);
        CU_ASSERT_FATAL(w[i] != NULL);
    }
    /* and a history of registers, checked for linearizability */
    kit_history_t *history = kit_history_start(&c, 3000);
    CU_ASSERT_FATAL(history != NULL);
    int failovers = 0, slowest_ms = 0;
    for (int kill = 0; kill < KILLS; kill++) {
        int leader = kit_cluster_leader(&c, NEW_LEADER_MS);
        CU_ASSERT_FATAL(leader >= 0);
        s_sleep_ms(300); /* writes under this leader */
        int64_t t0 = kit_now_ms();
        kit_node_kill(&c.nodes[leader]);
        int next = kit_cluster_leader(&c, NEW_LEADER_MS);
        int took = (int)(kit_now_ms() - t0);
        if (next < 0)
            fprintf(stderr, "\n  kill %d: no new leader in %d ms", kill,
                    NEW_LEADER_MS);
        CU_ASSERT(next >= 0 && next != leader);
        failovers += next >= 0 && next != leader;
        if (took > slowest_ms)
            slowest_ms = took;
        /* the killed node comes back with its data and rejoins */
        CU_ASSERT_FATAL(kit_cluster_restart(&c, (size_t)leader, 30000) == 0);
    }
    CU_ASSERT_EQUAL(kit_history_check(&history), 1);
    size_t acked = 0, refused = 0;
    for (int i = 0; i < WRITERS; i++) {
        acked += kit_writer_stop(w[i]);
        refused += kit_writer_refused(w[i]);
    }
    fprintf(stderr,
            "\n  %d failovers, slowest %d ms; %zu writes acknowledged, "
            "%zu answers to try again",
            failovers, slowest_ms, acked, refused);
    CU_ASSERT_EQUAL(failovers, KILLS);
    CU_ASSERT(acked > 100);
    /* every node holds every acknowledged write */
    int leader = kit_cluster_leader(&c, NEW_LEADER_MS);
    CU_ASSERT_FATAL(leader >= 0);
    for (size_t i = 0; i < c.count; i++) {
        if ((int)i != leader)
            CU_ASSERT(kit_qkv_wait_same_dump(c.nodes[leader].url,
                                             c.nodes[i].url, 10000));
        for (int k = 0; k < WRITERS; k++)
            CU_ASSERT_EQUAL(kit_writer_missing(w[k], &c.nodes[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        kit_writer_free(&w[i]);
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static void test_paused_leader(void) {
    kit_cluster_t c;
    int old = s_start(&c, 2, 1);
    /* a new cluster: node0, started with --role leader, leads it */
    CU_ASSERT_EQUAL(old, 0);
    long status = 0;
    json_t *r =
        kit_qkv_write(c.nodes[old].url, "/put", "k", "old", &status, NULL);
    json_decref(r);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    /* paused past the election timeout: the others elect */
    CU_ASSERT_FATAL(kill(c.nodes[old].pid, SIGSTOP) == 0);
    pid_t paused = c.nodes[old].pid;
    c.nodes[old].pid = 0; /* kit_cluster_leader skips it */
    int next = kit_cluster_leader(&c, NEW_LEADER_MS);
    c.nodes[old].pid = paused;
    CU_ASSERT_FATAL(next >= 0 && next != old);
    r = kit_qkv_write(c.nodes[next].url, "/put", "k", "new", &status, NULL);
    json_decref(r);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    /* resumed: its first answers come before or after it learns of the
       new leader; as leader it must not show "old" */
    CU_ASSERT_FATAL(kill(paused, SIGCONT) == 0);
    for (int i = 0; i < 20; i++) {
        r = kit_qkv_read(c.nodes[old].url, "/get", "k", &status);
        const char *value = kit_json_str(r, "value");
        bool as_follower = json_object_get(r, "follower_id") != NULL;
        if (status == 200 && !as_follower && value)
            CU_ASSERT_STRING_EQUAL(value, "new");
        CU_ASSERT(status == 200 || status == 503);
        json_decref(r);
    }
    /* a write it takes as the old leader is never acknowledged unless the
       new leader has it */
    r = kit_qkv_write(c.nodes[old].url, "/put", "late", "x", &status, NULL);
    json_decref(r);
    if (status == 200)
        CU_ASSERT(kit_qkv_wait_holds(c.nodes[next].url, "late", "x", 0, 5000));
    /* it follows, and holds the new value */
    CU_ASSERT(kit_cluster_leader(&c, NEW_LEADER_MS) == next);
    CU_ASSERT(kit_qkv_wait_holds(c.nodes[old].url, "k", "new", 0, 5000));
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static void test_no_election_without_quorum(void) {
    /* N = 6, q = 1: a write commits on 2 nodes, so an election needs 5 */
    kit_cluster_t c;
    int leader = s_start(&c, 5, 1);
    size_t other = ((size_t)leader + 1) % c.count;
    kit_node_kill(&c.nodes[leader]);
    kit_node_kill(&c.nodes[other]);
    CU_ASSERT_EQUAL(kit_cluster_leader(&c, 3000), -1);
    size_t alive = (other + 1) % c.count;
    long status = 0;
    char *location = NULL;
    json_t *r =
        kit_qkv_write(c.nodes[alive].url, "/put", "k", "v", &status, &location);
    CU_ASSERT_EQUAL(status, 503);
    KIT_ASSERT_STR(kit_json_str(r, "status"), "no_leader");
    json_decref(r);
    free(location);
    json_t *h = kit_qkv_health(c.nodes[alive].url, &status);
    KIT_ASSERT_STR(kit_json_str(h, "leader_id"), "");
    json_decref(h);
    /* one node back: five of six, an election */
    CU_ASSERT_FATAL(kit_cluster_restart(&c, other, 30000) == 0);
    leader = kit_cluster_leader(&c, NEW_LEADER_MS);
    CU_ASSERT(leader >= 0);
    if (leader >= 0) {
        r = kit_qkv_write(c.nodes[leader].url, "/put", "k", "v", &status, NULL);
        CU_ASSERT_EQUAL(status, 200);
        json_decref(r);
    }
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

typedef struct {
    const char *url;
} s_error_arg_t;

static bool s_says_mismatch(void *arg) {
    long status = 0;
    json_t *h = kit_qkv_health(((s_error_arg_t *)arg)->url, &status);
    const char *error = kit_json_str(h, "error");
    bool says = error && strstr(error, "WRITE_QUORUM");
    json_decref(h);
    return says;
}

static void test_mismatched_settings_refused(void) {
    /* a node started with another WRITE_QUORUM than the others refuses
       their messages and says why; the others go on without it */
    kit_cluster_t c;
    int leader = s_start(&c, 2, 1);
    size_t odd = ((size_t)leader + 1) % c.count;
    CU_ASSERT_EQUAL(kit_node_stop(&c.nodes[odd], 5000), 0);
    CU_ASSERT_FATAL(kit_node_args(&c.nodes[odd], "--write-quorum", "2", NULL) ==
                    0);
    CU_ASSERT_FATAL(kit_cluster_restart(&c, odd, 30000) == 0);
    s_error_arg_t arg = {c.nodes[odd].url};
    CU_ASSERT(kit_poll_until(5000, s_says_mismatch, &arg));
    long status = 0;
    json_t *r =
        kit_qkv_write(c.nodes[leader].url, "/put", "k", "v", &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    json_decref(r);
    CU_ASSERT(!kit_qkv_wait_holds(c.nodes[odd].url, "k", "v", 0, 500));
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

/* POST /admin/transfer-leader {"to": ID} on the leader. */
static long s_transfer(const char *base, const char *to, char **location) {
    char url[512], body[256];
    snprintf(url, sizeof url, "%s/admin/transfer-leader", base);
    snprintf(body, sizeof body, "{\"to\":\"%s\"}", to);
    kit_resp_t r;
    if (kit_http("POST", url, body, strlen(body), &r) != 0)
        return 0;
    long status = r.status;
    if (location)
        *location = r.location ? strdup(r.location) : NULL;
    kit_resp_free(&r);
    return status;
}

static void test_transfer_leader(void) {
    kit_cluster_t c;
    int l = s_start(&c, 2, 1);
    size_t to = ((size_t)l + 1) % c.count, other = ((size_t)l + 2) % c.count;
    /* asked of a follower: 307 to the leader */
    char *location = NULL;
    CU_ASSERT_EQUAL(s_transfer(c.nodes[other].url, c.nodes[to].name, &location),
                    307);
    CU_ASSERT(location && strstr(location, c.nodes[l].url) == location);
    free(location);
    CU_ASSERT_EQUAL(s_transfer(c.nodes[l].url, "nobody", NULL), 404);
    /* to a node: 200 once it leads, well within an election timeout */
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL(s_transfer(c.nodes[l].url, c.nodes[to].name, NULL), 200);
    printf("\n  handover took %lld ms", (long long)(kit_now_ms() - t0));
    CU_ASSERT_EQUAL(kit_cluster_leader(&c, NEW_LEADER_MS), (int)to);
    long status = 0;
    json_t *r = kit_qkv_write(c.nodes[to].url, "/put", "after", "handover",
                              &status, NULL);
    CU_ASSERT_EQUAL(status, 200);
    json_decref(r);
    /* to itself: nothing to do */
    CU_ASSERT_EQUAL(s_transfer(c.nodes[to].url, c.nodes[to].name, NULL), 200);
    /* a stopped node is not up to date: 409 */
    kit_node_kill(&c.nodes[other]);
    s_sleep_ms(1200);
    CU_ASSERT_EQUAL(s_transfer(c.nodes[to].url, c.nodes[other].name, NULL),
                    409);
    CU_ASSERT_EQUAL(kit_cluster_leader(&c, NEW_LEADER_MS), (int)to);
    CU_ASSERT_FATAL(kit_cluster_restart(&c, other, 30000) == 0);
    uint64_t index = 0;
    CU_ASSERT(kit_qkv_settled(c.nodes[to].url, NEW_LEADER_MS, &index));
    /* SIGTERM on the leader hands over before it stops: another node
       leads at once, not an election timeout later */
    CU_ASSERT_EQUAL(kit_node_stop(&c.nodes[to], 10000), 0);
    int64_t stopped = kit_now_ms();
    int next = -1;
    while (next < 0 && kit_now_ms() - stopped < 450) /* an election takes
                                                        500 ms or more */
        for (size_t i = 0; i < c.count && next < 0; i++) {
            if (!c.nodes[i].pid)
                continue;
            json_t *h = kit_qkv_health(c.nodes[i].url, &status);
            if (!strcmp(kit_json_str(h, "role") ? kit_json_str(h, "role") : "",
                        "leader") &&
                json_is_true(json_object_get(h, "serving")))
                next = (int)i;
            json_decref(h);
        }
    CU_ASSERT(next >= 0 && next != (int)to);
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

typedef struct {
    const char *base, *to;
    long status;
} s_transfer_arg_t;

static void *s_transfer_thread(void *arg) {
    s_transfer_arg_t *t = arg;
    t->status = s_transfer(t->base, t->to, NULL);
    return NULL;
}

static void test_two_transfers_at_once(void) {
    /* two handovers asked at the same time: one node leads after them,
       every node agrees, and writes commit */
    kit_cluster_t c;
    int l = s_start(&c, 2, 1);
    s_transfer_arg_t a = {c.nodes[l].url, c.nodes[(l + 1) % 3].name, 0};
    s_transfer_arg_t b = {c.nodes[l].url, c.nodes[(l + 2) % 3].name, 0};
    pthread_t ta, tb;
    CU_ASSERT_FATAL(pthread_create(&ta, NULL, s_transfer_thread, &a) == 0);
    CU_ASSERT_FATAL(pthread_create(&tb, NULL, s_transfer_thread, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    printf("\n  two handovers: %ld and %ld", a.status, b.status);
    CU_ASSERT(a.status == 200 || a.status == 409 || a.status == 307);
    CU_ASSERT(b.status == 200 || b.status == 409 || b.status == 307);
    CU_ASSERT(a.status == 200 || b.status == 200);
    int now = kit_cluster_leader(&c, NEW_LEADER_MS);
    CU_ASSERT(now >= 0);
    if (now >= 0) {
        long status = 0;
        json_t *r =
            kit_qkv_write(c.nodes[now].url, "/put", "k", "v", &status, NULL);
        CU_ASSERT_EQUAL(status, 200);
        json_decref(r);
    }
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_kill_leader_under_load),
        KIT_TEST(test_paused_leader),
        KIT_TEST(test_no_election_without_quorum),
        KIT_TEST(test_mismatched_settings_refused),
        KIT_TEST(test_transfer_leader),
        KIT_TEST(test_two_transfers_at_once),
        KIT_TESTS_END};
    return kit_add_suite("failover", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    const char *external = getenv("QKV_TEST_NODES");
    if (external && *external)
        kit_skip("test_failover kills and pauses local processes "
                 "(QKV_TEST_NODES is set)",
                 false);
    return kit_run(s_add_suites);
}
