/*  test_power.c - what each FSYNC policy promises when the power goes.

    A kill -9 keeps the page cache, so what was written but not fsynced
    survives it. These tests need a build with failpoints (cmake
    -DQKV_FAILPOINTS=ON, as scripts/test.sh builds): QKV_FAILPOINT=wal-hold
    keeps log records in the node's memory until its writer fsyncs them,
    so a kill -9 loses them as a power loss would; wal-stall keeps them
    there for ever (a disk that hangs). Every cluster: a leader and two
    followers, WRITE_QUORUM=1.

    unsynced_entries_vanish: a leader whose disk hangs sends entries that
        followers hold, commits none of them (its own copy counts only
        once durable), answers none with 200 and shows none; killed and
        restarted without the failpoint, it comes back without them and
        the followers drop them.
    always: power loss of all three nodes: every write answered 200 is
        back.
    everysec: power loss of all three: every write answered 200 more than
        two seconds before it is back.
    never: kill -9 of all three (no power loss): every write answered 200
        is back.
*/
#include "kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 20000

static char s_tag[9];

/* Starts 1 + 2 with FSYNC=policy; failpoint (NULL: none) for every node. */
static void start(kit_cluster_t *c, const char *policy, const char *failpoint) {
    const char *args[] = {"--fsync", policy, NULL};
    kit_cluster_opts_t opts = {.followers = 2,
                               .write_quorum = 1,
                               .replication_timeout_ms = 1000,
                               .node_args = args};
    if (failpoint)
        setenv("QKV_FAILPOINT", failpoint, 1);
    int rc = kit_cluster_start(c, &opts);
    unsetenv("QKV_FAILPOINT");
    CU_ASSERT_FATAL(rc == 0);
}

/* Writes keys prefix-0 .. prefix-(n-1); returns how many got a 200 (each
   value is its key). */
static int write_keys(const char *url, const char *prefix, int n) {
    int ok = 0;
    for (int i = 0; i < n; i++) {
        char key[96];
        snprintf(key, sizeof key, "t%s-%s-%d", s_tag, prefix, i);
        long status;
        json_t *r = kit_qkv_write(url, "/put", key, key, &status, NULL);
        json_decref(r);
        ok += status == 200;
    }
    return ok;
}

/* How many of prefix-0 .. prefix-(n-1) the node holds with their value. */
static int held(const char *url, const char *prefix, int n) {
    long status;
    json_t *d = kit_qkv_dump(url, &status);
    json_t *entries = json_object_get(d, "entries");
    int found = 0;
    for (int i = 0; i < n; i++) {
        char key[96];
        snprintf(key, sizeof key, "t%s-%s-%d", s_tag, prefix, i);
        const char *v = kit_json_str(json_object_get(entries, key), "value");
        found += v && strcmp(v, key) == 0;
    }
    json_decref(d);
    return found;
}

/* Kills every node, then starts them again without failpoints. */
static void power_cycle(kit_cluster_t *c) {
    for (size_t i = 0; i < c->count; i++)
        kit_node_kill(&c->nodes[i]);
    for (size_t i = 1; i <= c->count; i++)
        CU_ASSERT_FATAL(kit_cluster_restart(c, i % c->count, WAIT_MS) == 0);
    CU_ASSERT(kit_qkv_settled(c->nodes[0].url, WAIT_MS, NULL));
}

static void test_unsynced_entries_vanish(void) {
    kit_cluster_t c;
    start(&c, "always", NULL);
    CU_ASSERT_EQUAL(write_keys(c.nodes[0].url, "before", 20), 20);
    CU_ASSERT(kit_qkv_settled(c.nodes[0].url, WAIT_MS, NULL));
    /* the leader again, on a disk that hangs */
    CU_ASSERT_EQUAL(kit_node_stop(&c.nodes[0], 10000), 0);
    setenv("QKV_FAILPOINT", "wal-stall", 1);
    CU_ASSERT_FATAL(kit_node_start(&c.nodes[0]) == 0);
    unsetenv("QKV_FAILPOINT");
    CU_ASSERT_FATAL(kit_node_wait_healthy(&c.nodes[0], WAIT_MS) == 0);
    uint64_t leader_last = kit_qkv_health_u64(c.nodes[0].url, "last_index");
    CU_ASSERT_EQUAL(write_keys(c.nodes[0].url, "lost", 5), 0);
    /* the followers hold them (durably), show none */
    uint64_t follower_last = kit_qkv_health_u64(c.nodes[1].url, "last_index");
    CU_ASSERT(follower_last >= leader_last + 5);
    for (size_t i = 0; i < c.count; i++)
        CU_ASSERT_EQUAL(held(c.nodes[i].url, "lost", 5), 0);
    /* power loss of the leader; back without the failpoint */
    kit_node_kill(&c.nodes[0]);
    CU_ASSERT_FATAL(kit_cluster_restart(&c, 0, WAIT_MS) == 0);
    CU_ASSERT(kit_qkv_settled(c.nodes[0].url, WAIT_MS, NULL));
    uint64_t last = kit_qkv_health_u64(c.nodes[0].url, "last_index");
    for (size_t i = 0; i < c.count; i++) {
        CU_ASSERT(
            kit_qkv_wait_same_dump(c.nodes[0].url, c.nodes[i].url, WAIT_MS));
        CU_ASSERT_EQUAL(held(c.nodes[i].url, "lost", 5), 0);
        CU_ASSERT_EQUAL(held(c.nodes[i].url, "before", 20), 20);
        uint64_t got = kit_qkv_health_u64(c.nodes[i].url, "last_index");
        if (got != last)
            fprintf(stderr, "\n  %s: last_index %llu, the leader's %llu\n",
                    c.nodes[i].name, (unsigned long long)got,
                    (unsigned long long)last);
        CU_ASSERT_EQUAL(got, last);
    }
    /* the followers dropped what the leader no longer had */
    CU_ASSERT(last < follower_last + 1);
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static void test_always_survives_power_loss(void) {
    kit_cluster_t c;
    start(&c, "always", "wal-hold");
    int ok = write_keys(c.nodes[0].url, "always", 200);
    CU_ASSERT_EQUAL(ok, 200);
    power_cycle(&c);
    for (size_t i = 0; i < c.count; i++) {
        CU_ASSERT(
            kit_qkv_wait_same_dump(c.nodes[0].url, c.nodes[i].url, WAIT_MS));
        CU_ASSERT_EQUAL(held(c.nodes[i].url, "always", 200), ok);
    }
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static void test_everysec_keeps_older_than_a_second(void) {
    kit_cluster_t c;
    start(&c, "everysec", "wal-hold");
    int ok = write_keys(c.nodes[0].url, "old", 100);
    CU_ASSERT_EQUAL(ok, 100);
    sleep(3); /* more than a second: fsynced since */
    int recent = write_keys(c.nodes[0].url, "recent", 20);
    power_cycle(&c);
    for (size_t i = 0; i < c.count; i++) {
        CU_ASSERT(
            kit_qkv_wait_same_dump(c.nodes[0].url, c.nodes[i].url, WAIT_MS));
        CU_ASSERT_EQUAL(held(c.nodes[i].url, "old", 100), 100);
    }
    fprintf(stderr,
            "\n  everysec: %d of %d writes answered just before the power "
            "loss survived it\n",
            held(c.nodes[0].url, "recent", 20), recent);
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static void test_never_survives_kill9(void) {
    kit_cluster_t c;
    start(&c, "never", NULL);
    int ok = write_keys(c.nodes[0].url, "never", 200);
    CU_ASSERT_EQUAL(ok, 200);
    power_cycle(&c); /* without hold: a process crash, the cache stays */
    for (size_t i = 0; i < c.count; i++) {
        CU_ASSERT(
            kit_qkv_wait_same_dump(c.nodes[0].url, c.nodes[i].url, WAIT_MS));
        CU_ASSERT_EQUAL(held(c.nodes[i].url, "never", 200), 200);
    }
    CU_ASSERT_EQUAL(kit_cluster_stop(&c), 0);
}

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_unsynced_entries_vanish),
        KIT_TEST(test_always_survives_power_loss),
        KIT_TEST(test_everysec_keeps_older_than_a_second),
        KIT_TEST(test_never_survives_kill9), KIT_TESTS_END};
    return kit_add_suite("power", NULL, NULL, tests) ? 0 : -1;
}

int main(void) {
    const char *external = getenv("QKV_TEST_NODES");
    if (external && *external)
        kit_skip("test_power needs local processes (QKV_TEST_NODES is set)",
                 false);
    const char *fp = getenv("QKV_FAILPOINTS_BUILD");
    if (!fp || strcmp(fp, "1") != 0)
        kit_skip("test_power needs failpoints: build with "
                 "-DQKV_FAILPOINTS=ON (scripts/test.sh does)",
                 true);
    kit_node_bin();
    snprintf(s_tag, sizeof s_tag, "%08x", (unsigned)getpid());
    return kit_run(s_add_suites);
}
